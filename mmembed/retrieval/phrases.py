"""One search box: a query split into the words for CLIP and filters on place and time taken.

``parse_query("a dog in Chicago last summer", places=present, today=...)`` gives
``ParsedQuery(text="a dog", place=PlaceFilter(...), taken_after=..., taken_before=..., notes=[...])``.
Places are matched against ``places`` (ideally those present in the table) by any name they carry,
English or Chinese/Japanese/Korean, accents and case ignored; country names match too. A Latin-script
name counts only after "in/at/near/from/around" or when written with a capital, so "a nice view"
never filters on Nice. A capitalised word after "in" that names no place is matched fuzzily
("Barcelna" -> Barcelona, with a note) or left as words with a note; it is never dropped.
The first word of a query is capitalised anyway, so there a word that is no place of the library
counts only when a date follows it ("Kyoto in December 2021", "Madird in April 2015"): then a near
spelling of a library place, or a city of the world of at least ``_KNOWN_CITY`` people ("Dogs in 2019",
"Wedding in 2019" stay words: no such city). The Chinese/Japanese filler around a place or a date
(的照片, の写真) is dropped. A query without place or time words comes back untouched.

The filter columns this module proposes for the table (docs/where-design.md): ``place_id`` (GeoNames
id, int64), ``place_city``, ``place_region``, ``place_country``, ``place_country_code``, ``place_names``,
``gps_lat``, ``gps_lon``, ``gps_alt`` and the existing ``taken_ns`` (camera local time read as UTC, ns).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from ..errors import ConfigError, QueryError
from ..text.places import Place, fold
from .when import TimeSpan, find_time_phrases, month_without_year, year_as_words

__all__ = ["PlaceFilter", "ParsedQuery", "parse_query", "PlaceNames"]

_PREPOSITIONS = ("in", "at", "near", "from", "around", "of")
_FILLER = {"photo", "photos", "picture", "pictures", "pics", "pic", "image", "images", "shots", "taken",
           "照片", "相片", "图片", "圖片", "的", "在", "拍的", "拍摄的",
           "写真", "画像", "の", "で", "撮った", "撮影した"}  # fmt: skip
_WORD = re.compile(r"[^\W\d_](?:[\w'’.-]*\w)?|\d+", re.UNICODE)
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_MAX_WORDS = 4  # the longest place name matched, in words ("Rio de Janeiro", "Salt Lake City")
# a world city named first in the query (no preposition) must be this big: "Kyoto in 2008" is Kyoto,
# "Wedding in 2019" (Wedding, Berlin: 85,000) and "Sunset 2019" (Sunset, Florida) stay words
_KNOWN_CITY = 500_000


@dataclass(frozen=True)
class PlaceFilter:
    """The place a query named: the towns it may mean, or a whole region or country."""

    phrase: str  # as written in the query, e.g. "Paris" or "巴塞罗那"
    places: tuple[Place, ...] = ()  # the towns it names (several: ambiguous, all are searched)
    country_code: str | None = None  # set when the phrase named a country or a region, e.g. "JP"
    fuzzy: bool = False  # matched a near spelling, not the name itself
    region: str | None = None  # set when the phrase named a region (admin1), e.g. "California"

    def label(self) -> str:
        """``"Paris, France"``; ``"Paris (2 places)"``; ``"Japan"``."""
        if self.region:
            return f"{self.region}, {self.country_code}"
        if self.country_code:
            return self.phrase
        if len(self.places) == 1:
            return _place_label(self.places[0])
        return f"{self.places[0].city} ({len(self.places)} places)"


@dataclass
class ParsedQuery:
    """What one search box said: words for the encoder, and filters."""

    text: str  # the words left for CLIP ("" when the query was only place and time)
    place: PlaceFilter | None = None
    taken_after: datetime | None = None  # inclusive; a naive local time, as taken_ns records it
    taken_before: datetime | None = None  # exclusive
    notes: list[str] = field(default_factory=list)  # one line each, for a ``note:`` line and the web chips
    taken_either: tuple[tuple[datetime, datetime], ...] = ()  # "2008 or 2015": these spans only, within after/before

    def where_sql(self) -> str | None:
        """A LanceDB SQL filter for the place and time parsed, or None when there is none.

        >>> ParsedQuery("", taken_after=datetime(2021, 12, 1), taken_before=datetime(2022, 1, 1)).where_sql()
        'taken_ns >= 1638316800000000000 AND taken_ns < 1640995200000000000'
        """
        parts: list[str] = []
        if self.place is not None:
            parts.append(_place_sql(self.place))
        if self.taken_after is not None:
            parts.append(f"taken_ns >= {_ns(self.taken_after)}")
        if self.taken_before is not None:
            parts.append(f"taken_ns < {_ns(self.taken_before)}")
        if len(self.taken_either) > 1:
            parts.append("(" + " OR ".join(f"taken_ns >= {_ns(a)} AND taken_ns < {_ns(b)}" for a, b in self.taken_either) + ")")
        return " AND ".join(parts) or None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary (``--json``, the web app's chips)."""
        place = None
        if self.place is not None:
            place = {"phrase": self.place.phrase, "label": self.place.label(), "country_code": self.place.country_code,
                     "region": self.place.region,
                     "fuzzy": self.place.fuzzy, "place_ids": [p.geonameid for p in self.place.places]}
        either = {"taken_either": [[a.date().isoformat(), b.date().isoformat()] for a, b in self.taken_either]}
        return {"text": self.text, "place": place,
                "taken_after": self.taken_after.date().isoformat() if self.taken_after else None,
                "taken_before": self.taken_before.date().isoformat() if self.taken_before else None,
                "notes": list(self.notes), **(either if self.taken_either else {})}  # fmt: skip


