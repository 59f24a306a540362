"""Deciding "nothing changed" without opening the table.

A re-ingest of an unchanged folder must be quick, and importing lancedb alone takes most of a
second. So after every local ingest a stamp is written beside the table,
``<db>/.<table>.unchanged.json``, holding:

- the **signature** of the run: mmembed's version, the roots, every option that changes what
  an ingest does (filters, text sources, fusion, the manifests with their size and mtime), the
  size cap and the decoder (``decoder_signature``); not the model named, which need only be the
  table's own (its name, tag and weights as the snapshot records them), named or not;
- a digest of the **walk**: every file found, with its size, mtime, its sidecars' size and
  mtime (a caption edited in ``photo.txt`` changes it) and its RAW siblings' names;
- the **state** of what the run left: the table's newest manifest (any other writer changes
  it), the snapshot at that version, the failure memory, the exported towers, the model folder's
  fingerprint;
- the **report** a re-run would give: the run's own report if it changed nothing, else
  "every file unchanged" (only when it skipped nothing, so there is nothing to predict wrongly).

The next ingest with the same signature walks the folder (no lancedb, no model) and, when the
walk and the state are equal, returns that report; when they are not, the walk is handed to
the planner (``Walked``), so the folder is walked once either way. Anything else, or any doubt (a stamp that
cannot be read), takes the normal path, which decides file by file. The fast path is a
shortcut to the answer the normal path would give: ``tests/test_runtime.py`` checks that the
two give the same report, and that each kind of change is seen.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

from ..config import fast_noop_on
from ..sources.discovery import DiscoveredFile, walk
from .options import IngestOptions
from .report import IngestReport, SkippedFile

__all__ = ["WalkDigest", "Walked", "stamp_path", "unchanged_report", "write_stamp"]

_FORMAT = 2  # 2: the model named is no part of the signature
_KEYS = {"format", "signature", "walk", "state", "report"}


def stamp_path(db: str, table: str) -> str:
    return os.path.join(db, f".{table}.unchanged.json")


class WalkDigest:
    """Fed every file a walk finds (``add``); ``hexdigest`` says whether two walks found the same."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0

    def add(self, found: DiscoveredFile) -> None:
        folder = os.path.dirname(found.path)
        sidecars = []
        for name in found.sidecars:
            try:
                st = os.stat(os.path.join(folder, name))
                sidecars.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                sidecars.append(f"{name}:?")
        siblings = "|".join(found.raw_siblings)  # a RAW that joins or leaves a JPEG changes its row
        self._hash.update(f"{found.path}\0{found.size}\0{found.mtime_ns}\0{'|'.join(sidecars)}\0{siblings}\n".encode())
        self.count += 1

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class Walked:
    """What one walk found, files and errors in the order found, kept so that the planner reads
    it instead of walking the folders again. ``complete`` once the walk ran to its end."""

    def __init__(self) -> None:
        self.complete = False
        self._events: list[tuple[DiscoveredFile | None, str, str]] = []

    def found(self, file: DiscoveredFile) -> None:
        self._events.append((file, "", ""))

    def error(self, path: str, reason: str) -> None:
        self._events.append((None, path, reason))

    def replay(self, on_error: Callable[[str, str], None]) -> Iterator[DiscoveredFile]:
        """The files again, in order, once; ``on_error`` is told each error where the walk met it.
        Each event is let go as it is read (the planner keeps what it needs): the walk is not held
        twice. Spent afterwards (``complete`` is False: a planner walks the folders again)."""
        events, self._events, self.complete = self._events, [], False
        events.reverse()
        while events:
            file, path, reason = events.pop()
            if file is None:
                on_error(path, reason)
            else:
                yield file


