"""A read-only copy of a table's search data as plain files, so a one-shot search needs
neither lancedb (over a second to import) nor torch.

Local databases only. Written after every change to the table (ingest, fusion apply, index
build) into ``<db>/<table>.mmembed/``::

    snapshot.json   table version, row count, metadata, which vector files exist
    image.npy       (N, D) float32 image vectors, memory-mapped (a one-shot search streams its
                    scan instead: ``scan``)
    text.npy        (N, D) float32 text vectors (zeros where an item has none) + text_mask.npy
    fused.npy       (N, F) float32 fused vectors (only when some item has text; else fused = image)
    rows.jsonl      one JSON object per row: what a Hit shows; offsets.npy points into it
    words.bin       each row's words, folded (words_offsets.npy bounds them), and their 3-byte gram
                    index (words_grams.npy, words_gram_offsets.npy, words_postings.npy): the
                    hybrid query's word side (``wordscan.py``)
    ivf_centroids.npy, ivf_offsets.npy   from IVF_MIN_ROWS rows: the coarse partitions. The rows
                    of every file above are then stored partition by partition; a search of the
                    partitioned vectors reads only the partitions nearest to the query
                    (``partitions.py``) and scores their rows exactly

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

from .partitions import IVF_MIN_ROWS, checksum, probe_order, release_pages, row_dots
from ..text.words import fold

__all__ = ["Snapshot", "SnapshotDamaged", "snapshot_folder", "table_version", "manifest_versions", "write_snapshot",
           "report_damage", "SNAPSHOT_MAX_ROWS"]

log = logging.getLogger("mmembed")
_REPORTED: set[tuple[str, str, object]] = set()  # damaged (by version) and older-layout snapshots already reported

SNAPSHOT_MAX_ROWS = 20_000_000  # partitioned from IVF_MIN_ROWS on, so a search reads a few partitions
_BATCH = 65_536  # rows written at once
_REORDER_BYTES = 32 << 20  # of a vector file read at once when its rows are put in partition order
_INFO = "snapshot.json"
_ROW_FIELDS = ("id", "path", "width", "height", "format", "size", "text", "text_source", "media", "frame_time", "duration",
               "raw_siblings", "ocr_text", "gps_lat", "gps_lon", "gps_alt", "place_city", "place_region", "place_country",
               "place_country_code", "place_names", "words", "taken_ns")
_U64_MAX = (1 << 64) - 1
SCAN_MIN_ROWS = 16_384  # a scan of fewer rows reads the memory map at once (``scan``)
SCAN_BLOCK_BYTES = 2 << 20  # rows a scan reads at once: small enough to stay in the CPU's cache
SCAN_THREADS = 2  # threads a big scan reads and scores with
BACKGROUND_ROWS = 50_000  # a partitioned snapshot's --cutoff auto background: an even sample this big
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


def write_snapshot(folder: str, version: int, data: Any, meta_json: str, extra_columns: list[str], *,
                   rows: int | None = None, partitioned: bool | None = None) -> None:
    """Write ``data`` (a pyarrow Table of the whole table at ``version``, or an iterable of its
    record batches with ``rows`` given) as a snapshot in ``folder``, batch by batch (memory
    stays at one batch). From ``IVF_MIN_ROWS`` rows (or as ``partitioned`` says) the rows are
    stored partition by partition with the partitions' centroids beside them (``partitions.py``).

    Written beside, then swapped in by renames, so a reader sees the old or the new files.
    """
    if rows is None:
        rows, data = data.num_rows, data.to_batches(max_chunksize=_BATCH)
    tmp = f"{folder}.tmp-{uuid.uuid4().hex[:8]}"
    os.makedirs(tmp)
    try:
        info = _write_rows(tmp, data, rows, extra_columns)
        info.update(version=version, meta=json.loads(meta_json))
        if partitioned if partitioned is not None else rows >= IVF_MIN_ROWS:
            info["ivf"] = _partition(tmp, info)
        info["word_grams"] = _write_grams(tmp)
        with open(os.path.join(tmp, _INFO), "w") as f:
            json.dump(info, f)
        old = f"{folder}.old-{uuid.uuid4().hex[:8]}"
        if os.path.exists(folder):
            os.rename(folder, old)
        os.rename(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_rows(tmp: str, batches: Any, n: int, extra_columns: list[str]) -> dict[str, Any]:
    """The vector files and rows.jsonl in the table's order, one batch at a time."""
    import pyarrow as pa

    from .vectors import vector_matrix as _matrix

    files: dict[str, _NpyWriter] = {}
    mask = np.zeros(n, dtype=bool)
    fused_complete = True
    offsets = np.zeros(n + 1, dtype=np.int64)
    word_offsets = np.zeros(n + 1, dtype=np.int64)
    at = words = 0
    places: dict[int, dict[str, Any]] | None = None
    try:
        with open(os.path.join(tmp, "rows.jsonl"), "wb") as out, open(os.path.join(tmp, "words.bin"), "wb") as folded:
            for batch in batches:
                m = batch.num_rows
                if at + m > n:
                    raise ValueError(f"the table holds more than the {n} rows it counted")
                image = _matrix(pa.chunked_array([batch.column("image_vector")]))
                if "image" not in files:
                    dim = image.shape[1]
                    files = {name: _NpyWriter(os.path.join(tmp, f"{name}.npy"), (n, dim)) for name in ("image", "text")}
                files["image"].put(at, image)
                valid = batch.column("text_vector").is_valid().to_numpy(zero_copy_only=False)
                mask[at:at + m] = valid
                if valid.any():  # the text file stays sparse (never written) where no item has text
                    files["text"].put(at, _matrix(pa.chunked_array([batch.column("text_vector")]), dim))
                fused = batch.column("fused_vector")
                fused_complete = fused_complete and fused.null_count == 0
                if fused_complete:  # its own width: concat fusion's vectors are image and text side by side
                    fused = _matrix(pa.chunked_array([fused]))
                    if "fused" not in files:
                        files["fused"] = _NpyWriter(os.path.join(tmp, "fused.npy"), (n, fused.shape[1]))
                    files["fused"].put(at, fused)
                if "words" in batch.schema.names:  # rows with searchable words: a text query is ranked by words too
                    texts = batch.column("words").to_pylist()  # (retrieval.searcher.plan_quick)
                    words += sum(1 for w in texts if w)
                else:
                    texts = [None] * m
                for i, text in enumerate(texts):  # words.bin: each row's words folded, for the word search (wordscan.py)
                    folded.write(fold(text).encode("utf-8") + b"\n" if text else b"")
                    word_offsets[at + i + 1] = folded.tell()
                if "place_id" in batch.schema.names:  # the table's places, so a search box need not open LanceDB
                    places = {} if places is None else places
                    placed = batch.filter(batch.column("place_id").is_valid())  # only rows with a place become dicts
                    tally_places(placed.select([c for c in PLACE_COLUMNS if c in batch.schema.names]).to_pylist(), places)
                fields = [f for f in (*_ROW_FIELDS, *extra_columns) if f in batch.schema.names]
                columns = {f: batch.column(f).to_pylist() for f in fields}
                for i in range(m):
                    line = json.dumps({f: columns[f][i] for f in fields}, default=str, ensure_ascii=False)
                    out.write(line.encode("utf-8") + b"\n")
                    offsets[at + i + 1] = out.tell()
                at += m
    finally:
        for writer in files.values():
            writer.close()
    if at != n:
        raise ValueError(f"the table gave {at} rows, not the {n} it counted")
    files.clear()
    captioned = int(mask.sum())
    keep = {"image"} | ({"text", "fused"} if captioned and fused_complete else {"text"} if captioned else set())
    for name in ("image", "text", "fused"):
        path = os.path.join(tmp, f"{name}.npy")
        if name not in keep and os.path.exists(path):
            os.remove(path)
    if n == 0:
        np.save(os.path.join(tmp, "image.npy"), np.zeros((0, 0), dtype=np.float32))
    if captioned:
        np.save(os.path.join(tmp, "text_mask.npy"), mask)
    np.save(os.path.join(tmp, "offsets.npy"), offsets)
    np.save(os.path.join(tmp, "words_offsets.npy"), word_offsets)
    return {"rows": n, "captioned": captioned, "fused": "fused" in keep, "words": words, "words_bin": True,
            "taken": True, **({"places": sorted_places(places)} if places is not None else {})}


