"""Is this the same photo? Local features matched with RANSAC, then the pixels compared.

Two files are the same photo when one maps onto the other by a similarity transform
(scale, rotation, shift: a resize, a crop, a turn, a border) that many matched keypoints
agree on, *and* once aligned their grey pixels agree over the part they share. The first
test is what tells a 50 % crop from a different photo of the same kind of scene; the second
is what tells a re-encode from a burst shot of the same scene (the background lines up, the
people moved). Neither looks at an embedding, so no threshold here depends on the model.

Each photo is decoded once per run (JPEG at a reduced DCT scale), at most ``SIDE`` pixels
on its long side, and its ORB keypoints are kept (``Features``) for every pair it is in.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Features", "PhotoFeatures", "same_photo"]

SIDE = 512  # the long side the photo is decoded and searched at
MIN_SIDE = 320  # smaller photos are enlarged to this (ORB's patches need room)
N_FEATURES = 500
RATIO = 0.8  # Lowe's ratio test on the two nearest descriptors
MIN_INLIERS = 20  # keypoint matches that must agree on one similarity transform
RANSAC_PX = 4.0  # reprojection error allowed, in pixels at SIDE
MIN_OVERLAP = 0.5  # the aligned overlap covers at least this share of the smaller photo
PIXEL_AGREE = 0.80  # normalised cross-correlation of the aligned grey pixels over the overlap
KEPT = 160  # the long side of the grey view kept for the pixel comparison
CACHE = 8192  # photos whose features are kept at once (about 40 kB each)


@dataclass
class PhotoFeatures:
    """One photo's small grey view and ORB keypoints (``points`` (K, 2) float32, in the pixels of
    the photo at ``SIDE``; ``descriptors`` (K, 32) uint8); ``scale`` maps those pixels onto ``gray``'s."""

    gray: np.ndarray
    scale: float
    points: np.ndarray
    descriptors: np.ndarray | None


class Features:
    """Each photo's features, made from its file on first use and kept for the run; None for a
    file that cannot be read now, or that changed since it was indexed (``named`` names them)."""

    def __init__(self, rows: list[dict[str, Any]], max_megapixels: float) -> None:
        self.rows = rows
        self.max_megapixels = max_megapixels
        # row numbers, not paths, and one byte per row for "checked": at a million rows whose files
        # are gone, lists of paths and a dict of checks took hundreds of MB
        self._changed: list[int] = []
        self._unreadable: dict[int, None] = {}  # in the order met
        self._cache: OrderedDict[int, PhotoFeatures | None] = OrderedDict()  # the CACHE most recently used
        self._trusted = np.full(len(rows), -1, dtype=np.int8)  # -1 not checked yet, 0 changed, 1 trusted
        self._lock = threading.Lock()  # pairs are checked in threads (OpenCV releases the GIL)

    def counts(self) -> tuple[int, int]:
        """(changed, unreadable) without naming them."""
        return len(self._changed), len(self._unreadable)

    def named(self, limit: int) -> tuple[list[str], list[str]]:
        """The first ``limit`` paths of the rows found changed since they were indexed (or gone),
        and of those whose file could not be decoded, each in the order met."""
        return ([self.rows[i]["path"] for i in self._changed[:limit]],
                [self.rows[i]["path"] for i in itertools.islice(self._unreadable, limit)])

    def trusted(self, i: int) -> bool:
        """Whether row ``i``'s file is still the one indexed (checked once; counted, and named by ``named``, if not)."""
        with self._lock:
            if self._trusted[i] < 0:
                ok = not _changed(self.rows[i])
                self._trusted[i] = ok
                if not ok:
                    self._changed.append(i)
            return bool(self._trusted[i])

    def get(self, i: int) -> PhotoFeatures | None:
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i]
        made = self._make(i) if self.trusted(i) else None
        with self._lock:
            self._cache[i] = made
            if len(self._cache) > CACHE:
                self._cache.popitem(last=False)
        return made

    def _make(self, i: int) -> PhotoFeatures | None:
        from ..errors import ImageDecodeError
        from ..sources.decode import load_image

        try:
            image = load_image(self.rows[i]["path"], max_megapixels=self.max_megapixels, min_side=SIDE).image
        except (ImageDecodeError, OSError):
            with self._lock:
                self._unreadable[i] = None
            return None
        return features_of(image)


