"""Every word an item has, in one string: the full-text index's column (``words``).

>>> item_words({"texts": ["a red bus"], "ocr_text": "Harbor St Bakery", "place_names": ["Kyoto", "京都"]})
'a red bus\\nHarbor St Bakery\\nKyoto 京都'

The file's own name and folder join too (``path``: "trips/oslo/boarding_pass.png" gives
"oslo boarding pass"), as ``text.paths.path_text`` reads them. ``query_terms`` and ``fold`` are
the query side: what a search's words must hold, compared as the index compares them (lower
case, accents folded).
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from .paths import path_text

__all__ = ["WORD_COLUMNS", "item_words", "query_terms", "fold", "contains_terms"]

# The row columns whose words join ``words`` (a writer that changes one of them recomposes it).
WORD_COLUMNS = ("texts", "embedded_texts", "manifest_texts", "path_words", "ocr_text", "tags", "place_names",
                "place_city", "place_region", "place_country")


def item_words(row: Mapping[str, Any]) -> str:
    """The item's words from a row (or a dict of the same keys): each source on its own line,
    duplicates dropped, order kept, the file's name and folder last; ``''`` when there are none.
    A line that ends in a hyphen joins the next ("KX-" / "482-PD" -> "KX-482-PD"), as a phone
    screenshot wraps a code."""
    seen: set[str] = set()
    lines: list[str] = []
    for column in WORD_COLUMNS:
        for text in _strings(row.get(column)):
            if text not in seen:
                seen.add(text)
                lines.append(text)
    lines = _join_places(lines, row)
    named = _path_words(row.get("path"))
    if named and named not in seen:
        lines.append(named)
    return "\n".join(lines)


def _path_words(path: Any) -> str:
    """Words of the file's name and of the folder holding it (not the whole path: folders far
    up, such as the user's home, name no picture)."""
    if not isinstance(path, str) or not path or "://" in path and path.rstrip("/").count("/") < 3:
        return ""
    path = path.split("://", 1)[-1]
    folder = os.path.dirname(os.path.dirname(path)) or os.sep
    try:
        return path_text(path, folder)
    except (ValueError, OSError):
        return ""


def fold(text: str) -> str:
    """``text`` as the full-text index compares it: case-folded, accents dropped ("Café" -> "cafe")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def query_terms(text: str | None) -> list[str]:
    """The terms a search's words must hold, folded: the query split at spaces, punctuation at
    either end of a term dropped ("Wi-Fi password?" -> ["wi-fi", "password"]). Chinese needs no
    spaces: "会议纪要" is one term, found inside "第三季度会议纪要"."""
    terms = []
    for raw in (text or "").split():
        term = _strip_punctuation(fold(raw))
        if term and term not in terms:
            terms.append(term)
    return terms


def _strip_punctuation(term: str) -> str:
    start, end = 0, len(term)
    while start < end and unicodedata.category(term[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(term[end - 1])[0] in "PS":
        end -= 1
    return term[start:end]


_WRAPPED = re.compile(r"(?<=\w)-\n(?=\w)")  # "KX-\n482-PD": a code or word wrapped at its hyphen


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = _WRAPPED.sub("-", value.strip())
        return [value] if value else []
    if isinstance(value, Iterable):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    return [str(value)]


def _join_places(lines: list[str], row: Mapping[str, Any]) -> list[str]:
    """Place names sit on one line ("Kyoto 京都"), as a person would write them."""
    names = set(_strings(row.get("place_names"))) | {s for c in ("place_city", "place_region", "place_country")
                                                      for s in _strings(row.get(c))}
    if not names:
        return lines
    kept = [line for line in lines if line not in names]
    return kept + [" ".join(line for line in lines if line in names)]


def contains_terms(words: str | None, terms: list[str]) -> bool:
    """Every term stands in ``words`` in one piece (case and accents folded), a term that begins
    with a letter or digit of a spaced script at the start of a word ("car" finds "cars", not
    "scar"; "KX-482" finds "KX-482-PD"); one in Chinese or Japanese anywhere ("会议纪要" in
    "第三季度会议纪要")."""
    if not words or not terms:
        return False
    low = fold(words)
    return all(_term_pattern(t).search(low) for t in terms)


@functools.lru_cache(maxsize=256)
def _term_pattern(term: str) -> re.Pattern[str]:
    unspaced = unicodedata.category(term[0]) == "Lo" and not term[0].isascii()
    code = any(c.isdigit() for c in term)  # a code or number matches in part, even run into a word by OCR
    return re.compile(("" if unspaced or code or not term[0].isalnum() else r"(?<![^\W_])") + re.escape(term))
