"""The PP-OCR pipeline's array work around its three ONNX models: text detection (DB) boxes,
line crops, the angle classifier's and the recognizer's inputs, and CTC decoding.

Pure numpy and OpenCV (``opencv-python-headless``) plus pyclipper for growing a box; no session
here (``ocr.py`` owns the sessions). Images are BGR ``uint8`` arrays (H, W, 3), as PaddleOCR
trained its models on ``cv2.imread`` output.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "det_input", "resize_nearest", "resize_area", "boxes_from_map", "crop_line", "cls_batch", "rec_batch", "ctc_decode", "reading_order",
]

_DET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_DET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _cv2() -> Any:
    import cv2  # opencv-python-headless, part of the ocr extra

    return cv2


def det_input(bgr: np.ndarray, limit_side: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The detector's (1, 3, H, W) float32 input with the longer side at most ``limit_side``
    (both sides multiples of 32), and the (y, x) ratios that map the map back to ``bgr``."""
    h, w = bgr.shape[:2]
    scale = min(1.0, limit_side / max(h, w))
    rh = max(32, int(round(h * scale / 32)) * 32)
    rw = max(32, int(round(w * scale / 32)) * 32)
    resized = _cv2().resize(bgr, (rw, rh), interpolation=_cv2().INTER_LINEAR)
    x = (resized.astype(np.float32) / 255.0 - _DET_MEAN) / _DET_STD
    return x.transpose(2, 0, 1)[None].copy(), (h / rh, w / rw)


def resize_nearest(bgr: np.ndarray, side: int) -> np.ndarray:
    """A ``side`` x ``side`` copy by nearest neighbour (exact colours kept)."""
    return _cv2().resize(bgr, (side, side), interpolation=_cv2().INTER_NEAREST)


def resize_area(bgr: np.ndarray, scale: float) -> np.ndarray:
    """``bgr`` scaled down by ``scale`` (<= 1) with pixel-area averaging."""
    if scale >= 1.0:
        return bgr
    h, w = bgr.shape[:2]
    return _cv2().resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=_cv2().INTER_AREA)


def boxes_from_map(prob: np.ndarray, ratios: tuple[float, float], size: tuple[int, int], *,
                   thresh: float = 0.3, box_thresh: float = 0.6, unclip_ratio: float = 1.5,
                   max_candidates: int = 1000) -> list[tuple[np.ndarray, float]]:
    """Quadrilaterals (4, 2) in the source image's pixels, with the detector's mean score inside
    each, from the detector's probability map ``prob`` (H, W). ``size`` is the source (h, w)."""
    cv2 = _cv2()
    bitmap = (prob > thresh).astype(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found: list[tuple[np.ndarray, float]] = []
    ry, rx = ratios
    h, w = size
    for contour in contours[:max_candidates]:
        points, side = _mini_box(contour)
        if side < 3:
            continue
        score = _box_score(prob, points)
        if score < box_thresh:
            continue
        grown = _unclip(points, unclip_ratio)
        if grown is None:
            continue
        points, side = _mini_box(grown.reshape(-1, 1, 2))
        if side < 5:
            continue
        points[:, 0] = np.clip(np.round(points[:, 0] * rx), 0, w - 1)
        points[:, 1] = np.clip(np.round(points[:, 1] * ry), 0, h - 1)
        if np.linalg.norm(points[0] - points[1]) <= 3 or np.linalg.norm(points[0] - points[3]) <= 3:
            continue
        found.append((points.astype(np.float32), float(score)))
    return found


def _mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    """The contour's minimum-area rectangle as points clockwise from top-left, and its short side."""
    cv2 = _cv2()
    rect = cv2.minAreaRect(contour)
    pts = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
    left = sorted(pts[:2], key=lambda p: p[1])
    right = sorted(pts[2:], key=lambda p: p[1])
    box = np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)
    return box, float(min(rect[1]))


