"""Duplicate photos: exact copies (the same content hash) and near-duplicates (the same photo
re-encoded, resized, rotated, lightly cropped or edited), found from the stored image vectors.

Pairs of photos are linked, and linked photos form a group (connected components,
union-find). The image-vector cosines are computed in blocks of rows against the rows after
them, so memory stays at one block (about ``BLOCK_BYTES``), never an N x N matrix.

- ``exact``: the same content hash.
- ``near`` (the default): the vectors only *propose* pairs (each photo's ``NEIGHBOURS``
  nearest photos with a cosine of at least ``threshold``, 0.5); a pair is linked only when
  ``geometry.same_photo`` says so: ORB keypoints matched with RANSAC agree on one similarity
  transform and the aligned grey pixels agree. No cosine decides, so no threshold depends on
  the model. Only photos in a proposed pair are decoded (small), once each; a file that
  changed since it was indexed is not trusted (left out, and named through ``notes``).
- ``similar``: a cosine of at least ``threshold`` (0.90): burst shots, the same scene.

Nothing is deleted or moved: each group names a suggested keeper, the photo with the most
pixels, then the oldest (EXIF date taken, else file date), then the shortest path. The
geometric check's constants were chosen on variants of Flickr8k *train* photos and are
reported on Flickr8k dev and ../shared/data/photos (benchmarks/dupes.py, EVALUATION.md).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from .geometry import Features, same_photo

__all__ = ["DupeFile", "DupeGroup", "MODES", "THRESHOLDS", "Nearest", "Pairs", "cut_of", "find_duplicates", "nearest_photos"]

MODES = ("exact", "near", "similar")
THRESHOLDS = {"near": 0.5, "similar": 0.90}  # near: the lowest cosine of a pair checked; similar: the cosine linking
NEIGHBOURS = 10  # near: each photo's nearest photos (by image vector) that are checked
CHUNK = 256  # near: pairs checked at once (in threads)
BLOCK_BYTES = 64 << 20  # the cosine block's size
PARTITION_BLOCK_BYTES = 16 << 20  # ... on the ANN path (picking the best of a block takes 4x its size more)
ANN_ROWS = 50_000  # near: from this many photos on, pairs are proposed among ANN candidates, not all pairs
NAMED = 20  # files left out that the notes name one by one; the rest are counted
MEMBERSHIPS = 6  # near, ANN: the partitions (nearest to it) a photo is a candidate in (3 missed 5 of 1,000 copies)


@dataclass(frozen=True)
class DupeFile:
    """One photo of a group."""

    id: str
    path: str
    size: int | None
    width: int | None
    height: int | None
    date_ns: int | None  # EXIF date taken, else the file's date
    keep: bool = False  # the suggested keeper (exactly one per group)


@dataclass(frozen=True)
class Pairs:
    """Proposed pairs as three arrays (row ``i`` < row ``j``, their cosine), in row order: at 1M
    clustered rows there are millions, which as Python tuples took more memory than the vectors."""

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.i)

    def __iter__(self) -> Any:
        return zip(self.i.tolist(), self.j.tolist(), self.score.tolist())

    def chunk(self, start: int, stop: int) -> list[tuple[int, int, float]]:
        return list(zip(self.i[start:stop].tolist(), self.j[start:stop].tolist(), self.score[start:stop].tolist()))


@dataclass
class DupeGroup:
    """Photos that are the same (``exact``: the same bytes) or nearly the same."""

    kind: str  # exact, near or similar
    score: float  # the lowest cosine of a link that joined the group (1.0 for exact copies)
    files: list[DupeFile] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "score": round(self.score, 4), "files": [asdict(f) for f in self.files]}


@dataclass
class Nearest:
    """``near``'s vector stage: each photo's best ``NEIGHBOURS`` (``best_j``, int32 rows) with a
    cosine of at least the cut (``best_s``; -inf where fewer). It holds no vectors, so a caller
    can let a million rows' vectors go before the pairs are made and checked."""

    best_s: np.ndarray | None
    best_j: np.ndarray | None

    def take_pairs(self) -> Pairs:
        """The proposed pairs (``_pairs_of``); the neighbour arrays are let go."""
        if self.best_s is None or self.best_j is None:
            raise ValueError("the pairs were taken already")
        best_s, best_j, self.best_s, self.best_j = self.best_s, self.best_j, None, None
        return _pairs_of(best_s, best_j)


