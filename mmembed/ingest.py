"""The ingest pipeline: discover -> skip unchanged -> read, hash, decode in threads -> encode in
batches -> attach item text and fuse -> write batch by batch -> prune -> compact.

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
from .sources import DiscoveredFile, load_image, printable_path, walk
from .store import Store
from .texts import TextOptions, Vectorizer, resolve_texts, text_hash

__all__ = ["IngestReport", "SkippedFile", "IngestProgress", "ImageDecoder", "run_ingest"]

_WRITE_ROWS = 256  # rows per commit: few commits, little lost to a crash
_WRITE_SECONDS = 10.0  # ...or sooner, so a slow model still saves its work often
_READ_CHUNK = 1 << 20
_READ_WHOLE = 64 << 20  # files up to this size are read once, hashed and decoded from memory


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not indexed, and why."""

    path: str
    reason: str


@dataclass
class IngestReport:
    """What one ingest run did. ``to_dict()`` is the CLI's ``--json`` output.

    Each file walked counts once: added, updated, moved, unchanged, text_updated or skipped.
    """

    added: int = 0  # new files encoded (or copied from an identical file already indexed)
    updated: int = 0  # files whose content changed, re-encoded
    moved: int = 0  # files found under a new path by content hash; vector reused
    unchanged: int = 0  # same size and mtime (not read), or same content after a touch
    text_updated: int = 0  # image unchanged, item text changed: text and fused vectors redone
    removed: int = 0  # rows pruned because their file is gone (or now unreadable as an image)
    skipped: list[SkippedFile] = field(default_factory=list)  # not indexed, with the reason
    rows: int = 0  # rows in the table after the run
    seconds: float = 0.0  # wall time of the run, model load included

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
    text_hash: str | None
    embedded_texts: list[str] | None
    manifest_texts: list[str] | None


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
    embedded: list[str] = field(default_factory=list)
    reason: str = ""


def run_ingest(
    store: Store,
    vectorizer: Vectorizer,
    roots: Iterable[str | os.PathLike[str]],
    *,
    text_options: TextOptions | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    hidden: bool = False,
    follow_symlinks: bool = False,
    prune: bool = True,
    max_megapixels: float = 100.0,
    workers: int = 0,
    batch_size: int = 32,
    fast_decode: bool = True,
    progress: Callable[[IngestProgress], None] | None = None,
) -> IngestReport:
    """Bring the table in line with the files under ``roots``; see the module docstring."""
    started = time.perf_counter()
    run = _IngestRun(store, vectorizer, text_options or TextOptions(), progress or (lambda p: None))
    tasks = run.plan(
        [os.path.realpath(os.fspath(r)) for r in roots],
        include=include, exclude=exclude, hidden=hidden, follow_symlinks=follow_symlinks,
    )
    try:
        run.process(tasks, max_megapixels=max_megapixels, workers=workers, batch_size=batch_size,
                    fast_decode=fast_decode)
    finally:
        run.writer.flush()  # also on Ctrl-C: what was encoded is kept
    run.finish(prune=prune)
    run.report.seconds = time.perf_counter() - started
    return run.report


