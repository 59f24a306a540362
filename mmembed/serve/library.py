"""What the web app reads, behind one object: searches through ``Index.search`` (the same call
as the CLI), the table's rows found by id or by date without holding them (``store.rowindex``:
for items, thumbnails, browse and the filters), and the thumbnailer. Nothing here writes to the table.

The row index is built in the background when the server starts (one streaming pass over a
few small columns: about a second and some 30 MB at a million rows) and again when the table's
version changes, so a server left running follows an ingest. A row is read by its offset when
it is asked for. Text searches do not wait for the index: they run on the snapshot and the
exported text tower (``retrieval/quick.py``), without torch or lancedb.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import IndexEmptyError, MmembedError, QueryError, StoreError
from ..retrieval.query import SearchOptions, sql_string
from ..store.items import ITEM_COLUMNS
from ..store.memory import give_back_memory
from ..store.rowindex import RowIndex, StaleRowIndex
from ..store.snapshot import table_version
from ..store.table import filter_reason
from .background import Job
from .filters import Filters
from .thumbs import LARGE_SIZE, Thumbnailer, indexed_bytes, indexed_frame, render_jpeg

__all__ = ["Library", "Page", "NotFound", "MAX_RESULTS", "flags_as"]

log = logging.getLogger("mmembed")

MAX_RESULTS = 2000  # paging stops here: past it, a person refines the query
_INDEX_WAIT = 60.0  # seconds a request waits for the first row index
_VERSION_CHECK = 1.0  # seconds between checks of the table's version
_MAX_FOLDERS = 400
_MAX_TAG_CHIPS = 40
_FILTERS_KEPT = 4  # browse filters whose matching rows are kept (per table version)
_OCR_COLUMNS = ("ocr_text", "ocr_lines")
_CORE = {"tags", "tag_scores", *ITEM_COLUMNS}  # what is not a manifest column


class NotFound(MmembedError):
    """No indexed item has this id."""


@dataclass
class Page:
    """One page of results."""

    hits: list[Any]  # Hits (search), or item dicts (browse)
    offset: int
    more: bool  # whether a next page may hold more
    where: str | None  # the SQL filter that was applied
    target: str | None
    seconds: float
    total: int | None = None  # how many rows the filters keep (browse only)
    parsed: dict[str, Any] | None = None  # what the search box understood (place, dates, notes; ``retrieval.located``)
    note: str | None = None  # a search that found nothing: why, as far as its filters tell


class Library:
    """The web app's view of one table; thread-safe."""

    def __init__(self, index: Any, *, thumb_workers: int = 2) -> None:
        self.index = index
        self.db, self.table = index.config.db, index.config.table
        self.thumbs = Thumbnailer(self.db, self.table, workers=thumb_workers,
                                  max_megapixels=index.config.max_megapixels)
        self._search_lock = threading.Lock()  # Index loads towers lazily: one search at a time
        self._rows_lock = threading.Lock()
        self._rows: RowIndex | None = None
        self._rows_error: str | None = None
        self._checked_at = 0.0
        self._ready = threading.Event()
        self._filtered: OrderedDict[tuple[int | None, str], np.ndarray] = OrderedDict()  # browse filters' rows
        self._filtered_lock = threading.Lock()
        self._timeline: tuple[int | None, list[dict[str, Any]]] | None = None
        self._dupes_lock = threading.Lock()
        self._dupes: dict[tuple[str, int | None], Job] = {}  # (mode, table version) -> its search

    # ------------------------------------------------------------ start-up
    def warm_up(self) -> None:
        """Build the row index, load the text tower and the JPEG codec; run in a background thread
        at start, so the first search and the first thumbnail do not pay for them."""
        _warm_codecs()
        try:
            self.row_index()
        except MmembedError:
            pass  # shown by /api/info
        self._ready.set()
        if self._rows is not None and self._rows.rows:
            try:
                self.search("photo", limit=1)  # loads the snapshot and the text tower
            except MmembedError:
                pass  # the first real query reports it

    def problem(self) -> str | None:
        """Why there is nothing to show, in words for the page; None when all is well."""
        if self.index.store.is_local and not os.path.isdir(self.db):
            return (f"There is no database at {self.db}. Index a folder first: "
                    f"mmembed ingest PATH --db {self.db}")
        if self._rows_error:
            return self._rows_error
        if self._rows is not None and not self._rows.rows:
            return (f"Table '{self.table}' in {self.db} holds no photos yet. Index a folder first: "
                    f"mmembed ingest PATH --db {self.db}")
        return None

    # ------------------------------------------------------------ rows
    def row_index(self, *, rebuild: bool = False) -> RowIndex:
        """The table's ``RowIndex``, built again when the table's version changed (checked at
        most once a second) or when ``rebuild`` says a read found it stale."""
        now = time.monotonic()
        current = self._rows
        if current is not None and not rebuild and now - self._checked_at < _VERSION_CHECK:
            return current
        with self._rows_lock:
            self._checked_at = time.monotonic()
            version = table_version(self.db, self.table) if self.index.store.is_local else self._remote_version()
            current = self._rows
            if current is not None and version == current.version and version is not None and not rebuild:
                return current
            try:
                local_and_missing = self.index.store.is_local and not os.path.isdir(self.db)
                built = RowIndex.empty(version) if local_and_missing else RowIndex.build(self.index.store, version)
                self._rows_error = None
            except MmembedError as exc:
                built, self._rows_error = RowIndex.empty(version), f"The table cannot be read: {exc}"
            self._rows = built
            self._filtered.clear()
            give_back_memory()  # the build's batches, freed: glibc keeps them otherwise
            return built

    def _remote_version(self) -> int | None:
        """A table in object storage: its version from LanceDB (no local manifest to read)."""
        try:
            return int(self.index.store.table.version)
        except Exception:  # noqa: BLE001 - the row index's build below reports what is wrong
            return None

    def _wait_rows(self) -> RowIndex:
        self._ready.wait(_INDEX_WAIT)
        return self.row_index()

    def _read(self, pick: Any, columns: Any = None) -> tuple[RowIndex, list[dict[str, Any]]]:
        """``pick(index)``'s offsets read as rows (with ``columns(index)``, else the index's);
        once more with a new index when the table changed under the one in hand."""
        rows = self._wait_rows()
        for attempt in (0, 1):
            try:
                return rows, rows.read(self.index.store, pick(rows), columns(rows) if columns else None)
            except StaleRowIndex:
                if attempt:
                    raise
                rows = self.row_index(rebuild=True)
        raise AssertionError("unreachable")

    def row(self, item_id: str) -> dict[str, Any]:
        """The row with this id (what a thumbnail or a file needs); NotFound otherwise."""
        return self._row(item_id, with_ocr=False)

    def item(self, item_id: str) -> dict[str, Any]:
        """The row with this id, with the words read in its picture; NotFound otherwise."""
        return self._row(item_id, with_ocr=True)

    def _row(self, item_id: str, *, with_ocr: bool) -> dict[str, Any]:
        found = None
        if _plausible_id(item_id):
            ocr = self._wait_rows().ocr_columns if with_ocr else []
            _, rows = self._read(lambda index: index.offsets_of(item_id),
                               (lambda index: [*index.columns, *index.ocr_columns]) if ocr else None)
            found = next((r for r in rows if r["id"] == item_id), None)
        if found is None:
            raise NotFound(f"no indexed item has id {item_id!r}")
        if "ocr_lines" in found:  # the detail view's boxes, parsed
            import json

            found["ocr_lines"] = json.loads(found["ocr_lines"] or "[]")
        return found

    def item_by_path(self, path: str) -> dict[str, Any]:
        """The item whose file is ``path`` (a video: its first kept frame), as ``item`` gives it; NotFound otherwise."""
        try:
            rows = self.index.items(where=f"path = {sql_string(path)}")
        except StoreError:
            rows = []
        if not rows:
            raise NotFound(f"{path!r} is not an indexed item of table '{self.table}'; "
                           "give a path exactly as search returned it")
        first = min(rows, key=lambda r: r.get("frame_time") or 0.0)  # a video: its first kept frame
        return self.item(first["id"])

    def info(self) -> dict[str, Any]:
        """What the page needs to draw its filters, and any problem to show."""
        rows = self._wait_rows()
        meta = None
        try:
            meta = self.index.meta if rows.rows else None
        except MmembedError:
            pass
        tags = sorted(rows.tags.items(), key=lambda kv: -kv[1])[:_MAX_TAG_CHIPS]  # most common, ties as counted
        return {
            "db": self.db, "table": self.table, "rows": rows.rows, "captioned": rows.captioned,
            "model": meta.model if meta else None, "pretrained": meta.pretrained if meta else None,
            "fusion": meta.fusion if meta else None,
            "formats": [{"name": k, "count": v} for k, v in sorted(rows.formats.items())],
            "folders": [{"path": k, "count": v} for k, v in sorted(rows.folders.items())[:_MAX_FOLDERS]],
            "columns": [c for c in rows.columns if c not in _CORE],
            "has_taken": "taken_ns" in rows.columns,
            "tags": [{"name": k, "count": v} for k, v in tags],
            "problem": self.problem(),
            "home": _home(),  # the page shows paths under it as ~/...
        }

    def browse(self, *, limit: int = 50, offset: int = 0, filters: Filters = Filters(),
               where_when: dict[str, Any] | None = None) -> Page:
        """Every photo (or those the filters keep), newest first: what the page shows before a query.
        Pages go on to the last photo (a search's stop after ``MAX_RESULTS``). ``where_when``: the
        place and time of ``where.where_when_args`` (near with radius_km, taken_after, taken_before),
        kept as a search keeps them; sort and literal change nothing in a list that is by date."""
        _check_page(limit, offset, last=None)
        started = time.perf_counter()
        current = self._wait_rows()
        problem = self.problem()
        if problem:
            raise IndexEmptyError(problem)
        where = filters.where_sql(current.columns)
        near = None
        asked = {k: v for k, v in (where_when or {}).items() if k in ("near", "radius_km", "taken_after", "taken_before")}
        if asked:
            from ..retrieval.located import plan_search, world_lookup

            located = plan_search(None, SearchOptions(where=where, **asked), self.index._places,
                                  world=world_lookup() if "near" in asked else None)
            where, near = located.options.where, located.near
        order: list[np.ndarray] = []

        def page(index: RowIndex) -> np.ndarray:
            order[:] = [self._kept(index, where, near)]
            return order[0][offset: offset + limit]

        _, rows = self._read(page)
        total = len(order[0])
        return Page(rows, offset, total > offset + limit, where, None, time.perf_counter() - started, total=total)

    def _kept(self, index: RowIndex, where: str | None, near: Any = None) -> np.ndarray:
        """The offsets ``where`` keeps (and within ``near``'s circle: ``where`` holds its bounding
        box), newest first (kept for the last few filters of this version)."""
        if where is None:
            return index.newest
        key = (index.version, where, None if near is None else (near.lat, near.lon, near.radius_km))
        found = self._filtered.get(key)
        if found is None:
            try:  # the matching rows' ids, a batch at a time
                if near is None:
                    ids = [batch.column("id") for batch in self.index.store.scan(["id"], where)]
                else:  # the box's corners cut off, as a search cuts them
                    import pyarrow as pa

                    ids = [pa.array([i for i, lat, lon in zip(*(batch.column(c).to_pylist() for c in ("id", "gps_lat", "gps_lon")))
                                     if near.contains(lat, lon)], pa.string())
                           for batch in self.index.store.scan(["id", "gps_lat", "gps_lon"], where)]
            except StoreError as exc:  # the filter: the same words as a search's bad one
                reason = filter_reason(exc.__cause__) if exc.__cause__ is not None else str(exc).split(": ", 1)[-1]
                raise QueryError(f"the SQL filter {where!r} is not a valid filter: {reason}") from None
            found = index.newest_of(index.matching(ids))
            with self._filtered_lock:
                self._filtered[key] = found
                while len(self._filtered) > _FILTERS_KEPT:
                    self._filtered.popitem(last=False)
        return found

    def duplicates(self, mode: str = "near", *, wait: float = 0.0) -> dict[str, Any]:
        """The table's duplicate groups (``Index.duplicates``), searched in a background thread
        started by the first request and kept until the table changes: {"state": "done",
        "groups": ...} when found, else {"state": "running", "percent": ...} (``Job.answer``)."""
        from ..retrieval.dupes import MODES

        if mode not in MODES:
            raise QueryError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        key = (mode, self._wait_rows().version)
        with self._dupes_lock:
            job = self._dupes.get(key)
            if job is None:
                self._dupes = {k: j for k, j in self._dupes.items() if k[1] == key[1]}  # older tables' answers go
                job = self._dupes[key] = Job(lambda progress: self._find_duplicates(mode, progress))
        try:
            return job.answer(wait)
        except MmembedError:
            with self._dupes_lock:
                self._dupes.pop(key, None)  # the next request tries again
            raise

    def _find_duplicates(self, mode: str, progress: Any) -> dict[str, Any]:
        started = time.perf_counter()
        groups = self.index.duplicates(mode=mode, progress=progress)
        return {"mode": mode, "groups": [g.to_dict() for g in groups],
                "took_ms": round((time.perf_counter() - started) * 1000, 1)}

    # ------------------------------------------------------------ where and when
    def places(self) -> list[dict[str, Any]]:
        """The places of the library's photos with their counts (``Index.places``)."""
        with self._search_lock:
            return self.index.places()

    def timeline(self) -> list[dict[str, Any]]:
        """Photos per month taken, oldest first."""
        from ..retrieval.located import month_counts

        version = self._wait_rows().version
        kept = self._timeline
        if kept is not None and kept[0] == version and version is not None:
            return kept[1]
        months = month_counts(self.index.store)
        self._timeline = (version, months)
        return months

    # ------------------------------------------------------------ search
    def search(self, text: str | None = None, *, image: bytes | None = None, like: str | None = None,
               limit: int = 50, offset: int = 0, target: str | None = None, negatives: tuple[str, ...] = (),
               image_weight: float | None = None, min_score: float | None = None, cutoff: str = "none",
               filters: Filters = Filters(), mode: str | None = None,
               where_when: dict[str, Any] | None = None, tag_param: str = "tag") -> Page:
        """A page of hits; ``like`` is an item id ("more like this": that item's image). An
        image query without words searches the image vectors unless ``target`` says otherwise.
        ``tag_param``: what the caller's users call the tag filter, for the ``note`` of an empty page."""
        _check_page(limit, offset)
        source: str | bytes | None = image
        exclude = None
        if like is not None:
            if image is not None:
                raise QueryError("give an image or 'more like' an item, not both")
            row = self.item(like)
            exclude = like
            # the item's own pixels, read only while its file is the one indexed (never the path as it is now)
            source = _query_pixels(row)
        if self.index.store.is_local and not os.path.isdir(self.db):
            raise IndexEmptyError(self.problem() or "no database")
        columns = self._wait_rows().columns if filters != Filters() else []  # the filters need the table's columns
        where = filters.where_sql(columns)
        if target is None and source is not None and not (text and text.strip()):
            target = "image"  # an image alone asks for photos that look like it
        wanted = min(offset + limit + (1 if exclude else 0), MAX_RESULTS + 1)
        options = SearchOptions(limit=wanted, where=where, target=target, image_weight=image_weight,
                                negatives=negatives, min_score=min_score, cutoff=cutoff, mode=mode,
                                **(where_when or {}))
        started = time.perf_counter()
        with self._search_lock:
            hits = self.index.search(text, image=source, options=options)
        if exclude is not None:
            hits = [h for h in hits if h.id != exclude]
        page = hits[offset: offset + limit]
        more = len(hits) >= offset + limit and offset + limit < MAX_RESULTS
        located = getattr(hits, "located", None)
        placed = located is not None and bool(located.parsed or located.near or options.taken_after or options.taken_before)
        parsed = located.as_dict() if located is not None and (placed or located.notes) else None
        note = None if hits else _why_nothing(filters, options, parsed if placed else None, tag_param)
        return Page(page, offset, more, where, hits[0].target if hits else target, time.perf_counter() - started,
                    parsed=parsed, note=note)