def cut_of(mode: str, threshold: float | None) -> float:
    """The cosine cut of ``mode``; ``ConfigError`` for a bad mode or threshold."""
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise ConfigError(f"--threshold {threshold} must be above 0 and at most 1 (a cosine)")
    return threshold if threshold is not None else THRESHOLDS.get(mode, 1.0)


def nearest_photos(vectors: np.ndarray, *, threshold: float | None = None,
                   progress: Callable[[int, int], None] | None = None) -> Nearest:
    """``near``'s vector stage alone (see ``find_duplicates``'s ``nearest``): from ``ANN_ROWS``
    photos on among ANN candidates (``_candidate_pairs``), else among all photos. float16
    vectors are turned to float32 block by block on the ANN path."""
    cut = cut_of("near", threshold)
    n = len(vectors)
    if n < 2:
        return Nearest(np.full((n, 0), -np.inf, dtype=np.float32), np.zeros((n, 0), dtype=np.int32))
    if n < ANN_ROWS:
        return _all_pairs(np.asarray(vectors, dtype=np.float32), cut, progress)
    return _candidate_pairs(vectors, cut, progress)


def find_duplicates(
    rows: Sequence[dict[str, Any]],
    vectors: np.ndarray | None,
    *,
    mode: str = "near",
    threshold: float | None = None,
    max_megapixels: float = 100.0,
    progress: Callable[[int, int], None] | None = None,
    notes: Callable[[str], None] | None = None,
    nearest: Nearest | None = None,
) -> list[DupeGroup]:
    """Groups of duplicates among ``rows`` (dicts with id, path, size, width, height,
    content_hash, taken_ns, mtime_ns; any sequence of them, e.g. ``store.items.PhotoRows``),
    whose unit image vectors are ``vectors`` (N, D, float32 or float16; not needed for
    ``exact``, nor for ``near`` given ``nearest``, its vector stage made by ``nearest_photos``
    with the same threshold). Largest groups first. ``progress(done, total)`` follows the vector
    pass, then the checks; ``notes(line)`` hears of each file left out because it changed
    since it was indexed or cannot be read."""
    cut = cut_of(mode, threshold)
    n = len(rows)
    parent = list(range(n))
    weakest = np.ones(n, dtype=np.float32)  # per root: the lowest link cosine in its group

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int, score: float) -> None:
        a, b = find(i), find(j)
        low = min(score, weakest[a], weakest[b])
        if a != b:
            parent[b] = a
        weakest[a] = low

    features = Features(rows, max_megapixels)
    for members in _same_hash(rows):
        current = [i for i in members if features.trusted(i)]
        for j in current[1:]:
            union(current[0], j, 1.0)
    if mode != "exact" and n > 1:
        if nearest is not None and mode == "near":
            if nearest.best_s is None or len(nearest.best_s) != n:
                raise ConfigError("near-duplicate search needs one row of neighbours per row")
        elif vectors is None or len(vectors) != n:
            raise ConfigError("near-duplicate search needs one image vector per row")
        if mode == "similar":
            for i, j, score in _linked_pairs(np.asarray(vectors, dtype=np.float32), cut, progress):
                union(i, j, score)
        else:
            _link_same_photos(nearest or nearest_photos(vectors, threshold=cut, progress=progress),
                              features, union, find, progress)
    if notes is not None:
        _note_skipped(features, notes)
    roots = np.fromiter((find(i) for i in range(n)), dtype=np.int64, count=n)
    order = np.argsort(roots, kind="stable")
    starts = np.flatnonzero(np.r_[True, roots[order][1:] != roots[order][:-1]]) if n else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, n])
    out = []
    for start, size in zip(starts[sizes >= 2].tolist(), sizes[sizes >= 2].tolist()):
        members = [rows[i] for i in order[start:start + size].tolist()]
        exact = len({row.get("content_hash") for row in members}) == 1
        out.append(_group("exact" if exact else mode, float(weakest[roots[order[start]]]), members))
    out.sort(key=lambda g: (-len(g.files), g.files[0].path))
    return out


