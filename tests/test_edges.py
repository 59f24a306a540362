"""Smaller defects: tracebacks become Error lines, deep and ordered walks, NUL-separated paths, quiet warnings, progress lines, manifest rows without an image, decompression bombs.

Split by feature from test_hardening.py (issue 15's regression tests: each failed on the main
before its fix; the CLI is run as the real entry point, concurrency as real processes).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmembed.store import Store

from conftest import FIXTURE_IMAGES, N_FIXTURES, one_error_line, run_cli


# ---------------------------------------------------------------- 7. tracebacks become Error lines

def test_an_unknown_fusion_is_one_error_line(photos: Path, built: str, tmp_path: Path, tiny_model: str) -> None:
    line = one_error_line(run_cli("ingest", str(photos), "--db", str(tmp_path / "new.lancedb"),
                                  "--model", tiny_model, "--fusion", "bogus"))
    assert "fusion 'bogus' is not known; use one of mean, concat, attention" in line
    line = one_error_line(run_cli("fusion", "apply", "--fusion", "bogus", "--db", built))
    assert "fusion 'bogus' is not known" in line


def test_a_tree_a_thousand_folders_deep_is_walked(tmp_path: Path) -> None:
    from mmembed.sources import walk

    folder = tmp_path / "deep"
    folder.mkdir()
    deepest = folder
    for _ in range(1000):  # os.makedirs itself recurses too deep for this
        deepest = deepest / "d"
        deepest.mkdir()
    shutil.copy(FIXTURE_IMAGES / "red.jpg", deepest / "bottom.jpg")
    shutil.copy(FIXTURE_IMAGES / "red.jpg", folder / "top.jpg")
    try:
        found = [f.path for f in walk([folder])]
        assert [Path(p).name for p in found] == ["top.jpg", "bottom.jpg"]
    finally:  # shutil.rmtree (and so pytest's clean-up) recurses too deep for this tree too
        (deepest / "bottom.jpg").unlink()
        while deepest != folder:
            deepest.rmdir()
            deepest = deepest.parent


def test_the_walk_order_is_files_first_then_folders_by_name(tmp_path: Path) -> None:
    from mmembed.sources import walk

    for rel in ("b/x.jpg", "a/z/y.jpg", "a/w.jpg", "c.jpg", "a/b.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURE_IMAGES / "red.jpg", tmp_path / rel)
    found = [os.path.relpath(f.path, tmp_path) for f in walk([tmp_path])]
    assert found == ["c.jpg", "a/b.jpg", "a/w.jpg", "a/z/y.jpg", "b/x.jpg"]


# ---------------------------------------------------------------- 10. the smaller ones

def test_null_separated_paths(photos: Path, db: str, tiny_model: str) -> None:
    odd = photos / "line\nbreak.jpg"
    shutil.copy(photos / "red.jpg", odd)
    assert run_cli("ingest", str(photos), "--db", db, "--model", tiny_model, "-q").returncode == 0
    done = run_cli("search", "a red circle", "--db", db, "-n", "30", "-0")
    assert done.returncode == 0, done.stderr
    paths = done.stdout.split("\0")
    assert paths[-1] == "" and str(odd) in paths[:-1] and len(paths) - 1 == N_FIXTURES + 1
    plain = run_cli("search", "a red circle", "--db", db, "-n", "30", "--paths")
    assert "holds a line break; use -0/--null" in plain.stderr


def test_building_the_ann_index_warns_nothing(tmp_path: Path) -> None:
    import warnings

    from mmembed.models.fusion import FusionConfig
    from mmembed.store import TableMeta

    store = Store(str(tmp_path / "ann.lancedb"))
    meta = TableMeta("test", None, "test", 16, FusionConfig().to_dict())
    store.create(meta, 16)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    import pyarrow as pa

    store.add(pa.Table.from_pylist([
        {"id": f"{i}", "path": f"/p/{i}.jpg", "size": 1, "mtime_ns": 1, "content_hash": f"{i}",
         "image_vector": v, "fused_vector": v} for i, v in enumerate(vectors)], schema=store.table.schema))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        built = store.build_vector_index("image_vector")
    assert built["rows"] == 300 and "image_vector" in store.vector_indices()


def test_progress_prints_lines_when_stderr_is_not_a_terminal(photos: Path, db: str, tiny_model: str) -> None:
    done = run_cli("ingest", str(photos), "--db", db, "--model", tiny_model)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "scanning 17/17" in lines and f"encoding 0/{N_FIXTURES}" in lines, done.stderr
    assert any(line.startswith(f"encoding {N_FIXTURES}/{N_FIXTURES}") for line in lines), done.stderr


def test_progress_lines_come_every_interval(capsys: pytest.CaptureFixture[str]) -> None:
    from mmembed.cli.progress import IngestBar
    from mmembed.ingest import IngestProgress

    with IngestBar(interval=0.0) as bar:
        for done in range(4):
            bar.update(IngestProgress("encode", done, 3))
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == ["encoding 0/3", "encoding 1/3", "encoding 2/3", "encoding 3/3"]
    with IngestBar(interval=3600) as bar:
        for done in range(4):
            bar.update(IngestProgress("encode", done, 3))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "encoding 0/3" and lines[-1].startswith("encoding 3/3") and len(lines) == 2


def test_manifest_rows_without_an_image_are_counted(photos: Path, db: str, tiny_model: str, tmp_path: Path) -> None:
    manifest = tmp_path / "caps.csv"
    manifest.write_text("image,caption\nphotos/red.jpg,a red thing\nphotos/gone.jpg,lost\nphotos/gone.jpg,lost again\n"
                        "elsewhere/x.jpg,nowhere\n")
    done = run_cli("ingest", str(photos), "--db", db, "--model", tiny_model, "--captions", str(manifest), "--json", "-q")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["captions_unmatched"] == 3
    assert "3 caption rows named no indexed image" in done.stderr


def png_header(width: int, height: int) -> bytes:
    """A small PNG file that claims width x height pixels: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_bomb_is_skipped_with_its_size(tmp_path: Path) -> None:
    from mmembed import ImageDecodeError, load_image

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(30000, 30000))
    with pytest.raises(ImageDecodeError, match=r"image is 900 MP \(900000000 pixels\), above the --max-megapixels cap"):
        load_image(bomb)
    modest = tmp_path / "modest.png"
    Image.new("RGB", (400, 300)).save(modest)
    with pytest.raises(ImageDecodeError, match=r"image is 400x300 \(0 MP\)"):
        load_image(modest, max_megapixels=0.1)


def test_search_image_that_is_a_folder(built: str, photos: Path) -> None:
    line = one_error_line(run_cli("search", "--image", str(photos), "--db", built))
    assert "is a folder; give an image file" in line
