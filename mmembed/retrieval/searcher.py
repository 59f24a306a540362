"""The one search entry: a query is answered from the snapshot and the exported towers when
that gives the full answer (``quick.py``: no lancedb, no torch), else from the LanceDB table
(``exact.py``). The choice is made here, once per query; callers (``Index.search``, and so
the CLI, the web app and ``mmembed.search``) never make it.

``Searcher`` is handed its collaborators: the config, and functions that give the table's
``Store``, encoder and vectorizer when they are first needed (each of them costs lancedb or
torch, which a quick search never loads).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .._options import options_from, takes
from ..config import Config
from .query import Hit, SearchOptions, check_query, default_target

if TYPE_CHECKING:
    from ..store.table import Store
    from .quick import QuickPlan, QuickSearch

__all__ = ["Searcher", "plan_quick", "quick_search"]


class Searcher:
    """Answers queries on one table; keeps the open snapshot and the text tower between queries.

    Example::

        Searcher(config, store=lambda: store, encoder=lambda: encoder, vectorizer=lambda: vectorizer)
    """

    def __init__(self, config: Config, *, store: Callable[[], Store], encoder: Callable[[], Any],
                 vectorizer: Callable[[], Any], one_query: bool = False) -> None:
        from .quick import QuickSearch, usable

        self.config = config
        self._store = store  # the LanceDB table, opened on first need
        self._encoder = encoder  # the table's model, checked against a named one when built
        self._vectorizer = vectorizer
        self._quick = QuickSearch(config.db, config.table, one_shot=one_query,
                                  model=(config.model, config.pretrained), precision=config.precision,
                                  decode=config.decode)
        self._quick_ok = usable(config)  # local, CPU, not switched off: snapshot and towers may stand in

    def search(self, text: str | None, image: str | os.PathLike[str] | bytes | None,
               options: SearchOptions) -> list[Hit]:
        """Nearest items to ``text`` and/or ``image``, best first (see ``retrieval.exact``)."""
        from .quick import QuickPathLost

        plan = plan_quick(self._quick, text, image, options,
                          _LazyEncoder(self._encoder)) if self._quick_ok else None
        if plan is not None:
            try:
                hits = _planned_hits(self._quick, plan, options, self.config.max_megapixels)
                if hits is not None:
                    return hits
            except QuickPathLost:
                pass  # reported where it was found; LanceDB answers
        return self._exact(text, image, options)

    def _exact(self, text: str | None, image: str | os.PathLike[str] | bytes | None,
               options: SearchOptions) -> list[Hit]:
        from .exact import run_search

        store = self._store()
        meta = store.meta()
        towers = self._quick_ok and meta is not None
        if towers and (self.config.model is not None or self.config.pretrained is not None):
            self._encoder()  # checks the named model against the table; raises on a mismatch
        return run_search(
            store, _LazyVectorizer(store, self._vectorizer), text, image, options,
            max_megapixels=self.config.max_megapixels, decode=self.config.decode,
            text_encoder=self._quick.tower(meta.fingerprint) if towers and image is None else None,  # type: ignore[union-attr]
            query_encoder=self._quick.image_encoder(asdict(meta)) if towers and image is not None else None,
        )


def plan_quick(quick: QuickSearch, text: str | None, image: str | os.PathLike[str] | bytes | None,
               options: SearchOptions, encoder: Any = None) -> QuickPlan | None:
    """The one check before a search: a plan for the snapshot path (``quick.py``) when it gives
    the full path's answer, else None (LanceDB answers, and raises the right error where there is
    one). Checked in turn: no filter; a current snapshot with rows; the model named, if any, is
    the table's; the target has vectors there; the query's encoder (the exported image tower for
    an image, the exported text tower or else ``encoder`` for text)."""
    from .quick import QuickPlan, _same_model

    if options.filter_sql() is not None:
        return None  # a filter needs LanceDB
    query = check_query(text, image, options)
    snap = quick.snapshot()
    if snap is None or snap.rows == 0:
        return None
    meta = snap.meta
    if quick.model != (None, None) and not _same_model(quick.model, meta):
        return None  # the full path explains the mismatch
    target = default_target(options.target, query, snap.captioned)
    if (target == "text" and not snap.captioned) or (target == "fused" and meta.get("fusion_pending")) \
            or not snap.has(target):
        return None  # the full path raises the right error
    if image is not None:
        image_encoder = quick.image_encoder(meta)
        return QuickPlan(snap, query, target, image_encoder=image_encoder) if image_encoder is not None else None
    text_encoder = quick.tower(meta["fingerprint"]) or encoder
    return QuickPlan(snap, query, target, text_encoder=text_encoder) if text_encoder is not None else None


@takes(SearchOptions)
def quick_search(config: Config, text: str | None, options: SearchOptions | None = None, *,
                 image: str | os.PathLike[str] | None = None, **kwargs: Any) -> list[Hit] | None:
    """One-shot quick search for the CLI's tests and benchmarks: the hits, or None when the full
    path must answer (``plan_quick`` found it cannot, or the snapshot proved damaged)."""
    from .quick import QuickPathLost, QuickSearch, usable

    options = options_from(SearchOptions, options, kwargs)
    if not usable(config):
        return None
    quick = QuickSearch(config.db, config.table, one_shot=True, model=(config.model, config.pretrained),
                        precision=config.precision, decode=config.decode)
    plan = plan_quick(quick, text, image, options)
    if plan is None:
        return None
    try:
        return _planned_hits(quick, plan, options, config.max_megapixels)
    except QuickPathLost:
        return None


def _planned_hits(quick: QuickSearch, plan: QuickPlan, options: SearchOptions,
                  max_megapixels: float) -> list[Hit] | None:
    """A planned query's hits from the snapshot: by vectors, or by words and vectors
    (``hybrid.snapshot_hybrid``); None for a snapshot written before it carried words
    (LanceDB's full-text index ranks the words then)."""
    mode = _words_mode(plan, options)
    if mode != "vector":
        found = plan.snapshot.has_word_match(_terms(plan))
        if found is None:
            return None
        if found:
            from .hybrid import snapshot_hybrid

            return snapshot_hybrid(quick, plan, mode, " ".join(plan.query.positives), options,
                                   max_megapixels=max_megapixels)
    return _vector_hits(quick, plan, mode, options, max_megapixels)


def _vector_hits(quick: QuickSearch, plan: QuickPlan, mode: str, options: SearchOptions,
                 max_megapixels: float) -> list[Hit]:
    """The snapshot's vector ranking. In hybrid or text mode it is called only when no item's
    words hold the query (``Snapshot.has_word_match``): ranked by the vectors alone then, as
    ``retrieval.hybrid`` does (text mode: nothing), without opening LanceDB."""
    if mode == "text":
        return []
    hits = quick.run(plan, options, max_megapixels=max_megapixels)
    return hits if mode == "vector" else [replace(h, mode=mode) for h in hits]


def _terms(plan: QuickPlan) -> list[str]:
    """The terms a hybrid query's words must hold (``hybrid.ranked_hits``'s)."""
    from ..text.words import query_terms

    return query_terms(" ".join(plan.query.positives))


def _words_mode(plan: QuickPlan, options: SearchOptions) -> str:
    """How a planned query ranks (``hybrid.resolve_mode``): words count where the snapshot
    records rows with words."""
    from .hybrid import resolve_mode

    return resolve_mode(options, plan.query.positives, plan.query.image is not None,
                        bool(plan.snapshot.info.get("words")))


class _LazyVectorizer:
    """The table's fusion settings at once; the vectorizer (and its model) only if a query
    really needs a vector from it."""

    def __init__(self, store: Store, vectorizer: Callable[[], Any]) -> None:
        self._store = store
        self._vectorizer = vectorizer

    @property
    def fusion_config(self) -> Any:
        from ..models.fusion import FusionConfig

        meta = self._store.meta()
        return FusionConfig.from_dict(meta.fusion) if meta and meta.fusion else FusionConfig()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vectorizer(), name)


class _LazyEncoder:
    """The table's encoder, checked and built only if a query is really encoded with it."""

    def __init__(self, encoder: Callable[[], Any]) -> None:
        self._encoder = encoder

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        return self._encoder().encode_text(list(texts))
