"""The lean runtime (issue 10): the image tower exported to ONNX and run by onnxruntime, so that
fp32 ingest on a CPU and image queries need neither torch nor open_clip."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mmembed
from mmembed.models.encoder import Encoder

from conftest import FIXTURE_IMAGES, shared_path

PLAIN = ["red.jpg", "green.png", "rotated_exif6.jpg", "cmyk.jpg", "alpha.png", "phone.heic"]


@pytest.fixture
def fp32_table(photos: Path, db: str, tiny_model: str) -> str:
    """A table built at fp32; its first write exports both towers of the model."""
    mmembed.Index(db, model=tiny_model, precision="fp32").ingest(photos)
    return db


def test_the_image_tower_reproduces_open_clip(fp32_table: str, tiny_model: str) -> None:
    torch_encoder = Encoder(tiny_model, device="cpu", precision="fp32", runtime="torch")
    onnx_encoder = Encoder(tiny_model, device="cpu", precision="fp32")
    assert onnx_encoder.on_onnx and not torch_encoder.on_onnx
    paths = [FIXTURE_IMAGES / n for n in PLAIN]
    cosines = (onnx_encoder.encode_images(paths) * torch_encoder.encode_images(paths)).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines
    texts = ["a red circle", "two dogs"]
    assert (onnx_encoder.encode_text(texts) * torch_encoder.encode_text(texts)).sum(axis=1).min() >= 0.9999
    assert onnx_encoder.dim == torch_encoder.dim and onnx_encoder.image_size == torch_encoder.image_size


def test_fp32_ingest_and_image_queries_run_without_torch(fp32_table: str, photos: Path, tmp_path: Path) -> None:
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "copy.png").write_bytes((photos / "green.png").read_bytes())
    (extra / "new.jpg").write_bytes((photos / "rotated_exif6.jpg").read_bytes()[:-10] + b"\xff\xd9" * 5)
    script = (
        "import sys, mmembed\n"
        f"idx = mmembed.Index({fp32_table!r}, precision='fp32')\n"
        f"report = idx.ingest([{str(photos)!r}, {str(extra)!r}])\n"
        f"hits = idx.search(image={str(photos / 'cmyk.jpg')!r}, limit=2)\n"
        "print(report.added + report.updated + report.moved, hits[0].path.endswith('cmyk.jpg'), round(hits[0].score, 4),\n"
        "      'torch' in sys.modules, 'open_clip' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    added, found_itself, score, torch_loaded, open_clip_loaded = done.stdout.split()
    assert int(added) >= 1 and found_itself == "True" and float(score) == pytest.approx(1.0, abs=1e-4)
    assert (torch_loaded, open_clip_loaded) == ("False", "False")


def test_an_indexed_photo_finds_itself_at_cosine_1_on_both_paths(tmp_path: Path, tiny_model: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A 640x426 COCO JPEG is decoded at a reduced DCT scale by ingest (``--decode fast``, the
    default); the query decodes it the same way, so it is its own nearest at cosine 1 (it was 0.995)."""
    folder = tmp_path / "coco"
    folder.mkdir()
    photos = sorted(shared_path("data/photos/coco").glob("*.jpg"))[:6]
    for photo in photos:
        (folder / photo.name).write_bytes(photo.read_bytes())
    for decode in ("fast", "exact"):  # MMEMBED_DECODE (or --decode) for ingest and search alike
        db = str(tmp_path / f"db-{decode}")
        assert mmembed.Index(db, model=tiny_model, decode=decode).ingest(folder).added == 6
        for quick in ("1", "0"):
            monkeypatch.setenv("MMEMBED_QUICK", quick)
            for photo in photos[:3]:
                hit = mmembed.Index(db, decode=decode).search(image=folder / photo.name, limit=1)[0]
                assert Path(hit.path).name == photo.name and hit.score == pytest.approx(1.0, abs=1e-5), \
                    (decode, quick, photo.name, hit.score)