def signature(config: Any, options: IngestOptions, roots: list[str]) -> str:
    """What must be equal between two runs for the second to be able to reuse the first's answer."""
    from .._version import __version__
    from ..sources.decode import decoder_signature
    from .where import stamp_info

    chosen = {f.name: getattr(options, f.name) for f in fields(options) if f.name not in ("captions", "reindex", "retry_failed", "engine", "ray_address")}
    captions = []
    for path in options.captions:
        real = os.path.realpath(os.fspath(path))
        st = os.stat(real)
        captions.append([real, st.st_size, st.st_mtime_ns])
    data = {
        "mmembed": __version__, "roots": roots, "options": chosen, "captions": captions,
        "db": config.db, "table": config.table, "decoder": decoder_signature(config.max_megapixels),
        "where": stamp_info(),  # a new gazetteer or place columns: the run must look again
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()


def _snapshot_whole(db: str, table: str) -> bool:
    """The snapshot's files have the shapes it records (headers and sizes only): a damaged one
    is written again by the normal path, even when nothing else changed."""
    from ..store.snapshot import Snapshot, SnapshotDamaged

    try:
        return Snapshot.open(db, table) is not None
    except SnapshotDamaged:
        return False


def _state(db: str, table: str) -> list[Any] | None:
    """What the table and its derived files look like now; None when there is no table or no
    current snapshot (the normal path then has work to do)."""
    from ..models.encoder import local_fingerprint
    from ..models.image_tower import image_tower_exists, image_tower_folder
    from ..models.text_tower import tower_exists, tower_folder
    from ..store.snapshot import manifest_versions, snapshot_info

    versions = manifest_versions(db, table)
    info = snapshot_info(db, table)
    if not versions or info is None or info.get("version") != versions[0][0] or not _snapshot_whole(db, table):
        return None
    if os.path.exists(os.path.join(db, f"{table}__staging.lance")):
        return None  # a killed --reindex left a staging table: the normal path removes it
    meta = info.get("meta") or {}
    fingerprint = meta.get("fingerprint")
    model = meta.get("model") or ""
    if not fingerprint:
        return None
    if model.startswith("local-dir:"):
        from pathlib import Path

        try:
            if local_fingerprint(Path(model.removeprefix("local-dir:"))) != fingerprint:
                return None  # the normal path says what to do about changed weights
        except Exception:  # noqa: BLE001 - folder gone: the normal path explains
            return None
    failed = os.path.join(db, f".{table}.failed.json")
    try:
        st = os.stat(failed)
        failed_stamp: list[int] | None = [st.st_size, st.st_mtime_ns]
    except OSError:
        failed_stamp = None
    return [os.path.basename(versions[0][1]), versions[0][0], failed_stamp, fingerprint,
            tower_exists(tower_folder(fingerprint), fingerprint),
            image_tower_exists(image_tower_folder(fingerprint), fingerprint), _data_files(db, table)]


def _data_files(db: str, table: str) -> int | None:
    """A checksum of the table's data files (names, sizes, mtimes): a file deleted or cut short
    since the stamp (a disk error, a careless cleanup) sends the run down the normal path, which
    says the table cannot be read, instead of reporting every file unchanged. One listing of a
    folder; no file is read."""
    import zlib

    folder = os.path.join(db.removeprefix("file://"), f"{table}.lance", "data")
    try:
        with os.scandir(folder) as entries:
            files = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file())
    except OSError:
        return None
    return zlib.crc32(repr(files).encode())


def _named_is_recorded(config: Any) -> bool:
    """No model named, or the one named is the table's: its name, tag and weights as the
    snapshot records them (a model renamed or moved is recorded by the normal path)."""
    if config.model is None and config.pretrained is None:
        return True
    from ..errors import MmembedError
    from ..models.encoder import ModelSpec
    from ..store.snapshot import snapshot_info

    meta = (snapshot_info(config.db, config.table) or {}).get("meta") or {}
    try:
        spec = ModelSpec.resolve_over(config.model, config.pretrained, meta.get("model"), meta.get("pretrained"))
    except MmembedError:
        return False  # the normal path explains
    return (spec.name, spec.pretrained, spec.fingerprint) == (meta.get("model"), meta.get("pretrained"),
                                                              meta.get("fingerprint"))


def unchanged_report(config: Any, options: IngestOptions, roots: list[str], notify: Any = None,
                     walked: Walked | None = None) -> IngestReport | None:
    """The report of an ingest that would change nothing, found without lancedb; None when it
    cannot be known so (the normal path then runs). ``walked`` keeps the walk, if one was made."""
    from ..store.lock import lock_held

    if options.reindex or options.retry_failed or not fast_noop_on() or lock_held(config.db, config.table):
        return None  # a table being written is not known unchanged: the normal path reports the lock
    try:
        with open(stamp_path(config.db, config.table)) as f:
            stamp = json.load(f)
        if not isinstance(stamp, dict) or set(stamp) != _KEYS or stamp["format"] != _FORMAT:
            return None
        if stamp["signature"] != signature(config, options, roots) or stamp["state"] != _state(config.db, config.table) \
                or not _named_is_recorded(config):
            return None
        digest = WalkDigest()
        walked = walked or Walked()
        for found in walk(roots, on_error=walked.error, **options.walk.kwargs()):
            digest.add(found)
            walked.found(found)
        walked.complete = True
        if digest.hexdigest() != stamp["walk"] or stamp["state"] != _state(config.db, config.table):
            return None
        saved = stamp["report"]
        report = IngestReport(unchanged=int(saved["unchanged"]), rows=int(saved["rows"]),
                              captions_unmatched=int(saved["captions_unmatched"]),
                              skipped=[SkippedFile(str(p), str(r)) for p, r in saved["skipped"]])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if notify is not None:
        from .report import IngestProgress

        notify(IngestProgress("scan", digest.count, digest.count))
    return report


def write_stamp(config: Any, options: IngestOptions, roots: list[str], digest: WalkDigest, report: IngestReport) -> None:
    """Record what this ingest found and left (see the module docstring); never raises."""
    path = stamp_path(config.db, config.table)
    try:
        os.remove(path)  # a stale stamp must not outlive a run that cannot write a new one
    except OSError:
        pass
    changed = report.added or report.updated or report.moved or report.removed or report.text_updated
    if options.retry_failed or (changed and report.skipped) or report.warnings:
        return  # the next run's report cannot be predicted: it writes the stamp itself
    try:
        state = _state(config.db, config.table)
        if state is None:
            return
        seen = report.added + report.updated + report.moved + report.unchanged + report.text_updated
        saved = {"unchanged": seen, "rows": report.rows, "captions_unmatched": report.captions_unmatched,
                 "skipped": [[s.path, s.reason] for s in report.skipped]}
        stamp = {"format": _FORMAT, "signature": signature(config, options, roots), "walk": digest.hexdigest(),
                 "state": state, "report": saved}
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(stamp, f)
        os.replace(tmp, path)
    except (OSError, ValueError, TypeError):
        pass