class PlaceNames:
    """The names to look for in queries, built once from a list of places (reuse it across queries).

    ``countries`` (ISO code -> name, e.g. ``gazetteer().countries()``) adds countries that have no
    place in the list; by default only the countries of the places given are matched.
    """

    def __init__(self, places: Sequence[Place], countries: dict[str, str] | None = None) -> None:
        self.by_name: dict[str, list[Place]] = {}
        places = list({p.geonameid: p for p in places}.values())
        for place in sorted(places, key=lambda p: -p.population):
            for name in dict.fromkeys(fold(n) for n in (place.city, *place.names)):
                self.by_name.setdefault(name, []).append(place)
        present = {p.country_code: p.country for p in places}
        self.countries = {fold(name): code for code, name in {**present, **(countries or {})}.items()}
        self.regions = {fold(p.region): (p.region, p.country_code) for p in places if p.region}
        self.latin_by_length: dict[int, list[str]] = {}
        for name in [*self.by_name, *self.countries, *self.regions]:
            if not _CJK.search(name):
                self.latin_by_length.setdefault(len(name), []).append(name)
        cjk = {n for n in [*self.by_name, *self.countries] if _CJK.search(n)}
        # as written too: folding strips the voicing marks of kana (シドニー -> シトニー), which the query keeps
        cjk |= {n for p in places for n in p.names if _CJK.search(n)}
        self.cjk, self.cjk_lengths = cjk, sorted({len(n) for n in cjk}, reverse=True)

    def near_spellings(self, word: str) -> list[str]:
        """Latin names within two letters of ``word``'s length: the only ones a 0.8 ratio can reach."""
        return [n for size in range(len(word) - 2, len(word) + 3) for n in self.latin_by_length.get(size, [])]

    def cjk_in(self, text: str) -> tuple[int, str] | None:
        """The longest CJK name in ``text`` (CJK has no spaces), leftmost first, with where it starts."""
        if not _CJK.search(text):
            return None
        for size in self.cjk_lengths:
            for at in range(len(text) - size + 1):
                if text[at : at + size] in self.cjk:
                    return at, text[at : at + size]
        return None