def _note_skipped(features: Features, notes: Callable[[str], None]) -> None:
    """One note per file left out, the first ``NAMED`` of each kind, then one line with the count
    of the rest (a moved or unmounted library leaves a million, and a million lines help nobody)."""
    changed, unreadable = features.named(NAMED)
    for path in changed:
        notes(f"skipped: {path} changed since it was indexed; run `mmembed ingest` on it to compare it")
    n_changed, n_unreadable = features.counts()
    if n_changed > len(changed):
        notes(f"skipped: {n_changed - len(changed):,} more files changed since they were indexed or are gone; "
              "run `mmembed ingest` on their folders to compare them")
    for path in unreadable:
        notes(f"skipped: {path} cannot be read now")
    if n_unreadable > len(unreadable):
        notes(f"skipped: {n_unreadable - len(unreadable):,} more files cannot be read now")


def _same_hash(rows: Sequence[dict[str, Any]]) -> list[list[int]]:
    """The row numbers of each content hash held by two rows or more. From ``rows.table`` (a
    pyarrow table, as ``store.items.PhotoRows`` has) when there is one: no row dict or Python
    string is made for the million rows that have no copy."""
    table = getattr(rows, "table", None)
    if table is not None:
        if "content_hash" not in table.column_names or not len(table):
            return []
        import pyarrow.compute as pc

        column = pc.if_else(pc.equal(table.column("content_hash"), ""), None, table.column("content_hash"))
        codes = np.asarray(pc.fill_null(pc.dictionary_encode(column).combine_chunks().indices, -1), dtype=np.int64)
        valid = np.flatnonzero(codes >= 0)
        held = valid[np.bincount(codes[valid], minlength=1)[codes[valid]] >= 2]  # rows whose hash another row holds
        held = held[np.argsort(codes[held], kind="stable")]
        cuts = np.flatnonzero(np.diff(codes[held])) + 1
        return [part.tolist() for part in np.split(held, cuts)] if len(held) else []
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if row.get("content_hash"):
            by_hash[row["content_hash"]].append(i)
    return [members for members in by_hash.values() if len(members) >= 2]


def _link_same_photos(nearest: Nearest, features: Features,
                      union: Callable[[int, int, float], None], find: Callable[[int], int],
                      progress: Callable[[int, int], None] | None) -> None:
    """Link each proposed pair (``nearest``'s) that ``same_photo`` confirms, checking
    ``CHUNK`` pairs at a time in threads; a pair already in one group is not checked again."""
    from concurrent.futures import ThreadPoolExecutor

    def check(pair: tuple[int, int, float]) -> bool:
        a, b = features.get(pair[0]), features.get(pair[1])
        return a is not None and b is not None and same_photo(a, b)

    pairs = nearest.take_pairs()
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for start in range(0, len(pairs), CHUNK):
            chunk = [p for p in pairs.chunk(start, start + CHUNK) if find(p[0]) != find(p[1])]
            for (i, j, score), same in zip(chunk, pool.map(check, chunk)):
                if same:
                    union(i, j, score)
            if progress is not None:
                progress(min(start + CHUNK, len(pairs)), len(pairs))