class _NpyWriter:
    """An (n, dim) float32 .npy file written by plain writes at row offsets. A memory map of the
    file being written kept every written page in the process's resident set (at 100k rows the
    snapshot write peaked 700 MB above the process: the ingest's memory grew with the table);
    rows never written stay a hole of zeros (the text file where no item has text)."""

    def __init__(self, path: str, shape: tuple[int, int]) -> None:
        self._file = open(path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self._file, header)
        self._start = self._file.tell()
        self._row = shape[1] * 4
        self._size = self._start + shape[0] * self._row

    def put(self, at: int, rows: np.ndarray) -> None:
        self._file.seek(self._start + at * self._row)
        self._file.write(np.ascontiguousarray(rows, dtype=np.float32).data)

    def close(self) -> None:
        self._file.truncate(self._size)  # the rows after the last written one: zeros, as a hole
        self._file.close()


def _write_grams(tmp: str) -> int | None:
    """The gram index of ``words.bin`` in its final row order (``wordscan.build_grams``): how many
    grams it holds, or None when there is none (no words, or too many to index: scanned whole)."""
    from .wordscan import GRAM_INDEX_MAX_BYTES, build_grams

    size = os.path.getsize(os.path.join(tmp, "words.bin"))
    if not size or size > GRAM_INDEX_MAX_BYTES:
        return None
    blob = np.fromfile(os.path.join(tmp, "words.bin"), dtype=np.uint8)
    grams, offsets, postings = build_grams(blob, np.load(os.path.join(tmp, "words_offsets.npy")))
    for name, array in (("words_grams", grams), ("words_gram_offsets", offsets), ("words_postings", postings)):
        np.save(os.path.join(tmp, f"{name}.npy"), array)
    return int(len(grams))


