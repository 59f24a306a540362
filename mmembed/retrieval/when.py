"""Time phrases in a query, English and Chinese: "in December 2021", "2019", "last summer", "2019年7月", "去年夏天".

Each phrase found becomes a half-open span of local dates ``[start, end)``; the spans of one query
are intersected. Relative phrases ("last summer", "去年") count from the ``today`` given. Seasons are
meteorological (summer = June to August); ``hemisphere="south"`` shifts them by six months. A month
named without a year ("in December") is left as words: it has no one span.

Two phrases joined by "between .. and", "from .. to", "to/until/through" or a dash ("2014-2016") are one
range; joined by "or"/"and" ("in 2008 or 2015") they are alternatives, each searched (``TimeSpan.parts``).
Numeric dates: 2021-12-24, 2021/12/24, 24.12.2021 (dots: day first), 12/24/2021 and 24/12/2021 (the side
over 12 is the day); 03/04/2021 could be either, so both days are searched and ``TimeSpan.reading`` says
so. A bare year right after a numbered thing ("room 2008", "gate 2019") or before a unit ("2019 m") is
no year: it stays in the words (``year_as_words`` finds it for a note); "photos 2019", "sunset 2019" are years.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

__all__ = ["TimeSpan", "find_time_phrases", "month_without_year", "year_as_words"]

_MONTHS = {m: i for i, names in enumerate(
    [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
     ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
     ("november", "nov"), ("december", "dec")], start=1) for m in names}  # fmt: skip
_SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12,
            "春天": 3, "春季": 3, "夏天": 6, "夏季": 6, "秋天": 9, "秋季": 9, "冬天": 12, "冬季": 12}  # fmt: skip
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_SEASON_EN = "spring|summer|autumn|fall|winter"
_SEASON_ZH = "春天|春季|夏天|夏季|秋天|秋季|冬天|冬季"
_IN = r"(?:(?:in|during|from|of)\s+)?"
_YEAR = r"(?:19|20)\d\d"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("ymd_day", re.compile(rf"(?<![\d/.-])({_YEAR})[/.](\d{{1,2}})[/.](\d{{1,2}})(?![\d/-]|\.\d)")),
    ("dmy_dots", re.compile(rf"(?<![\d/.-])(\d{{1,2}})\.(\d{{1,2}})\.({_YEAR})(?![\d/-]|\.\d)")),
    ("either_day", re.compile(rf"(?<![\d/.-])(\d{{1,2}})([/-])(\d{{1,2}})\2({_YEAR})(?![\d/-]|\.\d)")),
    ("slash_month", re.compile(rf"(?<![\d/.-])(\d{{1,2}})/({_YEAR})(?![\d/-]|\.\d)")),
    ("iso_day", re.compile(rf"(?<![\d-])({_YEAR})-(\d\d)-(\d\d)(?![\d-])")),
    ("iso_month", re.compile(rf"(?<![\d-])({_YEAR})-(\d\d)(?![\d-])")),
    ("zh_day", re.compile(rf"({_YEAR})年(\d{{1,2}})月(\d{{1,2}})[日号]")),
    ("zh_month", re.compile(rf"({_YEAR})年(\d{{1,2}})月(?:份)?")),
    ("zh_season", re.compile(rf"({_YEAR}年|去年|今年|前年)的?({_SEASON_ZH})")),
    ("zh_year", re.compile(rf"({_YEAR})年(?:份)?|去年|今年|前年")),
    ("zh_last_month", re.compile("上个?月|这个月|本月")),
    ("en_day", re.compile(rf"\b{_IN}({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+({_YEAR})\b", re.I)),
    ("en_month", re.compile(rf"\b{_IN}({_MONTH})\.?,?\s+({_YEAR})\b", re.I)),
    ("en_season", re.compile(rf"\b{_IN}(?:(?:the\s+)?({_SEASON_EN})\s+(?:of\s+)?({_YEAR})|(last|this)\s+({_SEASON_EN}))\b", re.I)),
    ("en_relative", re.compile(rf"\b{_IN}(last|this)\s+(year|month)\b", re.I)),
    ("en_year", re.compile(rf"(?<![#$€£¥№])\b{_IN}({_YEAR})\b", re.I)),
]
# a year right after one of these is a number, not a year ("room 2008", "flight 2019", "no. 2010")
_NUMBERED = {"room", "rooms", "flat", "apartment", "apt", "suite", "gate", "platform", "route", "highway", "hwy",
             "exit", "pier", "terminal", "flight", "page", "chapter", "level", "floor", "number", "no", "nr", "num",
             "model", "version", "type", "episode", "vol", "volume", "item", "seat", "row", "section", "unit",
             "channel", "code", "locker", "ticket", "booth", "cabin", "berth", "mile", "km", "id", "pin"}  # fmt: skip
# ... and so is one right before one of these ("2019 m", "2008 people")
_UNITS = {"m", "km", "ft", "feet", "meters", "metres", "miles", "mi", "kg", "lb", "lbs", "g", "mm", "cm", "ml",
          "people", "steps", "calories", "kcal", "euros", "eur", "dollars", "usd", "yen", "yuan", "points", "pts",
          "pieces", "pcs", "hp", "cc", "rpm", "w", "kw", "%"}  # fmt: skip
_RANGE = re.compile(r"\s*(?:-|–|—|to|until|till|through|thru)\s*", re.I)
_EITHER = re.compile(r"\s*(?:or|and|&)\s*", re.I)
_BETWEEN = re.compile(r"\bbetween\s*$", re.I)


@dataclass(frozen=True)
class TimeSpan:
    """Local dates ``start <= day < end`` named by one phrase of the query."""

    start: date
    end: date
    phrase: str  # the words of the query that named it, e.g. "in December 2021"
    parts: tuple[tuple[date, date], ...] = ()  # several spans, any of which ("2008 or 2015"); () = [start, end)
    reading: str | None = None  # how an ambiguous phrase was read, for a note ("03/04/2021")

    def pieces(self) -> tuple[tuple[date, date], ...]:
        """The spans this phrase allows: ``parts``, or the one ``[start, end)``."""
        return self.parts or ((self.start, self.end),)


def find_time_phrases(query: str, today: date, hemisphere: str = "north") -> tuple[str, list[TimeSpan]]:
    """The query with its time phrases cut out (each replaced by a space), and their spans, in order.

    >>> find_time_phrases("Kyoto in December 2021", date(2026, 1, 1))[1][0].start
    datetime.date(2021, 12, 1)
    """
    found: list[tuple[int, int, TimeSpan]] = []
    rest, masked = query, query  # masked: what later patterns may still match
    for kind, pattern in _PATTERNS:
        for match in list(pattern.finditer(masked)):
            a, b = match.span()
            masked = masked[:a] + "\x00" * (b - a) + masked[b:]
            span = _span(kind, match, today, hemisphere)
            if span is None:  # "2021-02-30": no date, and its "2021" is no year either; kept as words
                continue
            found.append((a, b, span if isinstance(span, TimeSpan) else TimeSpan(span[0], span[1], match.group(0).strip())))
            rest = rest[:a] + " " * (b - a) + rest[b:]
    found.sort(key=lambda item: item[0])
    joined = _joined(query, found)
    for a, b, _ in joined:
        rest = rest[:a] + " " * (b - a) + rest[b:]
    return rest, [span for _, _, span in joined]


def _joined(query: str, found: list[tuple[int, int, TimeSpan]]) -> list[tuple[int, int, TimeSpan]]:
    """Neighbouring phrases joined into a range ("between 2014 and 2016", "2014-2016") or into
    alternatives ("in 2008 or 2015"); the rest as found. Each with the characters it covers."""
    out: list[tuple[int, int, TimeSpan]] = []
    for a, b, span in found:
        if out:
            pa, pb, prev = out[-1]
            gap = query[pb:a]
            between = _BETWEEN.search(query[:pa])
            if between and re.fullmatch(r"\s*and\s*", gap, re.I) or _RANGE.fullmatch(gap):
                pa = between.start() if between else pa
                start, end = min(prev.start, span.start), max(prev.end, span.end)
                out[-1] = (pa, b, TimeSpan(start, end, query[pa:b].strip()))
                continue
            if _EITHER.fullmatch(gap):
                parts = tuple(sorted({*prev.pieces(), *span.pieces()}))
                start, end = min(p[0] for p in parts), max(p[1] for p in parts)
                reading = "; ".join(r for r in (prev.reading, span.reading) if r) or None
                out[-1] = (pa, b, TimeSpan(start, end, query[pa:b].strip(), parts, reading))
                continue
        out.append((a, b, span))
    return out


def year_as_words(text: str) -> str | None:
    """A year left as words because a numbered thing or a unit stands beside it ("room 2008"), or None.

    >>> year_as_words("a door in room 2008")
    'room 2008'
    """
    for match in re.finditer(rf"\b({_YEAR})\b", text):
        before, after = _word_before(text, match.start()), _word_after(text, match.end())
        if before in _NUMBERED:
            return f"{before} {match.group(1)}"
        if after in _UNITS:
            return f"{match.group(1)} {after}"
    return None


def _word_before(text: str, at: int) -> str:
    """The word just before ``at``, lowercased, without its trailing dot ("No. 2010" -> "no")."""
    tail = text[max(0, at - 24) : at].split()
    return tail[-1].rstrip(".").lower() if tail else ""


def _word_after(text: str, at: int) -> str:
    head = text[at : at + 24].split()
    return head[0].strip(".,;:!?)").lower() if head else ""


_BARE_MONTH = re.compile(rf"\b(?:in|during)\s+(?:{_MONTH}|{_SEASON_EN})\b(?!\s+(?:of\s+)?{_YEAR})", re.I)


def month_without_year(text: str) -> str | None:
    """A month or season named without a year ("in December"), which has no one span, or None.

    >>> month_without_year("Kyoto in December")
    'in December'
    """
    match = _BARE_MONTH.search(text)
    return match.group(0) if match else None


def _span(kind: str, match: re.Match[str], today: date, hemisphere: str) -> tuple[date, date] | TimeSpan | None:
    g = match.groups()
    try:
        if kind == "ymd_day":
            return _day(date(int(g[0]), int(g[1]), int(g[2])))
        if kind == "dmy_dots":
            return _day(date(int(g[2]), int(g[1]), int(g[0])))
        if kind == "either_day":
            return _either_day(int(g[0]), int(g[2]), int(g[3]), match.group(0))
        if kind == "slash_month":
            return _month(int(g[1]), int(g[0]))
        if kind in ("iso_day", "zh_day"):
            day = date(int(g[0]), int(g[1]), int(g[2]))
            return day, date.fromordinal(day.toordinal() + 1)
        if kind in ("iso_month", "zh_month"):
            return _month(int(g[0]), int(g[1]))
        if kind == "en_day":
            day = date(int(g[2]), _MONTHS[g[0].lower()], int(g[1]))
            return day, date.fromordinal(day.toordinal() + 1)
        if kind == "en_month":
            return _month(int(g[1]), _MONTHS[g[0].lower()])
    except ValueError:  # month 13, February 30th: not a date, left as words
        return None
    if kind == "zh_season":
        return _season(_SEASONS[g[1]], _zh_year(g[0], today), hemisphere)
    if kind == "zh_year":
        year = _zh_year(match.group(0), today)
        return date(year, 1, 1), date(year + 1, 1, 1)
    if kind == "zh_last_month":
        back = 1 if match.group(0).startswith("上") else 0
        return _month(*_months_back(today, back))
    if kind == "en_season":
        if g[0]:
            return _season(_SEASONS[g[0].lower()], int(g[1]), hemisphere)
        return _relative_season(_SEASONS[g[3].lower()], g[2].lower() == "last", today, hemisphere)
    if kind == "en_relative":
        back = 1 if g[0].lower() == "last" else 0
        if g[1].lower() == "year":
            return date(today.year - back, 1, 1), date(today.year - back + 1, 1, 1)
        return _month(*_months_back(today, back))
    if _word_after(match.string, match.end()) in _UNITS or (
            not match.group(0)[0].isalpha() and _word_before(match.string, match.start()) in _NUMBERED):
        return None  # "room 2008", "of 2019 m": a number; "room in 2008" stays a year
    year = int(g[0])
    return date(year, 1, 1), date(year + 1, 1, 1)


def _day(day: date) -> tuple[date, date]:
    return day, date.fromordinal(day.toordinal() + 1)


def _either_day(first: int, second: int, year: int, phrase: str) -> tuple[date, date] | TimeSpan:
    """12/24/2021 (month first) or 24/12/2021 (day first), told apart by the number over 12; when
    both could be the month (03/04/2021), both days, and a reading that says so."""
    if first > 12 or first == second:
        return _day(date(year, second, first))
    if second > 12:
        return _day(date(year, first, second))
    month_first, day_first = date(year, first, second), date(year, second, first)
    parts = tuple(sorted((_day(month_first), _day(day_first))))
    reading = (f"{phrase!r} could be {month_first.day} {month_first:%B} or {day_first.day} {day_first:%B %Y}: both days searched"
               f" (write {month_first.isoformat()} or {day_first.isoformat()} for one)")
    return TimeSpan(parts[0][0], parts[1][1], phrase, parts, reading)


def _month(year: int, month: int) -> tuple[date, date]:
    start = date(year, month, 1)
    return start, date(year + month // 12, month % 12 + 1, 1)


def _months_back(today: date, back: int) -> tuple[int, int]:
    index = today.year * 12 + today.month - 1 - back
    return index // 12, index % 12 + 1


def _zh_year(text: str, today: date) -> int:
    relative = {"去年": 1, "今年": 0, "前年": 2}
    for word, back in relative.items():
        if text.startswith(word):
            return today.year - back
    return int(text[:4])


def _season(first_month: int, year: int, hemisphere: str) -> tuple[date, date]:
    """Three months from ``first_month`` of ``year`` (winter 2021 = Dec 2021 to Feb 2022), hemisphere-shifted."""
    if hemisphere == "south":
        first_month = (first_month + 5) % 12 + 1  # southern summer 2021: December 2021 to February 2022
    start = date(year, first_month, 1)
    index = year * 12 + first_month - 1 + 3
    return start, date(index // 12, index % 12 + 1, 1)


def _relative_season(first_month: int, last: bool, today: date, hemisphere: str) -> tuple[date, date]:
    """This season: the one of ``today``'s year; last season: the latest one that has ended by ``today``."""
    year = today.year
    if not last:
        return _season(first_month, year, hemisphere)
    while _season(first_month, year, hemisphere)[1] > today:
        year -= 1
    return _season(first_month, year, hemisphere)
