"""Regression tests for the defects found by trying mmembed as a new user would (issue 15).

Each test failed on the main before the fix. Where the defect was in the CLI, the test runs
the real entry point; concurrency runs real processes. The fault-injection runs (an ingest
while something goes wrong) are in test_faults.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmembed
from mmembed import ConfigError, IngestLockedError, QueryError
from mmembed.store import Store

from conftest import FIXTURE_IMAGES, run_cli

N_FIXTURES = len(list(FIXTURE_IMAGES.iterdir()))
LOCKED = "another mmembed ingest or writer"


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The CLI's failure: exit 1 and exactly one stderr line, 'Error: ...', no traceback."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


@pytest.fixture
def built(photos: Path, db: str, tiny_model: str) -> str:
    mmembed.Index(db, model=tiny_model).ingest(photos)
    return db


# ---------------------------------------------------------------- 1. every writer takes the lock

@pytest.mark.parametrize("command", [
    ["fusion", "apply", "--fusion", "concat", "--weight", "0.5"],
    ["fusion", "train", "--epochs", "1"],
    ["index"],
    ["index", "--drop"],
    ["index", "--refresh"],
    ["doctor"],
    ["ingest", "PHOTOS"],
])
def test_every_writer_is_refused_while_another_holds_the_lock(built: str, photos: Path, command: list[str]) -> None:
    """This test process holds the table's lock, as a running ingest would."""
    before = Store(built).table.version
    args = [str(photos) if a == "PHOTOS" else a for a in command]
    with Store(built).write_lock("ingest (the test)"):
        done = run_cli(*args, "--db", built)
    line = one_error_line(done)
    assert LOCKED in line and f"pid {os.getpid()}: ingest (the test)" in line, line
    assert Store(built).table.version == before  # nothing was written


def test_the_lock_is_reentrant_within_one_index(built: str) -> None:
    """An ingest that re-fuses the table (a changed --fusion) holds the lock once, not twice."""
    idx = mmembed.Index(built)
    with idx.store.write_lock("outer"):
        assert idx.apply_fusion(weight=0.4) == N_FIXTURES
    with pytest.raises(IngestLockedError, match=LOCKED):
        with Store(built).write_lock("other"), idx.store.write_lock("inner"):
            pass


# ---------------------------------------------------------------- 3. damaged snapshot / text tower

def scores(done: subprocess.CompletedProcess) -> dict[str, float]:
    return {json.loads(x)["path"]: json.loads(x)["score"] for x in done.stdout.splitlines()}


def snapshot_dir(db: str) -> Path:
    return Path(db) / "images.mmembed"