PLACE_COLUMNS = ["place_id", "place_city", "place_region", "place_country", "place_country_code", "place_names",
                 "gps_lat", "gps_lon"]


def tally_places(rows: list[dict[str, Any]], found: dict[int, dict[str, Any]]) -> None:
    """Count ``rows`` (``PLACE_COLUMNS``) into ``found``: place id -> its names, a position and a row count."""
    for row in rows:
        if row.get("place_id") is None:
            continue
        entry = found.get(row["place_id"])
        if entry is None:
            found[row["place_id"]] = entry = {k: row.get(k) for k in PLACE_COLUMNS if not k.startswith("gps")}
            entry.update(count=0, lat=row.get("gps_lat"), lon=row.get("gps_lon"))
        entry["count"] += 1


def sorted_places(found: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """``tally_places``'s entries, most photos first."""
    return sorted(found.values(), key=lambda e: (-e["count"], e["place_city"] or ""))


def _partition(tmp: str, info: dict[str, Any]) -> dict[str, Any]:
    """Reorder the snapshot's rows partition by partition (by the vectors searches use by
    default) and write ``ivf_centroids.npy`` and ``ivf_offsets.npy``; what ``snapshot.json``
    records of them."""
    from . import partitions

    target = "fused" if info["captioned"] and info["fused"] else "image"
    n = info["rows"]
    keyed = np.load(os.path.join(tmp, f"{target}.npy"), mmap_mode="r")
    centroids = partitions.train(keyed, partitions.partition_count(n))
    labels = partitions.assign(_blocks(keyed), centroids)
    del keyed
    order = np.argsort(labels, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=len(centroids)))]).astype(np.int64)
    names = ["image"] + (["text"] if info["captioned"] else []) + (["fused"] if info["fused"] else [])
    for name in names:
        _permute_array(tmp, name, order)
    if info["captioned"]:
        np.save(os.path.join(tmp, "text_mask.npy"), np.load(os.path.join(tmp, "text_mask.npy"))[order])
    _permute_rows(tmp, order)
    _permute_rows(tmp, order, "words.bin", "words_offsets.npy")
    np.save(os.path.join(tmp, "ivf_centroids.npy"), centroids)
    np.save(os.path.join(tmp, "ivf_offsets.npy"), bounds)
    matrix = np.load(os.path.join(tmp, f"{target}.npy"), mmap_mode="r")
    nprobe = partitions.tune(matrix, centroids, bounds)
    return {"target": target, "partitions": len(centroids), "nprobe": nprobe,
            "crc": partitions.checksum(centroids, bounds)}