class _IngestRun:
    """State of one ingest: what the table held, what the walk found, and the running report."""

    def __init__(self, store: Store, vectorizer: Vectorizer, text_options: TextOptions,
                 notify: Callable[[IngestProgress], None]) -> None:
        self.store = store
        self.encoder = vectorizer.encoder
        self.texts = text_options
        self.notify = notify
        self.report = IngestReport()
        self.writer = _Writer(store, vectorizer)
        self.roots: list[str] = []
        self.pending: list[_Prepared] = []
        self.hash_to_ids: dict[str, list[str]] = {}
        self.vanished: dict[str, _Row] = {}  # rows under the roots whose file is gone, by path
        self.vanished_by_hash: dict[str, list[_Row]] = {}
        self.broken_rows: list[str] = []  # ids of rows whose file no longer decodes
        self.rows: dict[str, _Row] = {}

    def skip(self, path: str, reason: str) -> None:
        self.report.skipped.append(SkippedFile(printable_path(path), reason))

    def item_text(self, file: DiscoveredFile, embedded: list[str] | None, kept_manifest: list[str] | None) -> dict[str, Any]:
        """The text columns for a file: texts by precedence, their hash, the kept snapshots, extras."""
        manifest_texts, extras = kept_manifest, {}
        entry = self.texts.manifest_entry(file.path, self.roots)
        if entry is not None:
            manifest_texts, extras = entry
        chosen = resolve_texts(file.path, file.root, file.sidecars, embedded or [], manifest_texts or [], self.texts)
        return {
            "text": chosen.texts[0] if chosen.texts else None,
            "texts": chosen.texts or None,
            "text_source": chosen.source,
            "text_hash": text_hash(chosen.texts, self.writer.vectorizer.config),
            "embedded_texts": embedded or None,
            "manifest_texts": manifest_texts or None,
            **extras,
        }

    def _text_for(self, file: DiscoveredFile, old: _Row | None, embedded_from: _Row | None = None) -> dict[str, Any]:
        """Text columns when the file's bytes are not decoded this run (embedded texts are kept)."""
        source = embedded_from or old
        return self.item_text(file, source.embedded_texts if source else None, old.manifest_texts if old else None)

    def plan(self, roots: list[str], **walk_options: Any) -> list[_Task]:
        """Walk the roots; settle unchanged files; return the files that must be read."""
        self.roots = roots
        by_path = {r["path"]: _Row(**r) for r in self.store.read_state()}
        self.rows = {r.id: r for r in by_path.values()}
        changing = set()
        seen: set[str] = set()
        tasks: list[_Task] = []
        for found in walk(roots, on_error=self.skip, **walk_options):
            seen.add(found.path)
            row = by_path.get(found.path)
            if row is not None and row.size == found.size and row.mtime_ns == found.mtime_ns:
                self._check_text(found, row)
            else:
                tasks.append(_Task(found, row))
                if row is not None:
                    changing.add(row.id)
            if len(seen) % 1000 == 0:
                self.notify(IngestProgress("scan", len(seen), None))
        self.notify(IngestProgress("scan", len(seen), len(seen)))
        # Vectors may be copied only from rows this run will not rewrite.
        for row in by_path.values():
            if row.id not in changing:
                self.hash_to_ids.setdefault(row.content_hash, []).append(row.id)
        # A row whose file still exists but was not walked (filtered, hidden, unreadable folder) stays.
        self.vanished = {
            r.path: r for r in by_path.values()
            if r.path not in seen and _under(r.path, roots) and _gone(r.path)
        }
        for row in self.vanished.values():
            self.vanished_by_hash.setdefault(row.content_hash, []).append(row)
        return tasks

    def _check_text(self, file: DiscoveredFile, row: _Row) -> None:
        columns = self._text_for(file, row)
        if columns["text_hash"] == row.text_hash:
            if len(columns) > 6:  # this run's manifest has extra columns for it: refresh them
                self.writer.put_text_only(row.id, columns, new_text=False)
            self.report.unchanged += 1
            return
        self.writer.put_text_only(row.id, columns, new_text=True)
        self.report.text_updated += 1

    def process(self, tasks: list[_Task], *, max_megapixels: float, workers: int, batch_size: int,
                fast_decode: bool = True) -> None:
        """Read, hash and decode in threads; reuse, encode in batches, and write as we go."""
        self.notify(IngestProgress("encode", 0, len(tasks)))
        decode = ImageDecoder(self.encoder, fast=fast_decode)
        prepared_all = _prepare_all(tasks, frozenset(self.hash_to_ids), decode, max_megapixels, workers, batch_size)
        for done, prepared in enumerate(prepared_all, start=1):
            self._handle(prepared)
            if len(self.pending) >= batch_size:
                self._encode_pending()
            self.notify(IngestProgress("encode", done, len(tasks)))
            self.writer.flush_if_due()
        self._encode_pending()

    def _handle(self, prepared: _Prepared) -> None:
        task, report = prepared.task, self.report
        file, existing = task.file, task.existing
        if prepared.kind == "skip":
            self.skip(file.path, prepared.reason)
            if existing is not None and prepared.content_hash:  # it changed, and is no picture now
                self.broken_rows.append(existing.id)
        elif prepared.kind == "encode":
            self.pending.append(prepared)
        elif prepared.kind == "touched":
            assert existing is not None
            self.writer.put_reused(existing.id, existing.id, file, prepared.content_hash, self._text_for(file, existing))
            report.unchanged += 1
        elif existing is None and self.vanished_by_hash.get(prepared.content_hash):
            source = self.vanished_by_hash[prepared.content_hash].pop()
            del self.vanished[source.path]
            self.writer.put_reused(source.id, source.id, file, prepared.content_hash, self._text_for(file, source))
            report.moved += 1
        else:  # same bytes as a row we keep: copy its vector instead of encoding
            source_id = self.hash_to_ids[prepared.content_hash][0]
            target = existing.id if existing else _new_id()
            columns = self._text_for(file, existing, embedded_from=self.rows[source_id])
            self.writer.put_reused(source_id, target, file, prepared.content_hash, columns)
            if existing is None:
                report.added += 1
            else:
                report.updated += 1

    def _encode_pending(self) -> None:
        if not self.pending:
            return
        vectors = self.encoder.encode_pixels([p.tensor for p in self.pending])
        for prepared, vector in zip(self.pending, vectors):
            existing = prepared.task.existing
            columns = self.item_text(prepared.task.file, prepared.embedded, existing.manifest_texts if existing else None)
            self.writer.put_encoded(prepared, vector, existing.id if existing else None, columns)
            if existing is None:
                self.report.added += 1
            else:
                self.report.updated += 1
        self.pending.clear()

    def finish(self, *, prune: bool) -> None:
        """Prune rows whose files are gone, compact, and count."""
        doomed = [r.id for r in self.vanished.values()] if prune else []
        doomed += self.broken_rows
        if doomed:
            self.notify(IngestProgress("prune", 0, len(doomed)))
            self.store.delete_ids(doomed)
            self.report.removed = len(doomed)
            self.notify(IngestProgress("prune", len(doomed), len(doomed)))
        if self.writer.commits or self.report.removed:
            self.notify(IngestProgress("compact", 0, 1))
            self.store.compact()
            self.notify(IngestProgress("compact", 1, 1))
        self.report.rows = self.store.count()