@pytest.mark.parametrize("damage", ["truncated image.npy", "garbage rows.jsonl", "random image.npy"])
def test_a_damaged_snapshot_falls_back_says_so_once_and_heals(built: str, photos: Path, damage: str) -> None:
    before = run_cli("search", "a red circle", "--db", built, "--json", "-n", "20")  # from the snapshot
    assert before.returncode == 0 and before.stderr == "", before.stderr
    folder = snapshot_dir(built)
    if damage == "truncated image.npy":
        data = (folder / "image.npy").read_bytes()
        (folder / "image.npy").write_bytes(data[: len(data) // 2])
    elif damage == "garbage rows.jsonl":
        size = (folder / "rows.jsonl").stat().st_size
        (folder / "rows.jsonl").write_bytes(b"\x00garbage{" * (size // 9 + 1))
        (folder / "rows.jsonl").write_bytes((folder / "rows.jsonl").read_bytes()[:size])  # same size
    else:
        size = (folder / "image.npy").stat().st_size
        (folder / "image.npy").write_bytes(np.random.default_rng(0).bytes(size))
    done = run_cli("search", "a red circle", "--db", built, "--json", "-n", "20")  # from LanceDB
    assert done.returncode == 0, done.stderr
    assert scores(done) == pytest.approx(scores(before), abs=1e-4)
    notes = [line for line in done.stderr.splitlines() if line]
    assert len(notes) == 1 and notes[0].startswith("note: the search snapshot is damaged"), done.stderr
    assert "Traceback" not in done.stderr
    # A no-change ingest writes it again; searches are quiet and quick after that.
    again = run_cli("ingest", str(photos), "--db", built, "--json", "-q")
    assert again.returncode == 0 and json.loads(again.stdout)["unchanged"] == N_FIXTURES, again.stderr
    healed = run_cli("search", "a red circle", "--db", built, "--json", "-n", "20")
    assert healed.returncode == 0 and healed.stderr == "", healed.stderr
    assert scores(healed) == pytest.approx(scores(before), abs=1e-4)


def test_index_refresh_rewrites_a_damaged_snapshot(built: str) -> None:
    (snapshot_dir(built) / "offsets.npy").write_bytes(b"not numpy")
    from mmembed.store.snapshot import Snapshot, SnapshotDamaged

    with pytest.raises(SnapshotDamaged):
        Snapshot.open(built, "images")
    done = run_cli("index", "--refresh", "--db", built)
    assert done.returncode == 0, done.stderr
    assert Snapshot.open(built, "images") is not None


def test_a_damaged_text_tower_is_exported_again(built: str, photos: Path, session_cache: Path) -> None:
    from mmembed.models.text_tower import TEXT_TOWER_FILE, tower_folder

    idx = mmembed.Index(built)
    folder = Path(tower_folder(idx.meta.fingerprint))
    onnx = folder / TEXT_TOWER_FILE
    assert onnx.is_file()
    onnx.write_bytes(np.random.default_rng(1).bytes(onnx.stat().st_size))
    done = run_cli("search", "a red circle", "--db", built, "-n", "3")
    assert done.returncode == 0, done.stderr
    assert "note: the exported text tower" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stdout.splitlines()) == 3
    again = run_cli("ingest", str(photos), "--db", built, "-q")  # no change: it heals what is derived
    assert again.returncode == 0, again.stderr
    from mmembed.models.text_tower import load_text_tower

    assert load_text_tower(str(folder), idx.meta.fingerprint) is not None
    quiet = run_cli("search", "a red circle", "--db", built, "-n", "3")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


# ---------------------------------------------------------------- 4. a damaged table version

def damage_latest_version(db: str) -> None:
    from mmembed.store.snapshot import manifest_versions

    _, path = manifest_versions(db, "images")[0]
    Path(path).write_bytes(b"\x01garbage" * 40)


def test_doctor_brings_back_the_last_good_version(built: str, photos: Path) -> None:
    (photos / "extra.png").write_bytes((photos / "red.jpg").read_bytes())  # one more version to lose
    assert run_cli("ingest", str(photos), "--db", built, "-q").returncode == 0
    damage_latest_version(built)
    line = one_error_line(run_cli("info", "--db", built))
    assert "mmembed doctor" in line and "rs:" not in line  # the way out, without lance's source paths
    check = run_cli("doctor", "--db", built, "--json")
    assert check.returncode == 1
    assert {"check": "table", "status": "problem"}.items() <= \
        [json.loads(x) for x in check.stdout.splitlines() if json.loads(x)["check"] == "table"][0].items()
    fixed = run_cli("doctor", "--repair", "--db", built)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "repaired table: restored version" in fixed.stdout
    info = run_cli("info", "--db", built, "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["rows"] >= N_FIXTURES, info.stderr
    assert run_cli("search", "a red circle", "--db", built).returncode == 0
    rerun = run_cli("ingest", str(photos), "--db", built, "--json", "-q")
    assert rerun.returncode == 0 and json.loads(rerun.stdout)["rows"] == N_FIXTURES + 1, rerun.stderr
    assert run_cli("doctor", "--db", built).returncode == 0


def test_reindex_works_when_the_table_cannot_be_opened(built: str, photos: Path, tiny_model: str) -> None:
    damage_latest_version(built)
    done = run_cli("ingest", str(photos), "--db", built, "--reindex", "--json", "-q")  # no --model: from the snapshot
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == N_FIXTURES
    assert mmembed.Index(built).meta.model == tiny_model
    assert not Store(built, "images__staging").exists()


def test_a_leftover_staging_table_is_removed_by_the_next_ingest(built: str, photos: Path) -> None:
    """What a killed --reindex leaves (test_faults.py kills a real one)."""
    main = Store(built)
    staging = Store(built, "images__staging")
    staging.create(main.meta(), main.table.schema.field("fused_vector").type.list_size)
    assert staging.exists()
    assert run_cli("ingest", str(photos), "--db", built, "-q").returncode == 0
    assert not Store(built, "images__staging").exists()


# ---------------------------------------------------------------- 5. MMEMBED_MODEL keeps the quick path

def test_naming_the_tables_own_model_keeps_the_quick_path(built: str, tiny_model: str, other_tiny_model: str) -> None:
    script = (
        "import sys\nfrom mmembed.config import Config\nfrom mmembed.retrieval.quick import quick_search\n"
        f"hits = quick_search(Config.resolve(db={built!r}, model=sys.argv[1]), 'a red circle', limit=3)\n"
        "print(hits is not None and len(hits), 'torch' in sys.modules, 'lancedb' in sys.modules)\n"
    )
    same = subprocess.run([sys.executable, "-c", script, tiny_model], capture_output=True, text=True, timeout=120)
    assert same.stdout.split() == ["3", "False", "False"], same.stderr
    other = subprocess.run([sys.executable, "-c", script, other_tiny_model], capture_output=True, text=True, timeout=120)
    assert other.stdout.split()[0] == "False", other.stderr  # another model: the full path explains


# ---------------------------------------------------------------- 6. a lone string is one item

def test_a_single_string_is_one_item(built: str, photos: Path, tmp_path: Path, tiny_model: str) -> None:
    idx = mmembed.Index(built)
    assert idx.embed_text("a cat").shape == (1, 32)
    assert idx.embed_images(str(photos / "red.jpg")).shape == (1, 32)
    one = [h.path for h in idx.search("a red circle", negatives="blurry", limit=5)]
    assert one == [h.path for h in idx.search("a red circle", negatives=["blurry"], limit=5)]
    # exclude and captions as plain strings
    (photos / "sub").mkdir()
    shutil.copy(photos / "red.jpg", photos / "sub" / "red2.jpg")
    manifest = tmp_path / "captions.csv"
    manifest.write_text("image,caption\nphotos/green.png,a green square\n")
    fresh = mmembed.Index(str(tmp_path / "fresh.lancedb"), model=tiny_model)
    report = fresh.ingest(photos, exclude="sub/*", captions=str(manifest))
    assert report.added == N_FIXTURES
    assert {h.text for h in fresh.search("green", target="text", limit=1)} == {"a green square"}


@pytest.mark.parametrize(("call", "error", "names"), [
    (lambda idx: idx.search(123), QueryError, "search text"),
    (lambda idx: idx.search("a cat", where=1), QueryError, "where"),
    (lambda idx: idx.search("a cat", image_weight="0.5"), QueryError, "image_weight"),
    (lambda idx: idx.search("a cat", limit="5"), QueryError, "limit"),
    (lambda idx: idx.search("a cat", negatives=[1]), QueryError, "negatives"),
    (lambda idx: idx.ingest(42), ConfigError, "paths"),
    (lambda idx: idx.ingest(".", exclude=[3]), ConfigError, "exclude"),
    (lambda idx: idx.ingest(".", hidden="yes"), ConfigError, "hidden"),
    (lambda idx: idx.ingest(".", fusion_weight="0.3"), ConfigError, "fusion_weight"),
    (lambda idx: idx.embed_text([1]), ConfigError, "texts"),
])
def test_wrong_types_name_the_parameter(built: str, call, error: type, names: str) -> None:
    with pytest.raises(error, match=names):
        call(mmembed.Index(built))


def test_unknown_keyword_names_the_valid_ones(built: str) -> None:
    with pytest.raises(TypeError, match="unknown argument.*limt.*valid:.*limit"):
        mmembed.Index(built).search("a cat", limt=3)


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


# ---------------------------------------------------------------- 8. the table's model, moved folders

def test_reindex_without_model_keeps_the_tables_model(photos: Path, db: str, other_tiny_model: str) -> None:
    mmembed.Index(db, model=other_tiny_model).ingest(photos)
    done = run_cli("ingest", str(photos), "--db", db, "--reindex", "-q")
    assert done.returncode == 0, done.stderr
    assert mmembed.Index(db).meta.model == other_tiny_model


def test_a_moved_model_folder_is_recorded_by_the_next_ingest(photos: Path, db: str, tiny_model: str, tmp_path: Path) -> None:
    old = Path(tiny_model.removeprefix("local-dir:"))
    moved = tmp_path / "moved-model"
    shutil.copytree(old, moved)
    mmembed.Index(db, model="local-dir:" + str(moved)).ingest(photos)
    newer = tmp_path / "newer-model"
    shutil.move(moved, newer)
    done = run_cli("ingest", str(photos), "--db", db, "--model", f"local-dir:{newer}", "--json", "-q")
    assert done.returncode == 0, done.stderr
    assert mmembed.Index(db).meta.model == f"local-dir:{newer.resolve()}"
    later = run_cli("search", "a red circle", "--db", db, "-n", "2", env={"MMEMBED_QUICK": "0"})  # no --model now
    assert later.returncode == 0 and len(later.stdout.splitlines()) == 2, later.stderr


# ---------------------------------------------------------------- 9. files that always fail

def test_a_file_that_failed_is_not_read_again_until_it_changes(photos: Path, db: str, tiny_model: str) -> None:
    broken = photos / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    first = mmembed.Index(db, model=tiny_model).ingest(photos)
    assert [s.path for s in first.skipped] == [str(broken)]
    second_idx = mmembed.Index(db)
    second = second_idx.ingest(photos)
    assert [(s.path, "unchanged since it failed" in s.reason) for s in second.skipped] == [(str(broken), True)]
    assert second.unchanged == N_FIXTURES
    assert second_idx._model.loaded is None or second_idx._model.loaded._model is None  # no model was loaded
    retried = mmembed.Index(db).ingest(photos, retry_failed=True)
    assert "unchanged since it failed" not in retried.skipped[0].reason
    broken.write_bytes((photos / "red.jpg").read_bytes())  # fixed: it changes, so it is read
    fixed = mmembed.Index(db).ingest(photos)
    assert fixed.skipped == [] and fixed.added == 1


def test_cli_reports_skips_as_unchanged_since_they_failed(photos: Path, db: str, tiny_model: str) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert run_cli("ingest", str(photos), "--db", db, "--model", tiny_model, "-q").returncode == 0
    done = run_cli("ingest", str(photos), "--db", db, "-q")
    assert done.returncode == 0
    assert "broken.jpg: truncated or corrupt image data" in done.stderr
    assert "(unchanged since it failed; --retry-failed tries it again)" in done.stderr
    again = run_cli("ingest", str(photos), "--db", db, "-q", "--retry-failed")
    assert "unchanged since it failed" not in again.stderr and "broken.jpg" in again.stderr


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


def test_fusion_train_leaks_no_torch_warning(photos: Path, db: str, tiny_model: str, tmp_path: Path) -> None:
    manifest = tmp_path / "caps.csv"
    names = sorted(p.name for p in photos.iterdir())
    manifest.write_text("image,caption\n" + "".join(f"photos/{n},a photo {n}\nphotos/{n},picture of {n}\n" for n in names))
    assert run_cli("ingest", str(photos), "--db", db, "--model", tiny_model, "--captions", str(manifest), "-q").returncode == 0
    done = run_cli("fusion", "train", "--epochs", "2", "--db", db)
    assert done.returncode == 0, done.stderr
    assert "not writable" not in done.stderr and "Warning" not in done.stderr, done.stderr


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


def test_lock_holder_is_named_by_a_real_second_process(built: str, photos: Path) -> None:
    """A real process holds the lock (not this one): the refusal names its pid and action."""
    lock = Path(built) / ".images.ingest.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom mmembed.store import Store\n"
         f"with Store({built!r}).write_lock('fusion apply'):\n    print('held', flush=True)\n    time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with open(lock, "a+") as handle, pytest.raises(BlockingIOError):
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        line = one_error_line(run_cli("ingest", str(photos), "--db", built))
        assert f"pid {holder.pid}: fusion apply" in line
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert run_cli("ingest", str(photos), "--db", built, "-q").returncode == 0  # released by the kernel
