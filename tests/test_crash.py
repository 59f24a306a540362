"""Crash safety and concurrency, through real subprocesses: kill -9 mid-ingest, then rerun;
searches and info while another process writes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mmembed
from conftest import noise_jpegs
from mmembed.store import Store

N_IMAGES = 1500


@pytest.fixture(scope="module")
def many_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1500 small, distinct real JPEGs."""
    return noise_jpegs(tmp_path_factory.mktemp("many"), N_IMAGES, name="img{i:05d}.jpg", per_folder=300)


def start_ingest(folder: Path, db: str, model: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mmembed", "ingest", str(folder), "--db", db, "--model", model,
           "--batch-size", "8", "--workers", "1", "--json", "-q"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_rows(db: str, proc: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        store = Store(db)
        if store.exists():
            n = store.count()
            if n > 0:
                return n
        time.sleep(0.02)
    raise AssertionError(f"no rows appeared; ingest exit code {proc.poll()}, stderr: {proc.stderr.read() if proc.poll() is not None else ''}")


def test_kill_9_mid_ingest_then_rerun_completes_without_duplicates(many_images: Path, tmp_path: Path, tiny_model: str) -> None:
    db = str(tmp_path / "crash.lancedb")
    proc = start_ingest(many_images, db, tiny_model)
    wait_for_rows(db, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    survived = Store(db).count()  # the table opens after kill -9
    assert 0 < survived < N_IMAGES, f"the kill did not land mid-run ({survived} rows)"

    done = subprocess.run(
        [sys.executable, "-m", "mmembed", "ingest", str(many_images), "--db", db, "--json", "-q"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows"] == N_IMAGES
    assert report["added"] + report["unchanged"] == N_IMAGES
    assert report["unchanged"] >= survived and report["skipped"] == []
    paths = Store(db).read_columns(["path"]).column("path").to_pylist()
    assert len(paths) == len(set(paths)) == N_IMAGES


def test_search_and_info_never_fail_while_ingest_writes(many_images: Path, tmp_path: Path, tiny_model: str) -> None:
    db = str(tmp_path / "busy.lancedb")
    proc = start_ingest(many_images, db, tiny_model)
    try:
        wait_for_rows(db, proc)
        reader = mmembed.Index(db)
        seen_counts, searches = set(), 0
        while proc.poll() is None:
            hits = reader.search("random noise", limit=5)
            assert 1 <= len(hits) <= 5
            seen_counts.add(reader.info().rows)
            searches += 1
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
    assert searches >= 3, "the ingest finished before the readers got going"
    assert len(seen_counts) >= 2, "readers never saw the table grow"
    assert json.loads(out)["rows"] == N_IMAGES
    assert mmembed.Index(db).info().rows == N_IMAGES


def test_ctrl_c_keeps_encoded_rows_and_says_how_to_continue(many_images: Path, tmp_path: Path, tiny_model: str) -> None:
    db = str(tmp_path / "interrupted.lancedb")
    proc = start_ingest(many_images, db, tiny_model)
    committed = wait_for_rows(db, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Interrupted; rerun the same command" in err and "Traceback" not in err
    kept = Store(db).count()
    assert committed <= kept < N_IMAGES
    paths = Store(db).read_columns(["path"]).column("path").to_pylist()
    assert len(paths) == len(set(paths))


@pytest.mark.slow  # long; its mechanism is also covered in the default run (CI time)
def test_search_keeps_working_during_a_reindex(many_images: Path, tmp_path: Path, tiny_model: str, other_tiny_model: str) -> None:
    db = str(tmp_path / "re.lancedb")
    small = tmp_path / "small"
    (small).mkdir()
    for p in sorted((many_images / "roll0").iterdir())[:50]:
        (small / p.name).write_bytes(p.read_bytes())
    mmembed.Index(db, model=tiny_model).ingest(small)
    cmd = [sys.executable, "-m", "mmembed", "ingest", str(many_images), "--db", db, "--model", other_tiny_model,
           "--reindex", "--batch-size", "8", "--workers", "1", "--json", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    counts = []
    try:
        while proc.poll() is None:
            counts.append(Store(db).count())  # a fresh reader each time: never an empty or missing table
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert len(counts) >= 5 and min(counts) == 50
    assert json.loads(out)["rows"] == N_IMAGES
    assert Store(db).count() == N_IMAGES and mmembed.Index(db).meta.model == other_tiny_model