def _candidate_pairs(vectors: np.ndarray, cut: float, progress: Callable[[int, int], None] | None
                     ) -> Nearest:
    """Each photo's ``NEIGHBOURS`` nearest with a cosine of at least ``cut``, each photo
    compared only with its candidates. The photos are
    split into coarse partitions (``store.partitions``: spherical k-means, about sqrt(N) of
    them); each photo belongs to its ``MEMBERSHIPS`` nearest partitions and is compared with the
    members of the nearest one. A photo and its near copy (cosine 0.9 and up) share the nearest
    partition of one of them, even on a border, so the pairs a near check confirms are the same
    as the full pass's (benchmarks/million.py dupes), for about MEMBERSHIPS/sqrt(N) of its work."""
    from ..store.partitions import partition_count, train

    n = len(vectors)
    k = min(NEIGHBOURS, n - 1)
    centroids = train(vectors, partition_count(n))
    m = min(MEMBERSHIPS, len(centroids))
    top = np.empty((n, m), dtype=np.int32)
    step = max(256, PARTITION_BLOCK_BYTES // (4 * len(centroids)))  # memberships of this many photos at once
    for s in range(0, n, step):
        scores = np.asarray(vectors[s:s + step], dtype=np.float32) @ centroids.T
        part = np.argpartition(-scores, m - 1, axis=1)[:, :m] if m < len(centroids) else \
            np.broadcast_to(np.arange(m), scores.shape)
        first = np.argmax(np.take_along_axis(scores, part, axis=1), axis=1)  # the nearest one in column 0
        part = np.array(part)
        rows = np.arange(len(part))
        part[rows, 0], part[rows, first] = part[rows, first], part[rows, 0]
        top[s:s + step] = part
    bounds = lambda labels: np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=len(centroids)))])
    q_order = np.argsort(top[:, 0], kind="stable")
    q_bounds = bounds(top[:, 0])
    flat = top.ravel()
    m_order = np.argsort(flat, kind="stable") // m  # the member rows, partition by partition
    m_bounds = bounds(flat)
    del flat, top
    best_s = np.full((n, k), -np.inf, dtype=np.float32)
    best_j = np.zeros((n, k), dtype=np.int32)
    for p in range(len(centroids)):
        queries, cols = q_order[q_bounds[p]:q_bounds[p + 1]], m_order[m_bounds[p]:m_bounds[p + 1]]
        if not len(queries) or len(cols) < 2:
            continue
        members = np.asarray(vectors[cols], dtype=np.float32)
        step = max(16, PARTITION_BLOCK_BYTES // (4 * len(cols)))  # a crowded partition's cosines in blocks
        for start in range(0, len(queries), step):
            rows = queries[start:start + step]
            scores = np.asarray(vectors[rows], dtype=np.float32) @ members.T
            scores[rows[:, None] == cols[None, :]] = -np.inf  # not itself
            above = scores >= cut
            _keep_best(best_s, best_j, rows, cols, scores, above, k)
        if progress is not None:
            progress(int(q_bounds[p + 1]), n)
    return Nearest(best_s, best_j)


def _pairs_of(best_s: np.ndarray, best_j: np.ndarray) -> Pairs:
    """The (i, j, cosine) pairs, i < j, of each photo's best (a row of ``best_s``/``best_j``), each
    pair once, in row order (int32 rows and one int64 key per pair: at 1M clustered rows there
    are about 10M pairs)."""
    n = len(best_s)
    keep = np.isfinite(best_s)
    score = best_s[keep]
    i = np.nonzero(keep)[0].astype(np.int32)
    j = best_j[keep].astype(np.int32)
    del keep
    a, b = np.minimum(i, j), np.maximum(i, j)
    del i, j
    keys = a.astype(np.int64) * n + b
    del a, b
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]  # a pair found from both ends, once
    keys, score = keys[first], score[order[first]]
    del order, first
    return Pairs((keys // n).astype(np.int32), (keys % n).astype(np.int32), score)


def _all_pairs(vectors: np.ndarray, cut: float, progress: Callable[[int, int], None] | None
               ) -> Nearest:
    """Each block of rows is compared with the rows from it on (half the products of a full
    pass); each photo's best ``NEIGHBOURS`` so far are kept, from its rows and from its column,
    so memory stays at one block of cosines."""
    n = len(vectors)
    k = min(NEIGHBOURS, n - 1)
    best_s = np.full((n, k), -np.inf, dtype=np.float32)
    best_j = np.zeros((n, k), dtype=np.int64)
    block = max(16, min(n, BLOCK_BYTES // (4 * n)))
    for start in range(0, n, block):
        stop = min(n, start + block)
        scores = vectors[start:stop] @ vectors[start:].T  # rows start..stop against photos start..n
        lower = np.tril_indices(stop - start)
        scores[lower] = -np.inf  # itself, and pairs met as columns of an earlier row
        above = scores >= cut
        rows, cols = np.arange(start, stop), np.arange(start, n)
        _keep_best(best_s, best_j, rows, cols, scores, above, k)
        _keep_best(best_s, best_j, cols, rows, scores.T, above.T, k)
        if progress is not None:
            progress(stop, n)
    return Nearest(best_s, best_j)


def _keep_best(best_s: np.ndarray, best_j: np.ndarray, who: np.ndarray, near: np.ndarray,
               scores: np.ndarray, above: np.ndarray, k: int) -> None:
    """Merge each row's best ``k`` columns (of those ``above`` the cut) into ``who``'s best.
    ``scores`` below the cut are set to -inf in place (no copy of the block)."""
    hit = np.flatnonzero(above.any(axis=1))
    if not len(hit):
        return
    np.putmask(scores, ~above, -np.inf)
    sub = scores[hit]
    width = sub.shape[1]
    part = np.argpartition(sub, width - k, axis=1)[:, width - k:] if width > k else \
        np.broadcast_to(np.arange(width), (len(hit), width))
    ids = who[hit]
    all_s = np.concatenate([best_s[ids], np.take_along_axis(sub, part, axis=1)], axis=1)
    all_j = np.concatenate([best_j[ids], near[part]], axis=1)
    top = np.argpartition(-all_s, k - 1, axis=1)[:, :k]
    best_s[ids] = np.take_along_axis(all_s, top, axis=1)
    best_j[ids] = np.take_along_axis(all_j, top, axis=1)


def _linked_pairs(vectors: np.ndarray, cut: float, progress: Callable[[int, int], None] | None
                  ) -> list[tuple[int, int, float]]:
    """(i, j, cosine) for every i < j with cosine >= cut, block by block."""
    n = len(vectors)
    block = max(16, min(n, BLOCK_BYTES // (4 * n)))
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        scores = vectors[start:stop] @ vectors[start:].T  # this block against itself and the rows after it
        rows_i, cols = np.nonzero(scores >= cut)
        keep = rows_i < cols  # j > i only (and not the diagonal)
        for a, b in zip(rows_i[keep], cols[keep]):
            pairs.append((start + int(a), start + int(b), float(scores[a, b])))
        if progress is not None:
            progress(stop, n)
    return pairs


def _group(kind: str, score: float, rows: list[dict[str, Any]]) -> DupeGroup:
    files = [DupeFile(r["id"], r["path"], r.get("size"), r.get("width"), r.get("height"),
                      r.get("taken_ns") or r.get("mtime_ns")) for r in rows]

    def rank(f: DupeFile) -> tuple[int, int, int, str]:
        pixels = (f.width or 0) * (f.height or 0)
        return (-pixels, f.date_ns if f.date_ns is not None else 1 << 62, len(f.path), f.path)

    files.sort(key=rank)
    files[0] = DupeFile(**{**asdict(files[0]), "keep": True})
    return DupeGroup(kind, 1.0 if kind == "exact" else score, files)
