"""Exact text search from the table's snapshot: numpy over memory-mapped vectors, and the
exported text tower for the query, so neither lancedb, pyarrow nor torch is imported.

``mmembed search "words"`` tries this first, and ``Index.search`` uses it for text queries
without ``--where`` (it is many times faster than LanceDB's flat scan; BENCHMARKS.md). It
answers only when it gives what the full path gives (same order, scores equal up to float
rounding): a local table whose snapshot matches the current table version, a text-only
query, no filter, and a text encoder for the table's model. Otherwise it returns None and
the caller takes the full path.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._options import options_from, takes
from ..config import Config
from ..models.fusion import FusionStrategy
from .query import Hit, SearchOptions, _unit, check_query, make_hit, query_plan

__all__ = ["QuickSearch", "quick_search"]


class QuickSearch:
    """Searches one table's snapshot; keeps the open snapshot and text tower between queries."""

    def __init__(self, db: str, table: str, *, one_shot: bool = False) -> None:
        self.db = os.path.abspath(os.path.expanduser(db.removeprefix("file://")))
        self.table = table
        self.one_shot = one_shot  # one query per process (the CLI): load the text tower faster
        self._snapshot: Any = None
        self._tower: Any = None  # None: not looked for; False: none usable

    def snapshot(self) -> Any:
        """The current snapshot, or None (missing, stale, or being rewritten)."""
        from ..store.snapshot import Snapshot, table_version

        snap = self._snapshot
        if snap is not None and snap.info.get("version") == table_version(self.db, self.table):
            return snap
        self._snapshot = Snapshot.open(self.db, self.table)
        return self._snapshot

    def tower(self, fingerprint: str) -> Any:
        if self._tower is None or (self._tower and self._tower.fingerprint != fingerprint):
            from ..models.text_tower import load_text_tower, tower_folder

            try:
                self._tower = load_text_tower(tower_folder(fingerprint), fingerprint, one_shot=self.one_shot) or False
            except Exception:  # noqa: BLE001 - a broken export only costs speed
                self._tower = False
        return self._tower or None

    def search(
        self,
        text: str | None,
        options: SearchOptions = SearchOptions(),
        *,
        encoder: Any = None,
    ) -> list[Hit] | None:
        """Hits for a text query, or None when this path cannot give the full path's answer.

        ``encoder`` encodes the query when there is no exported text tower (``Index`` passes
        its torch encoder); without either, None.
        """
        if options.where is not None:
            return None  # a filter needs LanceDB
        query = check_query(text, None, options)
        target = options.target
        snap = self.snapshot()
        if snap is None or snap.rows == 0:
            return None
        meta = snap.meta
        target = target or ("fused" if snap.captioned else "image")
        if (target == "text" and not snap.captioned) or (target == "fused" and meta.get("fusion_pending")):
            return None  # the full path raises the right error
        if not snap.has(target):
            return None
        text_encoder = self.tower(meta["fingerprint"]) or encoder
        if text_encoder is None:
            return None
        vecs = text_encoder.encode_text(query.positives + query.negatives)
        pos = _unit(vecs[: len(query.positives)].mean(axis=0))
        neg = _unit(vecs[len(query.positives):].mean(axis=0)) if query.negatives else None
        fusion = meta.get("fusion") or {}
        strategy = FusionStrategy(fusion.get("strategy", "mean"))
        vector, q_img, q_txt = query_plan(None, pos, neg, query, target, strategy, float(fusion.get("weight", 0.2)))
        rows = snap.nearest(np.asarray(vector, dtype=np.float32), target=target, limit=options.limit)
        return [make_hit(row, target, q_img, q_txt) for row in rows]


@takes(SearchOptions)
def quick_search(config: Config, text: str | None, options: SearchOptions | None = None, **kwargs: Any) -> list[Hit] | None:
    """One-shot :class:`QuickSearch` for the CLI: None when the full path must answer."""
    options = options_from(SearchOptions, options, kwargs)
    if not usable(config):
        return None
    return QuickSearch(config.db, config.table, one_shot=True).search(text, options)


def usable(config: Config, *, named_model: bool = False) -> bool:
    """Local table, CPU (or auto) device, and not switched off with MMEMBED_QUICK=0; and no
    explicitly named model unless ``named_model`` (the caller has checked it against the table)."""
    return (config.is_local and config.device in ("auto", "cpu") and os.environ.get("MMEMBED_QUICK") != "0"
            and (named_model or (config.model is None and config.pretrained is None)))
