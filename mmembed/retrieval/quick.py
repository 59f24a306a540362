"""Exact search from the table's snapshot: numpy over memory-mapped vectors, and the exported
towers for the query, so neither lancedb, pyarrow nor torch is imported.

``Searcher`` (``searcher.py``) decides once, in ``plan_quick``, whether this path gives what
the full path gives (same order, scores equal up to float rounding): a local table whose
snapshot matches the current table version, no filter, and encoders for the table's model
(the exported text tower; for an image query, the exported image tower too). It is many
times faster than LanceDB's flat scan (BENCHMARKS.md). ``QuickSearch.run`` then just runs;
a snapshot or text tower found damaged while read raises ``QuickPathLost``, and LanceDB
answers. ``searcher.quick_search`` is the one-shot form: None where the full path must answer.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Config, quick_search_on
from ..models.fusion import FusionStrategy
from ..models.runtime import tower_precision
from .query import (
    Hit, SearchOptions, _unit, apply_cutoff, make_hit, nearest_items, query_plan, query_vectors, score_stats,
)

__all__ = ["QuickSearch", "QuickPlan", "QuickPathLost", "usable"]

log = logging.getLogger("mmembed")


class QuickPathLost(Exception):
    """The snapshot or the exported text tower proved damaged while a quick search read it (it
    is reported, and set aside): the LanceDB path answers this query."""


@dataclass(frozen=True)
class QuickPlan:
    """What ``Searcher``'s one check found: this path gives the full answer, with these parts."""

    snapshot: Any  # the current snapshot, with rows and the target's vectors
    query: Any  # the checked query (``check_query``)
    target: str  # image, text or fused, resolved against the snapshot
    text_encoder: Any = None  # a text query's encoder: the exported text tower, else the model
    image_encoder: Any = None  # an image query's encoder on the exported towers


