"""Fault injection (issue 15): an ingest runs while something goes wrong, and afterwards every
row is present, each once, and fused with the table's own settings.

The faults: a concurrent ``fusion apply`` (a real second process), an ``OSError`` on write
(at the LanceDB boundary, and for real on a full tmpfs), a damaged snapshot, a damaged ONNX
text tower, and a ``--reindex`` killed with SIGKILL.
"""

from __future__ import annotations

import errno
import fcntl
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mmembed
from mmembed import StoreWriteError
from mmembed.models.fusion import FusionConfig, fuse
from mmembed.store import Store

from conftest import noise_jpegs, run_cli

N_IMAGES = 400


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 small, distinct real JPEGs, with a caption sidecar on every fourth."""
    out = noise_jpegs(tmp_path_factory.mktemp("faults"), N_IMAGES, seed=7)
    for i in range(0, N_IMAGES, 4):
        (out / f"img{i:04d}.jpg.txt").write_text(f"picture number {i}")
    return out


def assert_whole(db: str, folder: Path) -> None:
    """Every image is a row, once; every fused vector is what the table's settings make."""
    store = Store(db)
    table = store.read_columns(["id", "path", "image_vector", "text_vector", "fused_vector"])
    ids, paths = table.column("id").to_pylist(), table.column("path").to_pylist()
    assert len(ids) == len(set(ids)) and len(paths) == len(set(paths))
    assert sorted(paths) == sorted(str(p) for p in folder.glob("*.jpg"))
    config = FusionConfig.from_dict(store.meta().fusion)
    assert not store.meta().fusion_pending
    image = np.array(table.column("image_vector").to_pylist(), dtype=np.float32)
    texts = table.column("text_vector").to_pylist()
    has = np.array([t is not None for t in texts])
    text = np.array([t if t is not None else np.zeros(image.shape[1]) for t in texts], dtype=np.float32)
    want = fuse(image, text, has, config)
    got = np.array(table.column("fused_vector").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(got, want, atol=1e-4)


def lock_is_held(db: str) -> bool:
    try:
        with open(Path(db) / ".images.ingest.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
    except BlockingIOError:
        return True
    except FileNotFoundError:
        return False


def start_ingest(folder: Path, db: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mmembed", "ingest", str(folder), "--db", db, "--batch-size", "8",
           "--workers", "1", "--json", "-q", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_fusion_apply_is_refused_and_nothing_is_lost(folder: Path, tmp_path: Path, tiny_model: str) -> None:
    db = str(tmp_path / "apply.lancedb")
    ingest = start_ingest(folder, db, "--model", tiny_model)
    deadline = time.monotonic() + 120
    while not lock_is_held(db) and ingest.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ingest.poll() is None, f"the ingest ended before the test saw it write: {ingest.communicate()}"
    apply = run_cli("fusion", "apply", "--fusion", "concat", "--weight", "0.5", "--db", db)
    out, err = ingest.communicate(timeout=600)
    assert ingest.returncode == 0, err
    assert apply.returncode == 1 and "another mmembed ingest or writer" in apply.stderr, apply.stderr
    assert json.loads(out)["added"] == N_IMAGES
    assert FusionConfig.from_dict(Store(db).meta().fusion) == FusionConfig()  # the ingest's settings: mean, 0.2
    assert_whole(db, folder)
    # Run after it, the apply does its work on every row.
    assert run_cli("fusion", "apply", "--fusion", "concat", "--weight", "0.5", "--db", db, "-q").returncode == 0
    assert FusionConfig.from_dict(Store(db).meta().fusion).weight == 0.5
    assert_whole(db, folder)


def test_an_oserror_on_write_keeps_what_was_saved(folder: Path, tmp_path: Path, tiny_model: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The third commit fails with ENOSPC at the LanceDB boundary; the first two are kept."""
    import lancedb.table

    import mmembed.ingest.writer as writer

    monkeypatch.setattr(writer, "_WRITE_ROWS", 50)
    real_add = lancedb.table.LanceTable.add
    calls = []

    def add(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(lancedb.table.LanceTable, "add", add)
    db = str(tmp_path / "full.lancedb")
    with pytest.raises(StoreWriteError) as caught:
        mmembed.Index(db, model=tiny_model, workers=1).ingest(folder)
    message = str(caught.value)
    assert message.startswith(f"writing to DB {db}: No space left on device; ")
    assert message.endswith("images were saved, free space and rerun")
    saved = int(message.split("; ")[1].split()[0])
    assert saved >= 100 and Store(db).count() == saved  # the table stays readable, with what was saved
    monkeypatch.undo()
    report = mmembed.Index(db).ingest(folder)  # space freed: rerun finishes the job
    assert report.unchanged == saved and report.added == N_IMAGES - saved
    assert_whole(db, folder)


def test_a_full_disk_is_one_error_line_for_real(folder: Path, tmp_path: Path, tiny_model: str) -> None:
    """Ingest into a real 160 KB tmpfs (the tests run as root; elsewhere this cannot mount)."""
    mount = tmp_path / "tiny-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); test_an_oserror_on_write covers the path")
    try:
        db = str(mount / "db")
        fail = run_cli("ingest", str(folder), "--db", db, "--model", tiny_model, "-q")
        lines = [line for line in fail.stderr.splitlines() if line]
        assert fail.returncode == 1 and len(lines) == 1, fail.stderr
        assert lines[0].startswith(f"Error: writing to DB {db}: No space left on device; ")
        assert lines[0].endswith("images were saved, free space and rerun")
        saved = int(lines[0].split("; ")[1].split()[0])
        info = run_cli("info", "--db", db, "--json")
        assert info.returncode == 0 and json.loads(info.stdout)["rows"] == saved, info.stderr
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_an_ingest_heals_a_damaged_snapshot(folder: Path, tmp_path: Path, tiny_model: str) -> None:
    db = str(tmp_path / "snap.lancedb")
    assert run_cli("ingest", str(folder), "--db", db, "--model", tiny_model, "-q").returncode == 0
    image = Path(db) / "images.mmembed" / "image.npy"
    image.write_bytes(image.read_bytes()[:1000])
    (folder / "img0000.jpg.txt").write_text("a new caption, so the ingest writes")
    try:
        done = run_cli("ingest", str(folder), "--db", db, "--json", "-q")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["text_updated"] == 1
    finally:
        (folder / "img0000.jpg.txt").write_text("picture number 0")
    from mmembed.store.snapshot import Snapshot

    assert Snapshot.open(db, "images") is not None
    assert_whole(db, Path(folder))
    search = run_cli("search", "picture number 8", "--db", db, "-n", "1")
    assert search.returncode == 0 and search.stderr == "", search.stderr


def test_an_ingest_heals_a_damaged_text_tower(folder: Path, tmp_path: Path, tiny_model: str, session_cache: Path) -> None:
    from mmembed.models.text_tower import TEXT_TOWER_FILE, load_text_tower, tower_folder

    db = str(tmp_path / "tower.lancedb")
    assert run_cli("ingest", str(folder), "--db", db, "--model", tiny_model, "-q").returncode == 0
    fingerprint = Store(db).meta().fingerprint
    onnx = Path(tower_folder(fingerprint)) / TEXT_TOWER_FILE
    onnx.write_bytes(b"\x08\x01garbage" * 100)
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error type
        load_text_tower(str(onnx.parent), fingerprint)
    done = run_cli("ingest", str(folder), "--db", db, "--json", "-q")
    assert done.returncode == 0, done.stderr
    assert load_text_tower(str(onnx.parent), fingerprint) is not None
    assert_whole(db, folder)


def test_a_killed_reindex_leaves_the_table_and_no_staging(folder: Path, tmp_path: Path, tiny_model: str,
                                                         other_tiny_model: str) -> None:
    db = str(tmp_path / "reindex.lancedb")
    assert run_cli("ingest", str(folder), "--db", db, "--model", tiny_model, "-q").returncode == 0
    proc = start_ingest(folder, db, "--model", other_tiny_model, "--reindex")
    staging = Store(db, "images__staging")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if staging.exists() and staging.count() > 0:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the reindex ended before it could be killed: {proc.communicate()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert Store(db, "images__staging").exists()
    assert mmembed.Index(db).meta.model == tiny_model  # the old table is whole and in charge
    assert_whole(db, folder)
    done = run_cli("ingest", str(folder), "--db", db, "--json", "-q")  # the next ingest cleans up
    assert done.returncode == 0, done.stderr
    assert not Store(db, "images__staging").exists()
    assert_whole(db, folder)
