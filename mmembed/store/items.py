"""Reading a table's rows as people see them: metadata without vectors (``Index.items``), and
the image vectors of chosen rows (``Index.duplicates``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from .._options import items
from ..errors import ConfigError
from .table import Store
from .vectors import vector_matrix

__all__ = ["read_items", "item_columns", "photos_and_vectors", "ITEM_COLUMNS", "DUPE_COLUMNS"]

ITEM_COLUMNS = ("id", "path", "size", "mtime_ns", "content_hash", "width", "height", "format", "taken_ns",
                "text", "texts", "text_source", "media", "frame_time", "duration", "raw_siblings")


def read_items(store: Store, ids: Sequence[str] | None = None, where: str | None = None) -> list[dict[str, Any]]:
    """Every row's metadata (or the rows with these ``ids``), manifest columns included; [] when
    there is no table."""
    if store.meta() is None:
        return []
    columns = item_columns(store)
    if ids is None:
        return store.read_columns(columns, where).to_pylist()
    ids = list(items(ids, "ids", ConfigError, (str,)))
    return [{c: row.get(c) for c in columns} for row in store.rows_by_id(ids)]


def item_columns(store: Store) -> list[str]:
    """The columns ``read_items`` gives of this table: ``ITEM_COLUMNS`` it has, then its manifest columns."""
    names = store.table.schema.names
    return [c for c in (*ITEM_COLUMNS, *store.extra_columns) if c in names]


DUPE_COLUMNS = ("id", "path", "size", "mtime_ns", "content_hash", "width", "height", "taken_ns", "media")


def photos_and_vectors(store: Store, *, vectors: bool = True) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """The rows that are not a video's frames (frames of one video are no copies of each other),
    as dicts of what ``retrieval.dupes`` reads of them (``DUPE_COLUMNS``), and, with ``vectors``,
    their image vectors in the same order: read in one pass, batch by batch, into one matrix
    (at 1M rows the whole-table read and its copies peaked at 7.4 GB; BENCHMARKS.md)."""
    if store.meta() is None:
        return [], (np.zeros((0, 0), dtype=np.float32) if vectors else None)
    names = store.table.schema.names
    columns = [c for c in DUPE_COLUMNS if c in names] + (["image_vector"] if vectors else [])
    rows: list[dict[str, Any]] = []
    matrix: np.ndarray | None = None
    for batch in store.scan(columns):
        if "media" in batch.schema.names:
            keep = np.asarray([m != "video" for m in batch.column("media").to_pylist()], dtype=bool)
            batch = batch.filter(pa.array(keep)) if not keep.all() else batch
        if vectors:
            part = vector_matrix(pa.chunked_array([batch.column("image_vector")]))
            if matrix is None or len(rows) + len(part) > len(matrix):  # (a table that grew since it was counted)
                grown = np.empty((max(store.count(), len(rows) + len(part)), part.shape[1]), dtype=np.float32)
                if matrix is not None:
                    grown[:len(rows)] = matrix[:len(rows)]
                matrix = grown
            matrix[len(rows):len(rows) + len(part)] = part
            batch = batch.drop_columns(["image_vector"])
        rows += batch.to_pylist()
    if not vectors:
        return rows, None
    return rows, matrix[:len(rows)] if matrix is not None else np.zeros((0, 0), dtype=np.float32)
