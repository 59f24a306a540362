"""The snapshot's word search: which rows' words hold a query's terms, and their BM25, read
from ``words.bin`` (each row's words folded, one after another; ``words_offsets.npy`` bounds
them) with numpy, without LanceDB.

A term matches as ``text.words.contains_terms`` says (in one piece; a spaced-script word at a
word's start) and is counted as ``text.words.term_counts`` counts it, so both give the same
rows and scores as the LanceDB path's check of its candidates (``store.fulltext``).

>>> import numpy as np
>>> blob = np.frombuffer("a red bus\\nscar and car\\n会议纪要 car\\n".encode(), np.uint8)
>>> bounds = np.array([0, 10, 23, len(blob)])
>>> term_rows(blob, bounds, "car")
(array([1, 2]), array([1, 1]))
"""

from __future__ import annotations

import re

import numpy as np

from ..text.words import bm25, ends_word, plural_ending, starts_word, word_start_char

__all__ = ["term_rows", "rank_rows", "best", "build_grams", "GramIndex", "indexed_term_rows", "GRAM_INDEX_MAX_BYTES"]

_CHUNK = 1 << 24  # bytes compared at once: the scan's memory stays at a few times this
_FEW = 20_000  # matches read one by one before the numpy scan takes over


def term_rows(blob: np.ndarray, bounds: np.ndarray, term: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, counts): the rows whose words hold ``term``, ascending, and how often each does."""
    starts = _matches(blob, term.encode("utf-8"))
    if len(starts) and starts_word(term):
        starts = starts[_word_starts(blob, starts)]
    if len(starts) and ends_word(term):
        starts = starts[_word_ends(blob, starts + len(term.encode("utf-8")), plural_ending(term))]
    rows = np.searchsorted(bounds, starts, side="right") - 1
    if len(starts) and _overlaps(term.encode("utf-8")):  # "aa" in "aaaa" counts twice, as re.finditer does
        starts, rows = _without_overlaps(starts, rows, len(term.encode("utf-8")))
    if not len(rows):
        return rows.astype(np.int64), np.zeros(0, dtype=np.int64)
    first = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]]))  # rows ascend: runs, no sort
    return rows[first].astype(np.int64), np.diff(np.append(first, len(rows)))


def rank_rows(blob: np.ndarray, bounds: np.ndarray, terms: list[str], items: int,
              grams: GramIndex | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, BM25) of the rows whose words hold every term, in row order (``best`` orders
    them). ``items``: how many rows have words; ``grams``: the snapshot's gram index, if it has
    one. The longest term is read first, and the search ends as soon as no row holds every
    term read so far."""
    empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    if not terms or not items or not blob.size:
        return empty
    held: np.ndarray | None = None
    found = []
    for term in sorted(dict.fromkeys(terms), key=len, reverse=True):
        rows, counts = indexed_term_rows(blob, bounds, term, grams)
        held = rows if held is None else np.intersect1d(held, rows, assume_unique=True)
        if not len(held):
            return empty
        found.append((rows, counts))
    assert held is not None
    lengths = (bounds[held + 1] - bounds[held]).astype(np.float64)
    mean = float(bounds[-1]) / items
    scores = np.zeros(len(held))
    for rows, counts in found:
        mine = counts if len(rows) == len(held) else counts[np.searchsorted(rows, held)]  # (equal: the same rows)
        scores += bm25(mine.astype(np.float64), lengths, len(rows), items, mean)
    return held, scores


