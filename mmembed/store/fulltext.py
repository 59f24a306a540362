"""The full-text side of a table: the ``words`` column (``text.words.item_words``), LanceDB's
native FTS index over it, and the word search itself.

The index: one FTS index on ``words``, n-grams of 2-3 characters, lower case, ASCII folding, no
stemming and no stop words (measured in ``benchmarks/fts.py``, docs/ocr-design.md): Chinese
without spaces ("会议纪要" in "第三季度会议纪要") and parts of codes ("KX-482" in
"Plate KX-482-PD") are found. An AND over n-grams also returns rows that hold the grams apart,
so every candidate is checked in Python: each term of the query must stand in the row's words in
one piece (``contains_terms``). LanceDB searches rows written after the index was built without
it (flat), so results stay complete between ``optimize`` calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from ..text.words import WORD_COLUMNS, contains_terms, item_words, query_terms
from .table import Store, _errors, filtered_rows

__all__ = ["WORDS", "FTS_OPTIONS", "fill_words", "recompose_words", "has_words", "fts_index", "ensure_fts_index",
           "word_search", "contains_terms"]

log = logging.getLogger("mmembed")
WORDS = "words"
FTS_OPTIONS: dict[str, Any] = dict(base_tokenizer="ngram", ngram_min_length=2, ngram_max_length=3, lower_case=True,
                                   stem=False, remove_stop_words=False, ascii_folding=True, with_position=False)
_BATCH = 4096  # rows recomposed per commit
CANDIDATES = 200  # FTS candidates checked per query (at least 8 x limit)


def _word_sources(store: Store) -> list[str]:
    have = set(store.table.schema.names)
    return [c for c in ("id", "path", *WORD_COLUMNS) if c in have]


def recompose_words(store: Store, where: str | None = None, ids: Iterable[str] | None = None) -> int:
    """Compose ``words`` again (``item_words``) for the rows matching ``where`` (all rows when
    None), or for ``ids``; adds the column to an older table. Returns how many rows were written.
    A writer that changes a word column (tags, OCR text, places) calls this for its rows."""
    store.ensure_columns({WORDS: pa.string()})
    if ids is not None:
        wanted = list(ids)
        rows = []
        for start in range(0, len(wanted), 512):
            chunk = ", ".join("'" + i.replace("'", "''") + "'" for i in wanted[start:start + 512])
            rows += store.read_columns(_word_sources(store), f"id IN ({chunk})").to_pylist()
    else:
        rows = store.read_columns(_word_sources(store), where).to_pylist()
    written = 0
    for start in range(0, len(rows), _BATCH):
        chunk = rows[start:start + _BATCH]
        store.update_columns({"id": [r["id"] for r in chunk], WORDS: [item_words(r) for r in chunk]})
        written += len(chunk)
    return written


def fill_words(store: Store) -> int:
    """``words`` for the rows that have none yet (a table built before the column, rows written
    by an older version): no image is read or encoded. Returns how many rows were filled."""
    if WORDS in store.table.schema.names and not store.count_where(f"{WORDS} IS NULL"):
        return 0
    return recompose_words(store, f"{WORDS} IS NULL" if WORDS in store.table.schema.names else None)


_HAS_WORDS: dict[tuple[str, str], tuple[int, bool]] = {}  # (uri, table) -> (version, answer)


def has_words(store: Store) -> bool:
    """Whether any row has words to search (cached per table version)."""
    if not store.exists() or WORDS not in store.table.schema.names:
        return False
    with _errors(f"cannot read table '{store.table_name}'"):
        version = int(store.table.version)
    key = (store.uri, store.table_name)
    cached = _HAS_WORDS.get(key)
    if cached is None or cached[0] != version:
        cached = (version, store.count_where(f"{WORDS} IS NOT NULL AND {WORDS} != ''") > 0)
        _HAS_WORDS[key] = cached
    return cached[1]


def fts_index(store: Store) -> str | None:
    """The name of the FTS index on ``words``, or None."""
    with _errors(f"cannot list indices of table '{store.table_name}'"):
        found = store.table.list_indices()
    for idx in found:
        if list(getattr(idx, "columns", [])) == [WORDS] and "FTS" in str(getattr(idx, "index_type", "")).upper():
            return str(idx.name)
    return None


def ensure_fts_index(store: Store) -> bool:
    """Build the FTS index on ``words`` when missing; when present, bring rows written since into
    it (``optimize``). True when the index was built or updated."""
    from lancedb.index import FTS

    if WORDS not in store.table.schema.names or not store.count():
        return False
    if fts_index(store) is None:
        with _errors(f"cannot build the full-text index of table '{store.table_name}'", write=True):
            store.table.create_index(WORDS, config=FTS(**FTS_OPTIONS))
        return True
    stats = None
    try:
        stats = store.table.index_stats(fts_index(store))
    except Exception:  # noqa: BLE001 - stats are a hint only
        pass
    if stats is not None and not getattr(stats, "num_unindexed_rows", 0):
        return False
    with _errors(f"cannot update the full-text index of table '{store.table_name}'", write=True):
        store.table.optimize()
    return True


def word_search(store: Store, text: str, *, limit: int, where: str | None = None,
                columns: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows whose words hold every term of ``text``, best BM25 first, each with ``words_score``
    (BM25) and ``columns`` (default: all). ``where`` filters first (prefilter), as a vector
    search's does."""
    from lancedb.query import FullTextOperator, MatchQuery

    terms = query_terms(text)
    grams = " ".join(t for t in terms if len(t) >= FTS_OPTIONS["ngram_min_length"])
    if not grams or WORDS not in store.table.schema.names:
        return []
    query = store.table.search(MatchQuery(grams, WORDS, operator=FullTextOperator.AND), query_type="fts")
    wanted = columns if columns is not None else [c for c in store.table.schema.names]
    query = query.select(list(dict.fromkeys([*wanted, WORDS, "_score"]))).limit(max(CANDIDATES, 8 * limit))
    rows = filtered_rows(query, where, "full-text search failed")
    kept = []
    for row in rows:
        if contains_terms(row.get(WORDS), terms):
            row["words_score"] = float(row.pop("_score"))
            kept.append(row)
    return kept[:limit]
