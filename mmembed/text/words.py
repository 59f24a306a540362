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
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from .paths import path_text

__all__ = ["WORD_COLUMNS", "item_words", "query_terms", "fold", "contains_terms", "starts_word", "term_counts",
           "bm25", "word_length"]

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
    """Every term stands in ``words`` in one piece (case and accents folded): a word of a spaced
    script as a whole word, or with a plural ending ("car" finds "car" and "cars", not "scar",
    "cargo" or "Carol"; a term of one or two letters only as a word); a code or number at the
    start of a word and in part ("KX-482" finds "KX-482-PD"); one in Chinese or Japanese anywhere
    ("会议纪要" in "第三季度会议纪要")."""
    if not words or not terms:
        return False
    low = fold(words)
    return all(_term_pattern(t).search(low) for t in terms)


def starts_word(term: str) -> bool:
    """Whether ``term`` must stand at the start of a word to match (``contains_terms``): not for
    Chinese or Japanese, a code or number (matched in part, even run into a word by OCR), or a
    term that begins with punctuation."""
    unspaced = unicodedata.category(term[0]) == "Lo" and not term[0].isascii()
    code = any(c.isdigit() for c in term)
    return not (unspaced or code or not term[0].isalnum())


def ends_word(term: str) -> bool:
    """Whether ``term`` must also end a word (``contains_terms``), allowing a plural ending
    (``plural_ending``): a word of a spaced script, not a code, a number or a Chinese run."""
    return starts_word(term)


def plural_ending(term: str) -> bool:
    """Whether ``term`` may be followed by "s" or "es" and still end its word: from three letters
    on ("bus" -> "buses"; "a" is not found in "as")."""
    return len(term) >= 3


@functools.lru_cache(maxsize=256)
def _term_pattern(term: str) -> re.Pattern[str]:
    if not starts_word(term):
        return re.compile(re.escape(term))
    ending = r"(?:e?s)?" if plural_ending(term) else ""
    return re.compile(r"(?<![^\W_])" + re.escape(term) + (rf"(?={ending}(?![^\W_]))" if ends_word(term) else ""))


def word_start_char(char: str) -> bool:
    """Whether a term that ``starts_word`` may follow ``char`` (anything but a letter or digit)."""
    return _NOT_WORD_CHAR.match(char) is not None


_NOT_WORD_CHAR = re.compile(r"[\W_]")

# The words' own ranking (``bm25``): Okapi BM25 over the query's terms, each term counted where
# it stands in one piece (``contains_terms``), an item's length its folded words in UTF-8 bytes.
# k1 and b are the usual defaults (Robertson and Zaragoza, 2009; Lucene's and Tantivy's).
BM25_K1 = 1.2
BM25_B = 0.75


def word_length(folded: str) -> int:
    """An item's length for ``bm25``: its folded words in UTF-8 bytes and the line end (as
    ``words.bin`` stores them, ``store.snapshot``)."""
    return len(folded.encode("utf-8")) + 1 if folded else 0


def term_counts(folded: str, term: str) -> int:
    """How often ``term`` stands in ``folded`` words in one piece (``contains_terms``'s rule)."""
    return sum(1 for _ in _term_pattern(term).finditer(folded))


def bm25(counts: Any, lengths: Any, found_in: int, items: int, mean_length: float) -> Any:
    """One term's BM25 for items where it stands ``counts`` times, items of ``lengths``:
    ``found_in`` of the ``items`` with words hold it, whose mean length is ``mean_length``.
    Works on numbers and on numpy arrays alike."""
    idf = math.log(1.0 + (items - found_in + 0.5) / (found_in + 0.5))
    return idf * counts * (BM25_K1 + 1) / (counts + BM25_K1 * (1 - BM25_B + BM25_B * lengths / max(mean_length, 1.0)))