def _under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _gone(path: str) -> bool:
    """True only when the file is really missing: a permission error is not an absence."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def _new_id() -> str:
    return uuid.uuid4().hex


class ImageDecoder:
    """Read-to-tensor for one model: decode (JPEG at reduced DCT scale when ``fast``) and preprocess.

    The model loads on first use, so a run with nothing to encode never loads it. ``fast``
    decodes a JPEG at the smallest scale that still covers the model's input (see
    ``load_image(min_side=...)``); BENCHMARKS.md gives its effect on vectors and recall.
    """

    def __init__(self, encoder: Any, *, fast: bool = True) -> None:
        self.encoder = encoder
        self.fast = fast
        self._transform: Callable[[Any], Any] | None = None

    def __call__(self, source: str | bytes, max_megapixels: float, name: str | None = None) -> tuple[Any, Any]:
        min_side = self.encoder.image_size if self.fast else None
        decoded = load_image(source, max_megapixels=max_megapixels, name=name, min_side=min_side)
        if self._transform is None:
            self._transform = fast_transform(self.encoder.preprocess) or self.encoder.preprocess
        return decoded, self._transform(decoded.image)


def fast_transform(preprocess: Any) -> Callable[[Any], Any] | None:
    """open_clip's usual eval transform (Resize shortest side bicubic, CenterCrop, ToTensor,
    Normalize) with the same Pillow resize and crop but one numpy pass for the tensor part,
    about 2x faster per image. None for any other transform (which is then used as is)."""
    import numpy as np

    steps = list(getattr(preprocess, "transforms", []))
    names = [type(t).__name__ for t in steps]
    if names not in (["Resize", "CenterCrop", "MaybeConvertMode", "MaybeToTensor", "Normalize"],
                     ["Resize", "CenterCrop", "MaybeToTensor", "Normalize"],
                     ["Resize", "CenterCrop", "ToTensor", "Normalize"]):
        return None
    resize, crop, normalize = steps[0], steps[1], steps[-1]
    size = resize.size[0] if isinstance(resize.size, (list, tuple)) and len(resize.size) == 1 else resize.size
    if not isinstance(size, int) or resize.max_size is not None or getattr(resize.interpolation, "value", "") != "bicubic":
        return None
    crop_h, crop_w = crop.size if isinstance(crop.size, (list, tuple)) else (crop.size, crop.size)
    mean = np.asarray(normalize.mean, dtype=np.float32)
    std = np.asarray(normalize.std, dtype=np.float32)
    if crop_h > size or crop_w > size or mean.shape != (3,):
        return None
    mode_step = steps[2] if names[2] == "MaybeConvertMode" else None
    wanted_mode = getattr(mode_step, "mode", "RGB") if mode_step is not None else "RGB"
    if wanted_mode not in (None, "RGB"):
        return None

    def transform(image: Any) -> Any:
        import torch
        from PIL import Image

        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        if short != size:  # torchvision's rule for an int size: short side -> size
            new_short, new_long = size, int(size * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
            image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
            w, h = new_w, new_h
        top, left = int(round((h - crop_h) / 2.0)), int(round((w - crop_w) / 2.0))
        image = image.crop((left, top, left + crop_w, top + crop_h))
        arr = np.asarray(image, dtype=np.float32) / np.float32(255.0)
        arr = (arr - mean) / std
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))

    return transform


def _prepare_all(
    tasks: list[_Task],
    reusable: frozenset[str],
    decode: ImageDecoder,
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
            in_flight.append(pool.submit(_prepare, task, reusable, decode, max_megapixels))
            if len(in_flight) >= window:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


def _read_and_hash(path: str, size: int) -> tuple[str, bytes | None]:
    """The file's content hash, and its bytes when small enough to decode from memory."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        if size <= _READ_WHOLE:
            data = f.read()
            digest.update(data)
            return digest.hexdigest(), data
        while chunk := f.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), None


