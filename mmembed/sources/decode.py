"""Decoding: ``load_image()`` turns one file (or its bytes) into an upright RGB ``PIL.Image``
the encoder can take, or raises ``ImageDecodeError`` with a reason a person can act on."""

from __future__ import annotations

import io
import os
import re
import threading
from dataclasses import dataclass, field

from ..errors import ImageDecodeError
from ..text.embedded import embedded_texts
from ..text.gps import GpsPosition, gps_position
from .files import NotRegularFileError, open_regular
from .raw import RAW_EXTENSIONS, develop

__all__ = ["DecodedImage", "load_image", "decoder_signature", "date_taken"]

_PLUGIN_HINTS = {
    ".heic": "HEIC/HEIF support needs pillow-heif (pip install pillow-heif)",
    ".heif": "HEIC/HEIF support needs pillow-heif (pip install pillow-heif)",
    ".hif": "HEIC/HEIF support needs pillow-heif (pip install pillow-heif)",
    ".avif": "AVIF support needs Pillow >= 11.3 or pillow-heif (pip install -U pillow pillow-heif)",
    ".jxl": "JPEG XL support needs pillow-jxl-plugin (pip install 'mmembed[jxl]')",
}


@dataclass
class DecodedImage:
    """An upright RGB image and what it was decoded from."""

    image: object  # PIL.Image.Image in mode RGB, EXIF orientation applied
    width: int  # after orientation
    height: int
    format: str  # Pillow's format name: JPEG, PNG, HEIF, AVIF, ...; RAW for camera RAW files
    texts: list[str] = field(default_factory=list)  # captions embedded in the file (EXIF, IPTC, XMP)
    taken_ns: int | None = None  # EXIF DateTimeOriginal (camera's local time, read as UTC), ns since epoch
    gps: GpsPosition | None = None  # EXIF/XMP GPS position (``text.gps``); None without a sane fix


_plugins_lock = threading.Lock()
_plugins_registered = False


def _register_plugins() -> None:
    """Teach Pillow HEIC/HEIF (pillow-heif) and JPEG XL (optional plugin) once per process."""
    global _plugins_registered
    if _plugins_registered:
        return
    with _plugins_lock:
        if _plugins_registered:
            return
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:
            pass
        try:
            import pillow_jxl  # noqa: F401  (registers itself on import)
        except ImportError:
            pass
        _plugins_registered = True


def load_image(
    source: str | os.PathLike[str] | bytes,
    *,
    max_megapixels: float = 100.0,
    name: str | None = None,
    min_side: int | None = None,
) -> DecodedImage:
    """Decode a file path or raw bytes into an upright RGB image.

    EXIF orientation is applied; palette, alpha (composited on white), CMYK, 16-bit and
    float modes become proper 8-bit RGB; animated images give their first frame. Raises
    ``ImageDecodeError`` for anything that is not a whole, readable image within
    ``max_megapixels``.

    With ``min_side``, a JPEG is decoded at the smallest DCT scale (1/2, 1/4 or 1/8) that
    keeps both sides at least ``min_side`` pixels, which is several times faster for photos
    far larger than a model's input; ``width`` and ``height`` still give the full size.

    Camera RAW files (``sources/raw.py``, by file extension) are developed through rawpy:
    their embedded preview when it covers ``min_side``, else a half-size demosaic.

    Example::

        load_image("photos/IMG_1.HEIC").image.size
    """
    from PIL import Image, ImageOps

    _register_plugins()
    label = name or (os.fspath(source) if not isinstance(source, bytes) else "<bytes>")
    ext = os.path.splitext(label)[1].lower()
    if ext in RAW_EXTENSIONS:
        return _load_raw(source, label, max_megapixels, min_side)
    if isinstance(source, bytes):
        if not source:
            raise ImageDecodeError(label, "empty file (0 bytes)")
        fp: object = io.BytesIO(source)
    elif os.fspath(source).startswith("s3://"):  # an object in a bucket (sources.remote): its bytes
        fp = io.BytesIO(_read_remote(os.fspath(source), label))
    else:
        fp = _open_file(os.fspath(source), label)
    _raise_pillow_bomb_limit(max_megapixels)
    try:
        try:
            im = Image.open(fp)
        except Image.UnidentifiedImageError:
            hint = _PLUGIN_HINTS.get(ext) if not _plugin_available(ext) else None
            raise ImageDecodeError(
                label, hint or "not a readable image (unknown format or corrupt header)"
            ) from None
        except Image.DecompressionBombError as exc:
            raise ImageDecodeError(label, _over_cap(None, max_megapixels, _pixels_in(exc))) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageDecodeError(label, f"truncated or corrupt image data ({_short(exc)})") from None
        width, height = im.size
        megapixels = width * height / 1e6
        if megapixels > max_megapixels:
            raise ImageDecodeError(label, _over_cap((width, height), max_megapixels))
        fmt = im.format or "unknown"
        texts = embedded_texts(im)
        taken = date_taken(im)
        gps = gps_position(im)  # header only, no pixels
        if min_side and fmt == "JPEG" and min(width, height) >= 2 * min_side:
            im.draft(im.mode, (min_side, min_side))  # DCT scaling: both sides stay >= min_side
        drafted = im.size
        try:
            im.load()
        except Image.DecompressionBombError:
            raise ImageDecodeError(label, _over_cap((width, height), max_megapixels)) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageDecodeError(label, f"truncated or corrupt image data ({_short(exc)})") from None
        try:
            im = ImageOps.exif_transpose(im) or im
        except Exception:  # noqa: BLE001 - bad EXIF must not cost the picture; keep it unrotated
            pass
        rgb = _to_rgb(im, label)
        full = (width, height) if rgb.size == drafted else (height, width)  # EXIF may swap sides
        return DecodedImage(rgb, *full, fmt, texts, taken, gps)
    finally:
        if hasattr(fp, "close"):
            fp.close()  # type: ignore[union-attr]