def best(rows: np.ndarray, scores: np.ndarray, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``rank_rows``' rows best first (ties by row), only the first ``limit`` of them when given."""
    if limit is not None and limit < len(rows):
        top = np.argpartition(-scores, limit - 1)[:limit] if limit > 0 else np.zeros(0, dtype=np.int64)
        rows, scores = rows[top], scores[top]
    order = np.lexsort((rows, -scores))
    return rows[order], scores[order]


def _matches(blob: np.ndarray, needle: bytes) -> np.ndarray:
    """Every position where ``needle`` starts in ``blob`` (overlapping ones too), ascending.

    A needle that cannot overlap itself is searched by ``re`` (C's fast search: a rare word in
    10 MB of words takes about a millisecond), up to ``_FEW`` matches; a common one, or one that
    can overlap itself, by numpy over the whole blob (about 10 ms per 10 MB, whatever it finds)."""
    size, width = blob.size, len(needle)
    if not width or width > size:
        return np.zeros(0, dtype=np.int64)
    if not _overlaps(needle):
        found = []
        for match in re.finditer(re.escape(needle), blob):
            found.append(match.start())
            if len(found) > _FEW:
                break
        else:
            return np.asarray(found, dtype=np.int64)
    anchor = min(range(width), key=lambda k: _COMMON[needle[k]])  # the rarest byte: fewest positions to check
    found = []
    for start in range(0, size - width + 1, _CHUNK):
        end = min(start + _CHUNK, size - width + 1)  # positions start..end-1 are tested here
        window = blob[start + anchor:end + anchor]
        at = np.flatnonzero(window == needle[anchor]) + start
        for k in range(width):
            if k != anchor and len(at):
                at = at[blob[at + k] == needle[k]]
        found.append(at)
    return np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)


_COMMON = np.full(256, 5.0)  # how common a byte is in folded words, roughly: lower is rarer
_COMMON[0x80:0xC0] = 1.0  # a CJK character's last bytes spread over 64 values
_COMMON[0xC0:] = 20.0  # its first byte is one of a few
for _rank, _letter in enumerate("etaoinsrhldcumfpgwybvkxjqz"):
    _COMMON[ord(_letter)] = 12.0 - _rank * 0.4
_COMMON[48:58] = 4.0

_ASCII_WORD = np.zeros(256, dtype=bool)
_ASCII_WORD[[*range(48, 58), *range(65, 91), *range(97, 123)]] = True  # letters and digits: no word starts after