class QuickSearch:
    """Searches one table's snapshot; keeps the open snapshot and text tower between queries."""

    def __init__(self, db: str, table: str, *, one_shot: bool = False,
                 model: tuple[str | None, str | None] = (None, None), precision: str = "auto",
                 decode: str = "fast") -> None:
        self.db = os.path.abspath(os.path.expanduser(db.removeprefix("file://")))
        self.table = table
        self.one_shot = one_shot  # one query per process (the CLI): load the towers faster
        self._snapshot: Any = None
        self._tower: Any = None  # None: not looked for; False: none usable
        self._damaged: int | None = None  # table version whose snapshot was found damaged
        self._images: Any = None  # encoder on the exported towers; None: not looked for; False: none
        self.model = model  # (model, pretrained) the caller named: answer only if it is the table's
        self.precision = precision
        self.decode = decode  # how ingest decodes (Config.decode): a query image is decoded so too
        # the exported towers' precision here (int8, fp32; None: ingest encodes on torch), decided once
        self.towers = tower_precision(precision)

    def snapshot(self) -> Any:
        """The current snapshot, or None (missing, stale, being rewritten, or damaged)."""
        from ..store.snapshot import Snapshot, SnapshotDamaged, table_version

        version = table_version(self.db, self.table)
        snap = self._snapshot
        if snap is not None and snap.info.get("version") == version:
            return snap
        self._snapshot = None
        if version is not None and version == self._damaged:
            return None
        try:
            self._snapshot = Snapshot.open(self.db, self.table, stream=self.one_shot)
        except SnapshotDamaged as exc:
            self._report_damage(version, exc)
        return self._snapshot

    def _report_damage(self, version: int | None, exc: Exception) -> None:
        """Say once that the snapshot is damaged: this search, and the next ones until it is
        written again, go through LanceDB."""
        from ..store.snapshot import report_damage

        self._snapshot = None
        self._damaged = version
        report_damage(self.db, self.table, version, exc)  # once per process, not per QuickSearch

    def tower(self, fingerprint: str) -> Any:
        if self._tower is None or (self._tower and self._tower.fingerprint != fingerprint):
            from ..models.text_tower import load_text_tower, tower_folder

            folder = tower_folder(fingerprint)
            try:
                self._tower = load_text_tower(folder, fingerprint, one_shot=self.one_shot,
                                              precision=self.text_precision()) or False
            except Exception as exc:  # noqa: BLE001 - a damaged export only costs speed
                self._tower = False
                _discard_tower(folder, exc)
        return self._tower or None

    def text_precision(self) -> str:
        """The text tower's precision: int8 where ingest runs int8 (``tower_precision``), so that
        a query is encoded as the table's item texts were; fp32 otherwise."""
        return "int8" if self.towers == "int8" else "fp32"

    def query_vector(self, plan: QuickPlan, max_megapixels: float = 100.0) -> tuple[Any, Any, Any]:
        """(the searched vector, the image part, the text part) of a planned query, encoded with
        the plan's tower and fused as the table's fusion settings say (``query.query_plan``)."""
        meta, query = plan.snapshot.meta, plan.query
        if plan.image_encoder is not None:
            img, pos, neg = query_vectors(plan.image_encoder, query, max_megapixels, self.decode)
        else:
            img, (pos, neg) = None, self._text_vectors(query, meta, plan.text_encoder)
        fusion = meta.get("fusion") or {}
        strategy = FusionStrategy(fusion.get("strategy", "mean"))
        return query_plan(img, pos, neg, query, plan.target, strategy, float(fusion.get("weight", 0.2)))

    def run(self, plan: QuickPlan, options: SearchOptions, *, max_megapixels: float = 100.0) -> list[Hit]:
        """Hits for a query that ``plan_quick`` found this path can answer. Raises
        ``QuickPathLost`` when the snapshot or the text tower proves damaged while read."""
        snap, target = plan.snapshot, plan.target
        vector, q_img, q_txt = self.query_vector(plan, max_megapixels)
        from ..store.snapshot import SnapshotDamaged

        try:
            rows = nearest_items(lambda n: snap.nearest(np.asarray(vector, dtype=np.float32), target=target, limit=n),
                                 options.limit, options.frames)
        except SnapshotDamaged as exc:
            self._report_damage(snap.info.get("version"), exc)
            snap.mark_damaged()
            raise QuickPathLost(f"the snapshot of {self.table} is damaged") from exc
        hits = [make_hit(row, target, q_img, q_txt) for row in rows]
        background = score_stats(snap.background(target), vector, snap.background_has_text(target)) \
            if options.cutoff == "auto" else None
        return apply_cutoff(hits, options, background)

    def _text_vectors(self, query: Any, meta: dict[str, Any], text_encoder: Any) -> tuple[Any, Any]:
        """(positive, negative) text vectors from the exported text tower (or the model)."""
        try:
            vecs = text_encoder.encode_text(query.positives + query.negatives)
        except Exception as exc:  # noqa: BLE001 - onnxruntime on a damaged export
            if text_encoder is not self._tower:
                raise
            from ..models.text_tower import tower_folder

            self._tower = False
            _discard_tower(tower_folder(meta["fingerprint"]), exc)
            raise QuickPathLost(f"the exported text tower of {self.table} is damaged") from exc
        pos = _unit(vecs[: len(query.positives)].mean(axis=0))
        neg = _unit(vecs[len(query.positives):].mean(axis=0)) if query.negatives else None
        return pos, neg

    def image_encoder(self, meta: dict[str, Any]) -> Any:
        """An encoder on the exported image and text towers of the table's model, or None. Only
        where this CPU encodes at int8 or fp32 (``tower_precision``): an image query must be encoded as
        its table's images were, so that an indexed image finds itself at cosine 1."""
        from ..models.encoder import Encoder, ModelSpec

        precision = self.towers
        if precision is None:
            return None

        fingerprint = meta["fingerprint"]
        if self._images is None or (self._images and self._images.spec.fingerprint != fingerprint):
            spec = ModelSpec(meta["model"], meta.get("pretrained"), fingerprint)
            self._images = Encoder.onnx_only(spec, precision=precision, one_shot=self.one_shot) or False
        return self._images or None


def usable(config: Config) -> bool:
    """Local table, CPU (or auto) device, and not switched off with MMEMBED_QUICK=0. (A named
    model is checked against the table's by ``QuickSearch``.)"""
    return config.is_local and config.device in ("auto", "cpu") and quick_search_on()


def _same_model(named: tuple[str | None, str | None], meta: dict[str, Any]) -> bool:
    """Whether the model a user named (``MMEMBED_MODEL``, say) is the one the table records: the
    same weights, found by their fingerprint (cheap: no model is loaded)."""
    from ..errors import MmembedError
    from ..models.encoder import ModelSpec

    try:
        spec = ModelSpec.resolve_over(named[0], named[1], meta.get("model"), meta.get("pretrained"))
    except MmembedError:
        return False
    return spec.fingerprint == meta.get("fingerprint")


def _discard_tower(folder: str, exc: Exception) -> None:
    """A text tower that cannot be loaded is derived data: remove it, so that the next write
    (or ``mmembed index --refresh``) exports it again; searches use the model meanwhile."""
    log.warning("the exported text tower in %s cannot be used (%s); searching with the model instead. It is "
                "exported again at the next ingest, or now with `mmembed index --refresh`",
                folder, " ".join(str(exc).split())[:160] or type(exc).__name__)
    shutil.rmtree(folder, ignore_errors=True)
