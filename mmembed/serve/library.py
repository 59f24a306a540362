"""What the web app reads, behind one object: searches through ``Index.search`` (the same call
as the CLI), a catalog of the table's rows by id (for items, thumbnails and filters), and
the thumbnailer. Nothing here writes to the table.

The catalog is read once in the background when the server starts (importing lancedb and
reading 100k rows takes about a second) and again when the table's version changes, so a
server left running follows an ingest. Text searches do not wait for it: they run on the
snapshot and the exported text tower (``retrieval/quick.py``), without torch or lancedb.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..errors import ImageDecodeError, IndexEmptyError, MmembedError, QueryError, StoreError
from ..retrieval.query import SearchOptions
from ..store.snapshot import table_version
from .background import Job
from .filters import Filters
from .thumbs import Thumbnailer

__all__ = ["Library", "Page", "NotFound", "MAX_RESULTS"]

log = logging.getLogger("mmembed")

MAX_RESULTS = 2000  # paging stops here: past it, a person refines the query
_CATALOG_WAIT = 60.0  # seconds a request waits for the first catalog
_VERSION_CHECK = 1.0  # seconds between checks of the table's version
_MAX_FOLDERS = 400
_MAX_TAG_CHIPS = 40


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


class Library:
    """The web app's view of one table; thread-safe."""

    def __init__(self, index: Any, *, thumb_workers: int = 2) -> None:
        self.index = index
        self.db, self.table = index.config.db, index.config.table
        self.thumbs = Thumbnailer(self.db, self.table, workers=thumb_workers,
                                  max_megapixels=index.config.max_megapixels)
        self._search_lock = threading.Lock()  # Index loads towers lazily: one search at a time
        self._catalog_lock = threading.Lock()
        self._catalog: dict[str, dict[str, Any]] | None = None
        self._catalog_version: int | None = -1
        self._catalog_error: str | None = None
        self._columns: list[str] = []
        self._checked_at = 0.0
        self._ready = threading.Event()
        self._dupes_lock = threading.Lock()
        self._dupes: dict[tuple[str, int | None], Job] = {}  # (mode, table version) -> its search

    # ------------------------------------------------------------ start-up
    def warm_up(self) -> None:
        """Read the catalog, load the text tower and the JPEG codec; run in a background thread
        at start, so the first search and the first thumbnail do not pay for them."""
        _warm_codecs()
        try:
            self.catalog()
        except MmembedError:
            pass  # shown by /api/info
        self._ready.set()
        if self._catalog:
            try:
                self.search("photo", limit=1)  # loads the snapshot and the text tower
            except MmembedError:
                pass  # the first real query reports it

    def problem(self) -> str | None:
        """Why there is nothing to show, in words for the page; None when all is well."""
        if self.index.store.is_local and not os.path.isdir(self.db):
            return (f"There is no database at {self.db}. Index a folder first: "
                    f"mmembed ingest PATH --db {self.db}")
        if self._catalog_error:
            return self._catalog_error
        if self._catalog is not None and not self._catalog:
            return (f"Table '{self.table}' in {self.db} holds no photos yet. Index a folder first: "
                    f"mmembed ingest PATH --db {self.db}")
        return None

    # ------------------------------------------------------------ catalog
    def catalog(self) -> dict[str, dict[str, Any]]:
        """Rows by id (no vectors), read again when the table's version changed."""
        now = time.monotonic()
        if self._catalog is not None and now - self._checked_at < _VERSION_CHECK:
            return self._catalog
        with self._catalog_lock:
            self._checked_at = time.monotonic()
            version = table_version(self.db, self.table) if self.index.store.is_local else self._remote_version()
            if self._catalog is not None and version == self._catalog_version and version is not None:
                return self._catalog
            try:
                rows = self.index.items() if os.path.isdir(self.db) or not self.index.store.is_local else []
                self._catalog_error = None
            except MmembedError as exc:
                rows, self._catalog_error = [], f"The table cannot be read: {exc}"
            self._catalog = {row["id"]: row for row in rows}
            self._catalog_version = version
            self._columns = list(rows[0]) if rows else []
            return self._catalog

    def _remote_version(self) -> int | None:
        """A table in object storage: its version from LanceDB (no local manifest to read)."""
        try:
            return int(self.index.store.table.version)
        except Exception:  # noqa: BLE001 - the catalog read below reports what is wrong
            return None

    def _wait_catalog(self) -> dict[str, dict[str, Any]]:
        self._ready.wait(_CATALOG_WAIT)
        return self.catalog()

    def item(self, item_id: str) -> dict[str, Any]:
        """The row with this id; NotFound otherwise."""
        row = self._wait_catalog().get(item_id) if _plausible_id(item_id) else None
        if row is None:
            raise NotFound(f"no indexed item has id {item_id!r}")
        return {**row, **ocr_of(self.index.store, item_id)}

    def info(self) -> dict[str, Any]:
        """What the page needs to draw its filters, and any problem to show."""
        catalog = self._wait_catalog()
        meta = None
        try:
            meta = self.index.meta if catalog else None
        except MmembedError:
            pass
        formats = Counter(row.get("format") or "unknown" for row in catalog.values())
        folders = Counter(os.path.dirname(row["path"]) for row in catalog.values())
        captioned = sum(1 for row in catalog.values() if row.get("text"))
        core = {"id", "path", "size", "mtime_ns", "content_hash", "width", "height", "format", "taken_ns",
                "text", "texts", "text_source", "tags", "tag_scores", "media", "frame_time", "duration", "raw_siblings"}
        tags = Counter(tag for row in catalog.values() for tag in (row.get("tags") or []))
        return {
            "db": self.db, "table": self.table, "rows": len(catalog), "captioned": captioned,
            "model": meta.model if meta else None, "pretrained": meta.pretrained if meta else None,
            "fusion": meta.fusion if meta else None,
            "formats": [{"name": k, "count": v} for k, v in sorted(formats.items())],
            "folders": [{"path": k, "count": v} for k, v in sorted(folders.items())[:_MAX_FOLDERS]],
            "columns": [c for c in self._columns if c not in core],
            "has_taken": "taken_ns" in self._columns,
            "tags": [{"name": k, "count": v} for k, v in tags.most_common(_MAX_TAG_CHIPS)],
            "problem": self.problem(),
            "home": _home(),  # the page shows paths under it as ~/...
        }

    def browse(self, *, limit: int = 50, offset: int = 0, filters: Filters = Filters()) -> Page:
        """Every photo (or those the filters keep), newest first: what the page shows before a query."""
        _check_page(limit, offset)
        started = time.perf_counter()
        catalog = self._wait_catalog()
        problem = self.problem()
        if problem:
            raise IndexEmptyError(problem)
        where = filters.where_sql(self._columns)
        rows = list(catalog.values())
        if where is not None:
            try:
                keep = {row["id"] for row in self.index.items(where=where)}
            except StoreError as exc:  # the filter: the same words as a search's bad one
                reason = str(exc).split(": ", 1)[-1]
                raise QueryError(f"the SQL filter {where!r} is not a valid filter: {reason[:200]}") from None
            rows = [row for row in rows if row["id"] in keep]
        rows = _first_frames(rows)
        rows.sort(key=lambda r: (-(r.get("taken_ns") or r.get("mtime_ns") or 0), r["path"]))
        return Page(rows[offset: offset + limit], offset, len(rows) > offset + limit, where, None,
                    time.perf_counter() - started, total=len(rows))

    def duplicates(self, mode: str = "near", *, wait: float = 0.0) -> dict[str, Any]:
        """The table's duplicate groups (``Index.duplicates``), searched in a background thread
        started by the first request and kept until the table changes: {"state": "done",
        "groups": ...} when found, else {"state": "running", "percent": ...} (``Job.answer``)."""
        from ..retrieval.dupes import MODES

        if mode not in MODES:
            raise QueryError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        self._wait_catalog()
        key = (mode, self._catalog_version)
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

        return month_counts(self.index.store)

    # ------------------------------------------------------------ search
    def search(self, text: str | None = None, *, image: bytes | None = None, like: str | None = None,
               limit: int = 50, offset: int = 0, target: str | None = None, negatives: tuple[str, ...] = (),
               image_weight: float | None = None, min_score: float | None = None, cutoff: str = "none",
               filters: Filters = Filters(), mode: str | None = None,
               where_when: dict[str, Any] | None = None) -> Page:
        """A page of hits; ``like`` is an item id ("more like this": that item's image). An
        image query without words searches the image vectors unless ``target`` says otherwise."""
        _check_page(limit, offset)
        source: str | bytes | None = image
        exclude = None
        if like is not None:
            if image is not None:
                raise QueryError("give an image or 'more like' an item, not both")
            row = self.item(like)
            source, exclude = row["path"], like
            if row.get("media") == "video":  # that frame's picture, not the video file
                source = _frame_source(row)
        if self.index.store.is_local and not os.path.isdir(self.db):
            raise IndexEmptyError(self.problem() or "no database")
        if filters != Filters():
            self._wait_catalog()  # the filters need the table's columns
        where = filters.where_sql(self._columns)
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
        return Page(page, offset, more, where, hits[0].target if hits else target, time.perf_counter() - started,
                    parsed=located.as_dict() if located is not None and (located.parsed or located.near or located.notes) else None)


