"""Reading a table's rows as people see them: metadata without vectors (``Index.items``), and
the image vectors of chosen rows (``Index.duplicates``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._options import items
from ..errors import ConfigError
from .table import Store
from .vectors import vector_matrix

__all__ = ["read_items", "item_columns", "image_vectors", "photos_and_vectors", "ITEM_COLUMNS"]

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


def image_vectors(store: Store, rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """The stored image vectors of ``rows`` (as read by ``read_items``), in their order."""
    data = store.read_columns(["id", "image_vector"])
    at = {row_id: i for i, row_id in enumerate(data.column("id").to_pylist())}
    matrix = vector_matrix(data.column("image_vector"))
    return matrix[[at[row["id"]] for row in rows]] if rows else matrix


def photos_and_vectors(store: Store, *, vectors: bool = True) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """The rows that are not a video's frames (frames of one video are no copies of each other)
    and, with ``vectors``, their image vectors: what ``retrieval.dupes`` compares."""
    rows = [row for row in read_items(store) if row.get("media") != "video"]
    return rows, image_vectors(store, rows) if vectors else None
