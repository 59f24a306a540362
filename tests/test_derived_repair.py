"""Damaged derived data (snapshot, text tower) and damaged table versions: searches fall back, ingest, refresh and doctor repair.

Split by feature from test_hardening.py (issue 15's regression tests: each failed on the main
before its fix; the CLI is run as the real entry point, concurrency as real processes).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import mmembed
from mmembed.store import Store

from conftest import N_FIXTURES, one_error_line, run_cli


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


@pytest.mark.slow  # long; its mechanism is also covered in the default run (CI time)
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
