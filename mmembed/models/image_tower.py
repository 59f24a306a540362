"""Images without torch: the model's image tower as ONNX, run by onnxruntime.

Files, per model, in the user cache beside the text tower: ``image.onnx`` (the vision
transformer and its projection, batch size free) and ``image.json`` (fingerprint, dimension,
the preprocessing parameters, and the size and mtime of ``image.onnx``).

At the first write of a table (where torch is loaded anyway) :func:`export_image_tower`
writes it from the fp32 weights and checks it against open_clip's ``encode_image`` on random
pixels: the worst cosine must reach 0.9999, or nothing is written. Then
:class:`OnnxImageEncoder` encodes images for ingest at fp32 and for image queries, and
``models/preprocess.py`` prepares the pixels with the parameters recorded here, so neither
torch nor open_clip is imported.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from typing import Any

import numpy as np

__all__ = ["OnnxImageEncoder", "export_image_tower", "image_tower_folder", "image_tower_exists",
           "load_image_tower", "IMAGE_TOWER_FILE"]

IMAGE_TOWER_FILE = "image.onnx"
_INFO_FILE = "image.json"
_FORMAT = 1  # bumped when the files change meaning; an older export is made again
_MIN_COSINE = 0.9999


def image_tower_folder(fingerprint: str) -> str:
    """Where the image tower of the model with ``fingerprint`` is kept (one per model)."""
    import hashlib

    from ..config import cache_dir

    return os.path.join(cache_dir(), "image-towers", hashlib.sha256(fingerprint.encode()).hexdigest()[:24])


def _stamp(folder: str) -> list[int]:
    st = os.stat(os.path.join(folder, IMAGE_TOWER_FILE))
    return [st.st_size, st.st_mtime_ns]


def _info(folder: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(folder, _INFO_FILE)) as f:
            info = json.load(f)
        return info if isinstance(info, dict) else None
    except (OSError, ValueError):
        return None


def image_tower_exists(folder: str, fingerprint: str) -> bool:
    """True when ``folder`` holds the export for ``fingerprint``, unchanged since it was written."""
    info = _info(folder)
    try:
        return (info is not None and info.get("format") == _FORMAT and info.get("fingerprint") == fingerprint
                and info.get("file") == _stamp(folder))
    except OSError:
        return False


class OnnxImageEncoder:
    """Encodes preprocessed pixels with the exported image tower: float32 (N, D) unit rows."""

    def __init__(self, folder: str, *, threads: int = 0) -> None:
        import onnxruntime as ort

        info = _info(folder)
        if info is None:
            raise ValueError(f"{folder}: {_INFO_FILE} cannot be read")
        self.info = info
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        # Decode threads run beside inference: spinning ORT threads would take their cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(os.path.join(folder, IMAGE_TOWER_FILE), options,
                                            providers=["CPUExecutionProvider"])
        self.fingerprint: str = info["fingerprint"]
        self.dim: int = int(info["dim"])
        self.preprocess_params: dict[str, Any] = info["preprocess"]

    def encode_pixels(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        (out,) = self.session.run(None, {"pixels": np.ascontiguousarray(batch, dtype=np.float32)})
        out = out.astype(np.float32, copy=False)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def load_image_tower(folder: str, fingerprint: str) -> OnnxImageEncoder | None:
    """The export in ``folder`` when it exists for ``fingerprint`` (and onnxruntime is there)."""
    if not image_tower_exists(folder, fingerprint):
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    return OnnxImageEncoder(folder)


def export_image_tower(encoder: Any, folder: str) -> dict[str, Any] | None:
    """Write ``encoder``'s image tower to ``folder`` as ONNX when that is faithful; return its info.

    The weights are read at fp32 on the CPU (another ``encoder`` is loaded so). Returns None (and writes
    nothing) for a model whose preprocessing is not open_clip's usual transform, or whose
    export does not reproduce ``encode_image`` to a cosine of 0.9999.
    """
    import torch

    from .preprocess import transform_params
    from .text_tower import fp32_torch

    encoder = fp32_torch(encoder)
    model = encoder._model
    params = transform_params(encoder.preprocess)
    if params is None:
        return None
    crop_h, crop_w = params["crop"]
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{IMAGE_TOWER_FILE}.{os.getpid()}.tmp")
    tower = _image_tower_class()(model)
    sample = torch.randn(2, 3, crop_h, crop_w)
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with torch.inference_mode(False), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(tower, (sample,), tmp, input_names=["pixels"], output_names=["vectors"],
                              dynamic_shapes={"pixels": {0: batch}}, dynamo=True, optimize=True, external_data=False)
        check = _check_export(tmp, model, crop_h, crop_w)
    except Exception:  # noqa: BLE001 - an export onnxruntime cannot run is simply not used
        check = None
    if check is None or check < _MIN_COSINE:
        if os.path.exists(tmp):
            os.remove(tmp)
        return None
    os.replace(tmp, os.path.join(folder, IMAGE_TOWER_FILE))
    info = {"format": _FORMAT, "fingerprint": encoder.spec.fingerprint, "model": encoder.spec.name,
            "dim": encoder.dim, "preprocess": params, "min_cosine_on_check": round(float(check), 6),
            "file": _stamp(folder)}
    with open(os.path.join(folder, _INFO_FILE), "w") as f:
        json.dump(info, f)
    return info


def _check_export(path: str, model: Any, crop_h: int, crop_w: int) -> float:
    """Worst cosine between the ONNX graph and ``encode_image`` in fp32, on batches of 1 and 3."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 1.0
    for n in (1, 3):
        pixels = torch.randn(n, 3, crop_h, crop_w, generator=generator)
        with torch.no_grad():
            want = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1).numpy()
        (got,) = session.run(None, {"pixels": pixels.numpy()})
        got = got / np.linalg.norm(got, axis=1, keepdims=True)
        worst = min(worst, float((got * want).sum(axis=1).min()))
    return worst


def _image_tower_class() -> Any:
    import torch

    class ImageTower(torch.nn.Module):
        """open_clip's ``CLIP.encode_image`` (vision transformer and projection), unnormalised."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.visual = model.visual  # the text tower stays out of the graph

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.visual(pixels)

    return ImageTower