def parse_query(query: str, places: Sequence[Place] | PlaceNames = (), today: date | None = None,
                hemisphere: str = "north", world: Callable[[str], Sequence[Place]] | None = None) -> ParsedQuery:  # fmt: skip
    """Split ``query`` into words and filters; ``today`` anchors "last summer" (default: today).

    ``world`` (e.g. ``gazetteer().find``) names the places absent from ``places``: "photos in Lisbon"
    with no photo from Lisbon then filters on Lisbon and finds nothing, with a note saying so,
    instead of searching the word "Lisbon".

    >>> parse_query("a dog", []).text
    'a dog'
    """
    if hemisphere not in ("north", "south"):
        raise ConfigError(f"hemisphere {hemisphere!r}: choose north or south")
    names = places if isinstance(places, PlaceNames) else PlaceNames(places)
    rest, spans = find_time_phrases(query, today or date.today(), hemisphere)
    notes: list[str] = []
    after, before, either = _intersect(spans, notes)
    rest, place = _find_place(rest, names, notes, world, query)
    bare = month_without_year(rest)
    if bare:
        notes.append(f"{bare!r} names no year: searched as words (add one, e.g. '{bare} 2021')")
    number = year_as_words(rest)
    if number:
        year = next(w for w in number.split() if w.isdigit())
        notes.append(f"{number!r} read as words, not as a year (write 'in {year}' for the year)")
    if not spans and place is None:
        return ParsedQuery(query, notes=notes)
    return ParsedQuery(_leftover_words(rest), place, after, before, notes, either)


def _intersect(spans: list[TimeSpan], notes: list[str]) -> tuple[datetime | None, datetime | None,
                                                                tuple[tuple[datetime, datetime], ...]]:
    """The dates every phrase allows: the first and last day, and the separate spans when a phrase
    gave alternatives ("2008 or 2015", "03/04/2021")."""
    if not spans:
        return None, None, ()
    notes.extend(s.reading for s in spans if s.reading)
    pieces = list(spans[0].pieces())
    for span in spans[1:]:
        pieces = [(max(a, c), min(b, d)) for a, b in pieces for c, d in span.pieces() if max(a, c) < min(b, d)]
    joined: list[tuple[date, date]] = []
    for a, b in sorted(pieces):  # "2019 or 2020" is one span, 2019-01-01 to 2021-01-01
        if joined and a <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(b, joined[-1][1]))
        else:
            joined.append((a, b))
    if not joined:
        notes.append("the dates named do not overlap (" + "; ".join(s.phrase for s in spans) + "): nothing can match")
        return _midnight(max(s.start for s in spans)), _midnight(min(s.end for s in spans)), ()
    said = " or ".join(f"{a.isoformat()} to {b.isoformat()}" for a, b in joined)
    notes.append("taken " + "; ".join(s.phrase for s in spans) + f": {said} (exclusive)")
    either = tuple((_midnight(a), _midnight(b)) for a, b in joined) if len(joined) > 1 else ()
    return _midnight(joined[0][0]), _midnight(joined[-1][1]), either


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def _find_place(text: str, names: PlaceNames, notes: list[str], world: Callable[[str], Sequence[Place]] | None = None,
                query: str | None = None) -> tuple[str, PlaceFilter | None]:
    found = names.cjk_in(text)
    if found is not None:
        at, cjk = found
        start, end = at, at + len(cjk)
        start -= 1 if text[:start].endswith(("在", "于")) else 0  # 在京都: "in Kyoto"
        end += 1 if text[end:].startswith(("的", "の", "で")) else 0  # 京都的狗, 京都の犬: "Kyoto's dog"; 京都で: "in Kyoto"
        rest = text[:start] + " " * (end - start) + text[end:]
        return rest, _resolved(cjk, names, notes, fuzzy=False)
    words = list(_WORD.finditer(text))
    for size in range(min(_MAX_WORDS, len(words)), 0, -1):
        for i in range(len(words) - size + 1):
            first, last = words[i], words[i + size - 1]
            phrase = text[first.start() : last.end()]
            after_prep = i > 0 and words[i - 1].group(0).lower() in _PREPOSITIONS
            if not (after_prep or phrase[0].isupper()):  # checked first: folding every phrase was most of a warm parse
                continue
            key = fold(phrase)
            if key in names.by_name or key in names.countries or key in names.regions:
                return _cut(text, first.start(), last.end(), words, i), _resolved(phrase, names, notes, False)
    return _fuzzy_place(text, words, names, notes, world, query)


