"""The where/when fields of ``SearchOptions`` checked (``--near``, ``--radius``, ``--taken-after``,
``--taken-before``, ``--sort``), and ISO dates read as the camera's local time. Imports nothing of
``query``, which calls ``check_located`` from ``SearchOptions.__post_init__``."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from ..errors import QueryError

__all__ = ["SORTS", "check_located"]

SORTS = ("score", "date")
_ISO = re.compile(r"^\d{4}-\d{2}(-\d{2})?")


def check_located(options: Any) -> None:
    """The where/when fields of ``options`` make sense (``SearchOptions.__post_init__`` calls this)."""
    if options.sort not in SORTS:
        raise QueryError(f"--sort {options.sort!r} is not one of {', '.join(SORTS)}")
    radius = options.radius_km
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius > 0 or radius != radius:
        raise QueryError(f"--radius {radius!r}: give a distance in km above 0, e.g. --radius 10")
    if options.near is not None and (not isinstance(options.near, str) or not options.near.strip()):
        raise QueryError("--near needs a place name or LAT,LON, e.g. --near Kyoto or --near 35.01,135.77")
    for name in ("taken_after", "taken_before"):
        _moment(getattr(options, name), name)
    after, before = _moment(options.taken_after, "taken_after"), _moment(options.taken_before, "taken_before")
    if after is not None and before is not None and after >= before:
        raise QueryError(f"--taken-after {_iso(options.taken_after)} is not before --taken-before "
                         f"{_iso(options.taken_before)}: nothing can match")


def _moment(value: Any, name: str, notes: list[str] | None = None, label: str = "") -> datetime | None:
    """An ISO date/datetime (or ``date``/``datetime``) as a naive local time; an offset is dropped
    with a note, as photo times are the camera's local clock."""
    if value is None:
        return None
    flag = "--" + name.replace("_", "-")
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and _ISO.match(value.strip()):
        raw = value.strip()
        try:
            moment = datetime.fromisoformat(raw + "-01" if len(raw) == 7 else raw.replace("Z", "+00:00"))
        except ValueError:
            raise QueryError(f"{flag} {value!r}: not a date; give YYYY-MM-DD, e.g. {flag} 2021-12-01") from None
    else:
        raise QueryError(f"{flag} {value!r}: not a date; give YYYY-MM-DD, e.g. {flag} 2021-12-01")
    if moment.tzinfo is not None:
        if notes is not None:
            notes.append(f"{label} {value}: the offset is ignored (photo times are the camera's local clock)")
        moment = moment.replace(tzinfo=None)
    if not 1900 <= moment.year <= 2200:
        raise QueryError(f"{flag} {value!r}: photo dates run from 1900 to 2200")
    return moment


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, (date, datetime)) else str(value)


