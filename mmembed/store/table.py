"""The only module that imports lancedb: table schema, metadata, writes and vector queries.

Each row is one image file. The metadata of the ``id`` field records what built the table
(model, fingerprint, dimension, fusion settings, schema version), so a search can rebuild
the right encoder and an ingest with another model is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import IndexEmptyError, IngestLockedError, QueryError, StoreError, StoreWriteError
from .lock import WriteLock
from .memory import give_back_memory

__all__ = ["Store", "TableMeta", "SCHEMA_VERSION", "image_schema", "STATE_COLUMNS", "VECTOR_COLUMNS", "ADDED_COLUMNS"]

SCHEMA_VERSION = 2
_META_KEY = "mmembed"
# The columns ingest reads to decide what changed: small, so reading them all is cheap.
STATE_COLUMNS = ["id", "path", "size", "mtime_ns", "content_hash", "text_hash", "embedded_texts", "manifest_texts",
                 "raw_siblings", "etag"]
# Nullable columns added to schema 2 later: new tables have them, and ingest adds them to an
# older table (``Store.ensure_columns``) before writing, so its rows keep them.
ADDED_COLUMNS: dict[str, pa.DataType] = {
    "raw_siblings": pa.list_(pa.string()),  # a JPEG/HEIC's RAW files of the same shot (names, same folder)
    # Videos: one row per kept frame, each with the video's file columns (path, size, hash).
    "media": pa.string(),  # 'image' or 'video' (null in rows written before videos: images)
    "frame_time": pa.float64(),  # seconds from the video's start of this row's frame; null for images
    "duration": pa.float64(),  # the video's length in seconds; null for images
    # Object storage: the object's ETag when its row was written (null for local files); ingest
    # compares it with the listing's, with size and LastModified.
    "etag": pa.string(),
    # Words in the pixels (issue 22): the OCR text, its lines as JSON ([{"text", "box": [[x, y] x4],
    # "confidence"}], upright-image pixels) and what read it (null: not read yet).
    "ocr_text": pa.string(),
    "ocr_lines": pa.string(),
    "ocr_engine": pa.string(),
    # Where (issue 23): EXIF/XMP GPS and the gazetteer's place for it (null without a fix).
    "gps_lat": pa.float64(),
    "gps_lon": pa.float64(),
    "gps_alt": pa.float32(),
    "place_id": pa.int64(),
    "place_city": pa.string(),
    "place_region": pa.string(),
    "place_country": pa.string(),
    "place_country_code": pa.string(),
    "place_names": pa.list_(pa.string()),
    # Every word the item has (texts, EXIF, manifest, path, OCR, tags, place): the full-text
    # index's column, composed by ``text.words.item_words``.
    "words": pa.string(),
}
VECTOR_COLUMNS = ("image_vector", "text_vector", "fused_vector")
_IN_CHUNK = 512
# ANN index: IVF with RaBitQ-quantised vectors (4 bits per dimension), one partition per
# ~4000 rows up to 256, 32 partitions probed, the best candidates re-ranked with the exact
# vectors. Chosen on 1M vectors that cluster like real CLIP embeddings (real micro-clip
# vectors and perturbed copies, benchmarks/ann_realistic.py): recall@10 0.999, 6 ms per
# query against 11 ms for one partition; on random unit vectors, the worst case for any
# partitioning, recall falls to 0.27, so each partitioned build checks itself on a sample of
# the table and falls back to one partition (a quantised scan of every row) when the sample
# recall is low (BENCHMARKS.md has both tables).
ANN_INDEX_TYPE = "IVF_RQ"
ANN_BITS = 4
ANN_MAX_PARTITIONS = 256
ANN_ROWS_PER_PARTITION = 4000
ANN_NPROBES = 32  # below 32 partitions every one is probed: exact up to the 4-bit pass and re-ranking
ANN_REFINE = 5  # re-rank limit x 5 candidates with the exact vectors
ANN_SAMPLE_QUERIES = 24  # after a partitioned build: queries near the table's own vectors ...
ANN_MIN_SAMPLE_RECALL = 0.9  # ... must find this share of the exact top 10, or one partition it is


def ann_partitions(rows: int) -> int:
    """IVF partitions for an index over ``rows`` vectors."""
    return max(1, min(ANN_MAX_PARTITIONS, rows // ANN_ROWS_PER_PARTITION))


ANN_MIN_ROWS = 256  # below this an index cannot be trained (and exact search is instant)
SCAN_ROWS = 4_096  # rows a whole-table scan reads at once, by offset (Store.scan)
METADATA_CACHE_BYTES = 4 << 20  # LanceDB's metadata cache (default 1 GB): it kept every version's manifest;
# at 32 MB an ingest's RSS still grew ~30 MB with 400 commits, at 4 MB it stays flat (BENCHMARKS.md)
FRAGMENT_READAHEAD = "1"  # fragments a local scan or compaction reads ahead (Store.db)
COMPACT_FRAGMENTS = 16  # Store.compact: small fragments (under 100k rows) gathered before they are merged


@dataclass(frozen=True)
class TableMeta:
    """What built a table, stored as JSON in the metadata of its ``id`` field."""

    model: str  # open_clip model name or local-dir:/abs/path
    pretrained: str | None  # pretrained tag, None for folders and hub repos
    fingerprint: str  # identity of the weights; compared to refuse mixing models
    dim: int  # embedding dimension of image_vector / text_vector
    fusion: dict[str, Any] | None = None  # FusionConfig.to_dict() of the fused_vector column
    fusion_pending: bool = False  # a fusion apply started and has not finished
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> TableMeta:
        data = json.loads(raw)
        known = ("model", "pretrained", "fingerprint", "dim", "fusion", "fusion_pending", "schema_version")
        return cls(**{k: data[k] for k in known if k in data})


def image_schema(meta: TableMeta, fused_dim: int) -> pa.Schema:
    """Schema version 2: one row per image file (per kept frame of a video), with its item text
    and fused vector."""
    vec = pa.list_(pa.float32(), meta.dim)
    texts = pa.list_(pa.string())
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False, metadata={_META_KEY: meta.to_json()}),  # random, kept across renames
            pa.field("path", pa.string(), nullable=False),  # absolute path
            pa.field("size", pa.int64(), nullable=False),  # bytes
            pa.field("mtime_ns", pa.int64(), nullable=False),  # modification time, ns since epoch
            pa.field("content_hash", pa.string(), nullable=False),  # blake2b-128 of the file bytes
            pa.field("width", pa.int32()),  # pixels, after EXIF orientation
            pa.field("height", pa.int32()),
            pa.field("format", pa.string()),  # Pillow format name
            pa.field("ingested_at", pa.timestamp("ms", tz="UTC")),
            pa.field("taken_ns", pa.int64()),  # EXIF date taken (camera local time as UTC), ns; null when unknown
            pa.field("image_vector", vec, nullable=False),
            pa.field("text", pa.string()),  # the item's first text, for display
            pa.field("texts", texts),  # every text the item's chosen source gave
            pa.field("text_source", pa.string()),  # sidecar, embedded, manifest, path
            pa.field("text_hash", pa.string()),  # hash of texts + aggregation; a change re-encodes text only
            pa.field("embedded_texts", texts),  # EXIF/IPTC/XMP texts, refreshed when the file is read
            pa.field("manifest_texts", texts),  # captions from manifests, kept until a manifest changes them
            pa.field("text_vector", vec),  # aggregate of the texts' vectors; null without text
            pa.field("fused_vector", pa.list_(pa.float32(), fused_dim)),  # see fusion.py
            *(pa.field(name, kind) for name, kind in ADDED_COLUMNS.items()),
        ]
    )



@contextmanager
def _errors(action: str, *, write: bool = False) -> Iterator[None]:
    """Turn lancedb/OS failures into StoreError (a failed ``write``: StoreWriteError with the
    plain reason, e.g. 'No space left on device'); let our own errors through."""
    try:
        yield
    except (StoreError, IndexEmptyError, QueryError, IngestLockedError):
        raise
    except Exception as exc:  # noqa: BLE001 - lancedb raises many types
        if write:
            reason = os_reason(exc)
            raise StoreWriteError(f"{action}: {reason}", reason) from exc
        missing = _missing_file(_one_line(exc))
        if missing:
            raise TableFileMissing(f"{action}: a file of the table is missing ({missing}); run `mmembed doctor` "
                             "to check the table and go back to the last version that reads") from exc
        raise StoreError(f"{action}: {_one_line(exc)[:300]}") from exc


class TableFileMissing(StoreError):
    """A data file of the table is gone or cut short (Lance's "Not found"): damage, whatever the query."""


def _missing_file(text: str) -> str | None:
    """The file named by Lance's "Not found: PATH" (a data file deleted or cut short under a local
    table), with the leading '/' that Lance's object store drops put back; None for other errors."""
    found = re.search(r"Not found: (\S+?\.lance/\S+)", text)
    if not found:
        return None
    path = found.group(1).rstrip(".,;")
    if not path.startswith("/") and os.path.isdir("/" + path.split(".lance/", 1)[0] + ".lance"):
        path = "/" + path
    return path


class Store:
    """A LanceDB database location plus one table name.

    Connections are opened lazily; nothing here prints or exits.
    """

    def __init__(self, uri: str, table: str = "images") -> None:
        self.uri = uri
        self.table_name = table
        self._db: Any = None
        self.session: Any = None  # LanceDB's caches, once connected (their sizes: ``session.size_bytes``)
        self._table: Any = None
        self._stats: tuple[int, int, bool] | None = None  # (version, rows, whether any row has text)
        self._sample: tuple[tuple[Any, ...], tuple[np.ndarray, np.ndarray | None]] | None = None  # _sampled's cache
        local = "://" not in uri or uri.startswith("file://")
        self._lock = WriteLock(uri.removeprefix("file://") if local else None, table, uri)

    # ------------------------------------------------------------ opening
    @property
    def db(self) -> Any:
        if self._db is None:
            from ._fast_import import import_lancedb

            if self.is_local:
                # Lance reads this once per process (a lazy static), at the first scan. On a local
                # disk, one fragment read ahead instead of Lance's default (twice its I/O threads):
                # compacting a 100k-row ingest's fragments peaked ~35 MB lower, the whole ingest
                # 13-19 MB (BENCHMARKS.md), and scans of a compacted table are no slower.
                # Remote stores keep the default, where read-ahead hides latency. A value the
                # user set wins.
                os.environ.setdefault("LANCE_DEFAULT_FRAGMENT_READAHEAD", FRAGMENT_READAHEAD)
            lancedb = import_lancedb()
            try:
                # Every read sees the latest commit, so a long-lived Index follows other writers.
                # A bounded metadata cache: by default LanceDB keeps the manifest of every version
                # it has seen, and each commit of an ingest is a version whose manifest lists every
                # fragment, so 400 commits held 100 MB and an ingest's memory grew with its size.
                self.session = lancedb.Session(metadata_cache_size_bytes=METADATA_CACHE_BYTES)
                self._db = lancedb.connect(self.uri, read_consistency_interval=timedelta(0), session=self.session,
                                           **self._remote_options())
            except Exception as exc:  # noqa: BLE001 - lancedb raises many types for a bad URI
                raise StoreError(f"cannot open database {self.uri}: {_one_line(exc)}") from exc
        return self._db

    def _remote_options(self) -> dict[str, Any]:
        """For an ``s3://`` database: the endpoint and credentials from the environment
        (``sources.remote.storage_options``), handed to LanceDB and never stored."""
        if not self.uri.startswith("s3://"):
            return {}
        from ..sources.remote import storage_options

        return {"storage_options": storage_options()}

    def exists(self) -> bool:
        """True when the table exists (does not create the database folder)."""
        if "://" not in self.uri:
            if not os.path.exists(self.uri):
                return False
            if not os.path.isdir(self.uri):
                raise StoreError(f"--db {self.uri} is a file, not a database folder; pass a folder path")
        if self.table_name not in self._list_tables():
            return False
        if self._table is None:
            # The listing shows a table's folder as soon as it is made; a reader that comes while
            # the first ingest is creating it finds no version yet, and no data: no table yet.
            try:
                self._table = self.db.open_table(self.table_name)
            except Exception as exc:  # noqa: BLE001
                if "not found" in str(exc).lower() and self._holds_no_data():
                    return False
                # Any other failure (data without a version: damage) is reported, with advice, by `table`.
        return True

    def _holds_no_data(self) -> bool:
        """No data file under the table's folder (a table being created); True off a local disk."""
        if not self.is_local:
            return True
        data = os.path.join(self.uri.removeprefix("file://"), f"{self.table_name}.lance", "data")
        try:
            return not os.listdir(data)
        except OSError:
            return True

    def table_names(self) -> list[str]:
        """The tables of this database (a staging or fusion table included)."""
        return self._list_tables() if "://" in self.uri or os.path.isdir(self.uri) else []

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
                self._table = self._table or self.db.open_table(self.table_name)
            except Exception as exc:  # noqa: BLE001
                raise StoreError(
                    f"cannot open table '{self.table_name}' in {self.uri}: {_one_line(exc)[:200]}; "
                    "run `mmembed doctor` to check it and restore the last good version"
                ) from exc
        return self._table

    def meta(self) -> TableMeta | None:
        """The table's recorded metadata, or None when the table does not exist."""
        if not self.exists():
            return None
        raw = (self.table.schema.field("id").metadata or {}).get(_META_KEY.encode())
        if raw is None:
            raise StoreError(
                f"table '{self.table_name}' in {self.uri} was not made by this mmembed version; "
                "use another --table or --db, or rebuild it with --reindex"
            )
        return TableMeta.from_json(raw)

    def snapshot_meta(self) -> TableMeta | None:
        """The metadata the search snapshot recorded, for a table that cannot be opened."""
        from .snapshot import snapshot_info

        info = snapshot_info(self.uri.removeprefix("file://"), self.table_name) if self.is_local else None
        try:
            return TableMeta.from_json(json.dumps(info["meta"])) if info else None
        except (KeyError, TypeError, ValueError):
            return None

    def set_meta(self, meta: TableMeta) -> None:
        with _errors(f"cannot update table '{self.table_name}' metadata"):
            self.table.update_field_metadata({"path": "id", "metadata": {_META_KEY: meta.to_json()}})

    def create(self, meta: TableMeta, fused_dim: int, *, replace: bool = False) -> None:
        """Create the (empty) table; with ``replace`` an existing one is dropped first."""
        with _errors(f"cannot create table '{self.table_name}' in {self.uri}"):
            if replace and self.exists():
                self.db.drop_table(self.table_name)
            self._table = self.db.create_table(self.table_name, schema=image_schema(meta, fused_dim))

    def reopen(self, *, reconnect: bool = False) -> None:
        """Forget the open table (with ``reconnect``, the connection too), so the next use opens it
        afresh: after its files were changed behind LanceDB's back (``store.repair``)."""
        self._table = None
        if reconnect:
            self._db = None

    def drop(self) -> None:
        with _errors(f"cannot drop table '{self.table_name}'"):
            if self.exists():
                self.db.drop_table(self.table_name)
        self._table = None

    def replace_with(self, staging: Store) -> None:
        """Make this table hold exactly the staging table's rows, in one commit, then drop staging.

        Readers see the old rows until that commit and the new ones after: never an empty table.
        """
        with _errors(f"cannot read table '{staging.table_name}'"):
            data = staging.table.to_arrow()
        try:
            with _errors(f"cannot replace table '{self.table_name}'"):
                self._table = self.db.create_table(self.table_name, data=data, schema=staging.table.schema,
                                                   mode="overwrite", on_bad_vectors="null")
        except StoreError:
            if self._opens():
                raise
            # The old table cannot be opened (a damaged version): nothing of it can be read, so
            # the rebuilt one takes its place outright.
            self._remove_unreadable()
            with _errors(f"cannot replace table '{self.table_name}'"):
                self._table = self.db.create_table(self.table_name, data=data, schema=staging.table.schema,
                                                   on_bad_vectors="null")
        staging.drop()

    def _opens(self) -> bool:
        self._table = None
        try:
            _ = self.table
            return True
        except StoreError:
            return False

    def _remove_unreadable(self) -> None:
        try:
            self.db.drop_table(self.table_name)
        except Exception:  # noqa: BLE001 - dropping may need the manifest that is damaged
            if not self.is_local:
                raise StoreError(f"cannot remove the damaged table '{self.table_name}' in {self.uri}") from None
            shutil.rmtree(os.path.join(self.uri.removeprefix("file://"), f"{self.table_name}.lance"),
                          ignore_errors=True)
        self._table = None

    def ensure_columns(self, columns: dict[str, pa.DataType]) -> None:
        """Add nullable columns (e.g. manifest extras) that the table lacks."""
        have = set(self.table.schema.names)
        missing = [pa.field(name, kind) for name, kind in columns.items() if name not in have]
        if missing:
            with _errors(f"cannot add columns to table '{self.table_name}'"):
                self.table.add_columns(missing)

    def reset_fused_column(self, fused_dim: int) -> None:
        """Replace fused_vector by an all-null column of a new dimension (a change of strategy)."""
        with _errors(f"cannot reshape table '{self.table_name}'"):
            self.table.drop_columns(["fused_vector"])
            self.table.add_columns(pa.field("fused_vector", pa.list_(pa.float32(), fused_dim)))

    # ------------------------------------------------------------ reading
    def count(self) -> int:
        if not self.exists():
            return 0
        with _errors(f"cannot count rows of table '{self.table_name}'"):
            return int(self.table.count_rows())

    def search_stats(self) -> tuple[int, bool]:
        """(rows, whether any row has text), cached per table version. Whether, not how many: a
        count of the rows with text reads the whole text-vector column (0.5-1.5 s at a million
        rows), where finding one row stops at it (BENCHMARKS.md)."""
        if not self.exists():
            return 0, False
        with _errors(f"cannot read table '{self.table_name}'"):
            version = int(self.table.version)
        if self._stats is None or self._stats[0] != version:
            self._stats = (version, self.count(), self.any_where("text_vector IS NOT NULL"))
        return self._stats[1], self._stats[2]

    def count_where(self, where: str) -> int:
        if not self.exists():
            return 0
        with _errors(f"cannot count rows of table '{self.table_name}'"):
            return int(self.table.count_rows(where))

    def any_where(self, where: str) -> bool:
        """Whether some row matches ``where``: the scan stops at the first one (``count_where``
        reads every row)."""
        if not self.exists():
            return False
        with _errors(f"cannot read table '{self.table_name}'"):
            return self.table.search().where(where).select(["id"]).limit(1).to_arrow().num_rows > 0

    def read_columns(self, columns: Sequence[str], where: str | None = None) -> pa.Table:
        """The given columns of every row (or of the rows matching ``where``)."""
        with _errors(f"cannot read table '{self.table_name}'"):
            query = self.table.search().select(list(columns))
            if where:
                query = query.where(where)
            return query.limit(None).to_arrow()

    def scan(self, columns: Sequence[str], where: str | None = None, *,
             batch_rows: int = SCAN_ROWS) -> Iterator[pa.RecordBatch]:
        """The given columns of every row (or of the rows matching ``where``), one batch at a time
        in the table's order: without ``where``, the n-th row scanned is the row at offset n
        for ``take``. Memory stays at a few batches.

        Without ``where`` the rows are read by offset, ``batch_rows`` at a time: LanceDB's scan
        reads ahead up to 2 GiB (Lance's I/O buffer), so a whole-table scan's memory grew with
        the table (2 GB at 1M rows of 512-d vectors, 320 MB read by offset; BENCHMARKS.md), and
        a smaller buffer (``LANCE_DEFAULT_IO_BUFFER_SIZE``) made some scans hang."""
        with _errors(f"cannot read table '{self.table_name}'"):
            if where:
                yield from iter(self.table.search().select(list(columns)).where(where).limit(None).to_batches(batch_rows))
                return
            total = self.count()
            for start in range(0, total, batch_rows):
                offsets = list(range(start, min(total, start + batch_rows)))
                yield from self.table.take_offsets(offsets).select(list(columns)).to_arrow().to_batches()

    def take(self, offsets: Sequence[int], columns: Sequence[str]) -> list[dict[str, Any]]:
        """The rows at these offsets (places in the table's order, as ``scan`` reads it), as
        dicts of ``columns``, in the order given; a random read, not a scan. An offset past the
        end (the table shrank since it was counted) gives no row."""
        wanted = sorted(set(int(o) for o in offsets))
        if not wanted:
            return []
        with _errors(f"cannot read table '{self.table_name}'"):
            rows = self.table.take_offsets(wanted).select(list(columns)).to_arrow().to_pylist()
        at = dict(zip(wanted, rows))  # LanceDB gives them in offset order, those past the end left out
        return [at[int(o)] for o in offsets if int(o) in at]

    def read_state(self) -> Iterator[dict[str, Any]]:
        """The state columns of every row (no vectors), as dicts made a batch at a time (a list
        of every row's dict at once was 100 MB more at 100k rows)."""
        if not self.exists():
            return
        have = set(self.table.schema.names)  # an older table may lack an added column
        for batch in self.scan([c for c in STATE_COLUMNS if c in have]):
            yield from batch.to_pylist()

    @property
    def extra_columns(self) -> list[str]:
        """Columns beyond the built-in schema (manifest extras)."""
        core = set(image_schema(TableMeta("", None, "", 1), 1).names)
        return [n for n in self.table.schema.names if n not in core]

    def rows_by_id(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Whole rows (vectors included) for the given ids."""
        out: list[dict[str, Any]] = []
        for chunk in _chunks(list(ids), _IN_CHUNK):
            with _errors(f"cannot read table '{self.table_name}'"):
                out.extend(self.table.search().where(f"id IN ({_sql_list(chunk)})").limit(None).to_list())
        return out

    def sample_vectors(self, column: str, rows: int = 4096) -> np.ndarray:
        """Up to ``rows`` non-null vectors of ``column`` spread evenly over the table, cached per
        table version: a query's score distribution over the table without a full scan."""
        return self._sampled(column, rows, with_text=False)[0]

    def sample_with_text(self, column: str, rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """``sample_vectors`` and, for each of its rows, whether the row has a text vector (the
        groups of ``retrieval.query.GroupStats``)."""
        vectors, has_text = self._sampled(column, rows, with_text=True)
        assert has_text is not None
        return vectors, has_text

    def _sampled(self, column: str, rows: int, *, with_text: bool) -> tuple[np.ndarray, np.ndarray | None]:
        from .vectors import vector_matrix

        with _errors(f"cannot read table '{self.table_name}'"):
            key = (column, int(self.table.version), rows, with_text)
            if self._sample is None or self._sample[0] != key:
                total = self.count()
                offsets = np.unique(np.linspace(0, max(total - 1, 0), min(rows, total)).astype(np.int64))
                wanted = [column, "text_vector"] if with_text and column != "text_vector" else [column]
                data = self.table.take_offsets([int(o) for o in offsets]).select(wanted).to_arrow()
                vectors = data.column(column)
                valid = vectors.is_valid()
                has_text = np.asarray(data.column(wanted[-1]).is_valid())[np.asarray(valid)] if with_text else None
                self._sample = (key, (vector_matrix(vectors.filter(valid) if vectors.null_count else vectors), has_text))
            return self._sample[1]

    def bytes_on_disk(self) -> int | None:
        """Size of the table's files, or None where LanceDB cannot say."""
        try:
            return int(self.table.stats()["total_bytes"])
        except Exception:  # noqa: BLE001
            return None

    # ------------------------------------------------------------ writing
    def write_lock(self, action: str = "ingest") -> AbstractContextManager[None]:
        """Hold the table's write lock while writing (``action`` names the writer to others);
        see ``store/lock.py``. Reentrant within this Store."""
        return self._lock.hold(action)

    def add(self, rows: pa.Table) -> None:
        """Append new rows (one atomic commit)."""
        if rows.num_rows:
            with _errors(f"cannot write to table '{self.table_name}'", write=True):
                self.table.add(rows)

    def upsert(self, rows: pa.Table) -> None:
        """Update rows whose id exists and insert the others (one atomic commit)."""
        if rows.num_rows:
            with _errors(f"cannot write to table '{self.table_name}'", write=True):
                (
                    self.table.merge_insert("id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(rows, on_bad_vectors="null")  # keeps a null text_vector null
                )

    def update_columns(self, columns: dict[str, list[Any]]) -> None:
        """Set some columns of existing rows, matched by ``columns['id']`` (one commit)."""
        if not columns["id"]:
            return
        fields = [self.table.schema.field(name) for name in columns]
        data = pa.Table.from_pydict(columns, schema=pa.schema(fields))
        with _errors(f"cannot write to table '{self.table_name}'", write=True):
            self.table.merge_insert("id").when_matched_update_all().execute(data, on_bad_vectors="null")

    def delete_ids(self, ids: Iterable[str]) -> None:
        for chunk in _chunks(list(ids), _IN_CHUNK):
            with _errors(f"cannot write to table '{self.table_name}'", write=True):
                self.table.delete(f"id IN ({_sql_list(chunk)})")

    def compact(self, *, force: bool = False) -> bool:
        """Merge small fragments and bring the indices up to date (LanceDB's ``optimize``), when
        ``needs_compaction`` says it is worth it, or ``force``; keep recent versions so readers
        mid-query never lose files. True when it ran.

        Not after every write: Lance merges every fragment under a million rows, so each
        ``optimize`` rewrote the whole table (100 files added to 100k rows rewrote all 400 MB of
        it, and peaked with it). Rows written since are searched all the same (LanceDB scans
        the rows its indices do not cover yet; the snapshot holds every row)."""
        if not force and not self.needs_compaction():
            return False
        give_back_memory()  # what the writes before freed: not the compaction's base
        with _errors(f"cannot write to table '{self.table_name}'", write=True):
            self.table.optimize(cleanup_older_than=timedelta(minutes=10))
        give_back_memory()  # what the compaction freed, in LanceDB's threads' arenas: not the next step's base
        return True

    def needs_compaction(self) -> bool:
        """Whether ``COMPACT_FRAGMENTS`` small fragments (each write adds one) have gathered."""
        try:
            fragments = self.table.stats()["fragment_stats"]
        except Exception:  # noqa: BLE001 - no stats (an older LanceDB): compact as before
            return True
        return int(fragments.get("num_small_fragments", 0)) >= COMPACT_FRAGMENTS

    # ------------------------------------------------------------ ANN index
    def vector_indices(self) -> dict[str, str]:
        """Vector column -> index name, for the columns that have an ANN index."""
        with _errors(f"cannot list indices of table '{self.table_name}'"):
            found = self.table.list_indices()
        out = {}
        for idx in found:
            kind = str(getattr(idx, "index_type", "")).upper()
            columns = list(getattr(idx, "columns", []))
            if columns and columns[0] in VECTOR_COLUMNS and ("IVF" in kind or "HNSW" in kind):
                out[columns[0]] = idx.name
        return out

    def build_vector_index(self, column: str) -> dict[str, Any]:
        """Build (or rebuild) the ANN index on ``column``; see ANN_* for the choice."""
        rows = self.count_where(f"{column} IS NOT NULL")
        if rows < ANN_MIN_ROWS:
            raise QueryError(f"{column} has {rows} vectors; an ANN index needs at least {ANN_MIN_ROWS} "
                             "(exact search is instant here)")
        with _errors(f"cannot build the vector index on {column}"):
            from lancedb.index import IvfRq

            partitions = ann_partitions(rows)
            config = IvfRq(distance_type="cosine", num_partitions=partitions, num_bits=ANN_BITS)
            self.table.create_index(column, config=config, replace=True)
            recall = self._sample_recall(column) if partitions > 1 else None
            if recall is not None and recall < ANN_MIN_SAMPLE_RECALL:
                # vectors that do not cluster (the partitions split true neighbours): scan all
                partitions = 1
                config = IvfRq(distance_type="cosine", num_partitions=1, num_bits=ANN_BITS)
                self.table.create_index(column, config=config, replace=True)
        return {"column": column, "type": ANN_INDEX_TYPE, "bits": ANN_BITS, "partitions": partitions,
                "nprobes": min(ANN_NPROBES, partitions), "refine_factor": ANN_REFINE, "rows": rows,
                "sample_recall_at_10": None if recall is None else round(recall, 3)}

    def _sample_recall(self, column: str, queries: int = ANN_SAMPLE_QUERIES) -> float:
        """recall@10 of the new index against an exact scan, for queries near the table's own
        vectors (a sample of rows, each moved by noise so that it is not its own answer)."""
        sample = self.table.search().select([column]).limit(max(queries * 40, 1000)).to_arrow()
        vectors = np.asarray(pa.concat_arrays(sample.column(column).chunks).values, dtype=np.float32)
        vectors = vectors.reshape(len(sample), -1)[:: max(1, len(sample) // queries)][:queries]
        rng = np.random.default_rng(0)
        noise = rng.standard_normal(vectors.shape).astype(np.float32)
        noise *= 0.5 * np.linalg.norm(vectors, axis=1, keepdims=True) / np.linalg.norm(noise, axis=1, keepdims=True)
        found = []
        for q in vectors + noise:
            base = self.table.search(q, vector_column_name=column).distance_type("cosine").select(["id"]).limit(10)
            exact = {r["id"] for r in base.bypass_vector_index().to_list()}
            approx = self.table.search(q, vector_column_name=column).distance_type("cosine").select(["id"]).limit(10)
            got = {r["id"] for r in approx.nprobes(ANN_NPROBES).refine_factor(ANN_REFINE).to_list()}
            found.append(len(exact & got) / max(1, len(exact)))
        return float(np.mean(found)) if found else 1.0

    def ensure_id_index(self) -> bool:
        """A BTree index on ``id``, built when missing: a merge on ``id`` (``update_columns``,
        ``upsert``: tags, OCR text, places, re-ingest) then looks its rows up instead of joining
        the whole table. On 1M rows one 4,096-row merge took 26 s and 12.6 GB without it, 0.1 s
        and 0.3 GB with it (BENCHMARKS.md). Rows written later are merged by a scan of their
        own fragments until an ``optimize`` brings them in. True when it was built."""
        from lancedb.index import BTree

        with _errors(f"cannot list indices of table '{self.table_name}'"):
            if any(list(getattr(idx, "columns", [])) == ["id"] for idx in self.table.list_indices()):
                return False
        with _errors(f"cannot build the id index of table '{self.table_name}'", write=True):
            self.table.create_index("id", config=BTree())
        return True

    def drop_vector_indices(self) -> int:
        names = list(self.vector_indices().values())
        for name in names:
            with _errors(f"cannot drop index {name}"):
                self.table.drop_index(name)
        return len(names)

    # ------------------------------------------------------------ snapshot for quick search
    @property
    def is_local(self) -> bool:
        return "://" not in self.uri or self.uri.startswith("file://")

    def write_snapshot(self) -> bool:
        """Refresh the plain-file snapshot that quick search reads (local tables only).

        Tables above ``SNAPSHOT_MAX_ROWS`` get none (their searches go through the ANN index).
        Returns True when a snapshot was written.
        """
        from .snapshot import (
            SNAPSHOT_MAX_ROWS,
            remove_snapshot,
            snapshot_folder,
            write_snapshot,
        )

        if not self.is_local or not self.exists():
            return False
        folder = snapshot_folder(self.uri, self.table_name)
        rows = self.count()
        if rows == 0 or rows > SNAPSHOT_MAX_ROWS:
            remove_snapshot(folder)
            return False
        skip = {"texts", "embedded_texts", "manifest_texts", "text_hash", "content_hash", "mtime_ns", "ingested_at", "etag"}
        with _errors(f"cannot snapshot table '{self.table_name}'"):
            version = int(self.table.version)
            raw = (self.table.schema.field("id").metadata or {}).get(_META_KEY.encode(), b"{}")
            columns = [c for c in self.table.schema.names if c not in skip]
            batches = self.scan(columns)  # read by offset: memory stays flat as the table grows
        try:
            write_snapshot(folder, version, batches, raw.decode(), self.extra_columns, rows=rows)
        except OSError as exc:
            raise StoreError(f"cannot write search snapshot in {folder} ({exc.strerror or exc})") from None
        except Exception as exc:  # noqa: BLE001 - lancedb raises many types while the rows stream
            raise StoreError(f"cannot snapshot table '{self.table_name}': {_one_line(exc)[:300]}") from exc
        if int(self.table.version) != version:
            return False  # another writer committed meanwhile (the snapshot records the older version: unread)
        return True

    # ------------------------------------------------------------ fusion weights
    @property
    def _blob_table_name(self) -> str:
        return f"{self.table_name}__fusion"

    def save_blob(self, name: str, blob: bytes, info: dict[str, Any]) -> None:
        """Keep a named binary (trained fusion weights) in the database, next to the table."""
        schema = pa.schema([pa.field("name", pa.string()), pa.field("info", pa.string()), pa.field("blob", pa.large_binary())])
        data = pa.table({"name": [name], "info": [json.dumps(info)], "blob": [blob]}, schema=schema)
        with _errors(f"cannot store {name} in {self.uri}"):
            if self._blob_table_name in self._list_tables():
                table = self.db.open_table(self._blob_table_name)
                table.merge_insert("name").when_matched_update_all().when_not_matched_insert_all().execute(data)
            else:
                self.db.create_table(self._blob_table_name, data=data, schema=schema)

    def load_blob(self, name: str) -> tuple[bytes, dict[str, Any]] | None:
        if self._blob_table_name not in self._list_tables():
            return None
        with _errors(f"cannot read {name} from {self.uri}"):
            table = self.db.open_table(self._blob_table_name)
            rows = table.search().where(f"name = {_sql_list([name])}").limit(1).to_list()
        if not rows:
            return None
        return bytes(rows[0]["blob"]), json.loads(rows[0]["info"])

    def drop_blobs(self) -> None:
        with _errors(f"cannot drop {self._blob_table_name}"):
            if self._blob_table_name in self._list_tables():
                self.db.drop_table(self._blob_table_name)

    # ------------------------------------------------------------ searching
    def nearest(
        self,
        vector: np.ndarray,
        *,
        column: str = "image_vector",
        limit: int = 10,
        where: str | None = None,
    ) -> list[dict[str, Any]]:
        """The ``limit`` rows nearest ``vector`` by cosine, each with a ``score`` (cosine).

        Rows come with every column except fused_vector (image and text vectors included,
        so callers can show per-modality scores).
        """
        columns = [c for c in self.table.schema.names if c != "fused_vector"]
        query = (
            self.table.search(np.asarray(vector, dtype=np.float32), vector_column_name=column)
            .distance_type("cosine")
            .select([*columns, "_distance"])
            .limit(limit)
        )
        if column in self.vector_indices():
            query = query.nprobes(ANN_NPROBES).refine_factor(ANN_REFINE)
        rows = filtered_rows(query, where, "search failed")
        for row in rows:
            row["score"] = 1.0 - float(row.pop("_distance"))
        return rows


def filtered_rows(query: Any, where: str | None, failed: str) -> list[dict[str, Any]]:
    """A LanceDB query's rows, ``where`` applied first (prefilter): a bad filter is the user's
    ``QueryError`` naming it, any other failure a ``StoreError`` starting with ``failed``."""
    if where:
        query = query.where(where, prefilter=True)
    try:
        return query.to_list()
    except Exception as exc:  # noqa: BLE001 - a bad filter surfaces from the query engine
        if where:
            raise QueryError(f"--where {where!r} is not a valid filter: {filter_reason(exc)}") from exc
        raise StoreError(f"{failed}: {_one_line(exc)}") from exc


_NO_FIELD = re.compile(r"No field named ([^.\s]+)\. Valid fields are (.*)")


def filter_reason(exc: BaseException) -> str:
    """Why LanceDB refused a filter, in one line: an unknown column is named with the columns a
    filter can use (closest first), not LanceDB's list of every field cut off mid-word."""
    import difflib

    text = _one_line(exc)
    found = _NO_FIELD.search(text)
    if found is None:
        return text if len(text) <= 300 else text[:300].rsplit(" ", 1)[0] + " ..."
    name = found.group(1).strip("`'\"")
    fields = [f for f in re.findall(r"`([^`]+)`", found.group(2)) if not f.endswith("_vector") and not f.startswith("_")]
    close = difflib.get_close_matches(name.lower(), fields, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"no column named {name}; {hint}columns: {', '.join(fields)}"


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_RUST_SOURCE = re.compile(r",?\s*/\S+\.rs:\d+:\d+")  # lance appends where in its source it failed
_OS_ERROR = re.compile(r"([A-Z][^:()]*?) \(os error \d+\)")


def _one_line(exc: BaseException) -> str:
    """The error in one line; an object-storage failure as its short reason. Secrets from the
    environment never pass (``sources.remote.scrub``): LanceDB's errors may echo a request."""
    from ..sources.remote import scrub, short_reason

    text = str(exc)
    if 'store: "S3"' in text or "<Code>" in text or "object_store" in text or "AWS credentials" in text:
        return short_reason(text)
    return scrub(_RUST_SOURCE.sub("", " ".join(text.split()))) or type(exc).__name__


def os_reason(exc: BaseException) -> str:
    """The operating system's words for a failure ('No space left on device'), else the error in one line."""
    for cause in (exc, exc.__cause__, exc.__context__):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    found = _OS_ERROR.search(str(exc))
    return found.group(1) if found else _one_line(exc)[:300]
