"""The encoder: one object that maps images and text into the shared CLIP space.

The model loads lazily on first use, on one runtime: the exported towers on ONNX Runtime
(``onnx_clip.py``) or open_clip on torch (``torch_clip.py``), chosen by ``runtime.py``. Every
encode call is truly batched and returns a float32 ``(N, D)`` array of L2-normalised rows.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._options import items
from ..config import DEFAULT_MODEL, DEFAULT_PRETRAINED, PRECISIONS
from ..errors import ConfigError, ModelLoadError
from .loading import LOCAL_PREFIX
from .onnx_clip import OnnxClip
from .runtime import onnx_precision, pick_device, pick_precision, torch_precision
from .torch_clip import TorchClip

if TYPE_CHECKING:
    import torch

__all__ = ["Encoder", "ModelSpec", "pick_device", "pick_precision", "torch_precision"]

HUB_PREFIX = "hf-hub:"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


@dataclass(frozen=True)
class ModelSpec:
    """What identifies an encoder: the name, the pretrained tag, and a content fingerprint.

    Two specs describe the same model exactly when their fingerprints are equal, so a
    local folder may move without invalidating a table built from it.
    """

    name: str  # as open_clip takes it; local-dir paths are made absolute
    pretrained: str | None  # tag for a built-in architecture, else None
    fingerprint: str  # 'name/tag' for hub weights, 'sha256:…' of config and weights for a folder

    @classmethod
    def resolve_over(cls, name: str | None, pretrained: str | None, recorded: str | None,
                     recorded_pretrained: str | None) -> ModelSpec:
        """What a user named, completed by a table's record: the recorded model where none was
        named, and the recorded pretrained tag only for that same model (a local-dir: model named
        over a ViT-B-32 table takes no tag from the table)."""
        chosen = name or recorded
        return cls.resolve(chosen, pretrained or (recorded_pretrained if chosen == recorded else None))

    @classmethod
    def resolve(cls, name: str | None, pretrained: str | None = None) -> ModelSpec:
        """Normalise what a user typed into a spec, checking what can be checked without torch."""
        name = (name or DEFAULT_MODEL).strip()
        if not name:
            raise ConfigError("model name is empty; pass --model NAME or --model local-dir:PATH")
        if pretrained and name.startswith((LOCAL_PREFIX, HUB_PREFIX)):
            raise ConfigError(f"--pretrained {pretrained} names weights of an open_clip model; {name.split(':', 1)[0]}: "
                              "models bring their own weights: drop --pretrained")
        if name.startswith(LOCAL_PREFIX):
            folder = Path(name[len(LOCAL_PREFIX):]).expanduser()
            if not folder.is_dir():
                raise ModelLoadError(
                    f"model folder {folder} not found; pass --model local-dir:PATH to a folder "
                    "holding open_clip_config.json and weights"
                )
            folder = folder.resolve()
            from .families import check_folder

            fingerprint = local_fingerprint(folder)
            check_folder(str(folder))  # tokenizer files, a Hugging Face text config: named before any load
            return cls(LOCAL_PREFIX + str(folder), None, fingerprint)
        if name.startswith(HUB_PREFIX):
            return cls(name, None, name)
        known = _open_clip_models()
        if known is not None and name not in known:
            raise ModelLoadError(
                f"unknown model {name!r}; list the valid names with python -c \"import open_clip; "
                "print(open_clip.list_models())\", or use --model hf-hub:ORG/REPO or local-dir:PATH"
            )
        if pretrained is None and name == DEFAULT_MODEL:
            pretrained = DEFAULT_PRETRAINED
        if not pretrained:
            raise ConfigError(
                f"model {name} needs --pretrained TAG (see open_clip.list_pretrained_tags_by_model"
                f"('{name}')), or use --model local-dir:PATH"
            )
        return cls(name, pretrained, f"{name}/{pretrained}")

    @property
    def label(self) -> str:
        """How the model is shown to people: 'ViT-B-32 (laion2b_s34b_b79k)' or the local-dir name."""
        return f"{self.name} ({self.pretrained})" if self.pretrained else self.name


def _open_clip_models() -> frozenset[str] | None:
    """open_clip's architecture names, read from its model_configs folder without importing it
    (torch); None when open_clip is not installed or the folder is not where it used to be."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        configs = Path(folder) / "model_configs"
        if configs.is_dir():
            return frozenset(p.stem for p in configs.glob("*.json"))
    return None


