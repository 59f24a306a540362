"""Reading a table's rows as people see them: metadata without vectors (``Index.items``), and
the image vectors of chosen rows (``Index.duplicates``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._options import items
from ..errors import ConfigError, QueryError, StoreError
from .table import Store, TableFileMissing
from .vectors import vector_matrix

__all__ = ["read_items", "item_columns", "photos_and_vectors", "PhotoRows", "ITEM_COLUMNS", "DUPE_COLUMNS"]

ITEM_COLUMNS = ("id", "path", "size", "mtime_ns", "content_hash", "width", "height", "format", "taken_ns",
                "text", "texts", "text_source", "media", "frame_time", "duration", "raw_siblings",
                # where it was taken (ingest/where.py), for a table that has the columns
                "gps_lat", "gps_lon", "gps_alt", "place_city", "place_region", "place_country", "place_country_code")


def read_items(store: Store, ids: Sequence[str] | None = None, where: str | None = None) -> list[dict[str, Any]]:
    """Every row's metadata (or the rows with these ``ids``), manifest columns included; [] when
    there is no table."""
    if store.meta() is None:
        return []
    columns = item_columns(store)
    if "ocr_text" in store.table.schema.names:
        columns.append("ocr_text")  # the words read in the picture (not in the web app's row index: long)
    if ids is None:
        try:
            return store.read_columns(columns, where).to_pylist()
        except StoreError as exc:
            if not where or exc.__cause__ is None or isinstance(exc, TableFileMissing):
                raise
            from .table import filter_reason  # a bad filter is the caller's query, as in a search

            raise QueryError(f"--where {where!r} is not a valid filter: {filter_reason(exc.__cause__)}") from None
    ids = list(items(ids, "ids", ConfigError, (str,)))
    return [{c: row.get(c) for c in columns} for row in store.rows_by_id(ids)]


def item_columns(store: Store) -> list[str]:
    """The columns ``read_items`` gives of this table: ``ITEM_COLUMNS`` it has, then its manifest columns."""
    names = store.table.schema.names
    return [c for c in (*ITEM_COLUMNS, *store.extra_columns) if c in names]


DUPE_COLUMNS = ("id", "path", "size", "mtime_ns", "content_hash", "width", "height", "taken_ns", "media")


class PhotoRows(Sequence[dict[str, Any]]):
    """Rows held as one pyarrow ``table``; ``rows[i]`` makes row i's dict when it is asked for
    (at 1M rows a list of dicts took about 1 GB, the columns take about 150 MB)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table.combine_chunks()
        self._columns = self.table.column_names

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return {c: self.table.column(c)[i].as_py() for c in self._columns}


def photos_and_vectors(store: Store, *, vectors: bool = True, dtype: Any = np.float32
                       ) -> tuple[PhotoRows, np.ndarray | None]:
    """The rows that are not a video's frames (frames of one video are no copies of each other),
    with what ``retrieval.dupes`` reads of them (``DUPE_COLUMNS``), and, with ``vectors``, their
    image vectors in the same order (as ``dtype``: float16 halves a large table's matrix): read in
    one pass, batch by batch, into one matrix (at 1M rows the whole-table read and its copies
    peaked at 7.4 GB; BENCHMARKS.md)."""
    if store.meta() is None:
        empty = pa.table({c: pa.array([], pa.string()) for c in ("id", "path")})
        return PhotoRows(empty), (np.zeros((0, 0), dtype=dtype) if vectors else None)
    names = store.table.schema.names
    columns = [c for c in DUPE_COLUMNS if c in names] + (["image_vector"] if vectors else [])
    kept: list[pa.RecordBatch] = []
    done = 0
    matrix: np.ndarray | None = None
    for batch in store.scan(columns):
        if "media" in batch.schema.names:
            keep = np.asarray([m != "video" for m in batch.column("media").to_pylist()], dtype=bool)
            batch = batch.filter(pa.array(keep)) if not keep.all() else batch
        if not batch.num_rows:  # a batch of a video's frames only (a video ingested on its own)
            continue
        if vectors:
            part = vector_matrix(pa.chunked_array([batch.column("image_vector")]))
            if matrix is None or done + len(part) > len(matrix):  # (a table that grew since it was counted)
                grown = np.empty((max(store.count(), done + len(part)), part.shape[1]), dtype=dtype)
                if matrix is not None:
                    grown[:done] = matrix[:done]
                matrix = grown
            matrix[done:done + len(part)] = part
            batch = batch.drop_columns(["image_vector"])
        done += batch.num_rows
        # a copy: a column read from LanceDB keeps its whole batch alive, vectors and all (the
        # import shares one owner), and at 1M rows the kept columns held 2 GB of vectors so
        kept.append(pc.take(batch, pa.array(np.arange(batch.num_rows))))
    schema = kept[0].schema if kept else pa.schema([(c, pa.string()) for c in columns if c != "image_vector"])
    rows = PhotoRows(pa.Table.from_batches(kept, schema=schema))
    if not vectors:
        return rows, None
    return rows, matrix[:done] if matrix is not None else np.zeros((0, 0), dtype=dtype)
