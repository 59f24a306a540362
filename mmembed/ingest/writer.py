"""The ingest writer: buffers rows, fills in text and fused vectors, commits in batches."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import StoreWriteError
from ..models.vectorizer import Vectorizer
from ..sources.discovery import DiscoveredFile
from ..text.words import item_words
from ..store.table import Store
from .prepare import Prepared

_WRITE_ROWS = 256  # rows per commit: few commits, little lost to a crash
_WRITE_SECONDS = 10.0  # ...or sooner, so a slow model still saves its work often


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class _Reuse:
    source_id: str
    target_id: str
    file: DiscoveredFile | None  # None: the row keeps its file columns (a text-only change)
    content_hash: str | None
    columns: dict[str, Any]  # text columns (and manifest extras) for the target
    new_text: bool = True


class _Writer:
    """Buffers rows, fills in text and fused vectors, and commits in batches."""

    def __init__(self, store: Store, vectorizer: Vectorizer) -> None:
        self.store = store
        self.vectorizer = vectorizer
        self.schema = store.table.schema
        self.new_rows: list[dict[str, Any]] = []
        self.update_rows: list[dict[str, Any]] = []
        self.reused: list[_Reuse] = []
        self.commits = 0
        self.saved = 0  # rows committed by this run
        self.failed = False  # a write failed: keep nothing more (the table stays as last committed)
        self.last_flush = time.monotonic()

    def put_encoded(self, prepared: Prepared, vector: np.ndarray, existing_id: str | None, columns: dict[str, Any]) -> None:
        row = self._encoded_row(prepared, vector, existing_id, columns)
        (self.update_rows if existing_id else self.new_rows).append(row)

    def put_frames(self, prepared: Prepared, vectors: np.ndarray, frame_columns: list[dict[str, Any]]) -> None:
        """A video's frame rows (new ids), buffered together: a flush, even one forced by an
        interrupt, commits all of them or none."""
        self.new_rows.extend([self._encoded_row(prepared, v, None, c) for v, c in zip(vectors, frame_columns)])

    def _encoded_row(self, prepared: Prepared, vector: np.ndarray, existing_id: str | None,
                     columns: dict[str, Any]) -> dict[str, Any]:
        f = prepared.task.file
        return {
            "id": existing_id or _new_id(), "path": f.path, "size": f.size, "mtime_ns": f.mtime_ns,
            "content_hash": prepared.content_hash, "width": prepared.width, "height": prepared.height,
            "format": prepared.format, "taken_ns": prepared.taken_ns, "ingested_at": datetime.now(timezone.utc), "image_vector": vector,
            "media": "image", "raw_siblings": list(f.raw_siblings) or None, "etag": f.etag, **(prepared.where or {}),
            **columns, "_new_text": True,
        }

    def put_reused(self, source_id: str, target_id: str, file: DiscoveredFile, content_hash: str,
                   columns: dict[str, Any]) -> None:
        self.reused.append(_Reuse(source_id, target_id, file, content_hash, columns))

    def put_text_only(self, row_id: str, columns: dict[str, Any], *, new_text: bool) -> None:
        self.reused.append(_Reuse(row_id, row_id, None, None, columns, new_text=new_text))

    def flush_if_due(self) -> None:
        buffered = len(self.new_rows) + len(self.update_rows) + len(self.reused)
        if buffered >= _WRITE_ROWS or (buffered and time.monotonic() - self.last_flush > _WRITE_SECONDS):
            self.flush()

    def flush(self) -> None:
        """Commit what is buffered. A failed write drops this batch (the next run redoes it) and
        raises ``StoreWriteError``; nothing is written after a failure."""
        if self.failed:
            return
        try:
            if self.reused:
                self._resolve_reused()
            batches = ((self.new_rows, self.store.add), (self.update_rows, self.store.upsert))
            self.new_rows, self.update_rows = [], []
            for rows, write in batches:
                if rows:
                    self._vectorize(rows)
                    for row in rows:  # every word the row has, place names included (the full-text column)
                        row["words"] = item_words(row) or None
                    write(pa.Table.from_pylist(rows, schema=self.schema))
                    self.commits += 1
                    self.saved += len(rows)
        except StoreWriteError:
            self.failed = True
            raise
        finally:
            self.last_flush = time.monotonic()

    def _resolve_reused(self) -> None:
        """Copy each source row with the target's id, file columns and text columns."""
        sources = {row["id"]: row for row in self.store.rows_by_id({r.source_id for r in self.reused})}
        now = datetime.now(timezone.utc)
        for reuse in self.reused:
            source = sources.get(reuse.source_id)
            if source is None or (reuse.content_hash and source["content_hash"] != reuse.content_hash):
                continue  # the source changed meanwhile; the file is retried next run
            row = dict(source, id=reuse.target_id, **reuse.columns)
            if reuse.file is not None:
                row.update(path=reuse.file.path, size=reuse.file.size, mtime_ns=reuse.file.mtime_ns,
                           content_hash=reuse.content_hash, ingested_at=now,
                           raw_siblings=list(reuse.file.raw_siblings) or None, etag=reuse.file.etag)
            row["_new_text"] = reuse.new_text and row.get("text_hash") != source.get("text_hash")
            self.update_rows.append(row)  # merge-insert: updates a moved row, inserts a copy
        self.reused = []

    def _vectorize(self, rows: list[dict[str, Any]]) -> None:
        """Text vectors where the text changed; fused vectors for every row."""
        redo = [i for i, r in enumerate(rows) if r.pop("_new_text")]
        if redo:
            vectors, has = self.vectorizer.text_vectors([rows[i]["texts"] or [] for i in redo])
            for k, i in enumerate(redo):
                rows[i]["text_vector"] = vectors[k] if has[k] else None
        image = np.stack([np.asarray(r["image_vector"], dtype=np.float32) for r in rows])
        has_text = np.array([r.get("text_vector") is not None for r in rows])
        dim = image.shape[1]
        text = np.stack([np.asarray(r["text_vector"], dtype=np.float32) if r.get("text_vector") is not None
                         else np.zeros(dim, np.float32) for r in rows])
        for row, fused in zip(rows, self.vectorizer.fuse(image, text, has_text)):
            row["fused_vector"] = fused
        if "words" in self.schema.names:  # the full-text column, composed from the row's word columns
            for row in rows:
                row["words"] = item_words(row)
