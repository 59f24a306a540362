"""Exact search from the table's snapshot: numpy over memory-mapped vectors, and the exported
towers for the query, so neither lancedb, pyarrow nor torch is imported.

``mmembed search`` tries this first, and ``Index.search`` uses it for queries without
``--where`` (it is many times faster than LanceDB's flat scan; BENCHMARKS.md). It answers
only when it gives what the full path gives (same order, scores equal up to float rounding):
a local table whose snapshot matches the current table version, no filter, and encoders
for the table's model (the exported text tower; for an image query, the exported image
tower too). Otherwise it returns None and the caller takes the full path.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

import numpy as np

from .._options import options_from, takes
from ..config import Config, quick_search_on
from ..models.fusion import FusionStrategy
from ..models.runtime import tower_precision
from .query import (
    Hit, SearchOptions, _unit, apply_cutoff, check_query, make_hit, nearest_items, query_plan, query_vectors, score_stats,
)

__all__ = ["QuickSearch", "quick_search"]

log = logging.getLogger("mmembed")


class QuickSearch:
    """Searches one table's snapshot; keeps the open snapshot and text tower between queries."""

    def __init__(self, db: str, table: str, *, one_shot: bool = False,
                 model: tuple[str | None, str | None] = (None, None), precision: str = "auto") -> None:
        self.db = os.path.abspath(os.path.expanduser(db.removeprefix("file://")))
        self.table = table
        self.one_shot = one_shot  # one query per process (the CLI): load the text tower faster
        self._snapshot: Any = None
        self._tower: Any = None  # None: not looked for; False: none usable
        self._damaged: int | None = None  # table version whose snapshot was found damaged
        self._images: Any = None  # encoder on the exported towers; None: not looked for; False: none
        self.model = model  # (model, pretrained) the caller named: answer only if it is the table's
        self.precision = precision
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
            self._snapshot = Snapshot.open(self.db, self.table)
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

    def search(
        self,
        text: str | None,
        options: SearchOptions = SearchOptions(),
        *,
        image: str | os.PathLike[str] | bytes | None = None,
        encoder: Any = None,
        max_megapixels: float = 100.0,
    ) -> list[Hit] | None:
        """Hits for a text query, or None when this path cannot give the full path's answer.

        ``encoder`` encodes the query when there is no exported text tower (``Index`` passes
        its torch encoder); without either, None.
        """
        if options.filter_sql() is not None:
            return None  # a filter needs LanceDB
        query = check_query(text, image, options)
        target = options.target
        snap = self.snapshot()
        if snap is None or snap.rows == 0:
            return None
        meta = snap.meta
        if self.model != (None, None) and not _same_model(self.model, meta):
            return None  # the full path explains the mismatch
        target = target or ("fused" if snap.captioned else "image")
        if (target == "text" and not snap.captioned) or (target == "fused" and meta.get("fusion_pending")):
            return None  # the full path raises the right error
        if not snap.has(target):
            return None
        if image is not None:
            image_encoder = self.image_encoder(meta)
            if image_encoder is None:
                return None  # no exported image tower: the full path loads the model
            img, pos, neg = query_vectors(image_encoder, query, max_megapixels)
        else:
            img, (pos, neg) = None, self._text_vectors(query, meta, encoder) or (None, None)
            if pos is None:
                return None
        fusion = meta.get("fusion") or {}
        strategy = FusionStrategy(fusion.get("strategy", "mean"))
        vector, q_img, q_txt = query_plan(img, pos, neg, query, target, strategy, float(fusion.get("weight", 0.2)))
        from ..store.snapshot import SnapshotDamaged

        try:
            rows = nearest_items(lambda n: snap.nearest(np.asarray(vector, dtype=np.float32), target=target, limit=n),
                                 options.limit, options.frames)
        except SnapshotDamaged as exc:
            self._report_damage(snap.info.get("version"), exc)
            snap.mark_damaged()
            return None
        hits = [make_hit(row, target, q_img, q_txt) for row in rows]
        background = score_stats(snap.vectors(target), vector) if options.cutoff == "auto" else None
        return apply_cutoff(hits, options, background)

    def _text_vectors(self, query: Any, meta: dict[str, Any], encoder: Any) -> tuple[Any, Any] | None:
        """(positive, negative) text vectors from the exported text tower (or ``encoder``)."""
        text_encoder = self.tower(meta["fingerprint"]) or encoder
        if text_encoder is None:
            return None
        try:
            vecs = text_encoder.encode_text(query.positives + query.negatives)
        except Exception as exc:  # noqa: BLE001 - onnxruntime on a damaged export
            if text_encoder is encoder:
                raise
            from ..models.text_tower import tower_folder

            self._tower = False
            _discard_tower(tower_folder(meta["fingerprint"]), exc)
            return None
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
            self._images = Encoder.onnx_only(spec, precision=precision) or False
        return self._images or None


@takes(SearchOptions)
def quick_search(config: Config, text: str | None, options: SearchOptions | None = None, *,
                 image: str | os.PathLike[str] | None = None, **kwargs: Any) -> list[Hit] | None:
    """One-shot :class:`QuickSearch` for the CLI: None when the full path must answer."""
    options = options_from(SearchOptions, options, kwargs)
    if not usable(config):
        return None
    return QuickSearch(config.db, config.table, one_shot=True, model=(config.model, config.pretrained),
                       precision=config.precision).search(
        text, options, image=image, max_megapixels=config.max_megapixels)


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
        spec = ModelSpec.resolve(named[0] or meta.get("model"), named[1] or meta.get("pretrained"))
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
