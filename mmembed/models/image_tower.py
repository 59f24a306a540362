"""Images without torch: the model's image tower as ONNX, run by onnxruntime.

Files, per model, in the user cache beside the text tower: ``image.onnx`` (the graph of the
vision transformer and its projection, batch size free), ``image.onnx.data`` (its weights, as
ONNX external data) and ``image.json`` (fingerprint, dimension, the preprocessing parameters,
and the size and mtime of both files).

The weights live outside the graph so that onnxruntime memory-maps them: a session on a
single-file graph first copies every weight out of the parsed protobuf, which cost a cold
image query of a ~350 MB tower about 1 s. A process that encodes one image (``one_shot``, the
CLI's image query) also skips onnxruntime's pre-packing of the weights, so it never copies them
at all (BENCHMARKS.md, issue 26). An export of the older single-file format (1) is still used,
and rewritten in the new one the first time it is loaded (:func:`load_image_tower`).

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
import shutil
import tempfile
import warnings
from typing import Any

import numpy as np

from .quantize import cpu_has_vnni, make_int8

__all__ = ["OnnxImageEncoder", "export_image_tower", "image_tower_folder", "image_tower_exists",
           "load_image_tower", "quantize_image_tower", "IMAGE_TOWER_FILE", "IMAGE_DATA_FILE"]

IMAGE_TOWER_FILE = "image.onnx"
IMAGE_DATA_FILE = "image.onnx.data"  # the weights of IMAGE_TOWER_FILE (ONNX external data)
INT8_FILE = "image.int8.onnx"
_INFO_FILE = "image.json"
_INT8_INFO_FILE = "image.int8.json"
_FORMAT = 2  # 2: weights in IMAGE_DATA_FILE; bumped when the files change meaning
_SINGLE_FILE_FORMAT = 1  # the weights inside IMAGE_TOWER_FILE: still used, rewritten as 2 when loaded
_MIN_COSINE = 0.9999
_MIN_INT8_COSINE = 0.99  # the int8 tower against the fp32 one, worst image of the check


def image_tower_folder(fingerprint: str) -> str:
    """Where the image tower of the model with ``fingerprint`` is kept (one per model)."""
    import hashlib

    from ..config import cache_dir

    return os.path.join(cache_dir(), "image-towers", hashlib.sha256(fingerprint.encode()).hexdigest()[:24])


def _stamp(folder: str, name: str = IMAGE_TOWER_FILE) -> list[int]:
    st = os.stat(os.path.join(folder, name))
    return [st.st_size, st.st_mtime_ns]


def _info(folder: str, name: str = _INFO_FILE) -> dict[str, Any] | None:
    try:
        with open(os.path.join(folder, name)) as f:
            info = json.load(f)
        return info if isinstance(info, dict) else None
    except (OSError, ValueError):
        return None


def image_tower_exists(folder: str, fingerprint: str) -> bool:
    """True when ``folder`` holds the export for ``fingerprint``, unchanged since it was written
    (in the current format, or the older single-file one that :func:`load_image_tower` rewrites)."""
    info = _info(folder)
    try:
        if info is None or info.get("fingerprint") != fingerprint or info.get("file") != _stamp(folder):
            return False
        if info.get("format") == _SINGLE_FILE_FORMAT:
            return True
        return info.get("format") == _FORMAT and info.get("data") == _stamp(folder, IMAGE_DATA_FILE)
    except OSError:
        return False


class OnnxImageEncoder:
    """Encodes preprocessed pixels with the exported image tower: float32 (N, D) unit rows."""

    def __init__(self, folder: str, *, threads: int = 0, precision: str = "fp32", one_shot: bool = False) -> None:
        import onnxruntime as ort

        info = _info(folder)
        if info is None:
            raise ValueError(f"{folder}: {_INFO_FILE} cannot be read")
        self.info = info
        self.precision = precision
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._pool: Any = None
        if precision == "int8":
            # Dynamic quantisation scales each input tensor by its own range, so a batch would
            # make an image's vector depend on its neighbours. One image per run keeps it the
            # image's own; one single-threaded run per core keeps the speed of a batch of 8.
            from concurrent.futures import ThreadPoolExecutor

            options.intra_op_num_threads = 1
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            self._pool = ThreadPoolExecutor(threads or cores, thread_name_prefix="mmembed-int8")
        elif threads:
            options.intra_op_num_threads = threads
        # Decode threads run beside inference: spinning ORT threads would take their cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if one_shot:
            # One image per process: packing the weights at load costs as much as the one run
            # saves, and unpacked they stay memory-mapped instead of copied (0.05 s of CPU to load
            # a ~370 MB tower instead of 0.45 s packed, 1.1 s from one file; BENCHMARKS.md, issue 26).
            options.add_session_config_entry("session.disable_prepacking", "1")
        self.session = ort.InferenceSession(os.path.join(folder, INT8_FILE if precision == "int8" else IMAGE_TOWER_FILE), options,
                                            providers=["CPUExecutionProvider"])
        self.fingerprint: str = info["fingerprint"]
        self.dim: int = int(info["dim"])
        self.preprocess_params: dict[str, Any] = info["preprocess"]

    # fp32 runs of at most 8 images: per image as fast as 32 on the CPU (faster), and
    # onnxruntime's arena then holds the activations of 8, not 32 (peak RSS of a ViT-B-32
    # ingest: 0.73 GB against 1.08 GB; BENCHMARKS.md).
    run_size = 8

    def encode_pixels(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self._pool is not None:  # int8: one image per run, the runs side by side
            parts = list(self._pool.map(lambda i: self.session.run(None, {"pixels": batch[i : i + 1]})[0],
                                        range(len(batch))))
        else:
            parts = [self.session.run(None, {"pixels": batch[i : i + self.run_size]})[0]
                     for i in range(0, len(batch), self.run_size)]
        out = np.concatenate(parts).astype(np.float32, copy=False)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def load_image_tower(folder: str, fingerprint: str, precision: str = "fp32", *,
                     one_shot: bool = False) -> OnnxImageEncoder | None:
    """The export in ``folder`` when it exists for ``fingerprint`` (and onnxruntime is there).

    At ``precision="int8"`` the quantised tower (made from the fp32 one on first use, see
    :func:`quantize_image_tower`) is loaded; None when it cannot be made faithfully. An export
    in the older single-file format is first rewritten with its weights apart (once, ~2 s for
    a ViT-B; where that fails, a read-only cache say, the old file serves). ``one_shot``: the
    process encodes one image (see :class:`OnnxImageEncoder`).
    """
    if not image_tower_exists(folder, fingerprint):
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    if (_info(folder) or {}).get("format") == _SINGLE_FILE_FORMAT:
        _move_weights_apart(folder)
    if precision == "int8" and not int8_tower_exists(folder) and quantize_image_tower(folder) is None:
        return None
    return OnnxImageEncoder(folder, precision=precision, one_shot=one_shot)


def _split_weights(source: str, folder: str) -> None:
    """Write the graph ``source`` as ``folder/image.onnx`` with its weights in ``image.onnx.data``
    (onnxruntime saves the graph it loaded, unoptimised: the same nodes and weights, bit for bit)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    options.optimized_model_filepath = os.path.join(folder, IMAGE_TOWER_FILE)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", IMAGE_DATA_FILE)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    options.add_session_config_entry("session.disable_prepacking", "1")
    ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    if not os.path.isfile(os.path.join(folder, IMAGE_DATA_FILE)):  # a graph without large weights
        open(os.path.join(folder, IMAGE_DATA_FILE), "wb").close()