def _first_place(text: str, query: str, words: list[re.Match[str]], names: PlaceNames, notes: list[str],
                 world: Callable[[str], Sequence[Place]] | None) -> tuple[str, PlaceFilter | None]:
    """The query's first words when capitalised, no library place, and a date follows: a known city of
    the world (``_KNOWN_CITY``; the name as written beats a near spelling), else a near spelling of a
    library place; else no place. The date is checked first: "A dog on the beach" never loads the gazetteer."""
    if not words or not words[0].group(0)[0].isupper() or words[0].group(0).lower() in (*_FILLER, *_PREPOSITIONS):
        return text, None
    for size in range(min(_MAX_WORDS, len(words)), 0, -1):  # "Rio de Janeiro" before "Rio"
        last = words[size - 1]
        if world is None or not last.group(0)[0].isupper() or not _dated_after(query, text, last.end()):
            continue
        phrase = " ".join(w.group(0) for w in words[:size])
        found = list(world(phrase))
        if found and max(p.population for p in found) >= _KNOWN_CITY:
            notes.append(f"no photo in this library was taken in {_place_label(found[0])}"
                         + (f" (or the {len(found) - 1} other places of that name)" if len(found) > 1 else ""))
            return _cut(text, words[0].start(), last.end(), words, 0), PlaceFilter(phrase, tuple(found))
    word = words[0].group(0)
    if _dated_after(query, text, words[0].end()):
        close = difflib.get_close_matches(fold(word), names.near_spellings(fold(word)), n=1, cutoff=0.8)
        if close:
            resolved = _resolved(close[0], names, notes, fuzzy=True)
            notes.insert(len(notes) - 1, f"no place named {word!r}; read as {resolved.label()!r}")
            return _cut(text, words[0].start(), words[0].end(), words, 0), resolved
    return text, None


def _dated_after(query: str, text: str, end: int) -> bool:
    """Whether a time phrase (cut from ``text``, still in ``query``) follows ``end``, a comma allowed between."""
    at = end
    while at < len(query) and query[at] in " ,\t" and text[at] == query[at]:
        at += 1
    return at < len(query) and text[at] == " " and query[at] != " "


def _fuzzy_place(text: str, words: list[re.Match[str]], names: PlaceNames, notes: list[str],
                 world: Callable[[str], Sequence[Place]] | None = None, query: str | None = None) -> tuple[str, PlaceFilter | None]:  # fmt: skip
    """A capitalised word after a preposition that names no place: a near spelling, else a note;
    without one, the query's first word may be a place (``_first_place``)."""
    for i in range(1, len(words)):
        word = words[i].group(0)
        if words[i - 1].group(0).lower() not in _PREPOSITIONS or not word[0].isupper() or word.lower() in _FILLER:
            continue
        close = difflib.get_close_matches(fold(word), names.near_spellings(fold(word)), n=1, cutoff=0.8)
        if close:
            resolved = _resolved(close[0], names, notes, fuzzy=True)
            notes.insert(len(notes) - 1, f"no place named {word!r}; read as {resolved.label()!r}")
            return _cut(text, words[i].start(), words[i].end(), words, i), resolved
        elsewhere = _elsewhere(word, words, i, world)
        if elsewhere is not None:
            phrase, found, end = elsewhere
            notes.append(f"no photo in this library was taken in {_place_label(found[0])}"
                         + (f" (or the {len(found) - 1} other places of that name)" if len(found) > 1 else ""))
            return _cut(text, words[i].start(), end, words, i), PlaceFilter(phrase, tuple(found))
        notes.append(f"no place named {word!r} in this library; searched as words")
        return text, None
    return _first_place(text, query, words, names, notes, world) if query is not None else (text, None)


