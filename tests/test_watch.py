"""``mmembed watch``: the real command in a subprocess (``--json`` events read line by line)
keeps a table in step with a folder: a copy of 200 files is 1-3 ingests, deletions are pruned,
a renamed folder's rows move without being encoded again, a half-written file is waited for,
a folder that goes away keeps its rows, and SIGTERM/Ctrl-C stop it cleanly (exit 0)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import mmembed_cmd, run_cli, shared_path


class Watcher:
    """``mmembed watch ... --json`` as a subprocess; its events arrive on a queue."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
        self.proc = subprocess.Popen([*mmembed_cmd(), "watch", *args, "--json"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self.readers = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def until(self, wanted: Callable[[dict[str, Any]], bool], timeout: float = 60) -> list[dict[str, Any]]:
        """The events up to and including the first one ``wanted`` accepts."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                event = self.events.get(timeout=max(0.01, left))
            except queue.Empty:
                raise AssertionError(f"no such event in {timeout} s; got {got}; stderr: {''.join(self.stderr)}") from None
            got.append(event)
            self.seen.append(event)
            if wanted(event):
                return got

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig``; the exit code, once every event it printed has been read."""
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        for reader in self.readers:
            reader.join(timeout=10)
        while not self.events.empty():
            self.seen.append(self.events.get())
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def _rows(event: dict[str, Any]) -> int | None:
    return event["report"]["rows"] if "report" in event else None


def _ids(db: str, folder: Path) -> dict[str, str]:
    """content hash -> row id of the rows under ``folder``."""
    import mmembed

    prefix = str(folder) + os.sep
    return {r["content_hash"]: r["id"] for r in mmembed.Index(db).items() if r["path"].startswith(prefix)}


@pytest.mark.shared
def test_watch_keeps_a_folder_in_step(tmp_path: Path, tiny_model: str) -> None:
    dev = sorted(shared_path("data/flickr8k/dev").iterdir())
    photos = (tmp_path / "photos").resolve()
    photos.mkdir()
    shutil.copy(dev[999], photos / "seed.jpg")
    db = str(tmp_path / "db.lancedb")
    watcher = Watcher(str(photos), "--db", db, "--model", tiny_model, "--debounce", "0.5")
    searching = threading.Event()
    searches: list[subprocess.CompletedProcess] = []

    def search_while_watching() -> None:
        while searching.is_set():
            searches.append(run_cli("search", "a dog", "--db", db, "-n", "1", "--json"))

    try:
        assert _rows(watcher.until(lambda e: e["event"] == "catch-up", timeout=120)[-1]) == 1

        # A copy of 200 files: searchable a few seconds after it ends, in 1-3 ingests; searches
        # in another process keep working all the while.
        searching.set()
        threading.Thread(target=search_while_watching, daemon=True).start()
        for i, src in enumerate(dev[:200]):
            folder = photos / ("a" if i < 100 else "b")
            folder.mkdir(exist_ok=True)
            shutil.copy(src, folder / src.name)
        copied = time.monotonic()
        batches = watcher.until(lambda e: _rows(e) == 201)
        latency = time.monotonic() - copied
        searching.clear()
        ingests = [e for e in batches if e["event"] == "batch" and e["report"]["added"]]
        assert 1 <= len(ingests) <= 3, batches
        assert sum(e["report"]["added"] for e in ingests) == 200
        assert latency < 30, latency
        deadline = time.monotonic() + 60
        while not searches and time.monotonic() < deadline:
            time.sleep(0.1)
        assert searches and all(s.returncode == 0 and s.stdout for s in searches), searches
        probe = photos / "b" / dev[150].name
        found = run_cli("search", "--image", str(probe), "--db", db, "-n", "1", "--json")
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout.splitlines()[0])["path"] == str(probe)

        # Deletions are pruned.
        for src in dev[:20]:
            (photos / "a" / src.name).unlink()
        events = watcher.until(lambda e: _rows(e) == 181)
        assert sum(e["report"]["removed"] for e in events if "report" in e) == 20

        # A renamed folder: its rows move, with their ids (no encoding).
        before = _ids(db, photos / "b")
        (photos / "b").rename(photos / "c")
        events = watcher.until(lambda e: "report" in e and e["report"]["moved"] > 0)
        assert events[-1]["report"]["moved"] == 100 and not events[-1]["report"]["added"]
        assert not events[-1]["report"]["removed"] and events[-1]["report"]["rows"] == 181
        assert _ids(db, photos / "c") == before and not _ids(db, photos / "b")

        # A file written slowly is read once it is complete, not skipped as truncated.
        data = dev[300].read_bytes()
        with open(photos / "slow.jpg", "wb") as f:
            for start in range(0, len(data), len(data) // 3 + 1):
                f.write(data[start:start + len(data) // 3 + 1])
                f.flush()
                time.sleep(1.2)  # longer than debounce + settle
        events = watcher.until(lambda e: _rows(e) == 182)
        assert all(not e["report"]["skipped"] for e in events if "report" in e), events

        # SIGTERM: exit 0, "Stopped.", a table that opens.
        assert watcher.stop(signal.SIGTERM) == 0
        assert watcher.seen[-1]["event"] == "stopped"
        assert "Stopped." in "".join(watcher.stderr)
        info = run_cli("info", "--db", db, "--json")
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["rows"] == 182
    finally:
        searching.clear()
        watcher.kill()


def test_a_folder_that_goes_away_keeps_its_rows(tmp_path: Path, tiny_model: str, photos: Path) -> None:
    """An unmounted disk is not a deletion: nothing is pruned while the folder is gone, and
    when it is back the watch catches up (here: one file deleted meanwhile)."""
    photos = photos.resolve()
    db = str(tmp_path / "db.lancedb")
    watcher = Watcher(str(photos), "--db", db, "--model", tiny_model, "--debounce", "0.3")
    try:
        rows = _rows(watcher.until(lambda e: e["event"] == "catch-up", timeout=120)[-1])
        assert rows and rows > 10
        away = tmp_path / "unmounted"
        photos.rename(away)
        watcher.until(lambda e: e["event"] == "waiting")
        time.sleep(1.5)  # a few debounce periods with the folder gone
        (away / "red.jpg").unlink()
        away.rename(photos)
        events = watcher.until(lambda e: e["event"] == "catch-up")
        assert [e["event"] for e in events] == ["resumed", "catch-up"]
        assert all(not e["report"]["removed"] for e in watcher.seen[:-1] if "report" in e)
        assert events[-1]["report"]["removed"] == 1 and events[-1]["report"]["rows"] == rows - 1
        assert watcher.stop(signal.SIGINT) == 0
    finally:
        watcher.kill()


def test_a_root_that_vanishes_during_a_batch_is_not_pruned(tmp_path: Path) -> None:
    """The batch stops at the ingest's 'prune' step when its root is gone by then."""
    from mmembed.ingest.report import IngestProgress, IngestReport
    from mmembed.ingest.watch import WatchOptions, run_watch

    root = tmp_path / "root"
    root.mkdir()
    pruned: list[list[str]] = []
    events: queue.Queue[Any] = queue.Queue()

    def ingest(present: list[str], progress: Callable[[IngestProgress], None]) -> IngestReport:
        if (root / "new.jpg").exists():
            root.rename(tmp_path / "gone")  # unmounted while the batch walks
        progress(IngestProgress("scan", 1, 1))
        progress(IngestProgress("prune", 0, 1))
        pruned.append(present)
        return IngestReport()

    stop = threading.Event()
    thread = threading.Thread(target=run_watch, args=([str(root)], ingest, WatchOptions(debounce=0.1, settle=0.1, poll=0.1)),
                              kwargs={"on_event": events.put, "stop": stop})
    thread.start()
    try:
        assert events.get(timeout=10).kind == "start"
        assert events.get(timeout=10).kind == "catch-up"
        (root / "new.jpg").write_bytes(b"x")
        assert events.get(timeout=10).kind == "waiting"
        assert pruned == [[str(root)]]  # the catch-up only
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert events.get(timeout=1).kind == "stopped"


def test_an_unmounted_mount_point_counts_as_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mount point that is one no longer is an empty folder of the parent disk: not there."""
    from mmembed.ingest import watch

    monkeypatch.setattr(watch.os.path, "ismount", lambda path: True)
    root = watch._Root(str(tmp_path), [False])
    assert root.here()
    monkeypatch.setattr(watch.os.path, "ismount", lambda path: False)
    assert not root.here()


def test_watch_options_are_checked() -> None:
    from mmembed.errors import ConfigError
    from mmembed.ingest.watch import WatchOptions

    with pytest.raises(ConfigError, match="max_wait"):
        WatchOptions(debounce=5, max_wait=1)
    with pytest.raises(ConfigError, match="debounce"):
        WatchOptions(debounce=-1)


def test_without_watchdog_the_cli_names_the_extra(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['watchdog'] = None; sys.modules['watchdog.observers'] = None; "
            "from mmembed.cli import main; sys.argv = ['mmembed', 'watch', sys.argv[1]]; main()")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Error: mmembed watch needs watchdog; install the extra: pip install 'mmembed[watch]'" in done.stderr


def test_changes_of_the_database_and_reads_are_not_changes(tmp_path: Path) -> None:
    """A database inside a watched folder, and the ingest's own reads, never start a batch
    (else every batch would cause the next)."""
    from types import SimpleNamespace

    from mmembed.ingest.watch import _Changes

    root, db = str(tmp_path), str(tmp_path / "db.lancedb")
    changes = _Changes([root], [db])

    def event(kind: str, path: str, dest: str = "") -> SimpleNamespace:
        return SimpleNamespace(event_type=kind, src_path=path, dest_path=dest, is_directory=False)

    changes.dispatch(event("modified", f"{db}/images.lance/data/x.lance"))
    changes.dispatch(event("opened", f"{root}/a.jpg"))
    changes.dispatch(event("closed_no_write", f"{root}/a.jpg"))
    changes.dispatch(event("created", str(tmp_path.parent / "elsewhere.jpg")))
    assert changes.first is None
    changes.dispatch(event("modified", f"{root}/a.jpg"))
    assert changes.first is not None and changes.snapshot() == ([f"{root}/a.jpg"], True)
    changes.dispatch(event("closed", f"{root}/a.jpg"))
    assert changes.snapshot() == ([f"{root}/a.jpg"], False)
    assert changes.take() == 1 and changes.first is None
