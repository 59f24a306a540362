"""The ingest pipeline: discover -> skip unchanged -> read, hash, decode in threads -> encode in
batches -> write batch by batch -> prune -> compact.

Memory stays flat: decoded images live only inside a bounded window of in-flight work, and
vectors are written as they are made. A run killed at any moment leaves a table that opens
(each write is one atomic LanceDB commit); rerunning finishes the job without duplicates,
because files already written are then unchanged.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import ImageDecodeError, MmembedError
from .sources import DiscoveredFile, load_image, walk
from .store import Store

__all__ = ["IngestReport", "SkippedFile", "IngestProgress", "run_ingest"]

_WRITE_ROWS = 256  # rows per commit: few commits, little lost to a crash
_WRITE_SECONDS = 10.0  # ...or sooner, so a slow model still saves its work often
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not indexed, and why."""

    path: str
    reason: str


@dataclass
class IngestReport:
    """What one ingest run did. ``to_dict()`` is the CLI's ``--json`` output."""

    added: int = 0  # new files encoded (or copied from an identical file already indexed)
    updated: int = 0  # files whose content changed, re-encoded
    moved: int = 0  # files found under a new path by content hash; vector reused
    unchanged: int = 0  # same size and mtime (not read), or same content after a touch
    removed: int = 0  # rows pruned because their file is gone
    skipped: list[SkippedFile] = field(default_factory=list)  # not indexed, with the reason
    rows: int = 0  # rows in the table after the run
    seconds: float = 0.0  # wall time of the run

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass(frozen=True)
class IngestProgress:
    """Handed to the progress callback: ``phase`` is 'scan', 'encode', 'prune' or 'compact'."""

    phase: str
    done: int
    total: int | None


@dataclass
class _Row:
    """The state columns of an existing row."""

    id: str
    path: str
    size: int
    mtime_ns: int
    content_hash: str


@dataclass
class _Task:
    file: DiscoveredFile
    existing: _Row | None  # the row at this path, when the file changed


@dataclass
class _Prepared:
    task: _Task
    kind: str  # 'encode', 'touched', 'reuse', 'skip'
    content_hash: str = ""
    tensor: Any = None
    width: int = 0
    height: int = 0
    format: str = ""
    reason: str = ""


def run_ingest(
    store: Store,
    encoder: Any,
    roots: Iterable[str | os.PathLike[str]],
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    hidden: bool = False,
    follow_symlinks: bool = False,
    prune: bool = True,
    max_megapixels: float = 100.0,
    workers: int = 0,
    batch_size: int = 32,
    progress: Callable[[IngestProgress], None] | None = None,
) -> IngestReport:
    """Bring the table in line with the files under ``roots``; see the module docstring."""
    started = time.perf_counter()
    run = _IngestRun(store, encoder, progress or (lambda p: None))
    tasks = run.plan(
        [os.path.abspath(os.fspath(r)) for r in roots],
        include=include, exclude=exclude, hidden=hidden, follow_symlinks=follow_symlinks,
    )
    try:
        run.process(tasks, max_megapixels=max_megapixels, workers=workers, batch_size=batch_size)
    finally:
        run.writer.flush()  # also on Ctrl-C: what was encoded is kept
    run.finish(prune=prune)
    run.report.seconds = time.perf_counter() - started
    return run.report


