"""The speed paths give the same answers as the plain ones: fast JPEG decode, bf16, the ONNX
text tower with its tokenizer, quick search from the snapshot, and the ANN index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_cli


def _jpeg(path: Path, size: tuple[int, int], orientation: int | None = None, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)  # smooth, photo-like
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    im.save(path, "JPEG", quality=92, exif=exif.tobytes())
    return path


# ---------------------------------------------------------------- fast decode
def test_fast_decode_keeps_model_input_covered_and_reports_full_size(tmp_path: Path) -> None:
    from mmembed.sources import load_image

    path = _jpeg(tmp_path / "big.jpg", (2000, 1500))
    fast = load_image(path, min_side=224)
    exact = load_image(path)
    assert (fast.width, fast.height) == (exact.width, exact.height) == (2000, 1500)
    assert fast.image.size == (500, 375)  # 1/4 scale: 1/8 would make the short side 188 < 224
    rotated = load_image(_jpeg(tmp_path / "rot.jpg", (2000, 1500), orientation=6), min_side=224)
    assert (rotated.width, rotated.height) == (1500, 2000)
    assert rotated.image.size[1] > rotated.image.size[0] >= 224
    small = load_image(_jpeg(tmp_path / "small.jpg", (300, 240)), min_side=224)
    assert small.image.size == (300, 240)  # nothing to gain below 2x the model input


def test_fast_decode_vectors_match_exact(tmp_path: Path, tiny_model: str) -> None:
    from mmembed.models.encoder import Encoder
    from mmembed.ingest import ImageDecoder

    enc = Encoder(tiny_model)
    paths = [_jpeg(tmp_path / f"{i}.jpg", (1600 + 200 * i, 1200), seed=i) for i in range(4)]
    fast = enc.encode_pixels([ImageDecoder(enc, fast=True)(str(p), 100.0)[1] for p in paths])
    exact = enc.encode_pixels([ImageDecoder(enc, fast=False)(str(p), 100.0)[1] for p in paths])
    assert np.min(np.sum(fast * exact, axis=1)) > 0.99


def test_ingest_decode_option_is_recorded_nowhere_but_changes_nothing_visible(tmp_path: Path, tiny_model: str) -> None:
    from mmembed import Index

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        _jpeg(folder / f"{i}.jpg", (1200, 900), seed=i)
    fast = Index(tmp_path / "a.lancedb", model=tiny_model).ingest(folder)
    exact = Index(tmp_path / "b.lancedb", model=tiny_model, decode="exact").ingest(folder)
    assert fast.added == exact.added == 3
    rows = Index(tmp_path / "a.lancedb").store.read_columns(["width", "height"]).to_pylist()
    assert {(r["width"], r["height"]) for r in rows} == {(1200, 900)}


def test_config_rejects_unknown_precision_and_decode() -> None:
    from mmembed import ConfigError
    from mmembed.config import Config

    with pytest.raises(ConfigError, match="precision 'fp8'"):
        Config.resolve(db="x", precision="fp8")
    with pytest.raises(ConfigError, match="decode 'quick'"):
        Config.resolve(db="x", decode="quick")


# ---------------------------------------------------------------- reduced precision
def test_bf16_on_cpu_stays_close_to_fp32(tiny_model: str, photos: Path) -> None:
    from mmembed.models.encoder import Encoder

    images = sorted(str(p) for p in photos.glob("*.jpg"))[:4]
    fp32 = Encoder(tiny_model, device="cpu", precision="fp32")
    bf16 = Encoder(tiny_model, device="cpu", precision="bf16")
    a, b = fp32.encode_images(images), bf16.encode_images(images)
    assert bf16.precision == "bf16" and b.dtype == np.float32
    assert np.min(np.sum(a * b, axis=1)) > 0.98
    t32, t16 = fp32.encode_text(["a dog", "a red car"]), bf16.encode_text(["a dog", "a red car"])
    assert np.min(np.sum(t32 * t16, axis=1)) > 0.98


def test_auto_precision_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmembed.models import runtime as encoders

    assert encoders.pick_precision("cuda", "auto") == "fp16"
    assert encoders.pick_precision("cuda:1", "auto") == "fp16"
    assert encoders.pick_precision("mps", "auto") == "fp32"
    assert encoders.pick_precision("cpu", "auto") == "int8"  # on ONNX Runtime, every x86 CPU kind
    assert encoders.pick_precision("cpu", "bf16") == "bf16"  # asked for: honoured (slow without native bf16)
    # a model without exported towers runs on torch, where int8 becomes bf16 or fp32 by CPU kind
    monkeypatch.setattr(encoders, "cpu_has_native_bf16", lambda: True)
    assert encoders.torch_precision("cpu", "auto") == "bf16"
    monkeypatch.setattr(encoders, "cpu_has_native_bf16", lambda: False)
    assert encoders.torch_precision("cpu", "auto") == "fp32"
    assert encoders.torch_precision("cpu", "int8") == "fp32"
    assert encoders.torch_precision("cuda", "auto") == "fp16"
    with pytest.raises(encoders.ConfigError, match="int8 runs on the CPU"):
        encoders.pick_precision("cuda", "int8")


def test_fp16_on_cpu_is_refused_with_a_hint(tiny_model: str) -> None:
    from mmembed import ConfigError
    from mmembed.models.encoder import Encoder

    with pytest.raises(ConfigError, match="fp16 is for GPUs"):
        Encoder(tiny_model, device="cpu", precision="fp16").load()


# ---------------------------------------------------------------- ONNX text tower
TRICKY = [
    "a dog on grass", "A DOG, running!! on the BEACH", "café crème brûlée", "東京タワー 😀 über",
    "it's the cat's toy, isn't it?", "  spaced \t out\n text ", "&amp;lt; html &quot;", "1234567 numbers 3.14",
    "<start_of_text> literal specials <end_of_text>", "word " * 60, "", "-", "e-mail: x@y.z #tag",
]


def test_tokenizer_matches_open_clip(tiny_model: str) -> None:
    import open_clip

    from mmembed.models.text_tower import ClipTokenizer

    for context in (77, 32):
        theirs = open_clip.tokenizer.SimpleTokenizer(context_length=context)(TRICKY).numpy()
        ours = ClipTokenizer(context)(TRICKY)
        assert np.array_equal(ours, theirs)
        trimmed = ClipTokenizer(context)(TRICKY[:2], trim=True)
        assert trimmed.shape[1] < context and np.array_equal(trimmed, theirs[:2, : trimmed.shape[1]])


def test_exported_text_tower_matches_torch(tmp_path: Path, micro_clip: str) -> None:
    from mmembed.models.encoder import Encoder
    from mmembed.models.text_tower import OnnxTextEncoder, export_text_tower, load_text_tower

    enc = Encoder(micro_clip, device="cpu", precision="bf16")  # exported from fp32 weights all the same
    info = export_text_tower(enc, str(tmp_path))
    assert info is not None and info["min_cosine_on_check"] >= 0.9999
    onnx = OnnxTextEncoder(str(tmp_path))
    texts = [t for t in TRICKY if t.strip()] + ["two children playing in the water"]
    got, want = onnx.encode_text(texts), Encoder(micro_clip, device="cpu", precision="fp32").encode_text(texts)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 1e-4  # fp32 arithmetic in another order, nothing more
    one = onnx.encode_text(["a dog on grass"])  # alone: shorter tokens, same vector
    assert float(one[0] @ want[0]) >= 0.999
    assert load_text_tower(str(tmp_path), "sha256:someone-else") is None


# ---------------------------------------------------------------- quick search (snapshot + ONNX)
@pytest.fixture
def semantic_db(tmp_path: Path, micro_clip: str) -> tuple[str, Path]:
    from conftest import shared_path

    dev = shared_path("data/flickr8k/dev")
    folder = tmp_path / "dev"
    folder.mkdir()
    for p in sorted(dev.glob("*.jpg"))[:60]:
        os.symlink(p, folder / p.name)
    db = str(tmp_path / "q.lancedb")
    done = run_cli("ingest", str(folder), "--db", db, "--model", micro_clip, "--json", "-q")
    assert done.returncode == 0, done.stderr
    return db, folder


def _search(db: str, *args: str, quick: bool, precision: str = "fp32") -> list[dict]:
    # Both paths encode the query at the same precision (auto: the int8 text tower on a CPU)
    env = {"MMEMBED_QUICK": "1" if quick else "0", "MMEMBED_PRECISION": precision}
    done = run_cli("search", *args, "--db", db, "--json", "-n", "8", env=env)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_quick_search_equals_full_search(semantic_db: tuple[str, Path]) -> None:
    db, _ = semantic_db
    assert Path(db, "images.mmembed", "snapshot.json").is_file()
    from mmembed import Index
    from mmembed.models.text_tower import tower_folder

    assert Path(tower_folder(Index(db).meta.fingerprint), "text.onnx").is_file()
    for query, precision in (("a dog running on grass", "fp32"), ("children + water - dog", "fp32"),
                             ("a dog running on grass", "auto")):
        quick, full = _search(db, query, quick=True, precision=precision), _search(db, query, quick=False, precision=precision)
        assert [h["path"] for h in quick] == [h["path"] for h in full]
        for a, b in zip(quick, full):
            assert abs(a["score"] - b["score"]) < 1e-5 and abs(a["image_score"] - b["image_score"]) < 1e-5
            assert set(a) == set(b)


def test_quick_search_imports_neither_torch_nor_lancedb(semantic_db: tuple[str, Path]) -> None:
    db, _ = semantic_db
    code = (
        "import sys\nfrom mmembed.config import Config\nfrom mmembed.retrieval.searcher import quick_search\n"
        f"hits = quick_search(Config.resolve(db={db!r}), 'a dog', limit=3)\n"
        "assert hits and len(hits) == 3, hits\n"
        "print(sorted(m for m in ('torch', 'lancedb', 'pyarrow', 'open_clip') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("extra", [[], ["--sort", "date"]])
def test_the_cli_search_goes_through_index_search_and_stays_cold(semantic_db: tuple[str, Path], extra: list[str]) -> None:
    """Issue 21: `mmembed search` calls Index.search once (the library, not the command, picks
    the snapshot path), and that path still imports neither torch nor lancedb (ordered by date
    too: the snapshot's rows carry the dates)."""
    db, _ = semantic_db
    code = (
        "import sys\nimport mmembed.index\ncalls = []\nsearch = mmembed.index.Index.search\n"
        "def counted(self, *args, **kwargs):\n    calls.append(args)\n    return search(self, *args, **kwargs)\n"
        "mmembed.index.Index.search = counted\n"
        "from mmembed.cli import app\n"
        "try:\n"
        f"    app(['search', 'a dog', '--db', {db!r}, '-n', '3', '--paths', *{extra!r}])\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print(len(calls), sorted(m for m in ('torch', 'lancedb', 'pyarrow', 'open_clip') if m in sys.modules),\n"
        "      file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3
    assert done.stderr.strip().splitlines()[-1] == "1 []"


def test_stale_snapshot_is_not_used(semantic_db: tuple[str, Path]) -> None:
    from mmembed import Index
    from mmembed.config import Config
    from mmembed.retrieval.searcher import quick_search

    db, folder = semantic_db
    index = Index(db)
    before = quick_search(Config.resolve(db=db), "a dog", limit=60)
    assert before is not None and len(before) == 60
    index.store.delete_ids([before[0].id])  # a write that does not refresh the snapshot
    assert quick_search(Config.resolve(db=db), "a dog", limit=5) is None
    hits = index.search("a dog", limit=60)
    assert before[0].id not in {h.id for h in hits} and len(hits) == 59


# ---------------------------------------------------------------- ANN index
def _vector_table(db: str, rows: int, dim: int = 32) -> None:
    import pyarrow as pa

    from mmembed.models.fusion import FusionConfig
    from mmembed.store import Store, TableMeta

    store = Store(db, "images")
    store.create(TableMeta("ViT-B-32", "x", "ViT-B-32/x", dim, FusionConfig().to_dict()), dim)
    store.ensure_columns({"bucket": pa.int32()})
    rng = np.random.default_rng(0)
    vec = rng.standard_normal((rows, dim)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), dim)
    data = {"id": [f"{i:08d}" for i in range(rows)], "path": [f"/x/{i}.jpg" for i in range(rows)],
            "size": pa.array(np.ones(rows, np.int64)), "mtime_ns": pa.array(np.zeros(rows, np.int64)),
            "content_hash": [f"{i}" for i in range(rows)], "image_vector": flat, "fused_vector": flat,
            "bucket": pa.array((np.arange(rows) % 10).astype(np.int32))}
    schema = store.table.schema
    store.add(pa.Table.from_pydict({f.name: data.get(f.name, pa.nulls(rows, f.type)) for f in schema}, schema=schema))


def test_index_command_builds_and_drops_ann_and_where_still_filters(tmp_path: Path) -> None:
    from mmembed.store import Store

    db = str(tmp_path / "ann.lancedb")
    _vector_table(db, 3000)
    done = run_cli("index", "--db", db, "--json")
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout)
    assert built["column"] == "image_vector" and built["rows"] == 3000 and built["type"] == "IVF_RQ"
    store = Store(db)
    assert "image_vector" in store.vector_indices()
    rng = np.random.default_rng(5)
    query = rng.standard_normal(32).astype(np.float32)
    query /= np.linalg.norm(query)
    exact = np.argsort(-(np.stack([np.asarray(r["image_vector"]) for r in store.rows_by_id([f"{i:08d}" for i in range(3000)])]) @ query))
    got = store.nearest(query, limit=10)
    assert len(got) == 10 and [r["score"] for r in got] == sorted((r["score"] for r in got), reverse=True)
    filtered = store.nearest(query, limit=10, where="bucket = 3")
    assert len(filtered) == 10 and {r["bucket"] for r in filtered} == {3}
    assert len(exact) == 3000
    done = run_cli("index", "--drop", "--db", db, "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == {"dropped": 1}
    assert Store(db).vector_indices() == {}


def test_index_command_on_a_tiny_table_says_why_not(tmp_path: Path) -> None:
    db = str(tmp_path / "small.lancedb")
    _vector_table(db, 50)
    done = run_cli("index", "--db", db)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: image_vector has 50 vectors; an ANN index needs at least 256")


def test_refresh_builds_the_index_past_the_threshold_and_writes_the_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmembed import Index

    db = str(tmp_path / "auto.lancedb")
    _vector_table(db, 600)
    monkeypatch.setenv("MMEMBED_ANN_ROWS", "10")  # below the 256 rows an index needs: waits for 256
    index = Index(db)
    index.store.drop_vector_indices()
    index._derived.export_towers = lambda: None  # this table's model is a made-up name: nothing to export
    index.refresh()
    assert "image_vector" in index.store.vector_indices()
    assert Path(db, "images.mmembed", "snapshot.json").is_file()
    small = str(tmp_path / "small.lancedb")
    _vector_table(small, 100)
    index = Index(small)
    index._derived.export_towers = lambda: None
    index.refresh()  # 100 rows: no index, and no error
    assert index.store.vector_indices() == {}


def test_a_partitioned_index_checks_itself_and_falls_back_to_one_partition(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Each partitioned build measures recall@10 on queries near the table's own vectors; under
    the bar (vectors that do not cluster) it is rebuilt as one partition, a scan of every row."""
    from mmembed.store import Store
    from mmembed.store import table as store_table

    db = str(tmp_path / "parts.lancedb")
    _vector_table(db, 8000)
    built = Store(db).build_vector_index("image_vector")
    assert built["partitions"] == 8000 // store_table.ANN_ROWS_PER_PARTITION
    assert built["sample_recall_at_10"] >= store_table.ANN_MIN_SAMPLE_RECALL  # every partition probed here
    monkeypatch.setattr(store_table, "ANN_MIN_SAMPLE_RECALL", 1.01)  # no index can pass
    fallback = Store(db).build_vector_index("image_vector")
    assert fallback["partitions"] == 1 and fallback["sample_recall_at_10"] < 1.01
    assert "image_vector" in Store(db).vector_indices()