def _prepare(task: _Task, reusable: frozenset[str], decode: ImageDecoder, max_megapixels: float) -> _Prepared:
    path = task.file.path
    try:
        digest, data = _read_and_hash(path, task.file.size)
    except PermissionError:
        return _Prepared(task, "skip", reason="permission denied; check the file's permissions")
    except FileNotFoundError:
        return _Prepared(task, "skip", reason="file vanished during ingest")
    except OSError as exc:
        return _Prepared(task, "skip", reason=f"cannot read file ({exc.strerror or exc})")
    if task.existing is not None and task.existing.content_hash == digest:
        return _Prepared(task, "touched", digest)
    if digest in reusable:
        return _Prepared(task, "reuse", digest)
    try:
        decoded, tensor = decode(data if data else path, max_megapixels, name=path)
    except ImageDecodeError as exc:
        return _Prepared(task, "skip", digest, reason=exc.reason)
    except MmembedError:
        raise  # e.g. the model failed to load: that stops the run, it is not this file's fault
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop the run
        return _Prepared(task, "skip", digest, reason=f"could not decode ({type(exc).__name__}: {exc})"[:200])
    return _Prepared(task, "encode", digest, tensor, decoded.width, decoded.height, decoded.format, decoded.texts)


@dataclass
class _Reuse:
    source_id: str
    target_id: str
    file: DiscoveredFile | None  # None: the row keeps its file columns (a text-only change)
    content_hash: str | None
    columns: dict[str, Any]  # text columns (and manifest extras) for the target
    new_text: bool = True