def _changed(row: dict[str, Any]) -> bool:
    """A local file whose size or modification time is not the indexed one (or is gone)."""
    path = row["path"]
    if path.startswith("s3://") or row.get("size") is None or row.get("mtime_ns") is None:
        return False
    try:
        st = os.stat(path)
    except OSError:
        return True
    return st.st_size != row["size"] or st.st_mtime_ns != row["mtime_ns"]


def features_of(image: Any) -> PhotoFeatures:
    """ORB keypoints of a PIL image, at most ``SIDE`` and at least ``MIN_SIDE`` on its long side."""
    import cv2
    from PIL import Image

    gray = image.convert("L")
    scale = min(SIDE / max(gray.size), max(1.0, MIN_SIDE / max(gray.size)))
    if scale != 1.0:
        gray = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))),
                           Image.Resampling.BILINEAR if scale > 1 else Image.Resampling.BOX)
    pixels = np.asarray(gray, dtype=np.uint8)
    orb = cv2.ORB_create(nfeatures=N_FEATURES, edgeThreshold=15, patchSize=15, fastThreshold=10)
    keypoints, descriptors = orb.detectAndCompute(pixels, None)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
    small = min(1.0, KEPT / max(pixels.shape))
    kept = cv2.resize(pixels, (max(1, round(pixels.shape[1] * small)), max(1, round(pixels.shape[0] * small))),
                      interpolation=cv2.INTER_AREA) if small < 1 else pixels
    return PhotoFeatures(kept, small, points, descriptors)


def same_photo(a: PhotoFeatures, b: PhotoFeatures) -> bool:
    """Whether ``b`` is ``a`` resized, cropped, turned, bordered or re-encoded (see the module doc)."""
    return _evidence(a, b)[0]


def _evidence(a: PhotoFeatures, b: PhotoFeatures) -> tuple[bool, int, float, float]:
    """(same, inliers, overlap, pixel correlation): what the decision rests on."""
    import cv2

    if a.descriptors is None or b.descriptors is None or len(a.points) < MIN_INLIERS or len(b.points) < MIN_INLIERS:
        return False, 0, 0.0, 0.0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(b.descriptors, a.descriptors, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < MIN_INLIERS:
        return False, len(good), 0.0, 0.0
    src = b.points[[m.queryIdx for m in good]]
    dst = a.points[[m.trainIdx for m in good]]
    matrix, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX,
                                               maxIters=2000, confidence=0.995)
    inliers = int(mask.sum()) if mask is not None else 0
    if matrix is None or inliers < MIN_INLIERS:
        return False, inliers, 0.0, 0.0
    # the transform between the kept grey views: b's view -> b at SIDE -> a at SIDE -> a's view
    small = matrix.astype(np.float64).copy()
    small[:, :2] *= a.scale / b.scale
    small[:, 2] *= a.scale
    overlap, agree = _aligned_agreement(a.gray, b.gray, small)
    return overlap >= MIN_OVERLAP and agree >= PIXEL_AGREE, inliers, overlap, agree


def _aligned_agreement(a: np.ndarray, b: np.ndarray, matrix: np.ndarray) -> tuple[float, float]:
    """Warp ``b`` into ``a``'s frame: (the overlap's share of the smaller photo, the NCC of the
    grey pixels over the overlap)."""
    import cv2

    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if not 0.1 < scale < 10:
        return 0.0, 0.0
    h, w = a.shape
    if scale < 0.8:  # b shrinks into a's frame: blur it first, so the sampling does not alias
        b = cv2.GaussianBlur(b, (0, 0), 0.5 / scale)
    warped = cv2.warpAffine(b, matrix, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full(b.shape, 255, np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST)
    inside = mask > 0
    area = float(inside.sum())
    smaller = min(float(h * w), b.shape[0] * b.shape[1] * scale * scale)
    overlap = area / max(smaller, 1.0)
    if overlap < MIN_OVERLAP:
        return overlap, 0.0
    keep = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # away from the warped edge
    x, y = a[keep].astype(np.float32), warped[keep].astype(np.float32)
    if x.size < 16:
        return overlap, 0.0
    x, y = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return min(overlap, 1.0), float((x * y).sum() / denom) if denom > 0 else 0.0
