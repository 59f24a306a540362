"""Duplicate photos: exact copies (the same content hash) and near-duplicates (the same photo
re-encoded, resized, rotated, lightly cropped or edited), found from the stored image vectors.

Pairs of photos are linked, and linked photos form a group (connected components,
union-find). The image-vector cosines are computed in blocks of rows against the rows after
them, so memory stays at one block (about ``BLOCK_BYTES``), never an N x N matrix.

- ``exact``: the same content hash.
- ``near`` (the default): a cosine of at least ``threshold`` (0.96), or a cosine of at least
  ``NEAR_LOW`` (0.87) *and* the pixels agree: the two photos' small grayscale views match
  (normalised cross-correlation >= ``PIXEL_MATCH``) with one of them taken whole and the
  other whole or cropped (75-100 % of each side, 25 places). The image vector alone cannot
  tell a 15 % crop from a different photo of the same scene; the pixels can. Only photos in
  such a pair are decoded (at 1/8 scale for JPEG), once each.
- ``similar``: a cosine of at least ``threshold`` (0.90): burst shots, the same scene.

Nothing is deleted or moved: each group names a suggested keeper, the photo with the most
pixels, then the oldest (EXIF date taken, else file date), then the shortest path. The
thresholds were chosen on a benchmark generated from Flickr8k dev with micro-clip
(benchmarks/dupes.py, EVALUATION.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["DupeFile", "DupeGroup", "MODES", "THRESHOLDS", "find_duplicates"]

MODES = ("exact", "near", "similar")
THRESHOLDS = {"near": 0.96, "similar": 0.90}  # image-vector cosine linking without a pixel check
NEAR_LOW = 0.87  # near mode: pairs from here up to the threshold are linked when their pixels agree
PIXEL_MATCH = 0.90  # normalised cross-correlation of the aligned grayscale views
_VIEW, _SMALL = 64, 24  # the grayscale view's side, and the side each crop is compared at
_SCALES, _PLACES = (1.0, 0.9, 0.85, 0.8, 0.75), 5
BLOCK_BYTES = 64 << 20  # the cosine block's size


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


@dataclass
class DupeGroup:
    """Photos that are the same (``exact``: the same bytes) or nearly the same."""

    kind: str  # exact, near or similar
    score: float  # the lowest cosine of a link that joined the group (1.0 for exact copies)
    files: list[DupeFile] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "score": round(self.score, 4), "files": [asdict(f) for f in self.files]}


def find_duplicates(
    rows: Sequence[dict[str, Any]],
    vectors: np.ndarray | None,
    *,
    mode: str = "near",
    threshold: float | None = None,
    max_megapixels: float = 100.0,
    progress: Callable[[int, int], None] | None = None,
) -> list[DupeGroup]:
    """Groups of duplicates among ``rows`` (dicts with id, path, size, width, height,
    content_hash, taken_ns, mtime_ns), whose unit image vectors are ``vectors`` (N, D; not
    needed for ``exact``). Largest groups first."""
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise ConfigError(f"--threshold {threshold} must be above 0 and at most 1 (a cosine)")
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

    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if row.get("content_hash"):
            by_hash[row["content_hash"]].append(i)
    for members in by_hash.values():
        for j in members[1:]:
            union(members[0], j, 1.0)
    if mode != "exact" and n > 1:
        if vectors is None or len(vectors) != n:
            raise ConfigError("near-duplicate search needs one image vector per row")
        high = threshold if threshold is not None else THRESHOLDS[mode]
        low = min(NEAR_LOW, high) if mode == "near" else high
        views = _Views([row["path"] for row in rows], max_megapixels)
        for i, j, score in _linked_pairs(np.asarray(vectors, dtype=np.float32), low, progress):
            if score >= high or views.agree(i, j):
                union(i, j, score)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[find(i)].append(i)
    out = []
    for root, members in groups.items():
        if len(members) < 2:
            continue
        exact = len({rows[i].get("content_hash") for i in members}) == 1
        out.append(_group("exact" if exact else mode, float(weakest[root]), [rows[i] for i in members]))
    out.sort(key=lambda g: (-len(g.files), g.files[0].path))
    return out


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


class _Views:
    """Each photo's small grayscale views (whole, and cropped at several scales and places),
    made from its file on first use; None for a file that cannot be read now."""

    def __init__(self, paths: list[str], max_megapixels: float) -> None:
        self.paths = paths
        self.max_megapixels = max_megapixels
        self._views: dict[int, np.ndarray | None] = {}

    def agree(self, i: int, j: int) -> bool:
        a, b = self._get(i), self._get(j)
        if a is None or b is None:
            return False
        best = max(float((a @ b[0]).max()), float((b @ a[0]).max()))  # b whole in a's crops, and back
        return best >= PIXEL_MATCH

    def _get(self, i: int) -> np.ndarray | None:
        if i not in self._views:
            self._views[i] = _views_of(self.paths[i], self.max_megapixels)
        return self._views[i]


def _views_of(path: str, max_megapixels: float) -> np.ndarray | None:
    """(K, _SMALL**2) unit, zero-mean grayscale views of a photo: row 0 whole, then crops."""
    from PIL import Image

    from ..errors import ImageDecodeError
    from ..sources.decode import load_image

    try:
        image = load_image(path, max_megapixels=max_megapixels, min_side=_VIEW).image
    except (ImageDecodeError, OSError):
        return None
    gray = image.convert("L").resize((_VIEW, _VIEW), Image.Resampling.BILINEAR)
    out = []
    for scale in _SCALES:
        side = int(round(_VIEW * scale))
        places = sorted({int(p) for p in np.linspace(0, _VIEW - side, _PLACES)})
        for y in places:
            for x in places:
                view = np.asarray(gray.crop((x, y, x + side, y + side)).resize((_SMALL, _SMALL), Image.Resampling.BILINEAR),
                                  dtype=np.float32).ravel()
                view -= view.mean()
                out.append(view / max(float(np.linalg.norm(view)), 1e-6))
    return np.stack(out)


def _group(kind: str, score: float, rows: list[dict[str, Any]]) -> DupeGroup:
    files = [DupeFile(r["id"], r["path"], r.get("size"), r.get("width"), r.get("height"),
                      r.get("taken_ns") or r.get("mtime_ns")) for r in rows]

    def rank(f: DupeFile) -> tuple[int, int, int, str]:
        pixels = (f.width or 0) * (f.height or 0)
        return (-pixels, f.date_ns if f.date_ns is not None else 1 << 62, len(f.path), f.path)

    files.sort(key=rank)
    files[0] = DupeFile(**{**asdict(files[0]), "keep": True})
    return DupeGroup(kind, 1.0 if kind == "exact" else score, files)