class _IngestRun:
    """State of one ingest: what the table held, what the walk found, and the running report."""

    def __init__(self, store: Store, encoder: Any, notify: Callable[[IngestProgress], None]) -> None:
        self.store = store
        self.encoder = encoder
        self.notify = notify
        self.report = IngestReport()
        self.writer = _Writer(store)
        self.pending: list[_Prepared] = []
        self.hash_to_ids: dict[str, list[str]] = {}
        self.vanished: dict[str, _Row] = {}  # rows under the roots whose file is gone, by path
        self.vanished_by_hash: dict[str, list[_Row]] = {}

    def skip(self, path: str, reason: str) -> None:
        self.report.skipped.append(SkippedFile(path, reason))

    def plan(self, roots: list[str], **walk_options: Any) -> list[_Task]:
        """Walk the roots; count unchanged files; return the files that must be read."""
        by_path = {r["path"]: _Row(**r) for r in self.store.read_state().to_pylist()}
        for row in by_path.values():
            self.hash_to_ids.setdefault(row.content_hash, []).append(row.id)
        seen: set[str] = set()
        tasks: list[_Task] = []
        for found in walk(roots, on_error=self.skip, **walk_options):
            seen.add(found.path)
            row = by_path.get(found.path)
            if row is not None and row.size == found.size and row.mtime_ns == found.mtime_ns:
                self.report.unchanged += 1
            else:
                tasks.append(_Task(found, row))
            if len(seen) % 1000 == 0:
                self.notify(IngestProgress("scan", len(seen), None))
        self.notify(IngestProgress("scan", len(seen), len(seen)))
        # A row whose file still exists but was not walked (filtered, hidden) is left alone.
        self.vanished = {
            r.path: r for r in by_path.values()
            if r.path not in seen and _under(r.path, roots) and not os.path.exists(r.path)
        }
        for row in self.vanished.values():
            self.vanished_by_hash.setdefault(row.content_hash, []).append(row)
        return tasks

    def process(self, tasks: list[_Task], *, max_megapixels: float, workers: int, batch_size: int) -> None:
        """Read, hash and decode in threads; reuse, encode in batches, and write as we go."""
        def preprocess(image: Any) -> Any:  # the model loads only once a file really needs encoding
            return self.encoder.preprocess(image)

        self.notify(IngestProgress("encode", 0, len(tasks)))
        prepared_all = _prepare_all(tasks, frozenset(self.hash_to_ids), preprocess, max_megapixels, workers, batch_size)
        for done, prepared in enumerate(prepared_all, start=1):
            self._handle(prepared)
            if len(self.pending) >= batch_size:
                self._encode_pending()
            self.notify(IngestProgress("encode", done, len(tasks)))
            self.writer.flush_if_due()
        self._encode_pending()

    def _handle(self, prepared: _Prepared) -> None:
        task, report = prepared.task, self.report
        if prepared.kind == "skip":
            self.skip(task.file.path, prepared.reason)
        elif prepared.kind == "encode":
            self.pending.append(prepared)
        elif prepared.kind == "touched":
            assert task.existing is not None
            self.writer.put_reused(task.existing.id, task.existing.id, task.file, prepared.content_hash)
            report.unchanged += 1
        elif task.existing is None and self.vanished_by_hash.get(prepared.content_hash):
            source = self.vanished_by_hash[prepared.content_hash].pop()
            del self.vanished[source.path]
            self.writer.put_reused(source.id, source.id, task.file, prepared.content_hash)
            report.moved += 1
        else:  # same bytes as a row we have: copy its vector instead of encoding
            target = task.existing.id if task.existing else _new_id()
            source_id = self.hash_to_ids[prepared.content_hash][0]
            self.writer.put_reused(source_id, target, task.file, prepared.content_hash)
            if task.existing is None:
                report.added += 1
            else:
                report.updated += 1

    def _encode_pending(self) -> None:
        if not self.pending:
            return
        vectors = self.encoder.encode_pixels([p.tensor for p in self.pending])
        for prepared, vector in zip(self.pending, vectors):
            existing = prepared.task.existing
            self.writer.put_encoded(prepared, vector, existing.id if existing else None)
            if existing is None:
                self.report.added += 1
            else:
                self.report.updated += 1
        self.pending.clear()

    def finish(self, *, prune: bool) -> None:
        """Prune rows whose files are gone, compact, and count."""
        if prune and self.vanished:
            self.notify(IngestProgress("prune", 0, len(self.vanished)))
            self.store.delete_ids(r.id for r in self.vanished.values())
            self.report.removed = len(self.vanished)
            self.notify(IngestProgress("prune", len(self.vanished), len(self.vanished)))
        if self.writer.commits or self.report.removed:
            self.notify(IngestProgress("compact", 0, 1))
            self.store.compact()
            self.notify(IngestProgress("compact", 1, 1))
        self.report.rows = self.store.count()


def _under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _new_id() -> str:
    return uuid.uuid4().hex


