"""Queries: words, an image, or both (with negatives) -> a query vector -> nearest rows -> ``Hit``.

How a composite query is scored (all vectors unit length; ``a`` = image weight, default 0.5;
``λ`` = negative weight, default 0.5):

1. Text: ``t`` = normalise(mean of the vectors of the positive terms). A query string may hold
   several terms: ``"red car + night - blurry"`` has positives ``red car``, ``night`` and the
   negative ``blurry``; ``--not TEXT`` adds negatives too. ``n`` = normalise(mean of the
   negative vectors).
2. ``q`` = normalise(a·i + (1−a)·t) with an image ``i`` and text, else whichever is given;
   then ``q`` = normalise(q − λ·n) when there are negatives.
3. Targets ``image``, ``text`` and ``fused`` (mean or attention fusion) score cos(q, column).
   ``fused`` with concat fusion instead maps the query to [√a·q_img ; √(1−a)·q_txt], where
   q_img comes from the image (or the text, if no image) and q_txt from the text (or the
   image), each minus λ·n and normalised, and ``a`` defaults to the table's fusion weight
   ``w``: the score is then w·cos(q_img, î) + (1−w)·cos(q_txt, t̂).

Every hit also carries ``image_score`` = cos(query, image vector) and ``text_score`` =
cos(query, text vector) (None without text), the parts a person reads to see why it matched.
"""

from __future__ import annotations

import os
from typing import Any


from ..errors import IndexEmptyError, QueryError
from .query import (
    NO_TAGS,
    Background,
    TARGETS,
    Hit,
    Query,
    SearchOptions,
    apply_cutoff,
    query_vectors,
    score_stats,
    check_query,
    default_target,
    make_hit,
    nearest_items,
    parse_terms,
    query_plan,
)
from ..store.fulltext import has_words
from ..store.table import Store
from .hybrid import hybrid_search, resolve_mode

__all__ = ["Hit", "Query", "parse_terms", "run_search", "empty_table_error", "TARGETS"]



def empty_table_error(store: Store) -> IndexEmptyError:
    """Why a table with no rows cannot be searched: none yet (a mistyped --table: the tables
    there are named), or an empty one."""
    if not store.exists():
        others = [t for t in store.table_names()
                  if not t.endswith(("__staging", "__fusion")) and t != store.table_name]  # (being created)
        return IndexEmptyError(f"no table '{store.table_name}' in {store.uri}; "
                               + (f"its tables: {', '.join(sorted(others))} (pass --table NAME)" if others
                                  else "run `mmembed ingest PATH` first"))
    return IndexEmptyError(f"the index in {store.uri} (table '{store.table_name}') is empty; run `mmembed ingest PATH` first")

def run_search(
    store: Store,
    vectorizer: Any,
    text: str | None = None,
    image: str | os.PathLike[str] | bytes | None = None,
    options: SearchOptions = SearchOptions(),
    *,
    max_megapixels: float = 100.0,
    decode: str = "fast",
    text_encoder: Any = None,
    query_encoder: Any = None,
) -> list[Hit]:
    """Search the table; see the module docstring for the scoring.

    ``text_encoder`` (an exported text tower) encodes text-only queries instead of the model;
    ``query_encoder`` (an encoder on both exported towers) encodes every query.
    """
    query = check_query(text, image, options)
    target, where = options.target, options.filter_sql()
    rows, captioned = store.search_stats()
    if rows == 0:
        raise empty_table_error(store)
    if options.tags and "tags" not in store.table.schema.names:
        raise QueryError(NO_TAGS)
    target = default_target(target, query, captioned)
    if target == "text" and not captioned:
        raise QueryError("no item in this index has text; ingest captions (sidecars, metadata or --captions) first")
    if target == "fused" and store.meta().fusion_pending:  # type: ignore[union-attr]
        raise QueryError(
            "a fusion apply on this index did not finish; run `mmembed fusion apply` again "
            "(or search with --target image meanwhile)"
        )
    encoder = query_encoder or (text_encoder if text_encoder is not None and query.image is None else None) \
        or vectorizer.encoder
    img, txt, neg = query_vectors(encoder, query, max_megapixels, decode)
    config = getattr(vectorizer, "fusion_config", None) or vectorizer.config  # no model or weights needed
    search_vector, q_img, q_txt = query_plan(img, txt, neg, query, target, config.strategy, config.weight)
    column = {"image": "image_vector", "text": "text_vector", "fused": "fused_vector"}[target]
    filters = [f"({where})"] if where else []
    if target == "text":
        filters.append("text_vector IS NOT NULL")
    combined = " AND ".join(filters) if len(filters) > 1 else where  # a lone filter reads as it was given
    def nearest(n: int) -> list[dict[str, Any]]:
        return nearest_items(lambda k: store.nearest(search_vector, column=column, limit=k, where=combined or None),
                             n, options.frames)

    def background() -> Background | None:
        if options.cutoff != "auto":
            return None
        if target == "fused" and captioned:  # the rows with text and those without, apart (query.GroupStats)
            vectors, has_text = store.sample_with_text(column)
            return score_stats(vectors, search_vector, has_text)
        return score_stats(store.sample_vectors(column), search_vector)

    mode = resolve_mode(options, query.positives, query.image is not None, has_words(store))
    if mode != "vector":
        return hybrid_search(store, mode, " ".join(query.positives), options, combined or None, nearest,
                             lambda r: make_hit(r, target, q_img, q_txt), search_vector, column, background,
                             negatives=query.negatives)
    hits = [make_hit(r, target, q_img, q_txt) for r in nearest(options.limit)]
    return apply_cutoff(hits, options, background())
