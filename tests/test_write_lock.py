"""The table's write lock: every writer takes it, it is reentrant within one Index, and a refusal names the holder.

Split by feature from test_hardening.py (issue 15's regression tests: each failed on the main
before its fix; the CLI is run as the real entry point, concurrency as real processes).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mmembed
from mmembed import IngestLockedError
from mmembed.store import Store

from conftest import LOCKED, N_FIXTURES, one_error_line, run_cli


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


def test_a_lock_file_removed_under_a_writer_that_had_opened_it_is_not_trusted(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A first writer that made the database folder and wrote nothing removes its lock file as it
    gives up. A second writer that had opened that file just before must not take a lock on the
    removed file (a third would then lock a new file, and two would write at once)."""
    from mmembed.store.lock import WriteLock

    folder = tmp_path / "new.lancedb"
    first, second, third = (WriteLock(str(folder), "images", str(folder)) for _ in range(3))
    opened_early: list = []
    with first.hold("ingest"):
        opened_early.append(open(first.path, "a+"))  # the second writer's open, before the removal
    assert not folder.exists()  # the first writer made the folder and wrote nothing: it is gone
    real_open = WriteLock._open
    monkeypatch.setattr(WriteLock, "_open", lambda self: opened_early.pop() if opened_early else real_open(self))
    with second.hold("ingest"):
        assert os.path.exists(second.path)  # it locked a file that is there
        with pytest.raises(IngestLockedError):
            with third.hold("ingest"):
                pass
