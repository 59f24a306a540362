"""Discovery and decoding on real files: every format and colour mode, and every kind of bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmembed import ImageDecodeError, load_image
from mmembed.errors import ConfigError
from mmembed.sources import walk

from conftest import FIXTURE_IMAGES

ALL_FIXTURES = sorted(p.name for p in FIXTURE_IMAGES.iterdir())


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_fixture_format_decodes_to_rgb(name: str) -> None:
    decoded = load_image(FIXTURE_IMAGES / name)
    assert decoded.image.mode == "RGB"
    expected = (48, 64) if name == "rotated_exif6.jpg" else (64, 48)
    assert (decoded.width, decoded.height) == expected
    assert decoded.image.size == expected
    # A real picture, not a blank: the fixtures all have a shape on a background.
    assert np.asarray(decoded.image).std() > 5


def test_format_is_read_from_content_not_extension() -> None:
    assert load_image(FIXTURE_IMAGES / "lying_png.jpg").format == "PNG"
    assert load_image(FIXTURE_IMAGES / "phone.heic").format == "HEIF"
    assert load_image(FIXTURE_IMAGES / "phone.avif").format == "AVIF"


def test_exif_orientation_is_applied() -> None:
    raw = Image.open(FIXTURE_IMAGES / "rotated_exif6.jpg").convert("RGB")
    upright = load_image(FIXTURE_IMAGES / "rotated_exif6.jpg").image
    # Orientation 6 = rotate 90 degrees clockwise for display.
    expected = np.asarray(raw.transpose(Image.Transpose.ROTATE_270)).astype(int)
    assert np.abs(np.asarray(upright).astype(int) - expected).mean() < 1


def test_alpha_is_composited_on_white() -> None:
    src = Image.open(FIXTURE_IMAGES / "alpha.png")
    alpha = np.asarray(src.getchannel("A"))
    rgb = np.asarray(load_image(FIXTURE_IMAGES / "alpha.png").image)
    transparent = alpha == 0
    assert transparent.any()
    assert (rgb[transparent] == 255).all()


def test_palette_transparency_is_composited_on_white() -> None:
    src = Image.open(FIXTURE_IMAGES / "palette_transparent.png")
    index0 = np.asarray(src) == 0
    rgb = np.asarray(load_image(FIXTURE_IMAGES / "palette_transparent.png").image)
    assert index0.any()
    assert (rgb[index0] == 255).all()


def test_16_bit_grayscale_is_scaled_not_clipped() -> None:
    rgb = np.asarray(load_image(FIXTURE_IMAGES / "gray16.png").image).astype(float)
    # The fixture is a full-range vertical gradient; clipping would make most of it white.
    assert 100 < rgb.mean() < 155
    assert rgb.min() < 10 and rgb.max() > 245


def test_cmyk_colours_survive() -> None:
    cmyk = np.asarray(load_image(FIXTURE_IMAGES / "cmyk.jpg").image).astype(int)
    # Scene 12's background is (60, 40, 20): a dark brown, so red > green > blue at a corner.
    r, g, b = cmyk[2, 2]
    assert r > g > b


def test_animated_gif_gives_first_frame() -> None:
    first = np.asarray(Image.open(FIXTURE_IMAGES / "animated.gif").convert("RGB")).astype(int)
    got = np.asarray(load_image(FIXTURE_IMAGES / "animated.gif").image).astype(int)
    assert np.abs(got - first).mean() < 1


# ------------------------------------------------------------------ bad input

def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    data = (FIXTURE_IMAGES / "red.jpg").read_bytes()
    bad = tmp_path / "half.jpg"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="truncated or corrupt") as info:
        load_image(bad)
    assert info.value.path == str(bad)


def test_zero_byte_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.touch()
    with pytest.raises(ImageDecodeError, match="empty file"):
        load_image(empty)


def test_text_file_with_image_extension_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a picture\n" * 20)
    with pytest.raises(ImageDecodeError, match="not a readable image"):
        load_image(fake)


def test_garbage_after_valid_header_is_refused(tmp_path: Path) -> None:
    data = bytearray((FIXTURE_IMAGES / "green.png").read_bytes())
    data[60:] = os.urandom(len(data) - 60)
    bad = tmp_path / "scrambled.png"
    bad.write_bytes(bytes(data))
    with pytest.raises(ImageDecodeError):
        load_image(bad)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="not found"):
        load_image(tmp_path / "nope.jpg")


def test_megapixel_cap_refuses_before_decoding(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (2000, 1500), (10, 20, 30)).save(big)
    with pytest.raises(ImageDecodeError, match=r"2000x1500 \(3 MP\).*--max-megapixels"):
        load_image(big, max_megapixels=1)
    assert load_image(big, max_megapixels=5).width == 2000


def test_jxl_without_plugin_names_the_package(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("pillow_jxl") is not None:
        pytest.skip("pillow-jxl-plugin is installed, so .jxl decodes; nothing to refuse")
    fake = tmp_path / "x.jxl"
    fake.write_bytes(b"\xff\x0a" + os.urandom(64))
    with pytest.raises(ImageDecodeError, match="pillow-jxl-plugin"):
        load_image(fake)


# ------------------------------------------------------------------ walking

def _names(found) -> list[str]:
    return sorted(os.path.basename(f.path) for f in found)


def test_walk_is_recursive_case_insensitive_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for rel in ("top.JPG", "a/mid.png", "a/b/deep.heic", ".dot.jpg", ".hidden/h.jpg", "a/notes.txt"):
        (tmp_path / rel).write_bytes(b"x")
    assert _names(walk([tmp_path])) == ["deep.heic", "mid.png", "top.JPG"]
    assert _names(walk([tmp_path], hidden=True)) == [".dot.jpg", "deep.heic", "h.jpg", "mid.png", "top.JPG"]


def test_walk_include_and_exclude_globs(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "keep").mkdir()
    for rel in ("raw/a.jpg", "keep/b.jpg", "keep/c.png", "d.JPG"):
        (tmp_path / rel).write_bytes(b"x")
    assert _names(walk([tmp_path], exclude=["raw"])) == ["b.jpg", "c.png", "d.JPG"]
    assert _names(walk([tmp_path], include=["*.jpg"])) == ["a.jpg", "b.jpg", "d.JPG"]
    assert _names(walk([tmp_path], include=["keep/*"], exclude=["*.png"])) == ["b.jpg"]


def test_walk_symlinked_folders_only_when_asked_and_never_loops(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "x.jpg").write_bytes(b"x")
    root = tmp_path / "root"
    root.mkdir()
    (root / "own.jpg").write_bytes(b"x")
    (root / "link").symlink_to(real, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    assert _names(walk([root])) == ["own.jpg"]
    assert _names(walk([root], follow_symlinks=True)) == ["own.jpg", "x.jpg"]


def test_walk_keeps_a_files_own_path_when_a_link_inside_the_tree_points_at_its_folder(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.jpg").write_bytes(b"x")
    (tmp_path / "a-link").symlink_to("real", target_is_directory=True)  # sorts before the folder it names
    found = [f.path for f in walk([tmp_path], follow_symlinks=True)]
    assert found == [str(tmp_path / "real" / "a.jpg")]


def test_a_database_inside_the_photo_folder_is_not_indexed(tmp_path: Path, tiny_model: str) -> None:
    """The web app keeps thumbnails beside the table (``images.thumbs``): with ``--db`` inside the
    photo folder, a second ingest indexed them as copies of the photos shown."""
    import shutil

    import mmembed

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("rotated_exif6.jpg", "red.jpg"):
        shutil.copy(FIXTURE_IMAGES / name, photos / name)
    db = photos / "photos.lancedb"
    index = mmembed.Index(db, model=tiny_model)
    assert index.ingest(photos, ocr=False).added == 2
    thumbs = db / "images.thumbs" / "4f"
    thumbs.mkdir(parents=True)
    shutil.copy(photos / "red.jpg", thumbs / "4f00-320-v1.jpg")  # as the web app caches a rendition
    report = index.ingest(photos, ocr=False)
    assert report.added == 0 and report.unchanged == 2, report
    assert _names(walk([photos])) == ["red.jpg", "rotated_exif6.jpg"]


def test_walk_reports_broken_links_and_dedupes_overlapping_roots(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jpg").write_bytes(b"x")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    errors: list[tuple[str, str]] = []
    found = list(walk([tmp_path, tmp_path / "sub"], on_error=lambda p, r: errors.append((p, r))))
    assert _names(found) == ["a.jpg"]
    assert errors == [(str(tmp_path / "dangling.jpg"), "broken symlink (its target does not exist)")]


def test_walk_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or folder"):
        list(walk([tmp_path / "nowhere"]))


def test_header_only_jpeg_is_refused(tmp_path: Path) -> None:
    stub = tmp_path / "stub.jpg"
    stub.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ImageDecodeError, match="truncated or corrupt"):
        load_image(stub)