def _elsewhere(word: str, words: list[re.Match[str]], i: int,
               world: Callable[[str], Sequence[Place]] | None) -> tuple[str, list[Place], int] | None:
    """A place of the world (not of the library) named at ``words[i]``: the longest capitalised run
    ("Rio de Janeiro" is tried before "Rio"), its places and where the phrase ends; None if none."""
    if world is None:
        return None
    for size in range(min(_MAX_WORDS, len(words) - i), 0, -1):
        last = words[i + size - 1]
        if not last.group(0)[0].isupper():
            continue
        phrase = " ".join(w.group(0) for w in words[i : i + size])
        found = list(world(phrase))
        if found:
            return phrase, found, last.end()
    return None


def _resolved(phrase: str, names: PlaceNames, notes: list[str], fuzzy: bool) -> PlaceFilter:
    key = fold(phrase)
    if key in names.regions and key not in names.by_name:
        region, code = names.regions[key]
        notes.append(f"place: the region {region}, {code}")
        return PlaceFilter(phrase, (), code, fuzzy, region)
    if key in names.countries and key not in names.by_name:
        notes.append(f"place: the country {phrase}")
        return PlaceFilter(phrase, (), names.countries[key], fuzzy)
    found = tuple(names.by_name[key])
    if len(found) > 1:
        notes.append(f"{phrase!r} names {len(found)} places, all searched: " + "; ".join(map(_place_label, found)))
    else:
        notes.append(f"place: {_place_label(found[0])}")
    return PlaceFilter(phrase, found, None, fuzzy)


def _cut(text: str, start: int, end: int, words: list[re.Match[str]], i: int) -> str:
    """The text without the place phrase, and without the preposition just before it."""
    if i > 0 and words[i - 1].group(0).lower() in _PREPOSITIONS:
        start = words[i - 1].start()
    return text[:start] + " " * (end - start) + text[end:]


def _leftover_words(text: str) -> str:
    """What is left for CLIP: "" when only filler is left ("photos", "的照片"); dangling prepositions go."""
    words = text.split()
    while words and words[-1].lower() in (*_PREPOSITIONS, "taken", "during", "and"):
        words.pop()
    if all(_is_filler(w) for w in words):
        return ""
    return " ".join(words).strip(" ,")


def _is_filler(word: str) -> bool:
    bare = word.lower().strip(",.")
    if bare in _FILLER or bare in _PREPOSITIONS:
        return True
    if not _CJK.search(word):
        return False
    for filler in sorted(_FILLER, key=len, reverse=True):
        bare = bare.replace(filler, "")
    return not bare.strip()


def _place_label(place: Place) -> str:
    return ", ".join(part for part in (place.city, place.region, place.country) if part)


def _place_sql(place: PlaceFilter) -> str:
    if place.region:
        region = place.region.replace("'", "''")
        return f"place_region = '{region}' AND place_country_code = '{_sql_code(place.country_code or '')}'"
    if place.country_code:
        return f"place_country_code = '{_sql_code(place.country_code)}'"
    ids = ", ".join(str(int(p.geonameid)) for p in place.places)
    return f"place_id IN ({ids})"


def _sql_code(code: str) -> str:
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise QueryError(f"not a country code: {code!r}; rebuild the place columns (mmembed index --refresh)")
    return code


def _ns(moment: datetime) -> int:
    return int(moment.replace(tzinfo=timezone.utc).timestamp()) * 1_000_000_000
