"""The model a table records: naming it keeps the quick path, --reindex keeps it, a moved folder is recorded.

Split by feature from test_hardening.py (issue 15's regression tests: each failed on the main
before its fix; the CLI is run as the real entry point, concurrency as real processes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mmembed

from conftest import run_cli


# ---------------------------------------------------------------- 5. MMEMBED_MODEL keeps the quick path

def test_naming_the_tables_own_model_keeps_the_quick_path(built: str, tiny_model: str, other_tiny_model: str) -> None:
    script = (
        "import sys\nfrom mmembed.config import Config\nfrom mmembed.retrieval.searcher import quick_search\n"
        f"hits = quick_search(Config.resolve(db={built!r}, model=sys.argv[1]), 'a red circle', limit=3)\n"
        "print(hits is not None and len(hits), 'torch' in sys.modules, 'lancedb' in sys.modules)\n"
    )
    same = subprocess.run([sys.executable, "-c", script, tiny_model], capture_output=True, text=True, timeout=120)
    assert same.stdout.split() == ["3", "False", "False"], same.stderr
    other = subprocess.run([sys.executable, "-c", script, other_tiny_model], capture_output=True, text=True, timeout=120)
    assert other.stdout.split()[0] == "False", other.stderr  # another model: the full path explains


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