def _box_score(prob: np.ndarray, box: np.ndarray) -> float:
    cv2 = _cv2()
    h, w = prob.shape
    xmin = int(np.clip(np.floor(box[:, 0].min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(box[:, 0].max()), 0, w - 1))
    ymin = int(np.clip(np.floor(box[:, 1].min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(box[:, 1].max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    shifted = (box - np.array([xmin, ymin], dtype=np.float32)).astype(np.int32)
    cv2.fillPoly(mask, shifted.reshape(1, -1, 2), 1)
    return float(cv2.mean(prob[ymin:ymax + 1, xmin:xmax + 1], mask)[0])


def _unclip(box: np.ndarray, ratio: float) -> np.ndarray | None:
    """The box grown by DB's offset (area * ratio / perimeter): the map marks shrunk text cores."""
    import pyclipper

    x, y = box[:, 0].astype(np.float64), box[:, 1].astype(np.float64)
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    perimeter = float(sum(np.linalg.norm(box[i] - box[(i + 1) % 4]) for i in range(4)))
    if perimeter == 0:
        return None
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box.astype(np.int64).tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    paths = offset.Execute(area * ratio / perimeter)
    if len(paths) != 1:
        return None
    return np.array(paths[0], dtype=np.float32)


def reading_order(boxes: list[tuple[np.ndarray, float]]) -> list[tuple[np.ndarray, float]]:
    """Top to bottom, then left to right within a line (boxes whose tops lie within 10 px)."""
    ordered = sorted(boxes, key=lambda b: (float(b[0][0][1]), float(b[0][0][0])))
    for i in range(len(ordered) - 1):
        for j in range(i, -1, -1):
            a, b = ordered[j], ordered[j + 1]
            if abs(b[0][0][1] - a[0][0][1]) < 10 and b[0][0][0] < a[0][0][0]:
                ordered[j], ordered[j + 1] = b, a
            else:
                break
    return ordered


def crop_line(bgr: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The box's pixels warped to an upright rectangle; a crop at least 1.5x taller than wide is
    turned a quarter (a line of text rotated by 90 degrees); the classifier fixes 180."""
    cv2 = _cv2()
    width = int(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3])))
    height = int(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2])))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(box.astype(np.float32), target)
    crop = cv2.warpPerspective(bgr, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)
    if crop.shape[0] >= crop.shape[1] * 1.5:
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)


def _resize_pad(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = crop.shape[:2]
    new_w = min(width, max(1, int(math.ceil(height * w / h))))
    resized = _cv2().resize(crop, (new_w, height)).astype(np.float32)
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :new_w] = (resized.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


def cls_batch(crops: list[np.ndarray]) -> np.ndarray:
    """The angle classifier's (N, 3, 48, 192) input."""
    return np.stack([_resize_pad(c, 48, 192) for c in crops])


def rec_batch(crops: list[np.ndarray], height: int = 48, min_width: int = 320) -> np.ndarray:
    """The recognizer's (N, 3, 48, W) input; W fits the widest crop's aspect (a batch of similar
    aspects wastes little padding)."""
    ratio = max([min_width / height] + [c.shape[1] / c.shape[0] for c in crops])
    width = int(math.ceil(height * ratio))
    return np.stack([_resize_pad(c, height, width) for c in crops])


def ctc_decode(logits: np.ndarray, charset: list[str]) -> list[tuple[str, float]]:
    """Greedy CTC over (N, T, C) probabilities: the text and the mean probability of its characters.
    ``charset[0]`` is the blank."""
    ids = logits.argmax(axis=2)
    probs = logits.max(axis=2)
    out: list[tuple[str, float]] = []
    for row, prob in zip(ids, probs):
        keep = np.ones(len(row), dtype=bool)
        keep[1:] = row[1:] != row[:-1]
        keep &= row != 0
        chars = [charset[i] for i in row[keep] if i < len(charset)]
        out.append(("".join(chars), float(prob[keep].mean()) if keep.any() else 0.0))
    return out