def test_a_cold_image_query_imports_neither_torch_nor_lancedb(fp32_table: str, photos: Path) -> None:
    script = (
        "import sys\nfrom mmembed.config import Config\nfrom mmembed.retrieval.searcher import quick_search\n"
        f"hits = quick_search(Config.resolve(db={fp32_table!r}, precision='fp32'), None, limit=3,"
        f" image={str(photos / 'alpha.png')!r})\n"
        "print(hits[0].path.endswith('alpha.png'), round(hits[0].score, 4), 'torch' in sys.modules, 'lancedb' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found, score, torch_loaded, lancedb_loaded = done.stdout.split()
    assert found == "True" and float(score) == pytest.approx(1.0, abs=1e-4)
    assert (torch_loaded, lancedb_loaded) == ("False", "False")


def test_image_queries_stay_on_torch_where_ingest_runs_bf16(fp32_table: str) -> None:
    """An image query is encoded as its table's images were: not on the fp32 tower for bf16."""
    from mmembed.retrieval.quick import QuickSearch

    meta = mmembed.Index(fp32_table).store.snapshot_meta()
    from dataclasses import asdict

    assert QuickSearch(fp32_table, "images", precision="fp32").image_encoder(asdict(meta)) is not None
    assert QuickSearch(fp32_table, "images", precision="bf16").image_encoder(asdict(meta)) is None


@pytest.mark.parametrize("damaged", ["image.onnx", "image.onnx.data"])
def test_a_damaged_image_tower_falls_back_to_torch(fp32_table: str, tiny_model: str, damaged: str) -> None:
    from mmembed.models.image_tower import image_tower_folder

    encoder = Encoder(tiny_model, device="cpu", precision="fp32")
    onnx = Path(image_tower_folder(encoder.spec.fingerprint)) / damaged
    onnx.write_bytes(b"garbage" * 10)
    assert not encoder.on_onnx  # changed since the export: torch instead
    vectors = encoder.encode_images([FIXTURE_IMAGES / "red.jpg"])
    assert vectors.shape == (1, 32) and np.isfinite(vectors).all()


def test_the_image_towers_weights_are_kept_apart_from_its_graph(fp32_table: str, tiny_model: str) -> None:
    """Issue 26: the weights are ONNX external data, which onnxruntime memory-maps; a one-shot
    session (a CLI image query) skips pre-packing, and encodes exactly as the ingest session."""
    import json

    from mmembed.models.image_tower import (
        IMAGE_DATA_FILE, IMAGE_TOWER_FILE, OnnxImageEncoder, image_tower_folder,
    )

    folder = Path(image_tower_folder(Encoder(tiny_model).spec.fingerprint))
    info = json.loads((folder / "image.json").read_text())
    assert info["format"] == 2 and info["min_cosine_on_check"] >= 0.9999
    graph, data = (folder / IMAGE_TOWER_FILE).stat(), (folder / IMAGE_DATA_FILE).stat()
    assert data.st_size > 4 * graph.st_size  # the weights are in the data file
    assert info["file"] == [graph.st_size, graph.st_mtime_ns] and info["data"] == [data.st_size, data.st_mtime_ns]
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no staging left behind
    crop = info["preprocess"]["crop"]
    pixels = np.random.default_rng(0).standard_normal((3, 3, *crop)).astype(np.float32)
    one_shot = OnnxImageEncoder(str(folder), one_shot=True).encode_pixels(pixels)
    np.testing.assert_allclose(one_shot, OnnxImageEncoder(str(folder)).encode_pixels(pixels), atol=1e-5)


def test_a_single_file_image_tower_is_rewritten_once_and_keeps_its_int8_tower(int8_table: str, tiny_model: str) -> None:
    """An export of the older format (weights inside image.onnx) keeps working: its first load
    moves the weights apart, with the same vectors, and its int8 tower (made from the same
    weights) stays current instead of being quantised again."""
    import json

    import onnx

    from mmembed.models.image_tower import (
        IMAGE_DATA_FILE, IMAGE_TOWER_FILE, INT8_FILE, OnnxImageEncoder, image_tower_folder, int8_tower_exists,
    )

    folder = Path(image_tower_folder(Encoder(tiny_model).spec.fingerprint))
    graph = onnx.load(str(folder / IMAGE_TOWER_FILE))  # the weights read in: written as one file, as format 1 had it
    onnx.save_model(graph, str(folder / "single.onnx"))
    (folder / "single.onnx").replace(folder / IMAGE_TOWER_FILE)
    (folder / IMAGE_DATA_FILE).unlink()
    st = (folder / IMAGE_TOWER_FILE).stat()
    info = json.loads((folder / "image.json").read_text())
    info.update(format=1, file=[st.st_size, st.st_mtime_ns])
    del info["data"]
    (folder / "image.json").write_text(json.dumps(info))
    int8_info = json.loads((folder / "image.int8.json").read_text())
    (folder / "image.int8.json").write_text(json.dumps({**int8_info, "from": info["file"]}))
    int8_made = (folder / INT8_FILE).stat().st_mtime_ns
    crop = info["preprocess"]["crop"]
    pixels = np.random.default_rng(1).standard_normal((2, 3, *crop)).astype(np.float32)
    before = OnnxImageEncoder(str(folder)).encode_pixels(pixels)

    assert Encoder(tiny_model, device="cpu", precision="fp32").on_onnx
    after = json.loads((folder / "image.json").read_text())
    assert after["format"] == 2
    assert (folder / IMAGE_DATA_FILE).stat().st_size > (folder / IMAGE_TOWER_FILE).stat().st_size
    np.testing.assert_array_equal(OnnxImageEncoder(str(folder)).encode_pixels(pixels), before)
    assert int8_tower_exists(str(folder)) and (folder / INT8_FILE).stat().st_mtime_ns == int8_made
    assert Encoder(tiny_model, device="cpu").load().precision == "int8"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_a_new_fp32_table_is_encoded_on_onnx_runtime_from_the_start(photos: Path, tmp_path: Path, tiny_model: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMEMBED_CACHE", str(tmp_path / "empty-cache"))  # nothing exported yet
    idx = mmembed.Index(str(tmp_path / "new.lancedb"), model=tiny_model, precision="fp32")
    report = idx.ingest(photos)
    assert report.added == len(list(FIXTURE_IMAGES.iterdir()))
    assert idx.encoder.on_onnx  # exported first, then every image went through onnxruntime
    reference = Encoder(tiny_model, device="cpu", precision="fp32", runtime="torch")
    stored = idx.store.read_columns(["path", "image_vector"]).to_pylist()
    want = reference.encode_images([r["path"] for r in stored[:4]])
    got = np.array([r["image_vector"] for r in stored[:4]], dtype=np.float32)
    assert (want * got).sum(axis=1).min() >= 0.999  # decoded at reduced JPEG scale by ingest, exactly here


def test_an_image_query_with_words_survives_a_damaged_text_tower(fp32_table: str, photos: Path, tiny_model: str) -> None:
    """The text tower loads on the first text; damaged by then, the words go through torch."""
    from mmembed.models.text_tower import TEXT_TOWER_FILE, tower_folder

    encoder = Encoder(tiny_model, device="cpu", precision="fp32")
    assert encoder.on_onnx
    onnx = Path(tower_folder(encoder.spec.fingerprint)) / TEXT_TOWER_FILE
    onnx.write_bytes(b"garbage" * 10)
    vectors = encoder.encode_text(["a red circle"])
    reference = Encoder(tiny_model, device="cpu", precision="fp32", runtime="torch").encode_text(["a red circle"])
    assert (vectors * reference).sum() >= 0.9999
    assert encoder.encode_images([photos / "red.jpg"]).shape == (1, 32)  # images stay on the tower


@pytest.mark.slow  # long; its mechanism is also covered in the default run (CI time)
def test_offline_without_hf_hub_offline_a_hub_model_fails_fast(photos: Path, tmp_path: Path) -> None:
    """The hub unreachable (here: an endpoint on a closed local port) and HF_HUB_OFFLINE unset:
    one line naming the fix, in seconds rather than after a minute of retries."""
    import socket

    from conftest import run_cli

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"))
    started = time.perf_counter()
    done = run_cli("ingest", str(photos), "--db", str(tmp_path / "x.lancedb"), "--model", "ViT-B-32",
                   "--pretrained", "laion2b_s34b_b79k", "-q", env=env, timeout=120)
    took = time.perf_counter() - started
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "could not download weights" in lines[0] and "local-dir:" in lines[0], done.stderr
    assert took < 30, took


@pytest.fixture
def int8_table(photos: Path, db: str, tiny_model: str) -> str:
    """A table built at the default precision: int8 on ONNX Runtime on a CPU."""
    mmembed.Index(db, model=tiny_model).ingest(photos)
    return db


def test_auto_on_a_cpu_is_int8_on_onnx_runtime_close_to_fp32(int8_table: str, tiny_model: str) -> None:
    from mmembed.models.image_tower import INT8_FILE, image_tower_folder

    int8 = Encoder(tiny_model, device="cpu")
    fp32 = Encoder(tiny_model, device="cpu", precision="fp32", runtime="torch")
    assert int8.on_onnx and int8.precision == "int8"
    assert (Path(image_tower_folder(int8.spec.fingerprint)) / INT8_FILE).is_file()
    paths = [FIXTURE_IMAGES / n for n in PLAIN]
    a, b = int8.encode_images(paths), fp32.encode_images(paths)
    cosines = (a * b).sum(axis=1)
    assert cosines.min() >= 0.99 and cosines.min() < 0.999999, cosines  # close, and really quantised


def test_an_int8_table_finds_an_image_by_itself_without_torch(int8_table: str, photos: Path) -> None:
    script = (
        "import sys\nfrom mmembed.config import Config\nfrom mmembed.retrieval.searcher import quick_search\n"
        f"hits = quick_search(Config.resolve(db={int8_table!r}), None, limit=3, image={str(photos / 'alpha.png')!r})\n"
        "print(hits[0].path.endswith('alpha.png'), round(hits[0].score, 4), 'torch' in sys.modules, 'lancedb' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found, score, torch_loaded, lancedb_loaded = done.stdout.split()
    assert found == "True" and float(score) == pytest.approx(1.0, abs=1e-4)  # the same int8 tower both times
    assert (torch_loaded, lancedb_loaded) == ("False", "False")


def test_an_unfaithful_int8_tower_is_not_used(fp32_table: str, tiny_model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quantisation is checked against fp32; under the bar no graph is written (only the
    rejection, for that bar) and fp32 runs."""
    from mmembed.models import image_tower

    folder = Path(image_tower.image_tower_folder(Encoder(tiny_model).spec.fingerprint))
    for name in (image_tower.INT8_FILE, "image.int8.json"):
        (folder / name).unlink(missing_ok=True)
    monkeypatch.setattr(image_tower, "_MIN_INT8_COSINE", 1.000001)  # no quantised graph can reach it
    encoder = Encoder(tiny_model, device="cpu")
    assert encoder.on_onnx and encoder.precision == "fp32"
    assert not (folder / image_tower.INT8_FILE).exists()
    assert not list(folder.glob(".image.int8.*"))  # no temporary files left behind


def test_int8_on_torch_becomes_bf16_or_fp32(tiny_model: str) -> None:
    """A model without exported towers (forced here) runs int8 requests on torch, in the
    precision torch is fast at on this CPU."""
    torch_only = Encoder(tiny_model, device="cpu", precision="int8", runtime="torch")
    assert torch_only.load().precision in ("bf16", "fp32")


def test_the_text_tower_runs_int8_beside_an_int8_image_tower(int8_table: str, tiny_model: str) -> None:
    from mmembed.models.text_tower import INT8_TEXT_FILE, tower_folder

    int8 = Encoder(tiny_model, device="cpu")
    fp32 = Encoder(tiny_model, device="cpu", precision="fp32")
    texts = ["a red circle", "two dogs on the beach", "x"]
    a = int8.encode_text(texts)
    assert int8._text_tower().precision == "int8"
    assert (Path(tower_folder(int8.spec.fingerprint)) / INT8_TEXT_FILE).is_file()
    cosines = (a * fp32.encode_text(texts)).sum(axis=1)
    assert cosines.min() >= 0.99 and cosines.min() < 0.999999, cosines
    alone = np.concatenate([int8.encode_text([t]) for t in texts])
    np.testing.assert_allclose(a, alone, atol=1e-6)  # a text's vector does not depend on its batch


def test_on_a_cpu_without_vnni_the_int8_tower_is_remade_with_7_bit_weights(int8_table: str, tiny_model: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """AVX2-only CPUs (no VNNI) can saturate in onnxruntime's u8s8 kernels: there the weights
    are quantised to 7 bits, and a tower made for the other kind is made again."""
    import json

    from mmembed.models import image_tower

    folder = Path(image_tower.image_tower_folder(Encoder(tiny_model).spec.fingerprint))
    made_for = json.loads((folder / "image.int8.json").read_text())["reduce_range"]
    monkeypatch.setattr(image_tower, "cpu_has_vnni", lambda: made_for)  # the other kind of CPU
    encoder = Encoder(tiny_model, device="cpu")
    assert encoder.on_onnx and encoder.precision == "int8"
    assert json.loads((folder / "image.int8.json").read_text())["reduce_range"] is (not made_for)
    assert json.loads((folder / "image.int8.json").read_text())["min_cosine_on_check"] >= 0.99
    if made_for is False:  # remade with 7-bit weights: faithful on any CPU, this one included
        paths = [FIXTURE_IMAGES / n for n in PLAIN]
        reference = Encoder(tiny_model, device="cpu", precision="fp32").encode_images(paths)
        assert (encoder.encode_images(paths) * reference).sum(axis=1).min() >= 0.99
    # else: remade for a VNNI CPU with 8-bit weights, which saturate on this AVX2-only one (the
    # reason for 7 bits here): its real-photo fidelity is measured where it runs, not here


def test_the_faster_lancedb_import_keeps_validation_and_restores_pydantic() -> None:
    """store/_fast_import.py defers pydantic's validators while lancedb loads: the REST client's
    methods still validate on call, and pydantic.validate_call is pydantic's own again after."""
    script = (
        "import pydantic\n"
        "original = pydantic.validate_call\n"
        "from mmembed.store._fast_import import import_lancedb\n"
        "import_lancedb()\n"
        "from lance_namespace_urllib3_client.api.table_api import TableApi\n"
        "try:\n"
        "    TableApi(None).describe_table(id=123, describe_table_request=5)\n"
        "    print('accepted')\n"
        "except pydantic.ValidationError:\n"
        "    print('refused')\n"
        "print(pydantic.validate_call is original)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "True"]


def test_an_unfaithful_int8_graph_is_tried_once_not_on_every_load(fp32_table: str, tiny_model: str,
                                                                  tmp_path: Path) -> None:
    """A graph whose int8 copy fails the fidelity gate (SigLIP2 and ConvNeXt with random weights do,
    BENCHMARKS.md) is recorded as such: the next load goes to fp32 at once instead of quantising
    and checking again (that cost 10 s per cold image query). A new export is tried again."""
    import json
    import shutil

    from mmembed.models.image_tower import IMAGE_TOWER_FILE, image_tower_folder
    from mmembed.models.quantize import cpu_has_vnni, make_int8

    folder = tmp_path / "tower"
    shutil.copytree(image_tower_folder(Encoder(tiny_model, device="cpu", precision="fp32").spec.fingerprint), folder)
    checked: list[str] = []

    def strict(path: str) -> float:  # the quantised graph is real; this gate asks more than int8 can give
        checked.append(path)
        return 0.5

    for _ in range(3):
        assert make_int8(str(folder), IMAGE_TOWER_FILE, "x.int8.onnx", "x.int8.json", reduce_range=not cpu_has_vnni(),
                         minimum=0.99, check=strict, record={"from": [1, 2]}) is None
    assert len(checked) == 1 and not (folder / "x.int8.onnx").exists()
    assert json.loads((folder / "x.int8.json").read_text())["rejected"] is True
    make_int8(str(folder), IMAGE_TOWER_FILE, "x.int8.onnx", "x.int8.json", reduce_range=not cpu_has_vnni(),
              minimum=0.99, check=strict, record={"from": [3, 4]})  # another export: tried again
    assert len(checked) == 2