def _why_nothing(filters: Filters, options: SearchOptions, located: dict[str, Any] | None, tag_param: str) -> str:
    """Why a search of the web app or an assistant found nothing, in the API's own names;
    ``located``: the place and time it searched in (``Located.as_dict``), if any."""
    from ..retrieval.query import why_nothing

    named = [f"{tag_param}={t}" for t in filters.tags]
    named += [f"{k}={v}" for k, v in (("folder", filters.folder), ("format", filters.format),
                                       ("date_from", filters.date_from), ("date_to", filters.date_to)) if v]
    named += [f"col.{k}={v}" for k, v in filters.columns.items() if v != ""]
    named += [f"where={filters.where!r}"] if filters.where and filters.where.strip() else []
    named += [_place_and_time(located)] if located else []
    return why_nothing(named, min_score=options.min_score, mode=options.mode, cutoff=options.cutoff,
                       tags=bool(filters.tags), name=lambda n: n)


def _place_and_time(located: dict[str, Any]) -> str:
    """The place and time a search was kept to, in words: "the place and date filters (in Kyoto,
    Japan; taken from 2021-12-01 to before 2022-01-01)"."""
    parts = []
    place, near = located.get("place"), located.get("near")
    if place:
        parts.append(f"in {place.get('label') or place.get('phrase')}")
    if near:
        parts.append(f"within {near['radius_km']:g} km of {near['label']}")
    after, before, either = located.get("taken_after"), located.get("taken_before"), located.get("taken_either")
    if either:
        parts.append("taken " + " or ".join(f"from {a} to before {b}" for a, b in either))
    elif after and before:
        parts.append(f"taken from {after} to before {before}")
    elif after or before:
        parts.append(f"taken from {after}" if after else f"taken before {before}")
    what = "place and date" if (place or near) and (after or before or either) else "place" if place or near else "date"
    return f"the {what} filters ({'; '.join(parts)})" if parts else "the place and time filters read from the words"


