"""Whole-table fusion work: recompute fused vectors from stored ones, and train attention fusion
on a table's own captioned items. Nothing here decodes an image."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..models.fusion import (FusionConfig, FusionStrategy, fingerprint_blob, load_attention, save_attention,
                             train_attention)
from ..models.vectorizer import Vectorizer, text_hash
from ..store.derived import Derived
from ..store.table import Store
from ..store.tablemodel import ATTENTION_BLOB, TableModel, given
from ..store.vectors import vector_matrix
from .report import IngestProgress

__all__ = ["apply_fusion", "train_fusion", "refuse_table", "train_on_table", "reindex_fusion"]

_CHUNK = 2048


def apply_fusion(model: TableModel, derived: Derived, *, strategy: str | None = None, weight: float | None = None,
                 text_aggregate: str | None = None, progress: Callable[[IngestProgress], None] | None = None) -> int:
    """Switch the table in ``model.store`` to these fusion settings (None keeps the table's) and
    recompute every row's fused vector; the caller holds the write lock. Returns the rows."""
    store = model.store
    meta = store.meta()
    if meta is None:
        raise ConfigError("no index yet; run `mmembed ingest PATH` first")
    current = model.fusion
    new = replace(current, **given(strategy=strategy, weight=weight, text_aggregate=text_aggregate))
    if new.strategy is FusionStrategy.ATTENTION:
        found = store.load_blob(ATTENTION_BLOB)
        if found is None:
            raise ConfigError("no trained attention weights in this database; run `mmembed fusion train` first")
        new = replace(new, attention_id=found[1].get("id"))
    vectorizer = model.vectorizer_for(new, store)
    # After an apply that was cut short, rows are in no known state: redo text vectors too.
    redo_text = meta.fusion_pending or new.text_aggregate != current.text_aggregate
    # Record the new settings first, marked pending: a run cut short is then visible, and
    # rerunning `mmembed fusion apply` finishes it.
    store.set_meta(replace(meta, fusion=new.to_dict(), fusion_pending=True))
    rows = refuse_table(store, vectorizer, redo_text, progress)
    store.set_meta(replace(meta, fusion=new.to_dict(), fusion_pending=False))
    model.forget_vectorizer()  # made again with the new settings
    derived.refresh()
    return rows


def train_fusion(model: TableModel, derived: Derived, *, epochs: int | None = None, seed: int = 0,
                 apply: bool = True, progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Train attention fusion on the table's items with two or more texts, store the weights in
    the database and (``apply``) switch the table to them; the caller holds the write lock."""
    info = train_on_table(model.store, model.encoder, model.fusion, epochs=epochs, seed=seed, progress=progress)
    model.store.save_blob(ATTENTION_BLOB, info.pop("blob"), {"id": info["id"], **info})
    if apply:
        info["rows"] = apply_fusion(model, derived, strategy="attention")
    return info


def reindex_fusion(old: FusionConfig, wanted: dict[str, Any], attention: tuple[bytes, dict[str, Any]] | None,
                   fingerprint: str) -> tuple[FusionConfig, str | None]:
    """The fusion a rebuilt table (``--reindex``) starts with, and a warning when it had to change.

    The old table's settings under those ``wanted`` now: mean and concat and their weight hold for
    any model; trained attention only while its weights were trained for this model
    (``fingerprint``), else the table falls back to mean fusion with the same weight."""
    new = replace(old, **wanted)
    if new.strategy is not FusionStrategy.ATTENTION:
        return replace(new, attention_id=None), None
    if attention is not None and _trained_for(attention[0], fingerprint):
        return replace(new, attention_id=attention[1].get("id")), None
    if "strategy" in wanted:  # asked for by name: say so rather than fall back
        raise ConfigError("a new table starts with mean or concat fusion; train attention with `mmembed fusion train`")
    fallback = replace(new, strategy=FusionStrategy.MEAN, attention_id=None)
    return fallback, (f"attention fusion was trained for the old model, so the rebuilt table uses mean fusion "
                      f"(w={fallback.weight}); run `mmembed fusion train` to train attention for this model")


def _trained_for(blob: bytes, fingerprint: str) -> bool:
    try:
        load_attention(blob, fingerprint)
    except Exception:  # noqa: BLE001 - trained for another encoder (ModelMismatchError), or unreadable
        return False
    return True


def refuse_table(
    store: Store,
    vectorizer: Vectorizer,
    redo_text: bool,
    progress: Callable[[IngestProgress], None] | None = None,
) -> int:
    """Rewrite fused_vector (and, with ``redo_text``, text vectors and hashes) for every row."""
    new = vectorizer.config
    notify = progress or (lambda p: None)
    dim = store.meta().dim  # type: ignore[union-attr]
    column_dim = store.table.schema.field("fused_vector").type.list_size
    if new.fused_dim(dim) != column_dim:
        store.reset_fused_column(new.fused_dim(dim))
    table = store.read_columns(["id", "texts", "image_vector", "text_vector"])
    total = table.num_rows
    notify(IngestProgress("fuse", 0, total))
    for start in range(0, total, _CHUNK):
        part = table.slice(start, _CHUNK)
        ids = part.column("id").to_pylist()
        texts = [t or [] for t in part.column("texts").to_pylist()]
        image = vector_matrix(part.column("image_vector"))
        update: dict[str, Any] = {"id": ids}
        if redo_text:
            text, has = vectorizer.text_vectors(texts)
            update["text_vector"] = [v if h else None for v, h in zip(text, has)]
            update["text_hash"] = [text_hash(t, new) for t in texts]
        else:
            has = np.array([v is not None for v in part.column("text_vector").to_pylist()])
            text = np.zeros_like(image)
            if has.any():
                text[has] = np.stack([np.asarray(v, dtype=np.float32) for v in part.column("text_vector").to_pylist() if v is not None])
        update["fused_vector"] = list(vectorizer.fuse(image, text, has))
        store.update_columns(update)
        notify(IngestProgress("fuse", min(start + _CHUNK, total), total))
    store.compact(force=True)  # every fused vector was rewritten
    return total


def train_on_table(
    store: Store,
    encoder: Any,
    config: FusionConfig,
    *,
    epochs: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train attention on rows with two or more texts; returns the weights blob and figures."""
    table = store.read_columns(["texts", "image_vector"], where="text_vector IS NOT NULL")
    texts = table.column("texts").to_pylist()
    keep = [i for i, t in enumerate(texts) if t and len(t) >= 2]
    if len(keep) < 8:
        raise ConfigError(
            f"attention training needs items with two or more captions; this table has {len(keep)}. "
            "Ingest with a --captions manifest that has several rows per image"
        )
    image = vector_matrix(table.column("image_vector"))[keep]
    captions: list[str] = []
    owner: list[int] = []
    for item, row in enumerate(keep):
        captions += texts[row]
        owner += [item] * len(texts[row])
    caption_vectors = encoder.encode_text(captions)
    module, stats = train_attention(image, caption_vectors, np.asarray(owner), weight=config.weight,
                                    epochs=epochs, seed=seed, progress=progress)
    blob = save_attention(module, encoder.spec.fingerprint)
    return {"blob": blob, "id": fingerprint_blob(blob), "items": stats.items, "captions": len(captions),
            "epochs": stats.epochs, "seconds": round(stats.seconds, 2), "final_loss": round(stats.final_loss, 4)}
