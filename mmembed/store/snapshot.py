"""A read-only copy of a table's search data as plain files, so a one-shot search needs
neither lancedb (over a second to import) nor torch.

Local databases only. Written after every change to the table (ingest, fusion apply, index
build) into ``<db>/<table>.mmembed/``::

    snapshot.json   table version, row count, metadata, which vector files exist
    image.npy       (N, D) float32 image vectors, memory-mapped when read
    text.npy        (N, D) float32 text vectors (zeros where an item has none) + text_mask.npy
    fused.npy       (N, F) float32 fused vectors (only when some item has text; else fused = image)
    rows.jsonl      one JSON object per row: what a Hit shows; offsets.npy points into it

(The text tower that encodes the query lives in the user cache, one per model: textonnx.py.)

A reader uses the snapshot only when its recorded version is the table's current version
(read from the table's ``_versions`` folder, no lancedb); anything else falls back to the
normal path, so a stale or half-written snapshot can cost speed but never correctness.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from typing import Any

import numpy as np

__all__ = ["Snapshot", "SnapshotDamaged", "snapshot_folder", "table_version", "manifest_versions", "write_snapshot",
           "report_damage", "SNAPSHOT_MAX_ROWS"]

log = logging.getLogger("mmembed")
_REPORTED: set[tuple[str, str, int | None]] = set()  # damaged snapshots already reported

SNAPSHOT_MAX_ROWS = 300_000  # above this, exact brute force is too slow anyway: the ANN index serves
_INFO = "snapshot.json"
_ROW_FIELDS = ("id", "path", "width", "height", "format", "size", "text", "text_source", "media", "frame_time", "duration",
               "raw_siblings", "ocr_text")
_U64_MAX = (1 << 64) - 1
_INFO_KEYS = {"version", "rows", "captioned", "meta", "fused"}


class SnapshotDamaged(Exception):
    """The snapshot's files cannot be read as written. It is derived data: searches fall back
    to LanceDB, and the next write (or ``mmembed index --refresh``) writes it again."""


def snapshot_folder(db: str, table: str) -> str:
    return os.path.join(db.removeprefix("file://"), f"{table}.mmembed")


def table_version(db: str, table: str) -> int | None:
    """The latest committed version of a local LanceDB table, from its manifest file names."""
    versions = manifest_versions(db, table)
    return versions[0][0] if versions else None


def manifest_versions(db: str, table: str) -> list[tuple[int, str]]:
    """(version, manifest path) of a local LanceDB table, newest first; [] when none."""
    folder = os.path.join(db.removeprefix("file://"), f"{table}.lance", "_versions")
    try:
        names = [n[: -len(".manifest")] for n in os.listdir(folder) if n.endswith(".manifest")]
    except OSError:
        return []
    digits = [n for n in names if n.isdigit()]
    v2 = bool(digits) and all(len(n) == 20 for n in digits)  # Lance's v2 naming: u64::MAX - version
    found = [(_U64_MAX - int(n) if v2 else int(n), os.path.join(folder, f"{n}.manifest")) for n in digits]
    return sorted(found, reverse=True)


def write_snapshot(folder: str, version: int, data: Any, meta_json: str, extra_columns: list[str]) -> None:
    """Write ``data`` (a pyarrow Table of the whole table at ``version``) as a snapshot in ``folder``.

    Written beside, then swapped in by renames, so a reader sees the old or the new files.
    """
    from .vectors import vector_matrix as _matrix

    tmp = f"{folder}.tmp-{uuid.uuid4().hex[:8]}"
    os.makedirs(tmp)
    try:
        n = data.num_rows
        image = _matrix(data.column("image_vector"))
        np.save(os.path.join(tmp, "image.npy"), image)
        mask = data.column("text_vector").is_valid().to_numpy(zero_copy_only=False)
        captioned = int(mask.sum())
        if captioned:
            np.save(os.path.join(tmp, "text.npy"), _matrix(data.column("text_vector"), image.shape[1]))
            np.save(os.path.join(tmp, "text_mask.npy"), mask)
            fused = data.column("fused_vector")
            if fused.null_count == 0:
                np.save(os.path.join(tmp, "fused.npy"), _matrix(fused))
        offsets = np.zeros(n + 1, dtype=np.int64)
        fields = [f for f in (*_ROW_FIELDS, *extra_columns) if f in data.column_names]
        columns = {f: data.column(f).to_pylist() for f in fields}
        with open(os.path.join(tmp, "rows.jsonl"), "wb") as out:
            for i in range(n):
                line = json.dumps({f: columns[f][i] for f in fields}, default=str, ensure_ascii=False)
                out.write(line.encode("utf-8") + b"\n")
                offsets[i + 1] = out.tell()
        np.save(os.path.join(tmp, "offsets.npy"), offsets)
        info = {"version": version, "rows": n, "captioned": captioned, "meta": json.loads(meta_json),
                "fused": os.path.exists(os.path.join(tmp, "fused.npy"))}
        with open(os.path.join(tmp, _INFO), "w") as f:
            json.dump(info, f)
        old = f"{folder}.old-{uuid.uuid4().hex[:8]}"
        if os.path.exists(folder):
            os.rename(folder, old)
        os.rename(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report_damage(db: str, table: str, version: int | None, exc: Exception) -> None:
    """Say once per process and table version that the snapshot is damaged: searches go through
    LanceDB until it is written again."""
    if (db, table, version) not in _REPORTED:
        _REPORTED.add((db, table, version))
        log.warning("the search snapshot is damaged (%s); searching the table instead. It is written "
                    "again at the next ingest, or now with `mmembed index --refresh`", exc)


def remove_snapshot(folder: str) -> None:
    """Drop the snapshot (a table too big for brute force, or an empty one)."""
    shutil.rmtree(folder, ignore_errors=True)


class Snapshot:
    """An open, current snapshot; :meth:`open` returns None when there is none to trust."""

    def __init__(self, folder: str, info: dict[str, Any]) -> None:
        self.folder = folder
        self.info = info
        self.meta: dict[str, Any] = info["meta"]
        self.rows: int = info["rows"]
        self.captioned: int = info["captioned"]
        self._arrays: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, db: str, table: str) -> Snapshot | None:
        """The current snapshot; None when there is none or it is stale. Raises
        ``SnapshotDamaged`` when its files cannot be read as written."""
        folder = snapshot_folder(db, table)
        try:
            with open(os.path.join(folder, _INFO)) as f:
                info = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SnapshotDamaged(f"{folder}: {_INFO} cannot be read ({exc})") from None
        if not isinstance(info, dict) or info.get("version") != table_version(db, table):
            return None
        snapshot = cls(folder, info) if _INFO_KEYS <= set(info) else None
        if snapshot is None:
            raise SnapshotDamaged(f"{folder}: {_INFO} lacks {sorted(_INFO_KEYS - set(info))}")
        snapshot.check()
        return snapshot

    def verify(self) -> None:
        """``check``, then read every row line too (what ``mmembed doctor`` does)."""
        self.check()
        offsets = self._array("offsets")
        with open(os.path.join(self.folder, "rows.jsonl"), "rb") as f:
            for i in range(self.rows):
                _row(f.read(int(offsets[i + 1] - offsets[i])), self.folder)

    def mark_damaged(self) -> None:
        """Set ``snapshot.json`` aside, so that readers skip this snapshot without a word and the
        next write (even an ingest with nothing to do) writes a new one. Best effort: a reader
        may not be allowed to write here."""
        try:
            os.replace(os.path.join(self.folder, _INFO), os.path.join(self.folder, f"{_INFO}.damaged"))
        except OSError:
            pass

    def check(self) -> None:
        """Raise ``SnapshotDamaged`` unless every file has the shape ``snapshot.json`` records
        (array headers and file sizes only: no vector is read)."""
        names = ["image", "offsets"]
        if self.captioned:
            names += ["text", "text_mask"] + (["fused"] if self.info["fused"] else [])
        try:
            for name in names:
                array = self._array(name)
                want = self.rows + 1 if name == "offsets" else self.rows
                if array.shape[0] != want:
                    raise ValueError(f"{name}.npy has {array.shape[0]} rows, not {want}")
            size = os.path.getsize(os.path.join(self.folder, "rows.jsonl"))
            if int(self._array("offsets")[-1]) != size:
                raise ValueError(f"rows.jsonl is {size} bytes, not {int(self._array('offsets')[-1])}")
        except (OSError, ValueError, EOFError, IndexError) as exc:
            self._arrays.clear()
            raise SnapshotDamaged(f"{self.folder}: {exc}") from None

    def _array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = np.load(os.path.join(self.folder, f"{name}.npy"), mmap_mode="r")
        return self._arrays[name]

    def vectors(self, target: str) -> np.ndarray:
        """``target``'s vectors (memory-mapped; for text, only the rows that have text)."""
        matrix = self._array(target)
        return matrix[np.asarray(self._array("text_mask"))] if target == "text" else matrix

    def has(self, target: str) -> bool:
        return target == "image" or (self.captioned > 0 and (target == "text" or self.info["fused"]))

    def nearest(self, vector: np.ndarray, *, target: str, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` rows with the highest cosine to ``vector`` in ``target``'s column, as
        row dicts like ``Store.nearest`` gives (image and text vectors included)."""
        matrix = self._array({"image": "image", "text": "text", "fused": "fused"}[target])
        scores = matrix @ np.asarray(vector, dtype=np.float32)
        if target == "text":
            scores = np.where(self._array("text_mask"), scores, -np.inf)
        k = min(limit, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        rows = []
        offsets = self._array("offsets")
        with open(os.path.join(self.folder, "rows.jsonl"), "rb") as f:
            for i in top:
                if not np.isfinite(scores[i]):
                    continue
                f.seek(int(offsets[i]))
                row = _row(f.read(int(offsets[i + 1] - offsets[i])), self.folder)
                row["score"] = float(scores[i])
                row["image_vector"] = np.asarray(self._array("image")[i])
                if self.captioned and self._array("text_mask")[i]:
                    row["text_vector"] = np.asarray(self._array("text")[i])
                rows.append(row)
        return rows


def _row(line: bytes, folder: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError:
        row = None
    if not isinstance(row, dict) or not isinstance(row.get("path"), str) or not isinstance(row.get("id"), str):
        raise SnapshotDamaged(f"{folder}: rows.jsonl holds a line that is not a row")
    return row



def snapshot_info(db: str, table: str) -> dict[str, Any] | None:
    """What ``snapshot.json`` records (table metadata included), whatever its version; None
    without a readable one. Lets ``--reindex`` and ``doctor`` learn the model of a table that
    cannot be opened."""
    try:
        with open(os.path.join(snapshot_folder(db, table), _INFO)) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None
