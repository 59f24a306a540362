"""RAW photos (``sources/raw.py``): real DNG files built here from a COCO photo's pixels laid
out as a Bayer mosaic (``fixtures/make_dng.py``, pidng), with and without an embedded JPEG
preview; both development paths, orientation applied exactly once, a corrupt RAW skipped
with a reason, and the RAW+JPEG pair rule through a real ingest."""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, shared_path

pytest.importorskip("rawpy", reason="RAW support needs rawpy: pip install -e '.[test]'")
pytest.importorskip("pidng", reason="the DNG fixtures need pidng: pip install -e '.[test]'")

from make_dng import dng_bytes, preview_jpeg  # noqa: E402

from mmembed.errors import ImageDecodeError  # noqa: E402
from mmembed.sources.decode import load_image  # noqa: E402
from mmembed.sources.raw import RAW_MISSING, develop  # noqa: E402

_TRANSPOSE = {1: None, 2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
              6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}
DATE = "2021:05:06 07:08:09"
DATE_NS = 1620284889 * 1_000_000_000


def _upright(image, orientation: int):
    """What a viewer shows for pixels stored with this EXIF orientation."""
    from PIL import Image

    name = _TRANSPOSE[orientation]
    return image if name is None else image.transpose(getattr(Image.Transpose, name))


