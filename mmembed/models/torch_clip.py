"""The torch fallback: the open_clip model itself, for a model without exported towers, a GPU,
bf16 or fp16, or ``runtime="torch"``. Every batch runs under ``torch.inference_mode()`` and
moves to the CPU at once. ``Encoder`` chooses it where ``runtime.onnx_precision`` says torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .loading import load_open_clip
from .runtime import pick_device, torch_precision

if TYPE_CHECKING:
    import torch

__all__ = ["TorchClip"]


class TorchClip:
    """An open_clip model with its preprocessing and tokenizer, loaded when built (imports torch).

    Example::

        clip = TorchClip(spec, "cpu", "fp32")
        clip.encode_text(["a dog"]).shape   # (1, D)
    """

    def __init__(self, spec: Any, device: str = "auto", precision: str = "auto") -> None:
        import torch

        self.spec = spec  # the ModelSpec (encoder.py) to load
        self.device = pick_device(device)
        self.precision = torch_precision(self.device, precision)
        self.model, self.preprocess, self.tokenizer = load_open_clip(spec, self.device, self.precision)
        self.model.eval()
        self._dtype = next(self.model.parameters()).dtype if self.precision != "fp32" else torch.float32

    @property
    def dim(self) -> int | None:
        """The embedding size from the text projection, or None where the model has none."""
        proj = getattr(self.model, "text_projection", None)
        return int(proj.shape[-1]) if proj is not None and hasattr(proj, "shape") else None

    @property
    def image_size(self) -> int:
        size = getattr(self.model.visual, "image_size", None) or 224
        return int(min(size) if isinstance(size, (tuple, list)) else size)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """One batch of strings -> float32 (N, D) unit vectors."""
        return self._run(self.model.encode_text, self.tokenizer(texts).to(self.device))

    def encode_pixels(self, tensors: Sequence[torch.Tensor] | torch.Tensor) -> np.ndarray:
        """One batch of preprocessed CHW tensors -> float32 (N, D) unit vectors."""
        import torch

        batch = tensors if isinstance(tensors, torch.Tensor) else torch.stack(list(tensors))
        return self._run(self.model.encode_image, batch.to(self.device))

    def _run(self, fn: Any, batch: torch.Tensor) -> np.ndarray:
        import torch

        if batch.is_floating_point():
            batch = batch.to(self._dtype)
        with torch.inference_mode():
            feats = fn(batch).float()
            feats = torch.nn.functional.normalize(feats, dim=-1)
        return feats.cpu().numpy().astype(np.float32, copy=False)
