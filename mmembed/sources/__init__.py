"""Where items come from: finding image files (camera RAW too) and videos under folders or in object storage, decoding them to upright RGB."""

from __future__ import annotations

from .._lazy import lazy_getattr

_EXPORTS = {
    "walk": "discovery", "DiscoveredFile": "discovery", "is_image_path": "discovery",
    "printable_path": "discovery", "IMAGE_EXTENSIONS": "discovery", "load_image": "decode",
    "DecodedImage": "decode", "is_media_path": "discovery", "sample_frames": "video", "VIDEO_EXTENSIONS": "video",
    "RAW_EXTENSIONS": "raw",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
