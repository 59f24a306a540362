"""The ingest pipeline: discover -> skip unchanged -> read, hash, decode in threads -> encode in
batches -> attach item text and fuse -> write batch by batch -> prune -> compact.

Memory stays flat: decoded images live only inside a bounded window of in-flight work, and
vectors are written as they are made. A run killed at any moment leaves a table that opens
(each write is one atomic LanceDB commit); rerunning finishes the job without duplicates,
because files already written are then unchanged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..config import Config
from ..errors import ImageDecodeError, StoreWriteError
from ..models.vectorizer import Vectorizer, text_hash
from ..sources.discovery import DiscoveredFile, printable_path, walk
from ..sources.video import is_video_path
from ..store.failures import FailedFiles
from ..store.table import ADDED_COLUMNS, Store
from ..text.choose import TextOptions, resolve_texts
from .frames import encode_video
from .options import IngestOptions
from .prepare import ImageDecoder, prepare_all, Prepared, Row, Task, TaskList
from .report import IngestProgress, IngestReport, SkippedFile
from .unchanged import Walked, WalkDigest
from .writer import _new_id, _Writer

__all__ = ["run_ingest", "IngestRun"]


def run_ingest(
    store: Store,
    vectorizer: Vectorizer,
    roots: Iterable[str | os.PathLike[str]],
    options: IngestOptions,
    config: Config,
    *,
    text_options: TextOptions | None = None,
    failed: FailedFiles | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    digest: WalkDigest | None = None,
    walked: Walked | None = None,
    engine: Callable[[IngestRun, TaskList, Config], None] | None = None,
) -> IngestReport:
    """Bring the table in line with the files under ``roots``; see the module docstring.

    ``options`` says what to walk and whether to prune; ``config`` gives the decode settings
    (max megapixels, workers, batch size, fast or exact decode); ``text_options`` where words
    come from (the caller loads the manifests named in ``options.captions``); ``failed`` the
    files that failed before (skipped while unchanged, unless ``options.retry_failed``);
    ``digest`` is fed every file walked (``unchanged.py``); ``walked``, a walk made already with
    these options (by the no-op check), is read instead of walking again; ``engine`` reads, decodes and
    encodes the planned tasks (default: this module's thread pool; ``ray.py`` passes its own).
    """
    started = time.perf_counter()
    store.ensure_columns(ADDED_COLUMNS)  # a table made before a column was added gets it (the writer keeps its schema)
    run = IngestRun(store, vectorizer, text_options or TextOptions(), progress or (lambda p: None),
                     failed or FailedFiles("memory://", store.table_name, ""), options.retry_failed)
    tasks = run.plan(
        [_real(r) for r in roots], digest=digest, walked=walked, **options.walk.kwargs())
    try:
        (engine or _process_locally)(run, tasks, config)
        run.writer.flush()
        run.finish(prune=options.pruning.prune, prune_empty=options.pruning.prune_empty)
        if run.decoder is not None and (note := run.decoder.places.warning()):
            run.report.warnings.append(note)
        run.failed.save()
    except StoreWriteError as exc:
        advice = "free space and rerun" if "space" in exc.reason.lower() else "fix that and rerun"
        raise StoreWriteError(
            f"writing to DB {store.uri}: {exc.reason}; {run.writer.saved} images were saved, {advice}", exc.reason
        ) from None
    except BaseException:
        _keep_encoded(run.writer)  # e.g. Ctrl-C: what was encoded is kept
        raise
    run.report.seconds = time.perf_counter() - started
    return run.report


def _process_locally(run: IngestRun, tasks: TaskList, config: Config) -> None:
    run.process(tasks, max_megapixels=config.max_megapixels, workers=config.workers,
                batch_size=config.batch_size, fast_decode=config.decode == "fast")


class IngestRun:
    """State of one ingest: what the table held, what the walk found, and the running report."""

    def __init__(self, store: Store, vectorizer: Vectorizer, text_options: TextOptions,
                 notify: Callable[[IngestProgress], None], failed: FailedFiles, retry_failed: bool) -> None:
        self.store = store
        self.failed = failed
        self.retry_failed = retry_failed
        self.matched: set[tuple[int, str]] = set()  # manifest entries that found their image
        self.encoder = vectorizer.encoder
        self.texts = text_options
        self.notify = notify
        self.report = IngestReport()
        self.writer = _Writer(store, vectorizer)
        self.roots: list[str] = []
        self.pending: list[Prepared] = []
        self.hash_to_ids: dict[str, list[str]] = {}
        self.vanished: dict[str, Row] = {}  # rows under the roots whose file is gone, by path
        self.vanished_by_hash: dict[str, list[Row]] = {}
        self.broken_rows: list[str] = []  # ids of rows whose file no longer decodes
        self.rows: dict[str, Row] = {}
        self.groups: dict[str, list[Row]] = {}  # path -> its rows (several for a video: one per frame)
        self.superseded: list[str] = []  # frame rows of an older version of a video, deleted at the end
        self.decoder: ImageDecoder | None = None
        self.batch_size = 32

    def skip(self, path: str, reason: str) -> None:
        self.report.skipped.append(SkippedFile(printable_path(path), reason))

    def item_text(self, file: DiscoveredFile, embedded: list[str] | None, kept_manifest: list[str] | None) -> dict[str, Any]:
        """The text columns for a file: texts by precedence, their hash, the kept snapshots, extras."""
        manifest_texts, extras = kept_manifest, {}
        entry = self.texts.manifest_entry(file.path, self.roots)
        if entry is not None:
            manifest_texts, extras, matched = entry
            self.matched.add(matched)
        chosen = resolve_texts(file.path, file.root, file.sidecars, embedded or [], manifest_texts or [], self.texts,
                               read=_remote_reader(file.path))
        return {
            "text": chosen.texts[0] if chosen.texts else None,
            "texts": chosen.texts or None,
            "text_source": chosen.source,
            "text_hash": text_hash(chosen.texts, self.writer.vectorizer.config),
            "embedded_texts": embedded or None,
            "manifest_texts": manifest_texts or None,
            **extras,
        }

    def _text_for(self, file: DiscoveredFile, old: Row | None, embedded_from: Row | None = None) -> dict[str, Any]:
        """Text columns when the file's bytes are not decoded this run (embedded texts are kept)."""
        source = embedded_from or old
        return self.item_text(file, source.embedded_texts if source else None, old.manifest_texts if old else None)

    def plan(self, roots: list[str], *, digest: WalkDigest | None = None, walked: Walked | None = None,
             **walk_options: Any) -> TaskList:
        """Walk the roots (or read ``walked``, a walk made already); settle unchanged files;
        return the files that must be read."""
        self.roots = roots
        self.paired_raws: set[str] = set()  # RAW files walked as a JPEG's sibling
        for state in self.store.read_state():
            self.groups.setdefault(state["path"], []).append(Row(**state))
        by_path = {path: rows[0] for path, rows in self.groups.items()}
        self.rows = {r.id: r for rows in self.groups.values() for r in rows}
        changing = set()
        known = by_path.keys() | self.failed.files.keys()  # the paths whose absence matters
        seen: set[str] = set()  # of those, the ones walked (a set of every path held a folder's worth)
        walked_count = 0
        tasks = TaskList()
        files = walked.replay(self.skip) if walked is not None and walked.complete \
            else walk(roots, on_error=self.skip, **walk_options)
        for found in files:
            walked_count += 1
            if found.path in known:
                seen.add(found.path)
            if walk_options.get("raw_pairs", "jpeg") == "jpeg":  # its RAW is not an item of its own any more
                self.paired_raws.update(os.path.join(os.path.dirname(found.path), raw) for raw in found.raw_siblings)
            if digest is not None:
                digest.add(found)
            row = by_path.get(found.path)
            if row is not None and is_video_path(found.path):
                row = by_path[found.path] = self._settle_frames(found)
            if row is not None and _same(row, found):
                self._check_text(found, self.groups[found.path])
            elif not self.retry_failed and (reason := self.failed.reason(found.path, found.size, found.mtime_ns)):
                self.skip(found.path, f"{reason} (unchanged since it failed; --retry-failed tries it again)")
            else:
                tasks.append(Task(found, row))
                if row is not None:
                    changing.update(r.id for r in self.groups[found.path])
            if walked_count % 1000 == 0:
                self.notify(IngestProgress("scan", walked_count, None))
        self.notify(IngestProgress("scan", walked_count, walked_count))
        for path in [p for p in self.failed.files if p not in seen and _under(p, roots)]:
            self.failed.forget(path)  # gone, or no longer walked
        # Vectors may be copied only from rows this run will not rewrite.
        for rows in self.groups.values():
            for row in rows:
                if row.id not in changing:
                    self.hash_to_ids.setdefault(row.content_hash, []).append(row.id)
        # A row whose file still exists but was not walked (filtered, hidden, unreadable folder) stays.
        self.vanished = {
            r.path: r for r in by_path.values()
            if r.path not in seen and _under(r.path, roots) and (r.path in self.paired_raws or _gone(r.path))
        }  # a RAW indexed alone whose JPEG has arrived is now only the JPEG's sibling
        for row in self.vanished.values():
            self.vanished_by_hash.setdefault(row.content_hash, []).append(row)
        return tasks

    def _settle_frames(self, file: DiscoveredFile) -> Row:
        """A video's rows: when some match the file (size, mtime) and some do not, the others are
        left from an older version (a run stopped between writing the new frames and deleting
        the old): they go, and the matching ones stand for the video."""
        rows = self.groups[file.path]
        current = [r for r in rows if r.size == file.size and r.mtime_ns == file.mtime_ns]
        if current and len(current) < len(rows):
            keep = {r.id for r in current}
            self.superseded.extend(r.id for r in rows if r.id not in keep)
            self.groups[file.path] = rows = current
        return rows[0]

    def _check_text(self, file: DiscoveredFile, rows: list[Row]) -> None:
        row = rows[0]
        columns = self._text_for(file, row)
        same_text = columns["text_hash"] == row.text_hash
        if list(file.raw_siblings) != (row.raw_siblings or []):  # a RAW sibling came or went: refresh the row
            self.writer.put_reused(row.id, row.id, file, row.content_hash, columns)
        elif not same_text or len(columns) > 6:  # changed text, or extra manifest columns to refresh
            for each in rows:  # a video: every frame row
                self.writer.put_text_only(each.id, columns, new_text=not same_text)
        if same_text:
            self.report.unchanged += 1
        else:
            self.report.text_updated += 1

    def process(self, tasks: TaskList, *, max_megapixels: float, workers: int, batch_size: int,
                fast_decode: bool = True) -> None:
        """Read, hash and decode in threads; reuse, encode in batches, and write as we go.
        ``tasks`` is emptied as it is read."""
        decode = self.start(batch_size, fast_decode)
        total = len(tasks)
        self.consume(prepare_all(tasks.drain(), self.reusable, decode, max_megapixels, workers, batch_size), total)

    # The batch interface an engine drives (the local one above, ``ray.py``): ``plan``, then
    # ``start``, then ``consume`` the prepared files in any order, then ``finish``.
    def start(self, batch_size: int, fast_decode: bool = True) -> ImageDecoder:
        """Ready to take prepared files in batches of ``batch_size``; returns the decoder to use."""
        self.batch_size = batch_size
        self.decoder = ImageDecoder(self.encoder, fast=fast_decode)
        return self.decoder

    @property
    def reusable(self) -> frozenset[str]:
        """Content hashes whose vectors may be copied instead of encoded (``prepare_all``)."""
        return frozenset(self.hash_to_ids)

    def consume(self, prepared_all: Iterable[Prepared], total: int, stats: dict[str, float] | None = None) -> None:
        """Each prepared file handled (vectors reused, encoded in batches, item text), written as
        batches fill; progress told. ``stats`` gathers seconds spent here (driver_s) and writing (write_s)."""
        self.notify(IngestProgress("encode", 0, total))
        times = stats if stats is not None else {}
        for done, prepared in enumerate(prepared_all, start=1):
            tick = time.perf_counter()
            self._handle(prepared)
            if len(self.pending) >= self.batch_size:
                self._encode_pending()  # the Ray engine's arrive with their vectors: item text, text vectors
            self.notify(IngestProgress("encode", done, total))
            mid = time.perf_counter()
            self.writer.flush_if_due()
            times["driver_s"] = times.get("driver_s", 0.0) + mid - tick
            times["write_s"] = times.get("write_s", 0.0) + time.perf_counter() - mid
        self._encode_pending()

    def _handle(self, prepared: Prepared) -> None:
        task, report = prepared.task, self.report
        file, existing = task.file, task.existing
        if prepared.kind == "skip":
            self.skip(file.path, prepared.reason)
            if prepared.content_hash:  # read but not decodable: not retried until it changes
                self.failed.remember(file.path, file.size, file.mtime_ns, prepared.reason)
            if existing is not None and prepared.content_hash:  # it changed, and is no picture now
                self.broken_rows.extend(r.id for r in self.groups[file.path])
            return
        self.failed.forget(file.path)
        if is_video_path(file.path):
            self._handle_video(prepared)
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

    def _handle_video(self, prepared: Prepared) -> None:
        """Like ``_handle`` for a video: every frame row moves, is copied or is made together,
        and a changed video's old frames are deleted once its new ones are written."""
        task, report = prepared.task, self.report
        file, existing = task.file, task.existing
        old = [r.id for r in self.groups[file.path]] if existing is not None else []
        if prepared.kind == "video":
            self._encode_video(prepared, old)
            return
        if prepared.kind == "touched":
            columns = self._text_for(file, existing)
            for frame in self.groups[file.path]:
                self.writer.put_reused(frame.id, frame.id, file, prepared.content_hash, columns)
            report.unchanged += 1
            return
        if existing is None and self.vanished_by_hash.get(prepared.content_hash):
            source = self.vanished_by_hash[prepared.content_hash].pop()
            del self.vanished[source.path]
            columns = self._text_for(file, source)
            for frame in self.groups[source.path]:
                self.writer.put_reused(frame.id, frame.id, file, prepared.content_hash, columns)
            report.moved += 1
            return
        source = self.rows[self.hash_to_ids[prepared.content_hash][0]]  # the same bytes at another path
        columns = self._text_for(file, existing, embedded_from=source)
        for frame in self.groups[source.path]:
            self.writer.put_reused(frame.id, _new_id(), file, prepared.content_hash, columns)
        self.superseded.extend(old)
        if existing is None:
            report.added += 1
        else:
            report.updated += 1

    def _encode_video(self, prepared: Prepared, old: list[str]) -> None:
        file, existing = prepared.task.file, prepared.task.existing
        assert self.decoder is not None
        try:
            video = encode_video(file.path, self.decoder, self.encoder, self.batch_size)
        except ImageDecodeError as exc:
            self.skip(file.path, exc.reason)
            self.failed.remember(file.path, file.size, file.mtime_ns, exc.reason)
            self.broken_rows.extend(old)
            return
        info = video.info
        prepared.width, prepared.height, prepared.format, prepared.taken_ns = (
            info.width, info.height, info.format, info.taken_ns)
        prepared.where = self.decoder.places.columns(info.gps) if info.gps is not None else None
        columns = self.item_text(file, None, existing.manifest_texts if existing else None)
        self.writer.put_frames(prepared, video.vectors, [
            {**columns, "media": "video", "frame_time": t, "duration": round(info.duration, 3) or None}
            for t in video.times])
        self.superseded.extend(old)  # deleted after the new frames are committed
        self.report.frames += len(video.times)
        if existing is None:
            self.report.added += 1
        else:
            self.report.updated += 1

    def _encode_pending(self) -> None:
        if not self.pending:
            return
        todo = [p for p in self.pending if p.vector is None]  # the Ray engine's arrive encoded
        if todo:
            for prepared, vector in zip(todo, self.encoder.encode_pixels([p.tensor for p in todo])):
                prepared.vector = vector
        for prepared in self.pending:
            vector = prepared.vector
            existing = prepared.task.existing
            columns = self.item_text(prepared.task.file, prepared.embedded, existing.manifest_texts if existing else None)
            self.writer.put_encoded(prepared, vector, existing.id if existing else None, columns)
            if existing is None:
                self.report.added += 1
            else:
                self.report.updated += 1
        self.pending.clear()

    def finish(self, *, prune: bool, prune_empty: bool = False) -> None:
        """Prune rows whose files are gone, compact, and count. Under a folder that is now empty
        (an unmounted disk's mount point looks just like that) nothing is pruned unless
        ``prune_empty``: losing a library to a missing disk is worse than keeping the rows of a
        folder that was emptied on purpose."""
        gone = list(self.vanished.values()) if prune else []
        if gone and not prune_empty:
            gone = self._keep_under_empty_folders(gone)
        doomed = [r.id for g in gone for r in self.groups[g.path]] + self.broken_rows + self.superseded
        if doomed:
            self.notify(IngestProgress("prune", 0, len(doomed)))
            self.store.delete_ids(doomed)
            self.report.removed = len(gone) + len({self.rows[i].path for i in self.broken_rows})
            self.notify(IngestProgress("prune", len(doomed), len(doomed)))
        if self.writer.commits or doomed:
            self.notify(IngestProgress("compact", 0, 1))
            rows = self.store.count()
            self.store.compact(force=len(doomed) * 10 >= max(rows, 1))  # a tenth deleted: merged away now
            self.notify(IngestProgress("compact", 1, 1))
        self.report.rows = self.store.count()
        self.report.captions_unmatched = self.texts.unmatched_rows(self.matched)
        self.report.warnings.extend(self.texts.unmatched_notes(self.matched, self.roots))


    def _keep_under_empty_folders(self, gone: list[Row]) -> list[Row]:
        """``gone`` without the rows whose nearest existing folder is empty and is either the path
        given or held several of them: an unmounted disk leaves exactly that, an empty mount
        point; a deleted folder leaves a parent with other things in it, and the last photo
        deleted from a folder below the path is one row, pruned as usual."""
        empty: dict[str, list[Row]] = {}
        known: dict[str, bool] = {}
        for row in gone:
            folder = self._nearest_folder(row.path)
            if folder is not None and _empty_dir(folder, known):
                empty.setdefault(folder, []).append(row)
        kept = set()
        for folder, rows in sorted(empty.items()):
            if len(rows) < 2 and folder not in self.roots:
                continue
            kept.update(r.id for r in rows)
            self.report.warnings.append(
                f"{printable_path(folder)}: the folder is empty, so the {len(rows)} indexed items under it are kept (an "
                "unmounted disk or an empty mount point?); if they are really gone, run again with --prune-empty")
        return [row for row in gone if row.id not in kept]

    def _nearest_folder(self, path: str) -> str | None:
        """The deepest existing folder above ``path`` that is at or under the root it was found under."""
        roots = [r for r in self.roots if _under(path, [r]) and not r.startswith("s3://")]
        if not roots:
            return None
        root = max(roots, key=len)
        folder = os.path.dirname(path)
        while _under(folder, [root]):
            if os.path.isdir(folder):
                return folder
            if folder == root:
                return None
            folder = os.path.dirname(folder)
        return None


def _empty_dir(folder: str, known: dict[str, bool]) -> bool:
    if folder not in known:
        try:
            with os.scandir(folder) as entries:
                known[folder] = next(entries, None) is None
        except OSError:
            known[folder] = False
    return known[folder]


def _keep_encoded(writer: _Writer) -> None:
    """Commit what is buffered after another error, without hiding that error."""
    try:
        writer.flush()
    except Exception:  # noqa: BLE001 - the first error is the one to report
        pass


def _real(root: str | os.PathLike[str]) -> str:
    """A root as rows name it: the real path of a folder, an ``s3://`` URI as given (less a final /)."""
    if isinstance(root, str) and root.startswith("s3://"):
        return root.rstrip("/") if root.count("/") > 2 else root
    return os.path.realpath(os.fspath(root))


def _same(row: Row, found: DiscoveredFile) -> bool:
    """Unchanged: same size and mtime (an object's LastModified), and, where both the row and the
    listing have one, the same ETag (an object rewritten within LastModified's one second)."""
    if row.size != found.size or row.mtime_ns != found.mtime_ns:
        return False
    return row.etag is None or found.etag is None or row.etag == found.etag


def _remote_reader(path: str) -> Callable[[str, int], bytes] | None:
    """How to read a sidecar of an ``s3://`` object (None: a local file, opened as usual)."""
    if not path.startswith("s3://"):
        return None
    from ..sources.remote import read_bytes

    return read_bytes


def _under(path: str, roots: list[str]) -> bool:
    def sep(root: str) -> str:
        return "/" if root.startswith("s3://") else os.sep

    return any(path == root or path.startswith(root.rstrip(sep(root)) + sep(root)) for root in roots)


def _gone(path: str) -> bool:
    """True only when the file is really missing: a permission error is not an absence."""
    if path.startswith("s3://"):
        from ..sources.remote import exists

        return exists(path) is False
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False