def _blocks(matrix: np.ndarray) -> Any:
    """``matrix``'s rows ``_BATCH`` at a time, each block's pages unmapped once it is used."""
    for start in range(0, len(matrix), _BATCH):
        yield matrix[start:start + _BATCH]
        release_pages(matrix)


def _permute_array(tmp: str, name: str, order: np.ndarray) -> None:
    """The vector file's rows in ``order`` (row i of the new file is row ``order[i]`` of the old),
    without mapping either file: the old one is read in order, ``_REORDER_BYTES`` at a time, and
    each block's rows are written where they go, one write per run of consecutive places (rows
    stably sorted by partition land in one run per partition and block). Both files stay in the
    page cache, out of the process: a gather through a memory map mapped the whole source file
    however its pages were given back (the kernel maps a file's pages in large folios), and
    mapping both held 4.4 GB at 1M 512-d rows (BENCHMARKS.md)."""
    path = os.path.join(tmp, f"{name}.npy")
    header = np.load(path, mmap_mode="r")  # its shape and where its rows start; no page is read
    (n, width), offset = header.shape, header.offset
    if header.dtype != np.float32 or not header.flags.c_contiguous:
        raise ValueError(f"{path} is not a C-ordered float32 matrix")
    del header
    row_bytes = width * 4
    place = np.empty(n, dtype=np.int64)
    place[order] = np.arange(n, dtype=np.int64)  # where each old row goes
    step = max(1, _REORDER_BYTES // max(1, row_bytes))
    out = _NpyWriter(f"{path}.new", (n, width))
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            for first in range(0, n, step):
                rows = min(step, n - first)
                raw = f.read(rows * row_bytes)
                if len(raw) != rows * row_bytes:
                    raise ValueError(f"{path} ends before row {first + rows}")
                block = np.frombuffer(raw, dtype=np.float32).reshape(rows, width)
                by_place = np.argsort(place[first:first + rows], kind="stable")
                places = place[first:first + rows][by_place]
                runs = np.flatnonzero(np.diff(places) != 1) + 1
                for a, b in zip(np.concatenate([[0], runs]), np.concatenate([runs, [rows]])):
                    out.put(int(places[a]), block[by_place[a:b]])
    finally:
        out.close()
    os.replace(f"{path}.new", path)


def _permute_rows(tmp: str, order: np.ndarray, name: str = "rows.jsonl", offsets: str = "offsets.npy") -> None:
    path = os.path.join(tmp, name)
    old = np.load(os.path.join(tmp, offsets))
    new = np.zeros_like(old)
    with open(path, "rb") as src, open(f"{path}.new", "wb") as out:
        for i, j in enumerate(order):
            src.seek(int(old[j]))
            out.write(src.read(int(old[j + 1] - old[j])))
            new[i + 1] = out.tell()
    os.replace(f"{path}.new", path)
    np.save(os.path.join(tmp, offsets), new)


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

    def __init__(self, folder: str, info: dict[str, Any], *, stream: bool = False) -> None:
        self.folder = folder
        self.info = info
        self.stream = stream  # scans read with pread, not through the memory map (``scan``)
        self.meta: dict[str, Any] = info["meta"]
        self.rows: int = info["rows"]
        self.captioned: int = info["captioned"]
        self._arrays: dict[str, Any] = {}
        self._last_words: tuple[tuple[str, ...], tuple[np.ndarray, np.ndarray]] | None = None

    @classmethod
    def open(cls, db: str, table: str, *, stream: bool = False) -> Snapshot | None:
        """The current snapshot; None when there is none or it is stale. Raises
        ``SnapshotDamaged`` when its files cannot be read as written. ``stream``: for a process
        that searches once (the CLI), scans read with ``pread`` (``scan``)."""
        folder = snapshot_folder(db, table)
        try:
            with open(os.path.join(folder, _INFO)) as f:
                info = json.load(f)
        except (FileNotFoundError, NotADirectoryError):
            return None  # none, or no database folder (a file given as --db: the table says so)
        except (OSError, ValueError) as exc:
            raise SnapshotDamaged(f"{folder}: {_INFO} cannot be read ({exc})") from None
        if not isinstance(info, dict) or info.get("version") != table_version(db, table):
            return None
        if not info.get("taken"):  # an older layout, rows without their date: the table answers meanwhile
            if (db, table, "layout") not in _REPORTED:
                _REPORTED.add((db, table, "layout"))
                log.warning("the search snapshot of table '%s' was written by an older mmembed (its rows lack the "
                            "date taken): searches read the table, more slowly, until it is written again at the "
                            "next ingest or now with `mmembed index --refresh`", table)
            return None
        snapshot = cls(folder, info, stream=stream) if _INFO_KEYS <= set(info) else None
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
            self._check_partitions()
            for name in names:
                array = self._array(name)
                want = self.rows + 1 if name == "offsets" else self.rows
                if array.shape[0] != want:
                    raise ValueError(f"{name}.npy has {array.shape[0]} rows, not {want}")
            size = os.path.getsize(os.path.join(self.folder, "rows.jsonl"))
            if int(self._array("offsets")[-1]) != size:
                raise ValueError(f"rows.jsonl is {size} bytes, not {int(self._array('offsets')[-1])}")
            if self.info.get("words_bin"):
                bounds = self._array("words_offsets")
                size = os.path.getsize(os.path.join(self.folder, "words.bin"))
                if bounds.shape[0] != self.rows + 1 or int(bounds[-1]) != size:
                    raise ValueError(f"words.bin is {size} bytes, not as words_offsets.npy bounds it")
            if self.info.get("word_grams") is not None:
                grams, offsets = self._array("words_grams"), self._array("words_gram_offsets")
                if grams.shape[0] != self.info["word_grams"] or offsets.shape[0] != grams.shape[0] + 1 \
                        or int(offsets[-1]) != self._array("words_postings").shape[0]:
                    raise ValueError("the gram index files do not hold the recorded grams")
        except (OSError, ValueError, EOFError, IndexError) as exc:
            self._arrays.clear()
            raise SnapshotDamaged(f"{self.folder}: {exc}") from None

    def _check_partitions(self) -> None:
        """The partition files have the recorded count, bound every row, and are the ones this
        snapshot wrote (their checksum): else ``ValueError``."""
        ivf = self.info.get("ivf")
        if ivf is None:
            return
        if not isinstance(ivf, dict) or not {"target", "partitions", "nprobe", "crc"} <= set(ivf):
            raise ValueError("snapshot.json's ivf entry is incomplete")
        centroids, bounds = self._array("ivf_centroids"), self._array("ivf_offsets")
        if centroids.shape[0] != ivf["partitions"] or bounds.shape != (ivf["partitions"] + 1,):
            raise ValueError(f"the partition files do not hold {ivf['partitions']} partitions")
        if int(bounds[0]) != 0 or int(bounds[-1]) != self.rows or bool(np.any(np.diff(bounds) < 0)):
            raise ValueError("ivf_offsets.npy does not bound the rows")
        if checksum(centroids, bounds) != ivf["crc"]:
            raise ValueError("the partition files are not the ones this snapshot wrote")

    def has_word_match(self, terms: list[str]) -> bool | None:
        """Whether any row's words hold every term (``text.words.contains_terms``), read from
        ``words.bin`` without LanceDB; None when this snapshot has no such file (written before
        it)."""
        found = self.word_matches(terms, limit=1)
        return None if found is None else bool(len(found[0]))

    def word_matches(self, terms: list[str], limit: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(row positions, BM25) of the rows whose words hold every term, best first (the first
        ``limit`` of them, when given; ``wordscan.rank_rows``); None when this snapshot has no
        ``words.bin`` (written before it)."""
        from .wordscan import best, rank_rows

        blob = self._words_blob()
        if blob is None:
            return None
        key = tuple(terms)
        if self._last_words is None or self._last_words[0] != key:  # has_word_match, then the ranking: one scan
            bounds = np.asarray(self._array("words_offsets"))
            self._last_words = key, rank_rows(blob, bounds, terms, int(self.info.get("words") or 0), self._gram_index())
        return best(*self._last_words[1], limit)

    def _gram_index(self) -> Any:
        """The gram index of ``words.bin`` (``wordscan.GramIndex``), or None (an older snapshot, or
        words too many to index: then every term is a scan)."""
        from .wordscan import GramIndex

        if self.info.get("word_grams") is None:
            return None
        if "gram_index" not in self._arrays:
            self._arrays["gram_index"] = GramIndex(self._array("words_grams"), self._array("words_gram_offsets"),
                                                   self._array("words_postings"))
        return self._arrays["gram_index"]

    def _words_blob(self) -> np.ndarray | None:
        """``words.bin`` as bytes (memory-mapped); None for a snapshot written before it."""
        if not self.info.get("words_bin"):
            return None
        if "words" not in self._arrays:
            path = os.path.join(self.folder, "words.bin")
            self._arrays["words"] = np.memmap(path, dtype=np.uint8, mode="r") if os.path.getsize(path) \
                else np.zeros(0, dtype=np.uint8)
        return self._arrays["words"]

    def words_at(self, positions: np.ndarray) -> list[str]:
        """The folded words of the rows at ``positions`` ('' without ``words.bin``)."""
        blob = self._words_blob()
        if blob is None:
            return [""] * len(positions)
        bounds = self._array("words_offsets")
        return [bytes(blob[int(bounds[i]):int(bounds[i + 1])]).decode("utf-8", "replace") for i in positions]

    def term_frequencies(self, terms: list[str]) -> dict[str, int] | None:
        """How many rows' words hold each term; None without ``words.bin``."""
        from .wordscan import indexed_term_rows

        blob = self._words_blob()
        if blob is None:
            return None
        bounds, grams = np.asarray(self._array("words_offsets")), self._gram_index()
        return {t: len(indexed_term_rows(blob, bounds, t, grams)[0]) if blob.size else 0 for t in terms}

    def word_stats(self) -> tuple[int, float]:
        """(rows with words, their mean length) for ``text.words.bm25``."""
        items = int(self.info.get("words") or 0)
        return items, (float(self._array("words_offsets")[-1]) / items if items else 0.0)

    def _array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = np.load(os.path.join(self.folder, f"{name}.npy"), mmap_mode="r")
        return self._arrays[name]

    def vectors(self, target: str) -> np.ndarray:
        """``target``'s vectors (memory-mapped; for text, only the rows that have text)."""
        matrix = self._array(target)
        return matrix[np.asarray(self._array("text_mask"))] if target == "text" else matrix

    def background(self, target: str) -> np.ndarray:
        """The vectors ``score_stats`` reads for ``--cutoff auto``: all of them, or in a
        partitioned snapshot an even sample of ``BACKGROUND_ROWS`` (as the LanceDB path's
        ``Store.sample_vectors``), so that a search never reads the whole table."""
        step = self._background_step()
        if step == 1:
            return self.vectors(target)
        picked = np.asarray(self._array(target)[::step])
        if target == "text":
            picked = picked[np.asarray(self._array("text_mask")[::step])]
        return picked

    def background_has_text(self, target: str) -> np.ndarray | None:
        """For a fused search, which of ``background``'s rows have text (``query.GroupStats``);
        None for another target or a table whose rows all have text or none do."""
        if target != "fused" or not self.captioned or self.captioned >= self.rows:
            return None
        return np.asarray(self._array("text_mask")[::self._background_step()], dtype=bool)

    def _background_step(self) -> int:
        """Every row (1), or in a partitioned snapshot every n-th: ``BACKGROUND_ROWS`` of them."""
        return 1 if self.info.get("ivf") is None or self.rows <= BACKGROUND_ROWS else self.rows // BACKGROUND_ROWS

    def partitioned(self, target: str) -> bool:
        """Whether a search of ``target`` reads only the nearest partitions."""
        ivf = self.info.get("ivf")
        return isinstance(ivf, dict) and ivf.get("target") == target

    def has(self, target: str) -> bool:
        return target == "image" or (self.captioned > 0 and (target == "text" or self.info["fused"]))

    def nearest(self, vector: np.ndarray, *, target: str, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` rows with the highest cosine to ``vector`` in ``target``'s column, as
        row dicts like ``Store.nearest`` gives (image and text vectors included)."""
        matrix = self._array({"image": "image", "text": "text", "fused": "fused"}[target])
        vector = np.asarray(vector, dtype=np.float32)
        if self.partitioned(target):
            positions, scores = self._probe(matrix, vector, limit)
        else:
            positions, scores = None, scan(matrix, vector, stream=self.stream)
            if target == "text":
                scores = np.where(self._array("text_mask"), scores, -np.inf)
        k = min(limit, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        scores = scores[top]
        if positions is not None:
            top = positions[top]
        keep = np.isfinite(scores)
        return self.rows_at(top[keep], scores[keep])

    def cosines(self, positions: np.ndarray, vector: np.ndarray, target: str) -> np.ndarray:
        """The cosine of each row at ``positions`` with ``vector`` in ``target``'s column (-1 for a
        row without text, when ``target`` is text, as the table's search gives)."""
        positions = np.asarray(positions, dtype=np.int64)
        scores = np.asarray(self._array(target)[positions] @ np.asarray(vector, dtype=np.float32), dtype=np.float64)
        if target == "text":
            scores = np.where(np.asarray(self._array("text_mask"))[positions], scores, -1.0)
        return scores

    def rows_at(self, positions: np.ndarray, scores: np.ndarray, key: str = "score") -> list[dict[str, Any]]:
        """The rows at ``positions`` as row dicts like ``Store.nearest`` gives (image and text
        vectors included), each with its score under ``key``."""
        rows = []
        offsets = self._array("offsets")
        with open(os.path.join(self.folder, "rows.jsonl"), "rb") as f:
            for i, score in zip(positions, scores):
                f.seek(int(offsets[i]))
                row = _row(f.read(int(offsets[i + 1] - offsets[i])), self.folder)
                row[key] = float(score)
                row["image_vector"] = np.asarray(self._array("image")[i])
                if self.captioned and self._array("text_mask")[i]:
                    row["text_vector"] = np.asarray(self._array("text")[i])
                rows.append(row)
        return rows


    def _probe(self, matrix: np.ndarray, vector: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """(row positions, exact scores) of the rows in the partitions nearest to ``vector``:
        the recorded ``nprobe`` of them, more while they hold fewer than ``limit`` rows."""
        bounds = self._array("ivf_offsets")
        if "centroids" not in self._arrays:  # small (2 MB at 1M rows): read once, into memory
            self._arrays["centroids"] = np.array(self._array("ivf_centroids"))
        order = probe_order(self._arrays["centroids"], vector)
        sizes = np.diff(bounds)[order]
        enough = int(np.searchsorted(np.cumsum(sizes), min(limit, self.rows))) + 1
        count = max(int(self.info["ivf"]["nprobe"]), enough)
        if count * 2 >= len(order):  # most of them (vectors that do not cluster): one scan is faster
            return np.arange(self.rows), scan(matrix, vector, stream=self.stream)
        chosen = np.sort(order[:count])  # read in file order
        spans = [(int(bounds[p]), int(bounds[p + 1])) for p in chosen]
        parts = [np.arange(start, stop) for start, stop in spans]
        positions = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return positions, scan(matrix, vector, spans, stream=self.stream)


def scan(matrix: np.ndarray, vector: np.ndarray, spans: list[tuple[int, int]] | None = None, *,
         stream: bool = True) -> np.ndarray:
    """``matrix[start:stop] @ vector`` for each (start, stop) of ``spans`` (all rows when None),
    concatenated. With ``stream``, a memory-mapped matrix of more than ``SCAN_MIN_ROWS`` rows is
    read with ``pread``, ``SCAN_BLOCK_BYTES`` at a time, into a buffer each of ``SCAN_THREADS``
    threads reuses: the file's pages then stay in the page cache and out of the process's
    resident memory (2 GB at 1M 512-d rows through the memory map, a few MB this way). It costs
    the copy: a process that searches once (the CLI) streams; one that searches again and again
    (serve, mcp, the Python API) reads through the map, whose pages stay mapped between queries
    (at 1M random rows: a warm search in 86-93 ms mapped, 150-175 ms streamed; BENCHMARKS.md). Raises
    ``SnapshotDamaged`` when the file ends early."""
    vector = np.asarray(vector, dtype=np.float32)
    spans = [(0, matrix.shape[0])] if spans is None else spans
    total = sum(stop - start for start, stop in spans)
    filename = getattr(matrix, "filename", None)
    if not stream or total < SCAN_MIN_ROWS or filename is None or matrix.dtype != np.float32 \
            or not matrix.flags.c_contiguous or not hasattr(os, "preadv"):  # (Windows has no pread: the map)
        if len(spans) == 1:
            return np.asarray(matrix[spans[0][0]:spans[0][1]] @ vector, dtype=np.float32)
        return np.concatenate([matrix[a:b] @ vector for a, b in spans]) if spans else np.zeros(0, np.float32)
    width = matrix.shape[1]
    step = max(1, SCAN_BLOCK_BYTES // (width * 4))
    blocks, at = [], 0  # (first row, rows, where its scores go)
    for start, stop in spans:
        for first in range(start, stop, step):
            rows = min(step, stop - first)
            blocks.append((first, rows, at))
            at += rows
    scores = np.empty(total, dtype=np.float32)
    fd = os.open(filename, os.O_RDONLY)
    try:
        threads = max(1, min(SCAN_THREADS, os.cpu_count() or 1, len(blocks)))
        lots = [blocks[i::threads] for i in range(threads)]
        if threads == 1:
            _scan_blocks(fd, filename, matrix.offset, width, lots[0], vector, scores)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(threads) as pool:
                for done in [pool.submit(_scan_blocks, fd, filename, matrix.offset, width, lot, vector, scores)
                             for lot in lots]:
                    done.result()
    finally:
        os.close(fd)
    return scores


def _scan_blocks(fd: int, filename: str, offset: int, width: int, blocks: list[tuple[int, int, int]],
                 vector: np.ndarray, scores: np.ndarray) -> None:
    """One thread's share of ``scan``: read each block into one buffer, score it into ``scores``.
    Scored by ``row_dots``, not BLAS's matrix-vector product, whose own threads would fight this
    one's."""
    buffer = np.empty((max(rows for _, rows, _ in blocks), width), dtype=np.float32)
    view = memoryview(buffer).cast("B")
    row_bytes = width * 4
    for first, rows, at in blocks:
        size = rows * row_bytes
        if os.preadv(fd, [view[:size]], offset + first * row_bytes) != size:
            raise SnapshotDamaged(f"{filename} ends before row {first + rows}")
        row_dots(buffer[:rows], vector, scores[at:at + rows])


def _row(line: bytes, folder: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError:
        row = None
    if not isinstance(row, dict) or not isinstance(row.get("path"), str) or not isinstance(row.get("id"), str):
        raise SnapshotDamaged(f"{folder}: rows.jsonl holds a line that is not a row")
    return row



def table_context_length(db: str, table: str) -> int | None:
    """How many tokens the text tower of a local table's model reads (micro-clip 32, most CLIPs 77),
    from the snapshot's record and the export's (no model loaded, no table opened); None when
    either is missing or the tokenizer is not CLIP's."""
    from ..models.text_tower import clip_context_length

    fingerprint = ((snapshot_info(db, table) or {}).get("meta") or {}).get("fingerprint")
    return clip_context_length(fingerprint) if fingerprint else None


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
