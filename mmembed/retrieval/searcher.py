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
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import Config
from .query import Hit, SearchOptions

if TYPE_CHECKING:
    from ..store.table import Store

__all__ = ["Searcher"]


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
                                  model=(config.model, config.pretrained), precision=config.precision)
        self._quick_ok = usable(config)  # local, CPU, not switched off: snapshot and towers may stand in

    def search(self, text: str | None, image: str | os.PathLike[str] | bytes | None,
               options: SearchOptions) -> list[Hit]:
        """Nearest items to ``text`` and/or ``image``, best first (see ``retrieval.exact``)."""
        if self._quick_ok and options.filter_sql() is None:
            hits = self._quick.search(text, options, image=image, encoder=_LazyEncoder(self._encoder),
                                      max_megapixels=self.config.max_megapixels)
            if hits is not None:
                return hits
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
            max_megapixels=self.config.max_megapixels,
            text_encoder=self._quick.tower(meta.fingerprint) if towers and image is None else None,  # type: ignore[union-attr]
            query_encoder=self._quick.image_encoder(asdict(meta)) if towers and image is not None else None,
        )


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