def _publish(staging: str, folder: str) -> dict[str, list[int]]:
    """Move the staged graph and weights into ``folder`` (weights first: a reader that finds the
    new graph finds its weights) and return their stamps."""
    os.replace(os.path.join(staging, IMAGE_DATA_FILE), os.path.join(folder, IMAGE_DATA_FILE))
    os.replace(os.path.join(staging, IMAGE_TOWER_FILE), os.path.join(folder, IMAGE_TOWER_FILE))
    return {"file": _stamp(folder), "data": _stamp(folder, IMAGE_DATA_FILE)}


def _move_weights_apart(folder: str) -> None:
    """Rewrite a single-file export (format 1) in the current format, keeping its int8 tower
    (made from the same weights) current. Best effort: on failure the single file serves."""
    info, int8 = _info(folder), _info(folder, _INT8_INFO_FILE)
    if info is None:
        return
    _clear_stale_staging(folder)
    try:
        staging = tempfile.mkdtemp(prefix=f".{_STAGING}split-", dir=folder)
    except OSError:
        return  # a read-only cache: the single file serves
    try:
        _split_weights(os.path.join(folder, IMAGE_TOWER_FILE), staging)
        if _info(folder) != info:
            return  # rewritten meanwhile (another process, a new export)
        stamps = _publish(staging, folder)
        old = info["file"]
        _write_info(folder, _INFO_FILE, {**info, "format": _FORMAT, **stamps})
        if int8 is not None and int8.get("from") == old:  # the same weights: that int8 tower, or verdict, stands
            _write_info(folder, _INT8_INFO_FILE, {**int8, "from": stamps["file"]})
    except Exception:  # noqa: BLE001 - onnxruntime's own errors; the single file still serves
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)


_STAGING = "image-staging-"  # folders where a graph and its weights are written before they are moved in


def _clear_stale_staging(folder: str) -> None:
    """Remove staging folders a killed export or rewrite left (a tower's size each), once they
    are an hour old (a younger one may belong to a process still writing)."""
    import time

    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name.startswith(f".{_STAGING}") and entry.stat().st_mtime < time.time() - 3600:
                shutil.rmtree(entry.path, ignore_errors=True)