def local_fingerprint(folder: Path) -> str:
    """Hash a local model folder's config and weights cheaply (size plus head and tail bytes)."""
    config = folder / "open_clip_config.json"
    if not config.is_file():
        raise ModelLoadError(
            f"{folder} has no open_clip_config.json; a local model folder needs the config "
            "and weights in open_clip's format"
        )
    digest = hashlib.sha256(config.read_bytes())
    weights = sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    if not weights:
        raise ModelLoadError(f"{folder} holds no weights (*.safetensors, *.bin or *.pth); add them")
    chunk = 1 << 20
    for path in weights:
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with open(path, "rb") as f:
            digest.update(f.read(chunk))
            if size > chunk:
                f.seek(max(size - chunk, chunk))
                digest.update(f.read(chunk))
    return "sha256:" + digest.hexdigest()[:32]


class Encoder:
    """An open_clip model with its own preprocessing and tokenizer, loaded on first use.

    A thin chooser: it holds one runtime, ``OnnxClip`` (the exported towers on ONNX Runtime,
    ``onnx_clip.py``) or ``TorchClip`` (open_clip on torch, ``torch_clip.py``), picked once by
    ``runtime.onnx_precision``.

    Example::

        enc = Encoder("local-dir:../shared/models/micro-clip")
        enc.encode_text(["a dog on grass"]).shape   # (1, 256)
        enc.encode_images(["dog.jpg"]).dtype       # float32
    """

    def __init__(
        self,
        model: str | ModelSpec | None = None,
        pretrained: str | None = None,
        *,
        device: str = "auto",
        batch_size: int = 32,
        precision: str = "auto",
        runtime: str = "auto",
    ) -> None:
        self.spec = model if isinstance(model, ModelSpec) else ModelSpec.resolve(model, pretrained)
        if runtime not in ("auto", "torch"):
            raise ConfigError(f"runtime {runtime!r} is not known; use 'auto' or 'torch'")
        self.runtime = runtime  # auto: ONNX Runtime when int8 or fp32 on the CPU and both towers are exported
        if batch_size < 1:
            raise ConfigError(f"batch size {batch_size} must be at least 1")
        if precision not in PRECISIONS:
            raise ConfigError(f"precision {precision!r} is not known; use one of {', '.join(PRECISIONS)}")
        from ..config import check_device

        check_device(device)
        self.batch_size = batch_size
        self._device_request = device
        self._precision_request = precision
        self._lock = threading.Lock()
        self._runtime: OnnxClip | TorchClip | None = None  # the one runtime, chosen at load
        self._text_torch: TorchClip | None = None  # torch for the text where the exported text tower broke

    def __repr__(self) -> str:
        if self._runtime is None:
            return f"Encoder({self.spec.label!r}, not loaded)"
        return f"Encoder({self.spec.label!r}, loaded on {self._device}{' (onnxruntime)' if self._onnx else ''})"

    # ------------------------------------------------------------ loading
    def load(self) -> Encoder:
        """Load weights now (otherwise the first encode does). Returns self.

        At int8 or fp32 on the CPU, with both towers exported for this model (``image_tower.py``,
        ``text_tower.py``), the encoder runs on ONNX Runtime and torch is never imported (int8
        quantises the image tower's weights; text stays fp32); otherwise it loads the open_clip
        model with torch (``torch_precision``).
        """
        if self._runtime is None:
            with self._lock:
                if self._runtime is None:
                    self._runtime = self._open_onnx(self._device_request, self.runtime) \
                        or TorchClip(self.spec, self._device_request, self._precision_request)
        return self

    @classmethod
    def onnx_only(cls, spec: ModelSpec, *, precision: str = "fp32", batch_size: int = 32,
                  one_shot: bool = False) -> Encoder | None:
        """An encoder for ``spec`` on its exported towers at ``precision`` (int8 or fp32), or None
        when they are not there (torch is never loaded here: callers then take their slower path).
        ``one_shot``: the process encodes one image (a CLI image query): the tower loads faster."""
        encoder = cls(spec, device="cpu", precision=precision, batch_size=batch_size)
        encoder._runtime = encoder._open_onnx("cpu", "auto", one_shot=one_shot)
        return encoder if encoder._runtime is not None else None

    def _open_onnx(self, device: str, runtime: str, *, one_shot: bool = False) -> OnnxClip | None:
        precision = onnx_precision(device, self._precision_request, runtime)
        return OnnxClip.open(self.spec, precision, one_shot=one_shot) if precision is not None else None

    @property
    def on_onnx(self) -> bool:
        """True when the loaded encoder runs on ONNX Runtime (loads it)."""
        self.load()
        return self._onnx is not None

    @property
    def _onnx(self) -> OnnxClip | None:
        return self._runtime if isinstance(self._runtime, OnnxClip) else None

    @property
    def _torch(self) -> TorchClip | None:
        """The torch runtime, if one is loaded (the runtime, or torch for the text only)."""
        return self._text_torch or (self._runtime if isinstance(self._runtime, TorchClip) else None)

    @property
    def _model(self) -> Any:
        """The loaded open_clip model (torch), or None (export reads its weights)."""
        return self._torch.model if self._torch is not None else None

    @property
    def _tokenizer(self) -> Any:
        return self._torch.tokenizer if self._torch is not None else None

    @property
    def _device(self) -> str | None:
        runtime = self._text_torch or self._runtime
        return runtime.device if runtime is not None else None

    @property
    def precision(self) -> str | None:
        """What the loaded model runs in (None before it loads)."""
        runtime = self._text_torch or self._runtime
        return runtime.precision if runtime is not None else None

    def _text_tower(self) -> Any:
        """The exported text tower, loaded on first use; None when it cannot be loaded (gone or
        damaged since ``load``): the text then goes through torch, loaded for it."""
        assert self._onnx is not None
        tower = self._onnx.text_tower()
        if tower is None and self._text_torch is None:
            with self._lock:
                if self._text_torch is None:  # torch, for the text only: images stay on the exported tower
                    self._text_torch = TorchClip(self.spec, self._device_request, self._precision_request)
        return tower

    @property
    def device(self) -> str:
        """The device the model runs on (loads the model)."""
        self.load()
        assert self._device is not None
        return self._device

    @property
    def dim(self) -> int:
        """Embedding dimension (loads the model)."""
        self.load()
        assert self._runtime is not None
        dim = self._runtime.dim
        return dim if dim is not None else int(self.encode_text(["x"]).shape[1])

    @property
    def image_size(self) -> int:
        """The shorter side, in pixels, of the model's input image (loads the model)."""
        self.load()
        assert self._runtime is not None
        return self._runtime.image_size

    @property
    def scores(self) -> dict[str, Any]:
        """How the model turns cosines into probabilities (loads the model): {kind: softmax or
        sigmoid, scale, bias}, the learnt values, from the exported towers or the weights."""
        self.load()
        if self._onnx is not None:
            found = self._onnx.image.info.get("scores")
            if found:
                return dict(found)
        if self._model is not None:
            from .text_tower import model_scores

            return model_scores(self._model)
        return {"kind": "softmax", "scale": 100.0}  # an export from before scores were recorded: CLIP's

    @property
    def preprocess(self) -> Any:
        """open_clip's eval transform for this model: PIL RGB image -> CHW float tensor."""
        self.load()
        assert self._runtime is not None
        return self._runtime.preprocess

    # ------------------------------------------------------------ encoding
    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Encode strings into float32 (N, D) unit vectors, ``batch_size`` at a time; a single
        string is one text (shape (1, D)), as in sentence-transformers' ``encode``."""
        texts = items(texts, "texts", ConfigError)
        self.load()
        tower = self._text_tower() if self._onnx is not None else None
        batches = [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        if tower is not None:
            return _stack([tower.encode_text(batch) for batch in batches], self.dim)
        runtime = self._torch
        assert runtime is not None
        out = [runtime.encode_text(batch) for batch in batches]
        return _stack(out, self.dim if not out else None)

    def encode_images(
        self, images: Sequence[Any], *, max_megapixels: float = 100.0
    ) -> np.ndarray:
        """Encode image paths or PIL images into float32 (N, D) unit vectors.

        Paths are decoded as ingest decodes them with ``--decode exact`` (EXIF orientation, mode
        handling, every pixel); a bad path raises ``ImageDecodeError``.
        """
        from ..sources.decode import load_image

        if isinstance(images, (str, os.PathLike)) or hasattr(images, "mode"):  # one path or PIL image
            images = [images]
        preprocess = self.preprocess  # loads the model
        out = []
        for start in range(0, len(images), self.batch_size):
            tensors = []
            for item in images[start : start + self.batch_size]:
                if isinstance(item, (str, os.PathLike)):
                    item = load_image(item, max_megapixels=max_megapixels).image
                elif getattr(item, "mode", "RGB") != "RGB":
                    item = item.convert("RGB")
                tensors.append(preprocess(item))
            out.append(self.encode_pixels(tensors))
        return _stack(out, self.dim if not out else None)

    def encode_pixels(self, tensors: Sequence[torch.Tensor] | torch.Tensor) -> np.ndarray:
        """Encode already-preprocessed CHW tensors or arrays (one batch) into float32 (N, D) unit vectors."""
        self.load()
        assert self._runtime is not None
        return self._runtime.encode_pixels(tensors)  # type: ignore[arg-type]


def _stack(parts: list[np.ndarray], dim: int | None) -> np.ndarray:
    if not parts:
        return np.zeros((0, dim or 0), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)