@pytest.fixture(scope="module")
def source():
    """The scene every DNG holds: a COCO photo, 384x256 (landscape, clearly not symmetric)."""
    from PIL import Image

    with Image.open(shared_path("data/photos/coco/000000000139.jpg")) as im:
        return im.convert("RGB").resize((384, 256), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def dngs(source, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """DNGs by name: ``o{N}`` / ``o{N}_preview`` for each orientation N (the preview JPEG, 240x160,
    carries the same orientation tag in its own EXIF, as cameras write it), and
    ``o6_upright_preview`` whose preview is stored already turned."""
    folder = tmp_path_factory.mktemp("dngs")
    rgb = np.asarray(source)
    out = {}
    for o in range(1, 9):
        out[f"o{o}"] = dng_bytes(rgb, orientation=o, date=DATE)
        out[f"o{o}_preview"] = dng_bytes(rgb, orientation=o, date=DATE, preview=preview_jpeg(source, 240, o))
    out["o6_upright_preview"] = dng_bytes(rgb, orientation=6, preview=preview_jpeg(_upright(source, 6), 240))
    paths = {}
    for name, data in out.items():
        paths[name] = folder / f"{name}.dng"
        paths[name].write_bytes(data)
    return paths


def _which_orientation(image, source) -> int:
    """The orientation whose upright view of ``source`` best matches ``image`` (by correlation)."""
    from PIL import Image

    got = np.asarray(image.convert("L"), np.float32).ravel()
    scores = {}
    for o in range(1, 9):
        view = _upright(source, o)
        if (view.width > view.height) != (image.width > image.height):
            continue
        want = np.asarray(view.convert("L").resize(image.size, Image.Resampling.BILINEAR), np.float32).ravel()
        scores[o] = float(np.corrcoef(got, want)[0, 1])
    best = max(scores, key=scores.get)
    assert scores[best] > 0.9, scores
    return best


@pytest.mark.parametrize("orientation", range(1, 9))
def test_both_paths_are_upright_exactly_once(dngs, source, orientation: int) -> None:
    preview = develop(str(dngs[f"o{orientation}_preview"]), "x.dng", min_side=64)
    demosaic = develop(str(dngs[f"o{orientation}"]), "x.dng", min_side=64)  # no preview in the file
    assert (preview.path, demosaic.path) == ("preview", "demosaic")
    for developed in (preview, demosaic):
        assert _which_orientation(developed.image, source) == orientation
        assert (developed.width, developed.height) == ((256, 384) if orientation >= 5 else (384, 256))
        assert developed.taken_ns == DATE_NS


def test_a_preview_stored_upright_is_not_turned_again(dngs, source) -> None:
    developed = develop(str(dngs["o6_upright_preview"]), "x.dng", min_side=64)
    assert developed.path == "preview" and developed.image.height > developed.image.width
    assert _which_orientation(developed.image, source) == 6


def test_a_small_preview_or_exact_decoding_takes_the_demosaic_path(dngs) -> None:
    path = str(dngs["o1_preview"])
    assert develop(path, "x.dng", min_side=64).path == "preview"
    assert develop(path, "x.dng", min_side=200).path == "demosaic"  # the preview's 160 px do not cover 200
    assert develop(path, "x.dng").path == "demosaic"  # no min_side: exact
    half = develop(path, "x.dng")
    assert half.image.size == (192, 128) and (half.width, half.height) == (384, 256)


def test_load_image_reads_raw_from_path_or_bytes(dngs) -> None:
    data = dngs["o8_preview"].read_bytes()
    for decoded in (load_image(dngs["o8_preview"], min_side=64), load_image(data, name="IMG.DNG", min_side=64)):
        assert decoded.format == "RAW" and decoded.image.mode == "RGB"
        assert (decoded.width, decoded.height) == (256, 384) and decoded.taken_ns == DATE_NS
    with pytest.raises(ImageDecodeError, match="above the --max-megapixels cap of 0.05"):
        load_image(dngs["o1"], max_megapixels=0.05)


def test_corrupt_or_unreadable_raw_files_have_a_reason(dngs, tmp_path: Path, monkeypatch) -> None:
    bad = {"garbage.cr2": b"not a raw file at all" * 50, "empty.nef": b""}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageDecodeError) as caught:
            load_image(tmp_path / name)
        assert caught.value.reason.startswith(("not a readable RAW file (", "empty file")), caught.value.reason
    whole = dngs["o1"].read_bytes()
    for name, size in (("truncated.dng", 2000), ("half.nef", len(whole) // 2)):  # copies that stopped
        (tmp_path / name).write_bytes(whole[:size])
        with pytest.raises(ImageDecodeError) as caught:
            load_image(tmp_path / name)
        assert caught.value.reason.startswith("RAW file is cut short or damaged (LibRawIOError")
        assert caught.value.reason.endswith("copy it again from the camera or card")
    monkeypatch.setitem(sys.modules, "rawpy", None)  # as if the extra were not installed
    with pytest.raises(ImageDecodeError) as caught:
        load_image(dngs["o1"])
    assert caught.value.reason == RAW_MISSING == "RAW support needs rawpy; install the extra: pip install 'mmembed[raw]'"


@pytest.fixture
def shoot(dngs, source, tmp_path: Path) -> Path:
    """IMG_1.JPG + IMG_1.DNG (a pair), IMG_2.dng alone (with preview), IMG_3.jpg alone, bad.cr2."""
    folder = tmp_path / "shoot"
    folder.mkdir()
    source.save(folder / "IMG_1.JPG", quality=90)
    shutil.copy(dngs["o1"], folder / "IMG_1.DNG")
    shutil.copy(dngs["o6_preview"], folder / "IMG_2.dng")
    source.save(folder / "IMG_3.jpg", quality=90)
    (folder / "bad.cr2").write_bytes(b"\x00" * 4096)
    return folder


def _by_name(index) -> dict[str, dict]:
    return {os.path.basename(item["path"]): item for item in index.items()}


def test_ingest_indexes_the_jpeg_of_a_pair_and_records_its_raw(index, shoot: Path) -> None:
    report = index.ingest(shoot)
    assert report.added == 3 and [(os.path.basename(s.path), s.reason[:23]) for s in report.skipped] == [
        ("bad.cr2", "not a readable RAW file")]
    rows = _by_name(index)
    assert sorted(rows) == ["IMG_1.JPG", "IMG_2.dng", "IMG_3.jpg"]
    assert rows["IMG_1.JPG"]["raw_siblings"] == ["IMG_1.DNG"] and rows["IMG_1.JPG"]["format"] == "JPEG"
    assert rows["IMG_3.jpg"]["raw_siblings"] is None
    raw = rows["IMG_2.dng"]
    assert (raw["format"], raw["width"], raw["height"], raw["taken_ns"]) == ("RAW", 256, 384, DATE_NS)
    hits = index.search(image=str(shoot / "IMG_2.dng"), limit=1)
    assert os.path.basename(hits[0].path) == "IMG_2.dng" and hits[0].score > 0.95  # query: demosaic; row: preview
    hits = index.search(image=str(shoot / "IMG_2.dng"), where="format = 'RAW' OR raw_siblings IS NOT NULL")
    assert sorted(os.path.basename(h.path) for h in hits) == ["IMG_1.JPG", "IMG_2.dng"]

    # keep-both is another ingest, not the no-op of the last one: the paired RAW joins
    report = index.ingest(shoot, raw_pairs="keep-both")
    assert report.added == 1 and report.unchanged == 3
    rows = _by_name(index)
    assert rows["IMG_1.DNG"]["format"] == "RAW" and rows["IMG_1.JPG"]["raw_siblings"] == ["IMG_1.DNG"]

    # a RAW that arrives beside an indexed JPEG is recorded on its row, the JPEG is not re-read;
    # back to the default, the paired RAW is only the JPEG's sibling again: its own row goes
    shutil.copy(shoot / "IMG_1.DNG", shoot / "img_3.CR2")
    report = index.ingest(shoot)
    assert (report.added, report.updated, report.unchanged, report.removed, report.rows) == (0, 0, 3, 1, 3)
    assert _by_name(index)["IMG_3.jpg"]["raw_siblings"] == ["img_3.CR2"] and "IMG_1.DNG" not in _by_name(index)
    assert index.ingest(shoot).unchanged == 3  # and now it is a no-op again

    # a JPEG that arrives beside a RAW indexed alone: one photo again, not two results
    from PIL import Image

    Image.new("RGB", (48, 32), (200, 120, 40)).save(shoot / "IMG_2.jpg")
    report = index.ingest(shoot)
    assert (report.added, report.removed, report.rows) == (1, 1, 3)
    rows = _by_name(index)
    assert "IMG_2.dng" not in rows and rows["IMG_2.jpg"]["raw_siblings"] == ["IMG_2.dng"]


def test_a_table_made_before_the_column_gets_it(index, shoot: Path) -> None:
    (shoot / "IMG_1.DNG").rename(shoot / "later.dng")  # no pair yet
    index.ingest(shoot)
    index.store.table.drop_columns(["raw_siblings"])  # as the table was before RAW support
    index.store._table = None
    assert "raw_siblings" not in index.store.table.schema.names
    (shoot / "later.dng").rename(shoot / "IMG_1.DNG")
    report = index.ingest(shoot)
    assert report.removed == 1  # later.dng is gone; IMG_1.DNG pairs with IMG_1.JPG
    assert _by_name(index)["IMG_1.JPG"]["raw_siblings"] == ["IMG_1.DNG"]


def test_raw_rows_get_a_thumbnail(index, shoot: Path) -> None:
    from PIL import Image

    from mmembed.serve.thumbs import Thumbnailer

    index.ingest(shoot)
    row = _by_name(index)["IMG_2.dng"]
    rendition = Thumbnailer(index.config.db, index.config.table).get(row["path"], row["content_hash"], 160)
    with Image.open(rendition.path) as thumb:
        assert thumb.format == "JPEG" and thumb.height > thumb.width and thumb.height <= 160  # upright


def test_more_like_a_raw_photo_searches_with_its_developed_pixels(index, shoot: Path) -> None:
    from mmembed.serve.library import Library

    index.ingest(shoot)
    row = _by_name(index)["IMG_2.dng"]
    page = Library(index).search(like=row["id"], limit=5)  # its checked bytes alone would not say "RAW"
    assert page.hits and row["id"] not in [h.id for h in page.hits]
    assert page.hits[0].score > 0.5, [(h.path, h.score) for h in page.hits]  # the JPEGs of the same picture


def test_cli_refuses_an_unknown_raw_pairs_value(tmp_path: Path) -> None:
    result = run_cli("ingest", str(tmp_path), "--db", str(tmp_path / "db"), "--raw-pairs", "raw")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: --raw-pairs 'raw' is not one of jpeg, keep-both"]


def test_preview_and_demosaic_vectors_mean_the_same_photo(dngs, source, micro_clip: str) -> None:
    from mmembed.ingest.prepare import ImageDecoder
    from mmembed.models.encoder import Encoder

    encoder = Encoder(micro_clip)
    decode = ImageDecoder(encoder)
    jpeg = io.BytesIO()
    source.save(jpeg, "JPEG", quality=92)
    tensors = [decode(data, 100.0, name=name)[1] for data, name in (
        (dngs["o1_preview"].read_bytes(), "a.dng"), (dngs["o1"].read_bytes(), "b.dng"), (jpeg.getvalue(), "c.jpg"))]
    preview, demosaic, original = encoder.encode_pixels(tensors)
    assert float(preview @ original) > 0.95
    assert float(demosaic @ original) > 0.9
    assert float(preview @ demosaic) > 0.9
