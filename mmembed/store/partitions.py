"""Coarse partitions (IVF) for a big snapshot: spherical k-means centroids, each row assigned
to its nearest centroid, and the rows stored partition by partition, so that a query scores
the centroids, reads the few partitions nearest to it (contiguous slices of the memory-mapped
vectors) and scores their rows exactly.

Nothing is quantized: the rows read are the table's own float32 vectors, so every score a
hit shows is the exact cosine. What is approximate is only which rows are read; how many
partitions a query reads (``nprobe``) is chosen when the snapshot is written, as the fewest
that find ``TARGET_RECALL`` of the exact top 10 for sample queries near the table's own rows
(``tune``). Tables of random vectors, where no partition means anything, end up reading many
partitions; photo collections, which cluster, read few (BENCHMARKS.md, issue 27).
"""

from __future__ import annotations

import math
import mmap
import zlib
from collections.abc import Iterable

import numpy as np

__all__ = ["IVF_MIN_ROWS", "partition_count", "train", "assign", "tune", "probe_order", "row_dots", "checksum", "release_pages",
           "TARGET_RECALL"]

IVF_MIN_ROWS = 200_000  # from here a snapshot is partitioned (below, an exact scan is <= ~20 ms)
MAX_PARTITIONS = 1024
SAMPLE_PER_PARTITION = 48  # k-means trains on this many rows per partition (at most)
ITERATIONS = 8
TARGET_RECALL = 0.99  # share of the exact top 10 the chosen nprobe finds for the sample queries
TUNE_QUERIES = 64
CHUNK = 65_536  # rows scored at once (assignment, tuning)


def partition_count(rows: int) -> int:
    """About sqrt(rows) partitions (1,000 at 1M rows), at least 8."""
    return int(min(MAX_PARTITIONS, max(8, round(math.sqrt(rows)))))


def train(vectors: np.ndarray, parts: int, *, seed: int = 0) -> np.ndarray:
    """(parts, D) unit centroids by spherical k-means on a sample of ``vectors`` (unit rows)."""
    n = len(vectors)
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(n, size=min(n, parts * SAMPLE_PER_PARTITION), replace=False))
    sample = np.empty((len(take), vectors.shape[1]), dtype=np.float32)
    for start in range(0, n, CHUNK):  # a span of the file at a time, its pages given back after it
        a, b = np.searchsorted(take, [start, start + CHUNK])
        sample[a:b] = vectors[take[a:b]]
        release_pages(vectors)
    centroids = sample[rng.choice(len(sample), size=parts, replace=False)].copy()
    for _ in range(ITERATIONS):
        labels = _nearest(sample, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, sample)
        counts = np.bincount(labels, minlength=parts)
        empty = np.flatnonzero(counts == 0)
        sums[empty] = sample[rng.choice(len(sample), size=len(empty), replace=False)]  # re-seed
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = sums / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(centroids, dtype=np.float32)


def assign(batches: Iterable[np.ndarray], centroids: np.ndarray) -> np.ndarray:
    """Each row's partition (its nearest centroid), batch by batch."""
    out = [_nearest(np.asarray(b, dtype=np.float32), centroids) for b in batches]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int32)


def _nearest(rows: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    out = np.empty(len(rows), dtype=np.int32)
    for start in range(0, len(rows), CHUNK // 4):
        out[start:start + CHUNK // 4] = np.argmax(rows[start:start + CHUNK // 4] @ centroids.T, axis=1)
    return out


def probe_order(centroids: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Partitions best first for ``vector``. By ``row_dots``, not BLAS's matrix-vector product:
    OpenBLAS's threads keep spinning after a call, and the scan that follows on the same cores
    then took 180 ms instead of 125 at 1M rows."""
    return np.argsort(-row_dots(centroids, vector), kind="stable")


def row_dots(rows: np.ndarray, vector: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``rows @ vector`` row by row in this thread (numpy's ``vecdot``), starting no BLAS threads."""
    if hasattr(np, "vecdot"):  # numpy 2
        return np.vecdot(rows, vector, out=out)
    return np.einsum("ij,j->i", rows, vector, out=out)


NOISE_STRENGTHS = (0.5, 1.0, 2.0)  # tune's sample queries: row + noise of these norms, in turn


def tune(matrix: np.ndarray, centroids: np.ndarray, offsets: np.ndarray, *, seed: int = 1) -> int:
    """The fewest partitions a query must read so that, for sample queries near the table's
    rows (each row plus noise, at three strengths), ``TARGET_RECALL`` of the exact top 10 lies in
    them. ``matrix`` is in partition order (``offsets`` bound each partition).

    The strongest noise (cosine ≈ 0.45 to its row) stands for text queries, which lie farther
    from the images than any image does: on the clustered 1M table (``benchmarks/million.py``)
    Flickr8k *train* captions needed 15 probes for 95 % recall, noise 2.0 16, while the two
    milder strengths alone gave 5 (dev captions' recall 0.78 then)."""
    n, parts = len(matrix), len(centroids)
    rng = np.random.default_rng(seed)
    base = np.asarray(matrix[np.sort(rng.choice(n, size=min(n, TUNE_QUERIES), replace=False))], dtype=np.float32)
    noise = rng.standard_normal(base.shape).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    scale = np.asarray(NOISE_STRENGTHS, dtype=np.float32)[np.arange(len(base)) % len(NOISE_STRENGTHS)][:, None]
    queries = base + scale * noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = min(10, n)
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, n, CHUNK):
        scores = queries @ np.asarray(matrix[start:start + CHUNK], dtype=np.float32).T
        all_s = np.concatenate([best_s, scores], axis=1)
        all_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)], axis=1)
        top = np.argpartition(-all_s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(all_s, top, axis=1), np.take_along_axis(all_i, top, axis=1)
        release_pages(matrix)
    home = np.searchsorted(offsets, best_i, side="right") - 1  # each true neighbour's partition
    # the rank of each neighbour's partition in its query's probe order
    order = np.argsort(-(queries @ centroids.T), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(parts)[None, :].repeat(len(queries), 0), axis=1)
    needed = np.sort(np.take_along_axis(rank, home, axis=1).ravel() + 1)  # probes to reach each neighbour
    return int(min(parts, needed[min(len(needed) - 1, math.ceil(TARGET_RECALL * len(needed)) - 1)]))


def release_pages(matrix: np.ndarray) -> None:
    """Unmap the pages a memory-mapped ``matrix`` has read so far (``MADV_DONTNEED``); they stay
    in the page cache, and a later read maps them again. A pass over a snapshot's 2 GB vector file
    at 1M rows otherwise keeps every page it read in the process's resident set. Anything that is
    not a read-only map is left alone."""
    mapped = getattr(matrix, "_mmap", None)  # np.memmap's map (np.load(mmap_mode="r"))
    if not isinstance(mapped, mmap.mmap) or getattr(matrix, "mode", None) != "r" or not hasattr(mmap, "MADV_DONTNEED"):
        return
    try:
        mapped.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # closed, or a platform without it: the pages stay mapped
        pass


def checksum(*arrays: np.ndarray) -> int:
    """CRC-32 of the arrays' bytes: ``snapshot.json`` records it, so that a partition file
    from another snapshot (same shapes, other contents) is found out."""
    crc = 0
    for array in arrays:
        crc = zlib.crc32(np.ascontiguousarray(array).tobytes(), crc)
    return crc
