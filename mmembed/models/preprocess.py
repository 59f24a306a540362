"""A model's image preprocessing as plain numpy: open_clip's usual eval transform (Resize the
shortest side bicubic, CenterCrop, ToTensor, Normalize) with the same Pillow resize and crop
and one numpy pass for the rest, about 2x faster than torchvision's and free of torch.

``transform_params`` reads the parameters off open_clip's transform (None for any other
transform); ``NumpyTransform`` applies them. The exported image tower stores the parameters,
so the ONNX runtime path preprocesses exactly as the torch path does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["transform_params", "NumpyTransform"]

_KNOWN = (["Resize", "CenterCrop", "MaybeConvertMode", "MaybeToTensor", "Normalize"],
          ["Resize", "CenterCrop", "MaybeToTensor", "Normalize"],
          ["Resize", "CenterCrop", "ToTensor", "Normalize"])


_RESAMPLE = {"bicubic": 3, "bilinear": 2}  # torchvision's names -> PIL's Image.Resampling values (MobileCLIP: bilinear)
_SQUASH = (["Resize", "MaybeConvertMode", "MaybeToTensor", "Normalize"], ["Resize", "MaybeToTensor", "Normalize"],
           ["Resize", "ToTensor", "Normalize"])


def transform_params(preprocess: Any) -> dict[str, Any] | None:
    """{size, crop: [h, w], mean, std} of open_clip's eval transform, or None for another one;
    SigLIP's 'squash' transform (Resize to (h, w), no crop) gives {squash: [h, w], crop, mean, std}."""
    steps = list(getattr(preprocess, "transforms", []))
    names = [type(t).__name__ for t in steps]
    if names in _SQUASH:
        return _squash_params(steps)
    if names not in _KNOWN:
        return None
    resize, crop, normalize = steps[0], steps[1], steps[-1]
    size = resize.size[0] if isinstance(resize.size, (list, tuple)) and len(resize.size) == 1 else resize.size
    interpolation = getattr(resize.interpolation, "value", "")
    if not isinstance(size, int) or resize.max_size is not None or interpolation not in _RESAMPLE:
        return None
    crop_h, crop_w = crop.size if isinstance(crop.size, (list, tuple)) else (crop.size, crop.size)
    mean, std = [float(x) for x in normalize.mean], [float(x) for x in normalize.std]
    if crop_h > size or crop_w > size or len(mean) != 3 or len(std) != 3:
        return None
    mode_step = steps[2] if names[2] == "MaybeConvertMode" else None
    if (getattr(mode_step, "mode", "RGB") if mode_step is not None else "RGB") not in (None, "RGB"):
        return None
    return {"size": int(size), "crop": [int(crop_h), int(crop_w)], "mean": mean, "std": std,
            **({} if interpolation == "bicubic" else {"interpolation": interpolation})}


def _squash_params(steps: list[Any]) -> dict[str, Any] | None:
    resize, normalize = steps[0], steps[-1]
    size = resize.size
    interpolation = getattr(resize.interpolation, "value", "")
    if not (isinstance(size, (list, tuple)) and len(size) == 2) or resize.max_size is not None \
            or interpolation not in _RESAMPLE:
        return None
    if len(steps) == 4 and getattr(steps[1], "mode", "RGB") not in (None, "RGB"):
        return None
    h, w = int(size[0]), int(size[1])
    return {"size": min(h, w), "squash": [h, w], "crop": [h, w], "mean": [float(x) for x in normalize.mean],
            "std": [float(x) for x in normalize.std], **({} if interpolation == "bicubic" else {"interpolation": interpolation})}


class NumpyTransform:
    """PIL RGB image -> (3, H, W) float32 array, normalised as the model expects."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.size = int(params["size"])
        self.crop_h, self.crop_w = (int(x) for x in params["crop"])
        self.mean = np.asarray(params["mean"], dtype=np.float32)
        self.std = np.asarray(params["std"], dtype=np.float32)
        self.squash = params.get("squash")  # [h, w]: resize to exactly this, no crop (SigLIP)
        self.resample = _RESAMPLE[params.get("interpolation", "bicubic")]

    def __call__(self, image: Any) -> np.ndarray:
        from PIL import Image

        size, crop_h, crop_w = self.size, self.crop_h, self.crop_w
        w, h = image.size
        if self.squash is not None:
            if (h, w) != tuple(self.squash):
                image = image.resize((int(self.squash[1]), int(self.squash[0])), Image.Resampling(self.resample))
            return self._normalise(image)
        short, long = (w, h) if w <= h else (h, w)
        if short != size:  # torchvision's rule for an int size: short side -> size
            new_short, new_long = size, int(size * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
            image = image.resize((new_w, new_h), Image.Resampling(self.resample))
            w, h = new_w, new_h
        top, left = int(round((h - crop_h) / 2.0)), int(round((w - crop_w) / 2.0))
        image = image.crop((left, top, left + crop_w, top + crop_h))
        return self._normalise(image)

    def _normalise(self, image: Any) -> np.ndarray:
        arr = np.asarray(image, dtype=np.float32) / np.float32(255.0)
        arr = (arr - self.mean) / self.std
        return np.ascontiguousarray(arr.transpose(2, 0, 1))