def _load_raw(source: str | os.PathLike[str] | bytes, label: str, max_megapixels: float,
              min_side: int | None) -> DecodedImage:
    if isinstance(source, bytes):
        if not source:
            raise ImageDecodeError(label, "empty file (0 bytes)")
        data: str | bytes = source
    else:
        data = os.fspath(source)
        _open_file(data, label).close()  # the same messages as any image for a missing or unreadable file
    developed = develop(data, label, max_megapixels=max_megapixels, min_side=min_side)
    return DecodedImage(developed.image, developed.width, developed.height, "RAW", [], developed.taken_ns)


_EXIF_IFD, _DATE_ORIGINAL, _DATE_DIGITIZED, _DATE_TIME = 0x8769, 0x9003, 0x9004, 0x0132
_EXIF_DATE = re.compile(r"^\s*(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


def date_taken(im: object) -> int | None:
    """When the photo was taken, from EXIF (DateTimeOriginal, else DateTimeDigitized, else
    DateTime), as ns since the epoch with the camera's local time read as UTC; None when the
    file has no such date or a broken one. Never raises, never decodes pixels."""
    import calendar

    try:
        if getattr(im, "format", None) == "PNG" and "exif" not in getattr(im, "info", {}):
            return None  # PNG getexif() would decode the pixels to look for a late eXIf chunk
        exif = im.getexif()  # type: ignore[attr-defined]
        sub = exif.get_ifd(_EXIF_IFD)
        for raw in (sub.get(_DATE_ORIGINAL), sub.get(_DATE_DIGITIZED), exif.get(_DATE_TIME)):
            if isinstance(raw, bytes):
                raw = raw.decode("ascii", "replace")
            match = _EXIF_DATE.match(raw) if isinstance(raw, str) else None
            if match:
                y, mo, d, h, mi, s = (int(g) for g in match.groups())
                if (y, mo, d, h, mi, s) == (1970, 1, 1, 0, 0, 0):
                    continue  # the epoch itself: a camera whose clock was never set, not a date
                if 1900 <= y <= 2200 and 1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 62:
                    return calendar.timegm((y, mo, d, h, mi, min(s, 59), 0, 0, 0)) * 1_000_000_000
    except Exception:  # noqa: BLE001 - broken EXIF costs the date, never the picture
        return None
    return None


def _read_remote(path: str, label: str) -> bytes:
    from .remote import read_bytes

    try:
        data = read_bytes(path)
    except FileNotFoundError:
        raise ImageDecodeError(label, "object not found (moved or deleted?)") from None
    except OSError as exc:
        raise ImageDecodeError(label, f"cannot read the object ({exc.strerror or exc})") from None
    if not data:
        raise ImageDecodeError(label, "empty file (0 bytes)")
    return data


def _open_file(path: str, label: str) -> io.BufferedReader:
    try:
        f = open_regular(path)  # a named pipe would block, a device never end
        if os.fstat(f.fileno()).st_size == 0:
            f.close()
            raise ImageDecodeError(label, "empty file (0 bytes)")
        return f  # type: ignore[return-value]
    except NotRegularFileError as exc:
        raise ImageDecodeError(label, exc.strerror) from None
    except FileNotFoundError:
        raise ImageDecodeError(label, "file not found (moved or deleted?)") from None
    except PermissionError:
        raise ImageDecodeError(label, "permission denied; check the file's permissions") from None
    except IsADirectoryError:
        raise ImageDecodeError(label, "is a folder, not an image file") from None
    except OSError as exc:
        raise ImageDecodeError(label, f"cannot read file ({exc.strerror or exc})") from None


def _plugin_available(ext: str) -> bool:
    if ext in (".heic", ".heif", ".hif"):
        return _importable("pillow_heif")
    if ext == ".jxl":
        return _importable("pillow_jxl")
    if ext == ".avif":
        from PIL import features

        return bool(features.check("avif")) or _importable("pillow_heif")
    return True


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _over_cap(size: tuple[int, int] | None, max_megapixels: float, pixels: int | None = None) -> str:
    if size:
        shown = f"{size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.0f} MP)"
    else:  # Pillow refused it at the header: it names the pixel count, not the sides
        shown = f"{pixels / 1e6:.0f} MP ({pixels} pixels)" if pixels else "larger still"
    return f"image is {shown}, above the --max-megapixels cap of {max_megapixels:g}; raise the cap to ingest it"


def _pixels_in(exc: BaseException) -> int | None:
    found = re.search(r"Image size \((\d+) pixels\)", str(exc))
    return int(found.group(1)) if found else None


def decoder_signature(max_megapixels: float) -> str:
    """What decides whether a file decodes, besides its bytes: Pillow, its optional plugins,
    rawpy, PyAV (videos) and the size cap. A file that failed under another signature is tried again."""
    import PIL

    # rawpy and av are listed too: installing the RAW or video extra retries the files that failed without it
    plugins = ",".join(m for m in ("pillow_heif", "pillow_jxl", "pillow_avif", "rawpy", "av") if _importable(m))
    return f"Pillow {PIL.__version__}; plugins {plugins or 'none'}; cap {max_megapixels:g} MP"


def _raise_pillow_bomb_limit(max_megapixels: float) -> None:
    """Let our own cap govern: Pillow's guard (a process-wide setting) would refuse some
    images we allow, so it is raised to our cap when that is higher, never lowered."""
    from PIL import Image

    wanted = int(max_megapixels * 1e6)
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < wanted:
        Image.MAX_IMAGE_PIXELS = wanted


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


def _to_rgb(im: object, label: str) -> object:
    """Convert any Pillow mode to 8-bit RGB the way a viewer would show it."""
    import numpy as np
    from PIL import Image

    assert isinstance(im, Image.Image)
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB", "1") and "transparency" in im.info
    ):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        return _cmyk_to_rgb(im)
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im).astype(np.float32)
        scale = 257.0 if arr.max(initial=0) > 255 else 1.0
        gray = np.clip(arr / scale + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(im).astype(np.float32)
        if arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    try:
        return im.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageDecodeError(label, f"colour mode {mode} cannot be converted to RGB ({_short(exc)})") from None


def _cmyk_to_rgb(im: object) -> object:
    """Use the embedded ICC profile when there is one; Pillow's naive formula otherwise."""
    from PIL import Image

    assert isinstance(im, Image.Image)
    icc = im.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            return ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
        except Exception:  # noqa: BLE001 - a broken profile falls back to the plain conversion
            pass
    return im.convert("RGB")
