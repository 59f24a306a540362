"""The only module that imports lancedb: table schema, metadata, writes and vector queries.

Each row is one image file. The table's schema metadata records what built it (model,
fingerprint, dimension, schema version), so a search can rebuild the right encoder and an
ingest with another model is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import IndexEmptyError, IngestLockedError, QueryError, StoreError

__all__ = ["Store", "TableMeta", "SCHEMA_VERSION", "image_schema", "STATE_COLUMNS"]

SCHEMA_VERSION = 1
_META_KEY = b"mmembed"
# The columns ingest reads to decide what changed: small, so reading them all is cheap.
STATE_COLUMNS = ["id", "path", "size", "mtime_ns", "content_hash"]
# Columns a search returns besides the score (vectors stay in the table).
HIT_COLUMNS = ["id", "path", "size", "mtime_ns", "width", "height", "format", "text"]
_IN_CHUNK = 512


@dataclass(frozen=True)
class TableMeta:
    """What built a table, stored as JSON in its Arrow schema metadata."""

    model: str  # open_clip model name or local-dir:/abs/path
    pretrained: str | None  # pretrained tag, None for folders and hub repos
    fingerprint: str  # identity of the weights; compared to refuse mixing models
    dim: int  # embedding dimension of image_vector / text_vector
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> TableMeta:
        data = json.loads(raw)
        known = {k: data[k] for k in ("model", "pretrained", "fingerprint", "dim", "schema_version") if k in data}
        return cls(**known)


def image_schema(meta: TableMeta) -> pa.Schema:
    """Schema version 1: one row per image file; text columns reserved for item text and fusion."""
    vec = pa.list_(pa.float32(), meta.dim)
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),  # random, kept across renames
            pa.field("path", pa.string(), nullable=False),  # absolute path
            pa.field("size", pa.int64(), nullable=False),  # bytes
            pa.field("mtime_ns", pa.int64(), nullable=False),  # modification time, ns since epoch
            pa.field("content_hash", pa.string(), nullable=False),  # blake2b-128 of the file bytes
            pa.field("width", pa.int32()),  # pixels, after EXIF orientation
            pa.field("height", pa.int32()),
            pa.field("format", pa.string()),  # Pillow format name
            pa.field("ingested_at", pa.timestamp("ms", tz="UTC")),
            pa.field("image_vector", vec, nullable=False),
            pa.field("text", pa.string()),  # item text (captions, sidecars); reserved
            pa.field("text_vector", vec),  # reserved for item text
        ],
        metadata={_META_KEY: meta.to_json().encode()},
    )


class Store:
    """A LanceDB database location plus one table name.

    Connections are opened lazily; nothing here prints or exits.
    """

    def __init__(self, uri: str, table: str = "images") -> None:
        self.uri = uri
        self.table_name = table
        self._db: Any = None
        self._table: Any = None

    # ------------------------------------------------------------ opening
    @property
    def db(self) -> Any:
        if self._db is None:
            import lancedb

            try:
                # Every read sees the latest commit, so a long-lived Index follows other writers.
                self._db = lancedb.connect(self.uri, read_consistency_interval=timedelta(0))
            except Exception as exc:  # noqa: BLE001 - lancedb raises many types for a bad URI
                raise StoreError(f"cannot open database {self.uri}: {_one_line(exc)}") from exc
        return self._db

    def exists(self) -> bool:
        """True when the table exists (does not create the database folder)."""
        if "://" not in self.uri and not os.path.isdir(self.uri):
            return False
        try:
            return self.table_name in self._list_tables()
        except StoreError:
            return False

    def _list_tables(self) -> list[str]:
        try:
            names: list[str] = []
            page = self.db.list_tables()
            names.extend(page.tables)
            while getattr(page, "page_token", None):
                page = self.db.list_tables(page_token=page.page_token)
                names.extend(page.tables)
            return names
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"cannot list tables in {self.uri}: {_one_line(exc)}") from exc

    @property
    def table(self) -> Any:
        if self._table is None:
            if not self.exists():
                raise IndexEmptyError(
                    f"no index yet in {self.uri} (table '{self.table_name}'); "
                    "run `mmembed ingest PATH` first"
                )
            try:
                self._table = self.db.open_table(self.table_name)
            except Exception as exc:  # noqa: BLE001
                raise StoreError(f"cannot open table '{self.table_name}' in {self.uri}: {_one_line(exc)}") from exc
        return self._table

    def meta(self) -> TableMeta | None:
        """The table's recorded metadata, or None when the table does not exist."""
        if not self.exists():
            return None
        raw = (self.table.schema.metadata or {}).get(_META_KEY)
        if raw is None:
            raise StoreError(
                f"table '{self.table_name}' in {self.uri} was not made by mmembed; "
                "use another --table or --db"
            )
        return TableMeta.from_json(raw)

    def create(self, meta: TableMeta, *, replace: bool = False) -> None:
        """Create the (empty) table; with ``replace`` an existing one is dropped first."""
        try:
            if replace and self.exists():
                self.db.drop_table(self.table_name)
            self._table = self.db.create_table(self.table_name, schema=image_schema(meta))
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"cannot create table '{self.table_name}' in {self.uri}: {_one_line(exc)}") from exc

    # ------------------------------------------------------------ reading
    def count(self) -> int:
        return int(self.table.count_rows()) if self.exists() else 0

    def read_state(self) -> pa.Table:
        """id, path, size, mtime_ns and content_hash of every row (no vectors)."""
        if not self.exists():
            return pa.table({c: pa.array([], pa.string() if c in ("id", "path", "content_hash") else pa.int64()) for c in STATE_COLUMNS})
        return self.table.search().select(STATE_COLUMNS).limit(None).to_arrow()

    def rows_by_id(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Whole rows (vectors included) for the given ids."""
        out: list[dict[str, Any]] = []
        for chunk in _chunks(list(ids), _IN_CHUNK):
            out.extend(self.table.search().where(f"id IN ({_sql_list(chunk)})").limit(None).to_list())
        return out

    def bytes_on_disk(self) -> int | None:
        """Size of the table's files, or None where LanceDB cannot say."""
        try:
            return int(self.table.stats()["total_bytes"])
        except Exception:  # noqa: BLE001
            return None

    # ------------------------------------------------------------ writing
    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Hold an exclusive per-table lock while writing, so two ingests cannot race.

        Local databases only (a file next to the table, released by the kernel even after
        kill -9); object stores rely on LanceDB's own commit conflict handling.
        """
        if "://" in self.uri and not self.uri.startswith("file://"):
            yield
            return
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here
            yield
            return
        folder = self.uri.removeprefix("file://")
        os.makedirs(folder, exist_ok=True)
        lock_path = os.path.join(folder, f".{self.table_name}.ingest.lock")
        with open(lock_path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IngestLockedError(
                    f"another mmembed ingest is writing to table '{self.table_name}' in {self.uri}; "
                    "wait for it to finish"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def add(self, rows: pa.Table) -> None:
        """Append new rows (one atomic commit)."""
        if rows.num_rows:
            self.table.add(rows)

    def upsert(self, rows: pa.Table) -> None:
        """Update rows whose id exists and insert the others (one atomic commit)."""
        if rows.num_rows:
            (
                self.table.merge_insert("id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(rows, on_bad_vectors="null")  # keeps a null text_vector null
            )

    def delete_ids(self, ids: Iterable[str]) -> None:
        for chunk in _chunks(list(ids), _IN_CHUNK):
            self.table.delete(f"id IN ({_sql_list(chunk)})")

    def compact(self) -> None:
        """Merge small fragments; keep recent versions so readers mid-query never lose files."""
        self.table.optimize(cleanup_older_than=timedelta(minutes=10))

    # ------------------------------------------------------------ searching
    def nearest(
        self,
        vector: np.ndarray,
        *,
        column: str = "image_vector",
        limit: int = 10,
        where: str | None = None,
    ) -> list[dict[str, Any]]:
        """The ``limit`` rows nearest ``vector`` by cosine, each with a ``score`` (cosine)."""
        query = (
            self.table.search(np.asarray(vector, dtype=np.float32), vector_column_name=column)
            .distance_type("cosine")
            .select([*HIT_COLUMNS, "_distance"])
            .limit(limit)
        )
        if where:
            query = query.where(where, prefilter=True)
        try:
            rows = query.to_list()
        except Exception as exc:  # noqa: BLE001 - a bad filter surfaces from the query engine
            if where:
                raise QueryError(f"--where {where!r} is not a valid filter: {_one_line(exc)[:200]}") from exc
            raise StoreError(f"search failed: {_one_line(exc)}") from exc
        for row in rows:
            row["score"] = 1.0 - float(row.pop("_distance"))
        return rows


def _vector_matrix(column: pa.ChunkedArray) -> np.ndarray:
    arr = column.combine_chunks()
    if len(arr) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    dim = arr.type.list_size
    return arr.values.to_numpy(zero_copy_only=False).reshape(len(arr), dim).astype(np.float32, copy=False)


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
