"""Ranking by looks and words at once: a text query's vector search and its full-text search
(``store.fulltext``: every term of the query found in the item's words, BM25) fused into one list.

The fusion is reciprocal-rank fusion as LanceDB's ``RRFReranker`` computes it (k = 60),
measured against a calibrated linear mix of cosine and normalised BM25 (EVALUATION.md,
``benchmarks/hybrid.py``): RRF needs no score scale and lifts an item whose words hold the query
to the top without hiding what the vectors found. Both lists carry every candidate: the vector
list is every candidate by cosine (so an item found by its words still has a vector rank), the
word list only the items whose words hold every term.

Modes (``SearchOptions.mode``): ``hybrid`` (the default for a text query where the table has
words), ``vector`` (as before words existed) and ``text`` (words only, best BM25 first; cosine
breaks ties and ranks nothing else). A hybrid query whose terms no item's words hold is ranked
by its vectors alone, scored by the cosine, as before words existed. Each hit keeps its parts: ``vector_score`` (cosine),
``words_score`` (BM25, None without a word match), ``terms`` (the query's terms it holds, for
highlighting), ``fused_score`` and ``score``: what the list is ranked by (the fused score in a
hybrid list with word matches, BM25 in text mode, else the cosine). ``--min-score`` drops hits
whose cosine is below it, unless they hold the query's words (so in text mode it drops none);
``--cutoff auto`` ends the ranked list at the first hit that neither holds the query's
words nor stands out from the table by its cosine, so a word match is kept whatever its looks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..text.words import contains_terms, query_terms
from .query import Background, Hit, SearchOptions, cutoff_floor, one_per_video

__all__ = ["FUSIONS", "VECTOR_CANDIDATES", "resolve_mode", "fuse", "ranked_hits"]

FUSIONS = ("rrf", "linear")
FUSION = "rrf"  # chosen over "linear" (EVALUATION.md)
RRF_K = 60  # LanceDB's default; the paper finds the choice not critical
LINEAR_VECTOR_WEIGHT = 0.5  # the linear mix's weight on the cosine, when measured against RRF
VECTOR_CANDIDATES = 50  # vector rows fused with the word rows (at least ``limit``)


def resolve_mode(options: SearchOptions, text_terms: list[str], has_image: bool, has_words: bool) -> str:
    """The mode a query runs in: the one asked for; else hybrid for a text query on a table
    with words, vector otherwise. An image-only query is always ranked by vectors, and so is a
    query that asks for the image vectors (``target="image"``: the pixels only, no item text)
    unless it names a mode too."""
    if not text_terms and has_image:
        return "vector"
    if options.mode is not None:
        return options.mode
    if options.target == "image":
        return "vector"
    return "hybrid" if has_words and text_terms else "vector"


def fuse(vector_rows: list[dict[str, Any]], word_rows: list[dict[str, Any]], *, how: str = FUSION,
         weight: float = LINEAR_VECTOR_WEIGHT) -> list[tuple[dict[str, Any], float]]:
    """(row, fused score) best first. ``vector_rows`` each carry ``score`` (cosine), ``word_rows``
    ``words_score`` (BM25); rows are matched by ``id``."""
    by_id: dict[str, dict[str, Any]] = {}
    for row in (*vector_rows, *word_rows):
        by_id.setdefault(row["id"], row).update({k: row[k] for k in ("words_score",) if k in row})
    by_cosine = sorted(by_id.values(), key=lambda r: -r["score"])
    by_words = sorted((r for r in by_id.values() if r.get("words_score") is not None), key=lambda r: -r["words_score"])
    if how == "rrf":
        scores = _rrf(by_cosine, by_words)
    elif how == "linear":
        top = max((r["words_score"] for r in by_words), default=0.0) or 1.0
        scores = {r["id"]: weight * r["score"] + (1 - weight) * (r.get("words_score") or 0.0) / top for r in by_cosine}
    else:
        raise ValueError(f"fusion {how!r} is not one of {', '.join(FUSIONS)}")
    return sorted(((by_id[i], s) for i, s in scores.items()), key=lambda pair: (-pair[1], -pair[0]["score"]))


def _rrf(by_cosine: list[dict[str, Any]], by_words: list[dict[str, Any]]) -> dict[str, float]:
    """Reciprocal-rank fusion as LanceDB's ``RRFReranker`` computes it (the sum over both lists
    of 1 / (rank + k), ranks from 1), without importing lancedb: the quick path ranks with it."""
    scores: dict[str, float] = {}
    for rows in (by_cosine, by_words):
        for rank, row in enumerate(rows, 1):
            scores[row["id"]] = scores.get(row["id"], 0.0) + 1.0 / (rank + RRF_K)
    return scores


def ranked_hits(mode: str, text: str, options: SearchOptions, *,
                vector_rows: Callable[[int], list[dict[str, Any]]],
                word_rows: Callable[[str, int], list[dict[str, Any]]],
                cosine: Callable[[dict[str, Any]], float],
                make: Callable[[dict[str, Any]], Hit],
                background: Callable[[], Background | None],
                how: str | None = None,
                before_make: Callable[[list[dict[str, Any]]], None] | None = None,
                negatives: list[str] | tuple[str, ...] = ()) -> list[Hit]:
    """The hits of a query in ``mode`` (hybrid or text); see the module docstring. A word row
    whose words hold a term of ``negatives`` (the query's "- snow") is not a word match: the
    vectors already turn from it, and its words must not lift it back.

    ``vector_rows(n)``: the n nearest rows (each with ``score``, the cosine); ``word_rows(text, n)``:
    rows whose words hold every term (each with ``words_score``, and its vectors); ``cosine(row)``:
    a word row's cosine with the query; ``make(row)``: the Hit; ``background()``: the cosine's
    median and spread over the table, for ``--cutoff auto``."""
    terms = query_terms(text)
    found = word_rows(text, max(options.limit, VECTOR_CANDIDATES))
    minus = [t for t in query_terms(" ".join(negatives)) if t not in terms]
    if minus:  # each word row carries its words ("words", or from the snapshot "folded_words")
        found = [r for r in found if not any(contains_terms(r.get("folded_words") or r.get("words"), [t]) for t in minus)]
    for row in found:
        row["score"] = cosine(row)
    if mode == "text":
        ordered = [(r, r["words_score"]) for r in sorted(found, key=lambda r: (-r["words_score"], -r["score"]))]
    elif not found:  # no item's words hold the query: the vector ranking, as before words existed
        near = vector_rows(options.limit)
        ordered = [(r, r["score"]) for r in near]
    else:
        near = vector_rows(max(options.limit, VECTOR_CANDIDATES))
        ordered = fuse(near, found, how=how or FUSION)
    if not options.frames:  # a video once, at its best-ranked frame
        kept = {id(r) for r in one_per_video([r for r, _ in ordered])}
        ordered = [(r, s) for r, s in ordered if id(r) in kept]
    ordered = ordered[: options.limit]
    if before_make is not None:
        before_make([r for r, _ in ordered])  # e.g. read the whole rows of the hits shown, at once
    hits = []
    for row, score in ordered:
        hit = make(row)
        matched = row.get("words_score") is not None
        hits.append(dataclasses.replace(
            hit, score=float(score), vector_score=float(row["score"]), mode=mode,
            fused_score=float(score) if mode == "hybrid" and found else None,
            words_score=float(row["words_score"]) if matched else None,
            terms=terms if matched else []))
    return _cut(hits, options, background)


def _cut(hits: list[Hit], options: SearchOptions, background: Callable[[], Background | None]) -> list[Hit]:
    """``--min-score`` is a floor on the cosine, as in a vector search: it drops the hits that
    neither hold the query's words nor reach it (a fused rank score is no cosine: 0.03 is a
    good one); ``--cutoff auto`` ends the list at the first hit that neither holds the query's
    words nor stands out by its cosine (a cut of the same ranking)."""
    if options.min_score is not None:
        hits = [h for h in hits if h.words_score is not None
                or (h.vector_score if h.vector_score is not None else -1.0) >= options.min_score]
    if options.cutoff != "auto" or not hits:
        return hits
    stats = background()
    if stats is None:
        return hits
    for i, hit in enumerate(hits):
        cosine = hit.vector_score if hit.vector_score is not None else -1.0
        if hit.words_score is None and cosine < cutoff_floor(stats, hit):  # query.apply_cutoff's rule
            return hits[:i]
    return hits


def hybrid_search(store: Any, mode: str, text: str, options: SearchOptions, where: str | None,
                  nearest: Callable[[int], list[dict[str, Any]]], make: Callable[[dict[str, Any]], Hit],
                  search_vector: Any, column: str, background: Callable[[], Background | None],
                  how: str | None = None, negatives: list[str] | tuple[str, ...] = ()) -> list[Hit]:
    """``ranked_hits`` on a LanceDB table (``store.table.Store``): ``nearest`` gives the vector
    rows, ``store.fulltext.word_search`` the word rows (with the same ``where``)."""
    import numpy as np

    from ..store.fulltext import word_search

    query = np.asarray(search_vector, dtype=np.float32)

    have = set(store.table.schema.names)
    light = [c for c in ("id", "path", "media", column) if c in have]  # the rest only for the hits shown

    def words(q: str, n: int) -> list[dict[str, Any]]:
        return word_search(store, q, limit=n, where=where, columns=light)

    def cosine(row: dict[str, Any]) -> float:
        vector = row.get(column)
        return float(np.dot(query, np.asarray(vector, dtype=np.float32))) if vector is not None else -1.0

    full: dict[str, dict[str, Any]] = {}

    def made(row: dict[str, Any]) -> Hit:
        if "image_vector" not in row:  # a word row: its whole row, read with the others shown
            row = {**full[row["id"]], "score": row["score"]}
        return make({k: v for k, v in row.items() if k not in ("fused_vector", "words_score")})

    def word_rows(q: str, n: int) -> list[dict[str, Any]]:
        return words(q, n)

    def hits_of(rows: list[dict[str, Any]]) -> None:
        missing = [r["id"] for r in rows if "image_vector" not in r]
        full.update({r["id"]: r for r in store.rows_by_id(missing)} if missing else {})

    return ranked_hits(mode, text, options, vector_rows=nearest, word_rows=word_rows, cosine=cosine, make=made,
                       background=background, how=how, before_make=hits_of, negatives=negatives)


def snapshot_hybrid(quick: Any, plan: Any, mode: str, text: str, options: SearchOptions, *,
                    max_megapixels: float = 100.0) -> list[Hit]:
    """``ranked_hits`` from the snapshot alone, without LanceDB: the vector rows from its numpy
    scan, the word rows from its ``words.bin`` (``Snapshot.word_matches``: the same rows and
    BM25 as ``store.fulltext.word_search`` gives on the table). A planned quick query
    (``searcher.plan_quick``, no filter) on a table with words. Raises ``QuickPathLost`` when the
    snapshot proves damaged (LanceDB then answers all of it)."""
    import numpy as np

    from ..store.snapshot import SnapshotDamaged
    from .query import make_hit, nearest_items, score_stats
    from .quick import QuickPathLost

    snap, target = plan.snapshot, plan.target
    vector, q_img, q_txt = quick.query_vector(plan, max_megapixels)
    vector = np.asarray(vector, dtype=np.float32)

    def lost(exc: Exception) -> QuickPathLost:
        return QuickPathLost(f"the snapshot of {snap.folder} is damaged: {exc}")

    def nearest(n: int) -> list[dict[str, Any]]:
        try:
            return nearest_items(lambda k: snap.nearest(vector, target=target, limit=k), n, options.frames)
        except SnapshotDamaged as exc:
            raise lost(exc) from exc

    def words(q: str, n: int) -> list[dict[str, Any]]:
        try:
            positions, scores = snap.word_matches(query_terms(q), limit=n)
            rows = snap.rows_at(positions, scores, key="words_score")
            for row, cosine, words in zip(rows, snap.cosines(positions, vector, target), snap.words_at(positions)):
                row["cosine"], row["folded_words"] = float(cosine), words
            return rows
        except (SnapshotDamaged, OSError, ValueError) as exc:
            raise lost(exc) from exc

    def made(row: dict[str, Any]) -> Hit:
        return make_hit({k: v for k, v in row.items() if k not in ("words_score", "cosine", "folded_words")}, target, q_img, q_txt)

    def background() -> tuple[float, float] | None:
        if options.cutoff != "auto":
            return None
        return score_stats(snap.background(target), vector, snap.background_has_text(target))

    return ranked_hits(mode, text, options, vector_rows=nearest, word_rows=words, cosine=lambda row: row["cosine"],
                       make=made, background=background, negatives=plan.query.negatives)
