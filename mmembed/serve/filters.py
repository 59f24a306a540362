"""The page's filters (folder, format, date, manifest columns) as the SQL ``--where`` of a search.

Every value is quoted here, so a filter value can never end the string it sits in; column
names are taken only from the table's own columns. The page shows the ``where`` it built,
so a person can copy it to ``mmembed search --where``.
"""

from __future__ import annotations

import calendar
import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import QueryError
from ..retrieval.query import NO_TAGS, check_where, sql_string, tag_filters

__all__ = ["Filters"]

_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_NS_PER_DAY = 86_400 * 1_000_000_000
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _column(name: str) -> str:
    return name if _PLAIN_NAME.match(name) else "`" + name.replace("`", "``") + "`"


def _day_ns(text: str, what: str) -> int:
    match = _DAY.match(text.strip())
    if not match:
        raise QueryError(f"{what} {text!r} is not a date; give YYYY-MM-DD")
    y, m, d = (int(g) for g in match.groups())
    try:
        datetime.date(y, m, d)  # 2020-02-30 is no date
    except ValueError:
        raise QueryError(f"{what} {text!r} is not a date in the calendar; give YYYY-MM-DD") from None
    return calendar.timegm((y, m, d, 0, 0, 0, 0, 0, 0)) * 1_000_000_000


@dataclass(frozen=True)
class Filters:
    """What the page's filter bar holds; ``where()`` turns it into SQL for ``SearchOptions.where``."""

    folder: str | None = None  # an absolute folder: items under it (any depth)
    format: str | None = None  # Pillow's format name: JPEG, PNG, HEIF, AVIF, ...
    date_from: str | None = None  # YYYY-MM-DD, inclusive (days in UTC, as dates are stored)
    date_to: str | None = None  # YYYY-MM-DD, inclusive
    date_field: str = "taken"  # taken: EXIF date taken, else the file's date; file: the file's date
    columns: Mapping[str, str] = field(default_factory=dict)  # manifest column -> value (exact match)
    tags: tuple[str, ...] = ()  # zero-shot tags the item must all carry (``mmembed tag``)
    where: str | None = None  # more SQL, ANDed with the rest

    def where_sql(self, table_columns: Sequence[str]) -> str | None:
        """The SQL filter, or None when no filter is set. Raises QueryError naming a bad value."""
        parts: list[str] = []
        if self.folder:
            folder = self.folder.rstrip("/") + "/"
            # LIKE would read % and _ in folder names as wildcards; a prefix test does not
            parts.append(f"starts_with(path, {sql_string(folder)})")
        if self.format:
            parts.append(f"format = {sql_string(self.format)}")
        if self.date_field not in ("taken", "file"):
            raise QueryError(f"date field {self.date_field!r} is not one of taken, file")
        date = "coalesce(taken_ns, mtime_ns)" if self.date_field == "taken" and "taken_ns" in table_columns \
            else "mtime_ns"
        start = _day_ns(self.date_from, "from date") if self.date_from else None
        end = _day_ns(self.date_to, "to date") if self.date_to else None
        if start is not None and end is not None and start > end:
            raise QueryError(f"from date {self.date_from} is after to date {self.date_to}; swap them")
        if start is not None:
            parts.append(f"{date} >= {start}")
        if end is not None:
            parts.append(f"{date} < {end + _NS_PER_DAY}")
        for name, value in self.columns.items():
            if name not in table_columns:
                raise QueryError(f"the table has no column {name!r}; filter on one of its columns")
            if value != "":
                parts.append(f"CAST({_column(name)} AS STRING) = {sql_string(value)}")
        if self.tags and "tags" not in table_columns:
            raise QueryError(NO_TAGS)
        parts += tag_filters(self.tags)
        if self.where and self.where.strip():
            check_where(self.where, "the SQL filter")
            parts.append(f"({self.where.strip()})" if parts else self.where.strip())
        return " AND ".join(parts) or None