def _prepare_all(
    tasks: list[_Task],
    reusable: frozenset[str],
    preprocess: Callable[[Any], Any],
    max_megapixels: float,
    workers: int,
    batch_size: int,
) -> Iterator[_Prepared]:
    """Read, hash, decode and preprocess in a thread pool, yielding in order, with a bounded window."""
    workers = workers or min(8, os.cpu_count() or 1)
    window = max(2 * batch_size, 4 * workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmembed-decode") as pool:
        in_flight: deque[Future[_Prepared]] = deque()
        for task in tasks:
            in_flight.append(pool.submit(_prepare, task, reusable, preprocess, max_megapixels))
            if len(in_flight) >= window:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


def _prepare(
    task: _Task, reusable: frozenset[str], preprocess: Callable[[Any], Any], max_megapixels: float
) -> _Prepared:
    path = task.file.path
    try:
        with open(path, "rb") as f:
            data = f.read()
    except PermissionError:
        return _Prepared(task, "skip", reason="permission denied; check the file's permissions")
    except FileNotFoundError:
        return _Prepared(task, "skip", reason="file vanished during ingest")
    except OSError as exc:
        return _Prepared(task, "skip", reason=f"cannot read file ({exc.strerror or exc})")
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    if task.existing is not None and task.existing.content_hash == digest:
        return _Prepared(task, "touched", digest)
    if digest in reusable:
        return _Prepared(task, "reuse", digest)
    try:
        decoded = load_image(data, max_megapixels=max_megapixels, name=path)
        tensor = preprocess(decoded.image)
    except ImageDecodeError as exc:
        return _Prepared(task, "skip", digest, reason=exc.reason)
    except MmembedError:
        raise  # e.g. the model failed to load: that stops the run, it is not this file's fault
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop the run
        return _Prepared(task, "skip", digest, reason=f"could not decode ({type(exc).__name__}: {exc})"[:200])
    return _Prepared(task, "encode", digest, tensor, decoded.width, decoded.height, decoded.format)


class _Writer:
    """Buffers rows and commits them in batches: appends for new ids, merge-inserts for the rest."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.schema = store.table.schema
        self.new_rows: list[dict[str, Any]] = []
        self.update_rows: list[dict[str, Any]] = []
        self.reused: list[tuple[str, str, DiscoveredFile, str]] = []  # source id, target id, file, hash
        self.commits = 0
        self.last_flush = time.monotonic()

    def put_encoded(self, prepared: _Prepared, vector: np.ndarray, existing_id: str | None) -> None:
        f = prepared.task.file
        row = {
            "id": existing_id or _new_id(),
            "path": f.path,
            "size": f.size,
            "mtime_ns": f.mtime_ns,
            "content_hash": prepared.content_hash,
            "width": prepared.width,
            "height": prepared.height,
            "format": prepared.format,
            "ingested_at": datetime.now(timezone.utc),
            "image_vector": vector,
            "text": None,
            "text_vector": None,
        }
        (self.update_rows if existing_id else self.new_rows).append(row)

    def put_reused(self, source_id: str, target_id: str, file: DiscoveredFile, content_hash: str) -> None:
        self.reused.append((source_id, target_id, file, content_hash))

    def flush_if_due(self) -> None:
        buffered = len(self.new_rows) + len(self.update_rows) + len(self.reused)
        if buffered >= _WRITE_ROWS or (buffered and time.monotonic() - self.last_flush > _WRITE_SECONDS):
            self.flush()

    def flush(self) -> None:
        if self.reused:
            self._resolve_reused()
        if self.new_rows:
            self.store.add(self._table(self.new_rows))
            self.commits += 1
        if self.update_rows:
            self.store.upsert(self._table(self.update_rows))
            self.commits += 1
        self.new_rows, self.update_rows = [], []
        self.last_flush = time.monotonic()

    def _resolve_reused(self) -> None:
        """Copy the stored row of each source id, with the new path, size, mtime and id."""
        sources = {row["id"]: row for row in self.store.rows_by_id({s for s, *_ in self.reused})}
        now = datetime.now(timezone.utc)
        for source_id, target_id, file, content_hash in self.reused:
            source = sources.get(source_id)
            if source is None:
                continue  # the source row vanished meanwhile; the file is retried next run
            row = dict(source, id=target_id, path=file.path, size=file.size,
                       mtime_ns=file.mtime_ns, content_hash=content_hash, ingested_at=now)
            self.update_rows.append(row)  # merge-insert: updates a moved row, inserts a copy
        self.reused = []

    def _table(self, rows: list[dict[str, Any]]) -> pa.Table:
        return pa.Table.from_pylist(rows, schema=self.schema)

