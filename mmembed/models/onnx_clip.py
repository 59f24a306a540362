"""The inference runtime on ONNX Runtime: one model's exported towers, one session per tower.

The image tower's session is made when the runtime is opened (it gives the embedding size and
the preprocessing); the text tower's on the first text, so an image query never loads it. Neither
torch nor open_clip is imported here. Export lives in ``image_tower.py`` and ``text_tower.py``,
the torch fallback in ``torch_clip.py``; ``Encoder`` chooses between them (``runtime.py`` decides).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["OnnxClip"]


class OnnxClip:
    """A model's exported image and text towers on ONNX Runtime, on the CPU.

    Example::

        clip = OnnxClip.open(spec, "int8")   # None when the towers are not exported
        clip.encode_pixels([clip.preprocess(image)]).shape   # (1, D)
    """

    device = "cpu"

    def __init__(self, spec: Any, image: Any) -> None:
        from .preprocess import NumpyTransform

        self.spec = spec  # the ModelSpec (encoder.py) whose towers these are
        self.image = image  # the image tower's encoder (``image_tower.OnnxImageEncoder``)
        self.precision: str = image.precision  # int8 or fp32 (fp32 where no faithful int8 tower exists)
        self.preprocess = NumpyTransform(image.preprocess_params)  # PIL RGB image -> CHW float32 array
        self._text: Any = None  # the text tower; None: not looked for yet; False: cannot be loaded
        self._lock = threading.Lock()

    @classmethod
    def open(cls, spec: Any, precision: str, *, one_shot: bool = False) -> OnnxClip | None:
        """The runtime on ``spec``'s exported towers at ``precision`` (int8 or fp32), or None when
        they are not both exported, or the image tower cannot be loaded (torch then serves).
        ``one_shot``: this process encodes one image (a CLI image query), loaded for that."""
        from .image_tower import image_tower_folder, load_image_tower
        from .text_tower import tower_exists, tower_folder

        fingerprint = spec.fingerprint
        if not tower_exists(tower_folder(fingerprint), fingerprint):
            return None
        try:
            image = load_image_tower(image_tower_folder(fingerprint), fingerprint, precision, one_shot=one_shot)
            if image is None and precision == "int8":  # no faithful int8 tower for this model: fp32
                image = load_image_tower(image_tower_folder(fingerprint), fingerprint, one_shot=one_shot)
        except Exception:  # noqa: BLE001 - a damaged export: torch instead (the next write exports it again)
            return None
        return cls(spec, image) if image is not None else None

    def text_tower(self) -> Any:
        """The exported text tower, loaded on first use; None when it cannot be loaded (gone or
        damaged since the runtime was opened)."""
        from .text_tower import load_text_tower, tower_folder

        if self._text is None:
            with self._lock:
                if self._text is None:
                    try:
                        tower = load_text_tower(tower_folder(self.spec.fingerprint), self.spec.fingerprint,
                                                precision=self.precision)
                    except Exception:  # noqa: BLE001 - damaged: the next write exports it again
                        tower = None
                    self._text = tower or False
        return self._text or None

    @property
    def dim(self) -> int:
        return int(self.image.dim)

    @property
    def image_size(self) -> int:
        return int(min(self.image.preprocess_params["crop"]))

    def encode_pixels(self, tensors: Sequence[Any]) -> np.ndarray:
        """One batch of preprocessed CHW arrays -> float32 (N, D) unit vectors."""
        return self.image.encode_pixels(np.stack([np.asarray(t, dtype=np.float32) for t in tensors]))