def _word_starts(blob: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Which of ``starts`` begin a word (``_word_start``, in bulk: only a match after a
    non-ASCII byte is decoded)."""
    before = np.where(starts > 0, blob[np.maximum(starts - 1, 0)], 10)
    keep = ~_ASCII_WORD[before]
    wide = np.flatnonzero(before >= 0x80)
    for i in wide:
        keep[i] = _word_start(blob, int(starts[i]))
    return keep


def _word_ends(blob: np.ndarray, ends: np.ndarray, plural: bool) -> np.ndarray:
    """Which matches ending at ``ends`` end a word there, or (``plural``) after "s" or "es"
    (``text.words``' rule): the character after is not a letter or digit."""
    keep = _ends_here(blob, ends)
    if plural:
        size = blob.size
        at = np.minimum(ends, size - 1)
        s_here = (ends < size) & (blob[at] == ord("s"))
        keep |= s_here & _ends_here(blob, ends + 1)
        at1 = np.minimum(ends + 1, size - 1)
        es_here = (ends + 1 < size) & (blob[at] == ord("e")) & (blob[at1] == ord("s"))
        keep |= es_here & _ends_here(blob, ends + 2)
    return keep


def _ends_here(blob: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether no letter or digit follows at each of ``ends`` (the end of the blob counts as none)."""
    size = blob.size
    after = np.where(ends < size, blob[np.minimum(ends, size - 1)], 10)
    keep = ~_ASCII_WORD[after]
    for i in np.flatnonzero(after >= 0x80):  # a non-ASCII character: decoded, as the rule reads it
        end = int(ends[i])
        char = bytes(blob[end:end + 4]).decode("utf-8", "ignore")[:1]
        keep[i] = word_start_char(char) if char else True
    return keep


def _word_start(blob: np.ndarray, at: int) -> bool:
    """Whether the character before ``at`` lets a word start there (``text.words.word_start_char``)."""
    if at == 0:
        return True
    begin = at - 1
    while begin > 0 and at - begin < 4 and 0x80 <= blob[begin] < 0xC0:  # back to the character's first byte
        begin -= 1
    char = bytes(blob[begin:at]).decode("utf-8", "replace")
    return word_start_char(char[-1]) if char else True


def _overlaps(needle: bytes) -> bool:
    return any(needle[:k] == needle[-k:] for k in range(1, len(needle)))


def _without_overlaps(starts: np.ndarray, rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    kept, last_end, last_row = [], -1, -1
    for i, (at, row) in enumerate(zip(starts.tolist(), rows.tolist())):
        if row != last_row or at >= last_end:
            kept.append(i)
            last_end, last_row = at + width, row
    return starts[kept], rows[kept]


# ---------------------------------------------------------------- the 3-byte gram index
GRAM_INDEX_MAX_BYTES = 64 << 20  # words.bin past this is scanned whole (the build needs ~8 bytes a byte)


def build_grams(blob: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grams, offsets, postings): every 3-byte run of ``blob`` inside one row's words (a
    ``uint32``, ascending), and for gram ``g`` the rows that hold it, ascending, at
    ``postings[offsets[g]:offsets[g + 1]]``. A term's rows are among the rows holding all its grams."""
    size = blob.size
    if size < 3:
        return np.zeros(0, np.uint32), np.zeros(1, np.int64), np.zeros(0, np.uint32)
    b = blob.astype(np.uint32)
    codes = (b[:-2] << 16) | (b[1:-1] << 8) | b[2:]
    rows = np.repeat(np.arange(len(bounds) - 1, dtype=np.uint64), np.diff(bounds))[: size - 2]
    inside = (blob[:-2] != 10) & (blob[1:-1] != 10) & (blob[2:] != 10)  # a gram across a row's end is none
    keys = np.unique((codes[inside].astype(np.uint64) << np.uint64(32)) | rows[inside])
    grams_all = (keys >> np.uint64(32)).astype(np.uint32)
    grams, starts = np.unique(grams_all, return_index=True)
    offsets = np.append(starts, len(keys)).astype(np.int64)
    return grams, offsets, (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)


class GramIndex:
    """``build_grams``'s arrays, read: the candidate rows of a needle."""

    def __init__(self, grams: np.ndarray, offsets: np.ndarray, postings: np.ndarray) -> None:
        self.grams, self.offsets, self.postings = grams, offsets, postings

    def candidates(self, needle: bytes) -> np.ndarray | None:
        """The rows holding every 3-byte gram of ``needle`` (a superset of the rows holding it);
        None for a needle under 3 bytes (the caller scans)."""
        if len(needle) < 3:
            return None
        codes = sorted({(needle[i] << 16) | (needle[i + 1] << 8) | needle[i + 2] for i in range(len(needle) - 2)})
        at = np.searchsorted(self.grams, np.asarray(codes, dtype=np.uint32))
        lists = []
        for code, i in zip(codes, at):
            if i >= len(self.grams) or int(self.grams[i]) != code:
                return np.zeros(0, dtype=np.int64)
            lists.append(self.postings[int(self.offsets[i]):int(self.offsets[i + 1])])
        lists.sort(key=len)
        held = np.asarray(lists[0])
        for other in lists[1:4]:  # the rarest few narrow it; the exact check does the rest
            held = np.intersect1d(held, other, assume_unique=True)
            if not len(held):
                break
        return held.astype(np.int64)


def indexed_term_rows(blob: np.ndarray, bounds: np.ndarray, term: str,
                      grams: GramIndex | None) -> tuple[np.ndarray, np.ndarray]:
    """``term_rows``, reading only the candidate rows of the gram index where it has some and
    they are a small part of the words; the same rows and counts (the rows' words are gathered,
    in order, each still ending in its line end, and searched as a blob of their own)."""
    found = grams.candidates(term.encode("utf-8")) if grams is not None else None
    if found is None:
        return term_rows(blob, bounds, term)
    if not len(found):
        return found, np.zeros(0, dtype=np.int64)
    lengths = bounds[found + 1] - bounds[found]
    if int(lengths.sum()) * 4 > blob.size:  # most of the words: one scan of them all is cheaper
        return term_rows(blob, bounds, term)
    sub_bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    picks = np.repeat(bounds[found] - sub_bounds[:-1], lengths) + np.arange(int(sub_bounds[-1]))
    rows, counts = term_rows(np.asarray(blob[picks]), sub_bounds, term)
    return found[rows], counts
