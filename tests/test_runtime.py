"""The lean runtime (issue 10): the image tower exported to ONNX and run by onnxruntime, so that
fp32 ingest on a CPU and image queries need neither torch nor open_clip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mmembed
from mmembed.models.encoder import Encoder

from conftest import FIXTURE_IMAGES

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


def test_a_cold_image_query_imports_neither_torch_nor_lancedb(fp32_table: str, photos: Path) -> None:
    script = (
        "import sys\nfrom mmembed.config import Config\nfrom mmembed.retrieval.quick import quick_search\n"
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


def test_a_damaged_image_tower_falls_back_to_torch(fp32_table: str, tiny_model: str) -> None:
    from mmembed.models.image_tower import IMAGE_TOWER_FILE, image_tower_folder

    encoder = Encoder(tiny_model, device="cpu", precision="fp32")
    onnx = Path(image_tower_folder(encoder.spec.fingerprint)) / IMAGE_TOWER_FILE
    onnx.write_bytes(b"garbage" * 10)
    assert not encoder.on_onnx  # changed since the export: torch instead
    vectors = encoder.encode_images([FIXTURE_IMAGES / "red.jpg"])
    assert vectors.shape == (1, 32) and np.isfinite(vectors).all()


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