def _first_frames(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with each video once, by its first kept frame."""
    first: dict[str, dict[str, Any]] = {}
    out = []
    for row in rows:
        if row.get("media") != "video":
            out.append(row)
        elif row["path"] not in first or (row.get("frame_time") or 0) < (first[row["path"]].get("frame_time") or 0):
            first[row["path"]] = row
    return out + list(first.values())


def _frame_source(row: dict[str, Any]) -> bytes:
    from .thumbs import LARGE_SIZE, frame_jpeg

    try:
        return frame_jpeg(row["path"], float(row.get("frame_time") or 0.0), LARGE_SIZE, quality=92)
    except ImageDecodeError as exc:
        raise QueryError(f"{exc.path}: {exc.reason}") from None


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


def _check_page(limit: int, offset: int) -> None:
    if not 0 <= offset < MAX_RESULTS:
        raise QueryError(f"offset {offset} is out of range; pages stop after {MAX_RESULTS} results")
    if not 1 <= limit <= 200:
        raise QueryError(f"n {limit} is out of range; give 1 to 200")


def _plausible_id(item_id: str) -> bool:
    return 0 < len(item_id) <= 64 and item_id.isalnum()


def ocr_of(store: Any, item_id: str) -> dict[str, Any]:
    """The words read in one item's picture (issue 22): ``ocr_text`` and ``ocr_lines`` (parsed:
    text, box, confidence), for the detail view; {} in a table from before OCR."""
    import json

    if "ocr_lines" not in store.table.schema.names:
        return {}
    quoted = item_id.replace("'", "''")
    rows = store.read_columns(["ocr_text", "ocr_lines"], f"id = '{quoted}'").to_pylist()
    if not rows:
        return {}
    return {"ocr_text": rows[0]["ocr_text"], "ocr_lines": json.loads(rows[0]["ocr_lines"] or "[]")}
