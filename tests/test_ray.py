"""The Ray engine on a real Ray cluster (one per session, 2 CPUs, on 127.0.0.1): the same rows
and vectors as the local engine, the same incremental semantics, bad files reported, and a
kill -9 of the driver mid-run followed by a rerun, or of a worker mid-task, gives every row
exactly once."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmembed
from mmembed.store import Store

from conftest import FIXTURE_IMAGES, mmembed_cmd, noise_jpegs, run_cli, shared_path

ray = pytest.importorskip("ray", reason="the Ray engine's tests need the extra: pip install 'mmembed[ray]'")


@pytest.fixture(scope="session")
def ray_s3() -> dict[str, str]:
    """A moto S3 server (tests/test_s3.py's) for the Ray cluster's lifetime, and the environment
    that reaches it: on a real cluster the workers' credentials come from their own environment
    (docs/scale-out.md), so the session cluster is started with these in its environment."""
    from test_s3 import KEY_ID, SECRET, _start_moto, _stop

    proc, url = _start_moto()
    yield {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": url, "AWS_REGION": "us-east-1"}
    _stop(proc)


@pytest.fixture(scope="session")
def ray_cluster(session_cache: Path, ray_s3: dict[str, str]) -> str:
    """A local Ray cluster for the whole session; this process is its first driver. Returns its address.

    It declares one (logical) GPU, so that ``device="auto"`` runs take the GPU layout (decode in
    CPU tasks, encode in an actor asking for the GPU; on this machine the actor's torch finds
    no CUDA and runs on the CPU) and ``device="cpu"`` runs the CPU layout (one task does both).
    """
    context = ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, object_store_memory=512 << 20, log_to_driver=False,
                       runtime_env={"env_vars": {"XDG_CACHE_HOME": str(session_cache), "HF_HUB_OFFLINE": "1", **ray_s3}})
    yield context.address_info["gcs_address"]
    ray.shutdown()


def rows(db: str) -> dict[str, dict]:
    return {r["path"]: r for r in Store(db).table.to_arrow().to_pylist()}


def dev_images(folder: Path, n: int) -> Path:
    folder.mkdir()
    for p in sorted(shared_path("data/flickr8k/dev").iterdir())[:n]:
        shutil.copy(p, folder / p.name)
    return folder


def test_ray_and_local_engines_give_the_same_rows_and_vectors(tmp_path: Path, ray_cluster: str, micro_clip: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    folder = dev_images(tmp_path / "dev", 30)
    shutil.copy(FIXTURE_IMAGES / "rotated_exif6.jpg", folder / "rotated.jpg")
    shutil.copy(FIXTURE_IMAGES / "phone.heic", folder / "phone.heic")
    (folder / "rotated.txt").write_text("a sideways picture")
    caplog.set_level(logging.DEBUG, logger="mmembed.ingest.ray")
    reports, layouts = {}, []
    for name, engine, device in (("local", "local", "auto"), ("actors", "ray", "auto"), ("tasks", "ray", "cpu")):
        idx = mmembed.Index(str(tmp_path / f"{name}.lancedb"), model=micro_clip, precision="fp32", batch_size=16,
                            device=device)
        reports[name] = {k: v for k, v in idx.ingest(folder, engine=engine).to_dict().items() if k != "seconds"}
        layouts += [(r.stages["gpus"], r.stages["images"]) for r in caplog.records if hasattr(r, "stages")][len(layouts):]
    assert layouts == [(1, 32), (0, 32)]  # the actor-per-GPU layout, then the CPU one
    assert reports["actors"] == reports["tasks"] == reports["local"] and reports["local"]["added"] == 32
    local = rows(str(tmp_path / "local.lancedb"))
    for name in ("actors", "tasks"):
        assert Store(str(tmp_path / f"{name}.lancedb")).table.schema == Store(str(tmp_path / "local.lancedb")).table.schema
        remote = rows(str(tmp_path / f"{name}.lancedb"))
        assert set(local) == set(remote)
        for path, row in local.items():
            assert_same_row(row, remote[path])


def assert_same_row(row: dict, other: dict) -> None:
    """Same file columns and text; vectors at a cosine of at least 0.9999."""
    path = row["path"]
    for column in ("content_hash", "size", "mtime_ns", "width", "height", "format", "text", "text_source", "media"):
        assert other[column] == row[column], (path, column)
    for column in ("image_vector", "fused_vector"):
        a, b = np.asarray(row[column]), np.asarray(other[column])
        assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) >= 0.9999, (path, column)


def test_ray_engine_keeps_the_incremental_semantics(photos: Path, tmp_path: Path, ray_cluster: str, tiny_model: str) -> None:
    db = str(tmp_path / "inc.lancedb")
    idx = mmembed.Index(db, model=tiny_model, batch_size=8, device="cpu")
    first = idx.ingest(photos, engine="ray")
    assert first.added == len(list(FIXTURE_IMAGES.iterdir())) and not first.skipped
    before = rows(db)
    (photos / "sub").mkdir()
    (photos / "red.jpg").rename(photos / "sub" / "red_moved.jpg")  # moved: vector and id reused
    (photos / "green.png").unlink()  # deleted: pruned
    shutil.copy(photos / "blue.webp", photos / "blue_copy.webp")  # a copy: vector copied, not encoded
    (photos / "cmyk.txt").write_text("a cmyk picture")  # item text: text and fused vectors only
    os.utime(photos / "yellow.bmp", ns=(1, 1))  # touched: read, same bytes, unchanged
    Image.new("RGB", (40, 30), (9, 99, 200)).save(photos / "new.png")
    second = idx.ingest(photos, engine="ray")
    assert (second.added, second.moved, second.removed, second.text_updated, second.updated) == (2, 1, 1, 1, 0)
    after = rows(db)
    moved = after[str(photos / "sub" / "red_moved.jpg")]
    assert moved["id"] == before[str(photos / "red.jpg")]["id"]
    assert np.allclose(moved["image_vector"], before[str(photos / "red.jpg")]["image_vector"])
    assert np.allclose(after[str(photos / "blue_copy.webp")]["image_vector"], before[str(photos / "blue.webp")]["image_vector"])
    assert after[str(photos / "cmyk.jpg")]["text"] == "a cmyk picture"
    assert str(photos / "green.png") not in after and len(after) == second.rows
    third = idx.ingest(photos, engine="ray")  # the no-op stamp answers both engines
    assert third.unchanged == second.rows and not (third.added or third.updated or third.moved)


def test_ray_reads_photos_from_an_s3_bucket(ray_s3: dict[str, str], ray_cluster: str, tmp_path: Path, tiny_model: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers read the objects themselves (through the same reader as the local engine)."""
    import boto3

    for name, value in ray_s3.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3")
    bucket = "ray-photos"
    client.create_bucket(Bucket=bucket)
    images = sorted(FIXTURE_IMAGES.iterdir())
    for path in images:
        client.put_object(Bucket=bucket, Key=f"photos/{path.name}", Body=path.read_bytes())
    by_ray = mmembed.Index(str(tmp_path / "ray.lancedb"), model=tiny_model, device="cpu", precision="fp32")
    report = by_ray.ingest(f"s3://{bucket}/photos", engine="ray")
    assert report.added == report.rows == len(images) and not report.skipped, report.skipped
    local = mmembed.Index(str(tmp_path / "local.lancedb"), model=tiny_model, device="cpu", precision="fp32")
    local.ingest(f"s3://{bucket}/photos")
    mine, theirs = rows(str(tmp_path / "ray.lancedb")), rows(str(tmp_path / "local.lancedb"))
    assert set(mine) == set(theirs) == {f"s3://{bucket}/photos/{p.name}" for p in images}
    for path, row in mine.items():
        a, b = np.asarray(row["image_vector"]), np.asarray(theirs[path]["image_vector"])
        assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) >= 0.9999, path
        assert row["etag"] == theirs[path]["etag"] and row["content_hash"] == theirs[path]["content_hash"]


