"""Reading, hashing, decoding and preprocessing files in a thread pool, in order, with a
bounded window of work in flight (decoded images never pile up)."""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import ImageDecodeError, MmembedError
from ..sources.decode import load_image
from ..sources.discovery import DiscoveredFile

__all__ = ["ImageDecoder", "fast_transform"]

_READ_CHUNK = 1 << 20
_READ_WHOLE = 64 << 20  # files up to this size are read once, hashed and decoded from memory


@dataclass
class _Row:
    """The state columns of an existing row."""

    id: str
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    text_hash: str | None
    embedded_texts: list[str] | None
    manifest_texts: list[str] | None


@dataclass
class _Task:
    file: DiscoveredFile
    existing: _Row | None  # the row at this path, when the file changed


@dataclass
class _Prepared:
    task: _Task
    kind: str  # 'encode', 'touched', 'reuse', 'skip'
    content_hash: str = ""
    tensor: Any = None
    width: int = 0
    height: int = 0
    format: str = ""
    embedded: list[str] = field(default_factory=list)
    reason: str = ""


class ImageDecoder:
    """Read-to-tensor for one model: decode (JPEG at reduced DCT scale when ``fast``) and preprocess.

    The model loads on first use, so a run with nothing to encode never loads it. ``fast``
    decodes a JPEG at the smallest scale that still covers the model's input (see
    ``load_image(min_side=...)``); BENCHMARKS.md gives its effect on vectors and recall.
    """

    def __init__(self, encoder: Any, *, fast: bool = True) -> None:
        self.encoder = encoder
        self.fast = fast
        self._transform: Callable[[Any], Any] | None = None

    def __call__(self, source: str | bytes, max_megapixels: float, name: str | None = None) -> tuple[Any, Any]:
        min_side = self.encoder.image_size if self.fast else None
        decoded = load_image(source, max_megapixels=max_megapixels, name=name, min_side=min_side)
        if self._transform is None:
            self._transform = fast_transform(self.encoder.preprocess) or self.encoder.preprocess
        return decoded, self._transform(decoded.image)


def fast_transform(preprocess: Any) -> Callable[[Any], Any] | None:
    """open_clip's usual eval transform (Resize shortest side bicubic, CenterCrop, ToTensor,
    Normalize) with the same Pillow resize and crop but one numpy pass for the tensor part,
    about 2x faster per image. None for any other transform (which is then used as is)."""
    import numpy as np

    steps = list(getattr(preprocess, "transforms", []))
    names = [type(t).__name__ for t in steps]
    if names not in (["Resize", "CenterCrop", "MaybeConvertMode", "MaybeToTensor", "Normalize"],
                     ["Resize", "CenterCrop", "MaybeToTensor", "Normalize"],
                     ["Resize", "CenterCrop", "ToTensor", "Normalize"]):
        return None
    resize, crop, normalize = steps[0], steps[1], steps[-1]
    size = resize.size[0] if isinstance(resize.size, (list, tuple)) and len(resize.size) == 1 else resize.size
    if not isinstance(size, int) or resize.max_size is not None or getattr(resize.interpolation, "value", "") != "bicubic":
        return None
    crop_h, crop_w = crop.size if isinstance(crop.size, (list, tuple)) else (crop.size, crop.size)
    mean = np.asarray(normalize.mean, dtype=np.float32)
    std = np.asarray(normalize.std, dtype=np.float32)
    if crop_h > size or crop_w > size or mean.shape != (3,):
        return None
    mode_step = steps[2] if names[2] == "MaybeConvertMode" else None
    wanted_mode = getattr(mode_step, "mode", "RGB") if mode_step is not None else "RGB"
    if wanted_mode not in (None, "RGB"):
        return None

    def transform(image: Any) -> Any:
        import torch
        from PIL import Image

        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        if short != size:  # torchvision's rule for an int size: short side -> size
            new_short, new_long = size, int(size * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
            image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
            w, h = new_w, new_h
        top, left = int(round((h - crop_h) / 2.0)), int(round((w - crop_w) / 2.0))
        image = image.crop((left, top, left + crop_w, top + crop_h))
        arr = np.asarray(image, dtype=np.float32) / np.float32(255.0)
        arr = (arr - mean) / std
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))

    return transform


def _prepare_all(
    tasks: list[_Task],
    reusable: frozenset[str],
    decode: ImageDecoder,
    max_megapixels: float,
    workers: int,
    batch_size: int,
) -> Iterator[_Prepared]:
    """Read, hash, decode and preprocess in a thread pool, yielding in order, with a bounded window."""
    workers = workers or min(8, os.cpu_count() or 1)
    window = max(2 * batch_size, 4 * workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmembed-decode") as pool:
        in_flight: deque[Future[_Prepared]] = deque()
        for task in tasks:
            in_flight.append(pool.submit(_prepare, task, reusable, decode, max_megapixels))
            if len(in_flight) >= window:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


def _read_and_hash(path: str, size: int) -> tuple[str, bytes | None]:
    """The file's content hash, and its bytes when small enough to decode from memory."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        if size <= _READ_WHOLE:
            data = f.read()
            digest.update(data)
            return digest.hexdigest(), data
        while chunk := f.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), None


def _prepare(task: _Task, reusable: frozenset[str], decode: ImageDecoder, max_megapixels: float) -> _Prepared:
    path = task.file.path
    try:
        digest, data = _read_and_hash(path, task.file.size)
    except PermissionError:
        return _Prepared(task, "skip", reason="permission denied; check the file's permissions")
    except FileNotFoundError:
        return _Prepared(task, "skip", reason="file vanished during ingest")
    except OSError as exc:
        return _Prepared(task, "skip", reason=f"cannot read file ({exc.strerror or exc})")
    if task.existing is not None and task.existing.content_hash == digest:
        return _Prepared(task, "touched", digest)
    if digest in reusable:
        return _Prepared(task, "reuse", digest)
    try:
        decoded, tensor = decode(data if data else path, max_megapixels, name=path)
    except ImageDecodeError as exc:
        return _Prepared(task, "skip", digest, reason=exc.reason)
    except MmembedError:
        raise  # e.g. the model failed to load: that stops the run, it is not this file's fault
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop the run
        return _Prepared(task, "skip", digest, reason=f"could not decode ({type(exc).__name__}: {exc})"[:200])
    return _Prepared(task, "encode", digest, tensor, decoded.width, decoded.height, decoded.format, decoded.texts)
