"""Keeping a table in step with folders: watch them with watchdog, and after each burst of
changes run one incremental ingest (``Index.watch`` and ``mmembed watch``).

- **Catch-up**: the watch starts with one ingest of the roots, so whatever changed while
  nothing watched is found first.
- **Debounce**: events (from one watchdog observer per root, recursive) only mark the roots
  dirty and note which paths changed. A batch starts once ``debounce`` seconds pass with no
  event, or at the latest ``max_wait`` seconds after the first event it holds, so a copy of
  5,000 files is one ingest (or one every ``max_wait`` seconds while it goes on), not 5,000.
  A batch is one ingest: unchanged files are not read, moved ones keep their vectors, gone
  ones are pruned.
- **Stability**: a file is not read half-written. Before a batch the changed files' size and
  mtime are read twice, ``settle`` seconds apart, and where the platform says so (inotify) a
  file opened for writing counts as changing until it is closed; either puts the batch off,
  up to ``max_wait``. The ingest's own reads (open and close-without-write events) and the
  database folder, if it lies inside a root, are not changes.
- **Unmount**: a root that is gone, or that was a mount point and is one no longer, is never
  ingested, so its rows are never pruned: an unmounted disk is not a deletion. The watch
  reports ``waiting``, looks for it every ``poll`` seconds, and when it is back watches it
  again and catches up. A root that vanishes during a batch stops that batch before its
  prune step (the ingest's 'prune' progress event comes before any row is deleted).
- **Stop**: set ``stop`` (the CLI does on Ctrl-C and SIGTERM). Between batches the watch ends
  at once; during one it ends at the ingest's next progress event, keeping what was written
  (an ingest cut short leaves a table that opens; the next run finishes the job).

The library never prints: each step is a ``WatchEvent`` handed to ``on_event``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, IngestLockedError
from .report import IngestProgress, IngestReport

__all__ = ["WatchOptions", "WatchEvent", "run_watch", "watch_paths", "require_watchdog", "EVENT_KINDS"]

EVENT_KINDS = ("start", "catch-up", "batch", "waiting", "resumed", "error", "stopped")
_IGNORED_TYPES = frozenset({"opened", "closed_no_write"})  # reads, the ingest's own among them
_RECENT = 5000  # changed paths remembered for the stability check (the newest ones)
_LOCKED_RETRY = 5.0  # seconds before a batch that found another writer is tried again

Ingest = Callable[[list[str], Callable[[IngestProgress], None]], IngestReport]


@dataclass(frozen=True)
class WatchOptions:
    """Timing of a watch (seconds)."""

    debounce: float = 1.0  # quiet time after the last event before a batch starts
    settle: float = 0.5  # gap between the two size/mtime reads of the changed files
    max_wait: float = 30.0  # a batch starts at the latest this long after its first event
    poll: float = 2.0  # how often a root that is gone is looked for

    def __post_init__(self) -> None:
        for name in ("debounce", "settle", "max_wait", "poll"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86400:
                raise ConfigError(f"{name} must be a number of seconds from 0 to 86400, not {value!r}")
        if self.max_wait < self.debounce:
            raise ConfigError(f"max_wait ({self.max_wait}) must be at least debounce ({self.debounce})")


@dataclass(frozen=True)
class WatchEvent:
    """One step of a watch. ``kind`` is one of ``EVENT_KINDS``:

    start (``roots``), catch-up and batch (``report``, ``changed`` paths seen since the last
    batch), waiting and resumed (``roots``: the root that went or came back), error
    (``message``: a batch that will be tried again, e.g. another writer held the table),
    stopped.
    """

    kind: str
    time: float  # seconds since the epoch
    roots: tuple[str, ...] = ()
    report: IngestReport | None = None
    changed: int = 0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` line: event, time (ISO 8601, local), and the fields that apply."""
        out: dict[str, Any] = {"event": self.kind,
                               "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.time))}
        if self.roots:
            out["roots"] = list(self.roots)
        if self.report is not None:
            out["changed"] = self.changed
            out["report"] = self.report.to_dict()
        if self.message:
            out["message"] = self.message
        return out


def require_watchdog() -> None:
    """Raise ConfigError naming the extra to install when watchdog is missing."""
    try:
        import watchdog.observers  # noqa: F401
    except ImportError:
        raise ConfigError("mmembed watch needs watchdog; install the extra: pip install 'mmembed[watch]'") from None


class _RootGone(BaseException):
    """A root vanished during a batch: stop it before it prunes (BaseException: no broad
    ``except Exception`` on the way may swallow it)."""


class _Stopped(BaseException):
    """The watch was asked to stop during a batch."""


class _Changes:
    """What the observers saw since the last batch; fed from their threads (``dispatch``)."""

    def __init__(self, roots: Sequence[str], ignore: Sequence[str]) -> None:
        self._lock = threading.Lock()
        self._roots = [_prefix(r) for r in roots]
        self._ignore = [_prefix(p) for p in ignore]
        self.first: float | None = None  # when the first event of the coming batch came
        self.last = 0.0  # when the latest event came
        self.paths: dict[str, None] = {}  # changed files, oldest first
        self.writing: set[str] = set()  # files open for writing (inotify says when they close)

    def dispatch(self, event: Any) -> None:
        """watchdog's handler entry point (any object with ``dispatch`` will do)."""
        if event.event_type in _IGNORED_TYPES:
            return
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(getattr(event, "dest_path", "") or "")
        if not any(self._wanted(p) for p in (src, dest) if p):
            return
        with self._lock:
            self._touch(time.monotonic())
            if event.is_directory:
                return
            kind = event.event_type
            if kind == "modified":  # a write; not "created": a new folder's files are reported created
                self.writing.add(src)  # when its watch is set up, and their close may have passed
            elif kind in ("closed", "deleted", "moved"):
                self.writing.discard(src)
            for path in (src, dest):
                if path and self._wanted(path):
                    self.paths.pop(path, None)
                    self.paths[path] = None
            while len(self.paths) > _RECENT:
                del self.paths[next(iter(self.paths))]

    def _wanted(self, path: str) -> bool:
        under = any(path == r[:-1] or path.startswith(r) for r in self._roots)
        return under and not any(path == p[:-1] or path.startswith(p) for p in self._ignore)

    def touch(self, *, overdue: bool = False) -> None:
        """Mark the roots dirty, as an event would; ``overdue``: a batch is due at once."""
        with self._lock:
            self._touch(time.monotonic())
            if overdue:
                self.first = float("-inf")

    def _touch(self, now: float) -> None:
        if self.first is None:
            self.first = now
        self.last = max(self.last, now)

    def take(self) -> int:
        """Start a batch: forget what it covers; returns how many paths changed."""
        with self._lock:
            count = len(self.paths)
            self.first, self.paths = None, {}
            return count

    def forget_writers_under(self, root: str) -> None:
        """A root's observer stopped: the closes it would have reported will not come."""
        prefix = _prefix(root)
        with self._lock:
            self.writing = {p for p in self.writing if not p.startswith(prefix)}

    def snapshot(self) -> tuple[list[str], bool]:
        with self._lock:
            return list(self.paths), bool(self.writing)


class _Root:
    """One watched path: its observer, and whether it is there."""

    def __init__(self, path: str, uses_closes: list[bool]) -> None:
        self.path = path
        self.was_mount = os.path.ismount(path)  # then "not a mount point any more" means unmounted
        self.present = True
        self.observer: Any = None
        self.next_look = 0.0
        self._uses_closes = uses_closes

    def here(self) -> bool:
        try:
            os.stat(self.path)
        except OSError:
            return False
        return not self.was_mount or os.path.ismount(self.path)

    def start(self, changes: _Changes) -> bool:
        """Watch the root; False when it went again before its watch could be set up."""
        from watchdog.observers import Observer

        folder = self.path if os.path.isdir(self.path) else os.path.dirname(self.path)
        observer = Observer()
        observer.daemon = True
        try:
            observer.schedule(changes, folder, recursive=os.path.isdir(self.path))
            observer.start()
        except OSError:
            return False
        self.observer = observer
        self._uses_closes[0] = type(observer).__name__ == "InotifyObserver"
        return True

    def stop(self) -> None:
        if self.observer is not None:
            observer, self.observer = self.observer, None
            observer.stop()
            observer.join(timeout=5)


def watch_paths(paths: Any, ingest: Ingest, ingest_options: Any, timing: WatchOptions, *,
                on_event: Callable[[WatchEvent], None] | None = None, stop: threading.Event | None = None,
                ignore: Sequence[str] = ()) -> None:
    """``run_watch`` on the paths a user gave (``Index.watch``): local folders, no ``--reindex``."""
    from .._options import items

    if ingest_options.reindex:
        raise ConfigError("watch does not rebuild the table; run `mmembed ingest PATH --reindex` first")
    given = items(paths, "paths", ConfigError, (str, os.PathLike))
    if any(isinstance(p, str) and p.startswith("s3://") for p in given):
        raise ConfigError("watch follows local folders only; for s3:// run `mmembed ingest s3://...` on a schedule")
    roots = [os.path.realpath(os.fspath(p)) for p in given]
    if not roots:
        raise ConfigError("no paths to watch; give at least one folder")
    run_watch(roots, ingest, timing, on_event=on_event, stop=stop, ignore=ignore)


def run_watch(
    roots: Sequence[str],
    ingest: Ingest,
    options: WatchOptions | None = None,
    *,
    on_event: Callable[[WatchEvent], None] | None = None,
    stop: threading.Event | None = None,
    ignore: Sequence[str] = (),
) -> None:
    """Watch ``roots`` (real paths) until ``stop`` is set; see the module docstring.

    ``ingest(present_roots, progress)`` runs one incremental ingest (``Index.watch`` passes
    ``Index.ingest``) and returns its report; ``ignore`` lists folders whose changes are not
    the user's (the database's own folder).
    """
    require_watchdog()
    for root in roots:
        if not os.path.exists(root):
            raise ConfigError(f"{root}: no such file or folder; check the path")
    watch = _Watch(list(roots), ingest, options or WatchOptions(), on_event or (lambda event: None),
                   stop or threading.Event(), ignore)
    try:
        watch.run()
    finally:
        for root in watch.roots:
            root.stop()
    watch.emit("stopped")


class _Watch:
    """The loop: look at the roots, wait for a quiet and stable moment, ingest, report."""

    def __init__(self, roots: list[str], ingest: Ingest, options: WatchOptions,
                 emit: Callable[[WatchEvent], None], stop: threading.Event, ignore: Sequence[str]) -> None:
        self.uses_closes = [False]
        self.roots = [_Root(r, self.uses_closes) for r in roots]
        self.changes = _Changes(roots, ignore)
        self.ingest = ingest
        self.options = options
        self._emit = emit
        self.stop = stop
        self.tick = max(0.02, min(0.25, options.debounce / 4, options.poll))
        self.catch_up = True
        self.not_before = 0.0

    def emit(self, kind: str, **fields: Any) -> None:
        self._emit(WatchEvent(kind, time.time(), **fields))

    def run(self) -> None:
        for root in self.roots:
            if not root.start(self.changes):
                raise ConfigError(f"{root.path}: cannot watch it; check that it exists and can be read")
        self.emit("start", roots=tuple(r.path for r in self.roots))
        self.changes.touch(overdue=True)  # the catch-up runs at once
        while not self.stop.is_set():
            self.look_at_roots()
            if self.due() and self.stable():
                try:
                    self.batch()
                except _Stopped:
                    return
            self.stop.wait(self.tick)

    def look_at_roots(self) -> None:
        """Notice roots that went (stop watching them) and roots that came back (catch up)."""
        now = time.monotonic()
        for root in self.roots:
            if root.present and not root.here():
                root.present = False
                root.stop()
                self.changes.forget_writers_under(root.path)
                root.next_look = now + self.options.poll
                self.emit("waiting", roots=(root.path,))
            elif not root.present and now >= root.next_look:
                root.next_look = now + self.options.poll
                if root.here() and root.start(self.changes):
                    root.present = True
                    self.emit("resumed", roots=(root.path,))
                    self.catch_up = True
                    self.changes.touch()
            elif root.present and (root.observer is None or not root.observer.is_alive()):
                root.stop()  # its thread died (an error inside watchdog): watch afresh and catch up
                if root.start(self.changes):
                    self.catch_up = True
                    self.changes.touch()

    def due(self) -> bool:
        """A batch is due: something changed, it has been quiet long enough (or max_wait is up),
        no file is still open for writing, and at least one root is there."""
        first = self.changes.first
        now = time.monotonic()
        if first is None or now < self.not_before or not any(r.present for r in self.roots):
            return False
        if now - first >= self.options.max_wait:
            return True
        _, writing = self.changes.snapshot()
        writing = writing and self.uses_closes[0]
        return now - self.changes.last >= self.options.debounce and not writing

    def stable(self) -> bool:
        """The changed files kept their size and mtime for ``settle`` seconds (True when
        max_wait is up: a file written without end is ingested as it is, and again when it changes)."""
        first = self.changes.first
        if first is None or time.monotonic() - first >= self.options.max_wait or not self.options.settle:
            return True
        paths, _ = self.changes.snapshot()
        if not paths:
            return True
        before, last = _stats(paths), self.changes.last
        if self.stop.wait(self.options.settle):
            return False
        if _stats(paths) != before or self.changes.last != last:
            self.changes.touch()  # still being written: the quiet period starts again
            return False
        return True

    def batch(self) -> None:
        """One ingest of the roots that are there; reports it, or the reason to try again."""
        present = [r for r in self.roots if r.present]
        kind = "catch-up" if self.catch_up else "batch"
        changed = self.changes.take()

        def guard(progress: IngestProgress) -> None:
            if self.stop.is_set():
                raise _Stopped
            if progress.phase == "prune" and not progress.done and not all(r.here() for r in present):
                raise _RootGone

        try:
            report = self.ingest([r.path for r in present], guard)
        except (_RootGone, ConfigError) as exc:
            if isinstance(exc, ConfigError) and all(r.here() for r in present):
                raise  # a real configuration problem, not a root that went
            self.changes.touch()  # look_at_roots reports it; the roots still there get a batch
            return
        except IngestLockedError as exc:
            self.changes.touch()
            self.not_before = time.monotonic() + _LOCKED_RETRY
            self.emit("error", message=f"{exc}; trying again in {_LOCKED_RETRY:.0f} s")
            return
        self.catch_up = False
        self.emit(kind, roots=tuple(r.path for r in present), report=report, changed=changed)


def _prefix(path: str) -> str:
    return path.rstrip(os.sep) + os.sep


def _stats(paths: list[str]) -> list[tuple[int, int] | None]:
    out: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return out