def test_ray_engine_reports_a_corrupt_file_and_finishes(photos: Path, tmp_path: Path, ray_cluster: str, tiny_model: str) -> None:
    data = (photos / "red.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (photos / "words.jpg").write_text("not an image at all\n" * 50)
    report = mmembed.Index(str(tmp_path / "bad.lancedb"), model=tiny_model).ingest(photos, engine="ray")
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == {"truncated.jpg", "words.jpg"}
    assert "truncated or corrupt" in skipped["truncated.jpg"] and "not a readable image" in skipped["words.jpg"]
    assert report.added == report.rows == len(list(FIXTURE_IMAGES.iterdir()))


def test_cli_engine_ray_on_a_running_cluster_prints_the_same_summary(photos: Path, tmp_path: Path, ray_cluster: str,
                                                                       tiny_model: str) -> None:
    db = str(tmp_path / "cli.lancedb")
    done = run_cli("ingest", str(photos), "--db", db, "--model", tiny_model, "--engine", "ray",
                   "--ray-address", ray_cluster, "--json", "-q", timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["added"] == report["rows"] == len(list(FIXTURE_IMAGES.iterdir()))
    assert f"added {report['added']}, updated 0" in done.stderr


def test_cli_without_ray_names_the_extra(photos: Path, tmp_path: Path, tiny_model: str) -> None:
    code = ("import sys; sys.modules['ray'] = None; sys.argv = ['mmembed'] + sys.argv[1:]; "
            "from mmembed.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", code, "ingest", str(photos), "--db", str(tmp_path / "x.lancedb"),
                           "--model", tiny_model, "--engine", "ray"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("Error: --engine ray needs Ray; install the extra: pip install 'mmembed[ray]'")


N_CRASH = 400


@pytest.fixture(scope="module")
def noise_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N_CRASH small, distinct real JPEGs (read-only for the tests)."""
    return noise_jpegs(tmp_path_factory.mktemp("many"), N_CRASH, name="{i:04d}.jpg", quality=75)


@pytest.mark.slow  # long; its mechanism is also covered in the default run (CI time)
def test_kill_9_of_the_ray_driver_then_rerun_gives_every_row_once(noise_images: Path, tmp_path: Path, ray_cluster: str,
                                                                  tiny_model: str) -> None:
    folder = noise_images
    db = str(tmp_path / "crash.lancedb")
    mmembed.Index(db, model=tiny_model).ingest(folder, include=["000*.jpg"])  # the table and its towers exist
    base = [*mmembed_cmd(), "ingest", str(folder), "--db", db, "--engine", "ray", "--ray-address", ray_cluster,
            "--batch-size", "4", "--json", "-q"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    proc = subprocess.Popen(base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and Store(db).count() <= 10:
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before the kill: {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    survived = Store(db).count()
    assert 10 < survived < N_CRASH, f"the kill did not land mid-run ({survived} rows)"
    done = subprocess.run(base, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows"] == N_CRASH and report["skipped"] == []
    assert report["added"] + report["unchanged"] == N_CRASH and report["unchanged"] >= survived
    table = Store(db).read_columns(["id", "path"])
    paths, ids = table.column("path").to_pylist(), table.column("id").to_pylist()
    assert len(set(paths)) == len(paths) == N_CRASH and len(set(ids)) == N_CRASH


def test_a_lost_worker_mid_run_still_gives_every_row_once(noise_images: Path, tmp_path: Path, ray_cluster: str,
                                                         tiny_model: str) -> None:
    """Ray Data runs the lost task again; the driver writes each file once."""
    import threading

    folder = noise_images
    db = str(tmp_path / "lost.lancedb")
    idx = mmembed.Index(db, model=tiny_model, batch_size=4, device="cpu")
    idx.ingest(folder, include=["000*.jpg"])  # the table exists, so its rows can be counted while the run goes
    result: dict = {}
    run = threading.Thread(target=lambda: result.update(report=idx.ingest(folder, engine="ray")))
    run.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and run.is_alive() and time.monotonic() < deadline:
        if Store(db).count() > 10:
            for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if title.startswith(b"ray::MapBatches(_prepare_and_encode)"):
                    os.kill(pid, signal.SIGKILL)  # a worker dies in the middle of a task
                    killed = pid
                    break
        time.sleep(0.01)
    run.join(timeout=300)
    assert killed is not None, "no busy worker was found to kill"
    report = result["report"]
    assert report.rows == N_CRASH and not report.skipped and report.added + 10 == N_CRASH
    table = Store(db).read_columns(["id", "path"])
    assert len(set(table.column("path").to_pylist())) == len(set(table.column("id").to_pylist())) == N_CRASH