def _write_info(folder: str, name: str, data: dict[str, Any]) -> None:
    """``data`` as ``folder/name``, by an atomic rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, os.path.join(folder, name))


def int8_tower_exists(folder: str) -> bool:
    """True when the int8 tower beside the fp32 one was made from it, for this CPU kind, unchanged since."""
    info, int8 = _info(folder), _info(folder, _INT8_INFO_FILE)
    try:
        return (info is not None and int8 is not None and int8.get("from") == info.get("file")
                and int8.get("reduce_range") == (not cpu_has_vnni()) and int8.get("file") == _stamp(folder, INT8_FILE))
    except OSError:
        return False


def quantize_image_tower(folder: str) -> dict[str, Any] | None:
    """Quantise the fp32 image tower in ``folder`` to int8 (onnxruntime's dynamic quantisation of
    every MatMul: int8 weights, activations quantised per batch) and keep it only when faithful.

    Checked against the fp32 tower on smooth synthetic images and random pixels: the worst
    cosine must reach 0.99, or nothing is written and None is returned (fp32 is used). A few
    seconds once per model; BENCHMARKS.md has the speed and the cosine on real photos.
    """
    info = _info(folder)
    if info is None:
        return None
    return make_int8(folder, IMAGE_TOWER_FILE, INT8_FILE, _INT8_INFO_FILE, reduce_range=not cpu_has_vnni(),
                     minimum=_MIN_INT8_COSINE, check=lambda path: _check_int8(folder, path, info),
                     record={"from": info.get("file")})


def _check_int8(folder: str, path: str, info: dict[str, Any]) -> float:
    """Worst cosine between the int8 and fp32 towers on a fixed set of inputs: smooth colour
    fields (photo-like statistics after normalisation) and random pixels."""
    import onnxruntime as ort

    crop_h, crop_w = info["preprocess"]["crop"]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:crop_h, 0:crop_w].astype(np.float32)
    smooth = []
    for _ in range(6):
        fx, fy, phase = rng.uniform(0.5, 6, 3)
        channels = [np.sin(fx * xx / crop_w * np.pi + phase * c) * np.cos(fy * yy / crop_h * np.pi) for c in range(3)]
        smooth.append(np.stack(channels) * rng.uniform(0.5, 1.5))
    pixels = np.concatenate([np.stack(smooth), rng.standard_normal((2, 3, crop_h, crop_w))]).astype(np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    vectors = []
    for file in (os.path.join(folder, IMAGE_TOWER_FILE), path):
        session = ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])
        (out,) = session.run(None, {"pixels": pixels})
        vectors.append(out / np.linalg.norm(out, axis=1, keepdims=True))
    return float((vectors[0] * vectors[1]).sum(axis=1).min())


def export_image_tower(encoder: Any, folder: str) -> dict[str, Any] | None:
    """Write ``encoder``'s image tower to ``folder`` as ONNX when that is faithful; return its info.

    The weights are read at fp32 on the CPU (another ``encoder`` is loaded so). Returns None (and writes
    nothing) for a model whose preprocessing is not open_clip's usual transform, or whose
    export does not reproduce ``encode_image`` to a cosine of 0.9999.
    """
    import torch

    from .preprocess import transform_params
    from .text_tower import fp32_torch, model_scores, note_on_torch

    encoder = fp32_torch(encoder)
    model = encoder._model
    params = transform_params(encoder.preprocess)
    if params is None:
        note_on_torch(encoder.spec, "image")
        return None
    crop_h, crop_w = params["crop"]
    os.makedirs(folder, exist_ok=True)
    _clear_stale_staging(folder)
    staging = tempfile.mkdtemp(prefix=f".{_STAGING}export-", dir=folder)
    single = os.path.join(staging, "single.onnx")
    tower = _image_tower_class()(model)
    sample = torch.randn(2, 3, crop_h, crop_w)
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with torch.inference_mode(False), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(tower, (sample,), single, input_names=["pixels"], output_names=["vectors"],
                              dynamic_shapes={"pixels": {0: batch}}, dynamo=True, optimize=True, external_data=False)
        _split_weights(single, staging)
        check = _check_export(os.path.join(staging, IMAGE_TOWER_FILE), model, crop_h, crop_w)
        stamps = _publish(staging, folder) if check >= _MIN_COSINE else None
    except Exception:  # noqa: BLE001 - an export onnxruntime cannot run is simply not used
        check, stamps = None, None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if stamps is None:
        note_on_torch(encoder.spec, "image")
        return None
    info = {"format": _FORMAT, "fingerprint": encoder.spec.fingerprint, "model": encoder.spec.name,
            "dim": encoder.dim, "preprocess": params, "min_cosine_on_check": round(float(check), 6),
            "scores": model_scores(model), **stamps}
    _write_info(folder, _INFO_FILE, info)
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
