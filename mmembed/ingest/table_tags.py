"""Whole-table zero-shot tagging (``Index.tag``, ``ingest --tags``): the stored image vectors
against the label vectors (``models.zeroshot``), written into the ``tags`` and ``tag_scores``
columns. Only text is encoded; no image is decoded."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Collection
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..models.zeroshot import TagReport, TagSettings, label_vectors, tags_for
from ..store.derived import Derived
from ..store.fulltext import recompose_words
from ..store.table import Store
from ..store.vectors import vector_matrix

__all__ = ["tag_all", "tag_table", "stored_settings", "save_settings", "TAG_COLUMNS"]

TAG_COLUMNS = {"tags": pa.list_(pa.string()), "tag_scores": pa.list_(pa.float32())}
_BLOB = "tags"


def stored_settings(store: Store) -> TagSettings | None:
    """The settings the table was last tagged with, or None."""
    found = store.load_blob(_BLOB)
    return TagSettings.from_dict(json.loads(found[0])) if found else None


def save_settings(store: Store, settings: TagSettings) -> None:
    """Keep the settings with the table, so ``ingest --tags`` (and a ``--reindex``) tag alike."""
    store.save_blob(_BLOB, json.dumps(settings.to_dict()).encode(), {"labels": len(settings.labels)})


def tag_all(store: Store, encoder: Any, derived: Derived, settings: TagSettings) -> TagReport:
    """``Index.tag``: every row tagged, then what fast search reads refreshed; the caller holds
    the write lock."""
    report = tag_table(store, encoder, settings)
    derived.refresh()
    return report


def tag_table(store: Store, encoder: Any, settings: TagSettings, *, only_missing: bool = False,
              ids: Collection[str] | None = None, keep_settings: bool = True) -> TagReport:
    """Tag every row (or, ``only_missing``, the rows without tags; ``ids``, only these rows); one
    commit. ``keep_settings`` False leaves the stored settings alone (a staging table's are moved
    by its caller)."""
    started = time.perf_counter()
    store.ensure_columns(TAG_COLUMNS)
    data = store.read_columns(["id", "image_vector"], "tags IS NULL" if only_missing else None)
    if ids is not None:
        data = data.filter(pc.is_in(data.column("id"), value_set=pa.array(list(ids), pa.string())))
    if data.num_rows:
        labels = label_vectors(encoder.encode_text, settings)
        tags, scores = tags_for(vector_matrix(data.column("image_vector")), labels, settings,
                                getattr(encoder, "scores", None))
        row_ids = data.column("id").to_pylist()
        store.update_columns({"id": row_ids, "tags": tags, "tag_scores": scores})
        recompose_words(store, ids=row_ids if only_missing or ids is not None else None)  # tags are words too
    else:
        tags = []
    if keep_settings:
        save_settings(store, settings)
    counts = Counter(tag for row in tags for tag in row)
    return TagReport(data.num_rows, len(settings.labels), counts.most_common(10), time.perf_counter() - started)