def _query_pixels(row: dict[str, Any]) -> bytes:
    """What "more like" a row searches with: its file's bytes, read only while the file is the one
    indexed; a video's frame, and a camera RAW developed (bytes alone would not say it is RAW), as JPEGs."""
    from ..sources.raw import is_raw_path

    if row.get("media") == "video":
        return indexed_frame(row, LARGE_SIZE, quality=92)
    data = indexed_bytes(row)
    return render_jpeg(data, LARGE_SIZE, quality=92, name=row["path"]) if is_raw_path(row["path"]) else data


def _home() -> str | None:
    home = os.path.expanduser("~").rstrip("/")
    return home if home and os.path.isabs(home) and os.path.isdir(home) else None


def _warm_codecs() -> None:
    import io

    from PIL import Image

    from ..sources.decode import load_image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buffer, "JPEG")
    load_image(buffer.getvalue(), min_side=16)


def _check_page(limit: int, offset: int, last: int | None = MAX_RESULTS) -> None:
    if offset < 0:
        raise QueryError(f"offset {offset} is out of range; give 0 or more")
    if last is not None and offset >= last:
        raise QueryError(f"offset {offset} is out of range; pages stop after {last} results")
    if not 1 <= limit <= 200:
        raise QueryError(f"n {limit} is out of range; give 1 to 200")


def _plausible_id(item_id: str) -> bool:
    return 0 < len(item_id) <= 64 and item_id.isalnum()


_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


def flags_as(message: str, names: dict[str, str]) -> str:
    """A library message (written for the CLI) with each CLI flag in ``names`` ("taken-after") spelled
    as the caller's users know it ("taken_after" for the web API, "tags" for ``--tag`` to an assistant)."""
    return _FLAG.sub(lambda m: names.get(m.group(1), m.group(0)), message)