class _Writer:
    """Buffers rows, fills in text and fused vectors, and commits in batches."""

    def __init__(self, store: Store, vectorizer: Vectorizer) -> None:
        self.store = store
        self.vectorizer = vectorizer
        self.schema = store.table.schema
        self.new_rows: list[dict[str, Any]] = []
        self.update_rows: list[dict[str, Any]] = []
        self.reused: list[_Reuse] = []
        self.commits = 0
        self.last_flush = time.monotonic()

    def put_encoded(self, prepared: _Prepared, vector: np.ndarray, existing_id: str | None, columns: dict[str, Any]) -> None:
        f = prepared.task.file
        row = {
            "id": existing_id or _new_id(), "path": f.path, "size": f.size, "mtime_ns": f.mtime_ns,
            "content_hash": prepared.content_hash, "width": prepared.width, "height": prepared.height,
            "format": prepared.format, "ingested_at": datetime.now(timezone.utc), "image_vector": vector,
            **columns, "_new_text": True,
        }
        (self.update_rows if existing_id else self.new_rows).append(row)

    def put_reused(self, source_id: str, target_id: str, file: DiscoveredFile, content_hash: str,
                   columns: dict[str, Any]) -> None:
        self.reused.append(_Reuse(source_id, target_id, file, content_hash, columns))

    def put_text_only(self, row_id: str, columns: dict[str, Any], *, new_text: bool) -> None:
        self.reused.append(_Reuse(row_id, row_id, None, None, columns, new_text=new_text))

    def flush_if_due(self) -> None:
        buffered = len(self.new_rows) + len(self.update_rows) + len(self.reused)
        if buffered >= _WRITE_ROWS or (buffered and time.monotonic() - self.last_flush > _WRITE_SECONDS):
            self.flush()

    def flush(self) -> None:
        if self.reused:
            self._resolve_reused()
        for rows, write in ((self.new_rows, self.store.add), (self.update_rows, self.store.upsert)):
            if rows:
                self._vectorize(rows)
                write(pa.Table.from_pylist(rows, schema=self.schema))
                self.commits += 1
        self.new_rows, self.update_rows = [], []
        self.last_flush = time.monotonic()

    def _resolve_reused(self) -> None:
        """Copy each source row with the target's id, file columns and text columns."""
        sources = {row["id"]: row for row in self.store.rows_by_id({r.source_id for r in self.reused})}
        now = datetime.now(timezone.utc)
        for reuse in self.reused:
            source = sources.get(reuse.source_id)
            if source is None or (reuse.content_hash and source["content_hash"] != reuse.content_hash):
                continue  # the source changed meanwhile; the file is retried next run
            row = dict(source, id=reuse.target_id, **reuse.columns)
            if reuse.file is not None:
                row.update(path=reuse.file.path, size=reuse.file.size, mtime_ns=reuse.file.mtime_ns,
                           content_hash=reuse.content_hash, ingested_at=now)
            row["_new_text"] = reuse.new_text and row.get("text_hash") != source.get("text_hash")
            self.update_rows.append(row)  # merge-insert: updates a moved row, inserts a copy
        self.reused = []

    def _vectorize(self, rows: list[dict[str, Any]]) -> None:
        """Text vectors where the text changed; fused vectors for every row."""
        redo = [i for i, r in enumerate(rows) if r.pop("_new_text")]
        if redo:
            vectors, has = self.vectorizer.text_vectors([rows[i]["texts"] or [] for i in redo])
            for k, i in enumerate(redo):
                rows[i]["text_vector"] = vectors[k] if has[k] else None
        image = np.stack([np.asarray(r["image_vector"], dtype=np.float32) for r in rows])
        has_text = np.array([r.get("text_vector") is not None for r in rows])
        dim = image.shape[1]
        text = np.stack([np.asarray(r["text_vector"], dtype=np.float32) if r.get("text_vector") is not None
                         else np.zeros(dim, np.float32) for r in rows])
        for row, fused in zip(rows, self.vectorizer.fuse(image, text, has_text)):
            row["fused_vector"] = fused
