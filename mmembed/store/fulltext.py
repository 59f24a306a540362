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

from ..text.words import WORD_COLUMNS, bm25, contains_terms, fold, item_words, query_terms, term_counts, word_length
from .table import _IN_CHUNK, Store, _chunks, _errors, _sql_list, filtered_rows

__all__ = ["WORDS", "FTS_OPTIONS", "fill_words", "recompose_words", "has_words", "fts_index", "ensure_fts_index",
           "word_search", "word_scores", "contains_terms"]

log = logging.getLogger("mmembed")
WORDS = "words"
FTS_OPTIONS: dict[str, Any] = dict(base_tokenizer="ngram", ngram_min_length=2, ngram_max_length=3, lower_case=True,
                                   stem=False, remove_stop_words=False, ascii_folding=True, with_position=False)
_BATCH = 65_536  # rows recomposed per commit (recompose_words)
CANDIDATES = 200  # FTS candidates checked per query (at least 8 x limit)
FTS_UNINDEXED_ROWS = 10_000  # rows written since the FTS index was updated before it is (ensure_fts_index)


def _word_sources(store: Store) -> list[str]:
    have = set(store.table.schema.names)
    return [c for c in ("id", "path", *WORD_COLUMNS) if c in have]


def recompose_words(store: Store, where: str | None = None, ids: Iterable[str] | None = None) -> int:
    """Compose ``words`` again (``item_words``) for the rows matching ``where`` (all rows when
    None), or for ``ids``; adds the column to an older table. Returns how many rows were written.
    A writer that changes a word column (tags, OCR text, places) calls this for its rows.

    The source columns are read as Arrow and composed a slice at a time; each commit (a merge on
    ``id``, looked up through the id index, ``Store.ensure_id_index``) writes up to ``_BATCH``
    rows: at 100k rows one commit per 4,096 rows took 50 s, one for all 5 s. LanceDB's merge
    rewrites the whole rows it updates, so filling the words of a table built before them
    rewrites its vectors once (about 4 GB at 1M rows of 512-d vectors; BENCHMARKS.md)."""
    store.ensure_columns({WORDS: pa.string()})
    columns = _word_sources(store)
    if ids is not None:
        wanted = list(ids)
        parts = [store.read_columns(columns, f"id IN ({_sql_list(chunk)})") for chunk in _chunks(wanted, _IN_CHUNK)]
        if not parts:
            return 0
        source = pa.concat_tables(parts)
    else:
        source = store.read_columns(columns, where)
    for start in range(0, source.num_rows, _BATCH):
        rows = source.slice(start, _BATCH).to_pylist()
        store.update_columns({"id": [r["id"] for r in rows], WORDS: [item_words(r) for r in rows]})
    return source.num_rows


def fill_words(store: Store) -> int:
    """``words`` for the rows that have none yet (a table built before the column, rows written
    by an older version): no image is read or encoded. Returns how many rows were filled."""
    if WORDS in store.table.schema.names and not store.any_where(f"{WORDS} IS NULL"):
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
        cached = (version, store.any_where(f"{WORDS} IS NOT NULL AND {WORDS} != ''"))
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
    if stats is not None and getattr(stats, "num_unindexed_rows", 0) < FTS_UNINDEXED_ROWS:
        return False  # LanceDB reads the few rows written since as they are (and the snapshot holds them all)
    with _errors(f"cannot update the full-text index of table '{store.table_name}'", write=True):
        store.compact(force=True)  # (the index is updated by LanceDB's optimize, which compacts too)
    return True


def word_search(store: Store, text: str, *, limit: int, where: str | None = None,
                columns: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows whose words hold every term of ``text``, best first, each with ``words_score`` and
    ``columns`` (default: all). ``where`` filters first (prefilter), as a vector search's does.

    LanceDB's index finds the candidates; each is checked term by term (``contains_terms``) and
    scored by ``word_scores``, the BM25 that the snapshot's word search gives too
    (``Snapshot.word_matches``), so a query ranks its word matches alike with and without a filter."""
    from lancedb.query import FullTextOperator, MatchQuery

    terms = query_terms(text)
    grams = " ".join(t for t in terms if len(t) >= FTS_OPTIONS["ngram_min_length"])
    if not grams or WORDS not in store.table.schema.names:
        return []
    query = store.table.search(MatchQuery(grams, WORDS, operator=FullTextOperator.AND), query_type="fts")
    wanted = columns if columns is not None else [c for c in store.table.schema.names]
    query = query.select(list(dict.fromkeys([*wanted, WORDS, "_score"]))).limit(max(CANDIDATES, 8 * limit))
    rows = [row for row in filtered_rows(query, where, "full-text search failed") if contains_terms(row.get(WORDS), terms)]
    stats = _term_stats(store, terms, len(rows)) or ({t: len(rows) for t in terms}, store.count(), None)
    for row, score in zip(rows, word_scores([row[WORDS] for row in rows], terms, stats)):
        row.pop("_score", None)
        row["words_score"] = score
    rows.sort(key=lambda row: -row["words_score"])
    return rows[:limit]


def word_scores(texts: list[str], terms: list[str], stats: tuple[dict[str, int], int, float | None]) -> list[float]:
    """Each text's BM25 for ``terms`` (``text.words.bm25``); ``stats``: how many rows' words
    hold each term, how many rows have words, and their mean length (None: the texts' own).
    Where the table has no snapshot to count them in (a table in object storage) each term is
    counted in every candidate, so every term weighs alike."""
    folded = [fold(t) for t in texts]
    lengths = [word_length(f) for f in folded]
    found_in, items, mean = stats
    mean = mean if mean is not None else sum(lengths) / max(len(lengths), 1)
    return [float(sum(bm25(term_counts(f, t), n, found_in[t], items, mean) for t in terms))
            for f, n in zip(folded, lengths)]


def _term_stats(store: Store, terms: list[str], candidates: int) -> tuple[dict[str, int], int, float | None] | None:
    """``word_scores``' statistics from the table's current snapshot, if it has one with words."""
    if not candidates or not store.is_local:
        return None
    from .snapshot import Snapshot, SnapshotDamaged

    try:
        snap = Snapshot.open(store.uri, store.table_name)
        found = snap.term_frequencies(terms) if snap is not None else None
    except (SnapshotDamaged, OSError, ValueError):
        return None
    return None if found is None else (found, *snap.word_stats())  # type: ignore[union-attr]
