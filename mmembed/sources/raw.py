"""RAW camera files (``.dng .cr2 .cr3 .nef .arw .orf .rw2 .raf .pef .srw``) through rawpy
(LibRaw), an optional extra: ``pip install 'mmembed[raw]'``.

``develop()`` turns one RAW file into an upright 8-bit RGB picture by one of two paths:

- **preview**: the JPEG (or bitmap) preview the camera embedded, when its short side covers
  ``min_side`` (the model's input). It costs a JPEG decode, no demosaic.
- **demosaic**: LibRaw's half-size development (each 2x2 Bayer cell becomes one pixel,
  camera white balance, dcraw's default gamma and brightness), when there is no preview,
  it is too small, or no ``min_side`` is given (exact decoding).

Orientation is applied exactly once. LibRaw's ``sizes.flip`` is the authority: the demosaic
path gets it from LibRaw itself; a preview is turned by the same flip, ignoring the
orientation tag a preview may carry (cameras repeat the RAW's there, so applying both would
turn the picture twice), unless the preview's shape shows it is stored upright already.

``raw_partners()`` finds RAW+JPEG pairs (``IMG_1.CR2`` beside ``IMG_1.JPG``) for discovery.
"""

from __future__ import annotations

import calendar
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ImageDecodeError

__all__ = ["RAW_EXTENSIONS", "RAW_PAIRS", "RAW_MISSING", "DevelopedRaw", "develop", "is_raw_path", "raw_partners"]

RAW_EXTENSIONS = frozenset(".dng .cr2 .cr3 .nef .arw .orf .rw2 .raf .pef .srw".split())
# The developed partner of a RAW in a RAW+JPEG pair: the picture a person looks at.
_PARTNER_EXTENSIONS = frozenset(".jpg .jpeg .jpe .jfif .heic .heif .hif".split())
RAW_PAIRS = ("jpeg", "keep-both")  # index the JPEG of a pair (recording the RAW), or both
RAW_MISSING = "RAW support needs rawpy; install the extra: pip install 'mmembed[raw]'"

# LibRaw's flip (dcraw's bits: 4 transpose, 2 flip rows, 1 flip columns) as the EXIF
# orientation it was read from, and each EXIF orientation as the Pillow transpose that rights it.
_FLIP_TO_EXIF = {0: 1, 1: 2, 3: 3, 2: 4, 4: 5, 6: 6, 7: 7, 5: 8}
_EXIF_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
                   6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


@dataclass
class DevelopedRaw:
    """An upright RGB picture made from a RAW file, and how."""

    image: Any  # PIL.Image.Image, mode RGB, upright
    width: int  # the full developed image, after orientation
    height: int
    path: str  # 'preview' or 'demosaic'
    taken_ns: int | None  # the camera's date taken (local time read as UTC), ns; None when unknown


def is_raw_path(path: str) -> bool:
    """True when the file name ends in a RAW extension (case-insensitive)."""
    return os.path.splitext(path)[1].lower() in RAW_EXTENSIONS


def raw_partners(names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """For each JPEG/HEIC name among ``names`` (one folder's), the RAW names with the same
    stem, compared case-insensitively, sorted; names without a RAW partner are left out.

    Example::

        raw_partners(["IMG_1.JPG", "img_1.cr2", "IMG_2.CR2"])  # {"IMG_1.JPG": ("img_1.cr2",)}
    """
    raws: dict[str, list[str]] = {}
    partners: list[tuple[str, str]] = []
    for name in names:
        stem, ext = os.path.splitext(name)
        ext = ext.lower()
        if ext in RAW_EXTENSIONS:
            raws.setdefault(stem.lower(), []).append(name)
        elif ext in _PARTNER_EXTENSIONS:
            partners.append((name, stem.lower()))
    return {name: tuple(sorted(raws[stem])) for name, stem in partners if stem in raws}


def develop(source: str | bytes, label: str, *, max_megapixels: float = 100.0,
            min_side: int | None = None) -> DevelopedRaw:
    """Develop one RAW file (a path or its bytes) into an upright RGB picture; see the module
    docstring for the two paths. Raises ``ImageDecodeError`` (with ``RAW_MISSING`` when rawpy
    is not installed) and never lets a LibRaw error escape. One LibRaw object per call, so
    calls from several threads do not share state.

    Example::

        develop("shoot/IMG_1.CR2", "shoot/IMG_1.CR2", min_side=224).image.size
    """
    try:
        import rawpy
    except ImportError:
        raise ImageDecodeError(label, RAW_MISSING) from None
    try:
        with rawpy.imread(io.BytesIO(source) if isinstance(source, bytes) else source) as raw:
            sizes = raw.sizes
            flip = int(sizes.flip)
            width, height = int(sizes.width), int(sizes.height)
            if width <= 0 or height <= 0:
                raise ImageDecodeError(label, "RAW file has no image data")
            if width * height / 1e6 > max_megapixels:
                raise ImageDecodeError(label, f"image is {width}x{height} ({width * height / 1e6:.0f} MP), above the "
                                              f"--max-megapixels cap of {max_megapixels:g}; raise the cap to ingest it")
            full = (height, width) if flip & 4 else (width, height)
            taken = _header_date(source)
            preview = _preview(raw, rawpy, min_side) if min_side else None
            if preview is not None:
                return DevelopedRaw(_upright(preview, flip, (width, height)), *full, "preview", taken)
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)  # LibRaw applies flip
            if taken is None:
                taken = _libraw_date(raw)  # free now: the sensor data is unpacked
    except ImageDecodeError:
        raise
    except rawpy.LibRawIOError as exc:  # LibRaw ran off the end of the data
        raise ImageDecodeError(label, f"RAW file is cut short or damaged ({_libraw_reason(exc)}); "
                                      "copy it again from the camera or card") from None
    except rawpy.LibRawError as exc:
        raise ImageDecodeError(label, f"not a readable RAW file ({_libraw_reason(exc)})") from None
    except (OSError, ValueError, MemoryError) as exc:
        raise ImageDecodeError(label, f"not a readable RAW file ({type(exc).__name__}: {_one_line(exc)})") from None
    from PIL import Image

    return DevelopedRaw(Image.fromarray(rgb, "RGB"), *full, "demosaic", taken)


def _preview(raw: Any, rawpy: Any, min_side: int) -> Any | None:
    """The embedded preview as an RGB PIL image when it covers ``min_side``; None otherwise
    (none, unsupported, unreadable or too small: the demosaic path is taken)."""
    from PIL import Image

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    except rawpy.LibRawError:
        return None  # a damaged preview; the RAW data may still develop
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            image = Image.open(io.BytesIO(thumb.data))
            if min(image.size) < min_side:
                return None
            if image.format == "JPEG" and min(image.size) >= 2 * min_side:
                image.draft("RGB", (min_side, min_side))  # DCT scaling, as for any JPEG
            image = image.convert("RGB")
        else:
            image = Image.fromarray(thumb.data).convert("RGB")
            if min(image.size) < min_side:
                return None
    except (OSError, ValueError, SyntaxError, EOFError):
        return None
    return image


def _upright(image: Any, flip: int, sensor: tuple[int, int]) -> Any:
    """Turn a preview by LibRaw's ``flip``, unless its shape shows it is upright already
    (portrait pixels from a landscape sensor, or the reverse)."""
    from PIL import Image

    orientation = _FLIP_TO_EXIF.get(flip, 1)
    if orientation == 1:
        return image
    if orientation >= 5:  # a quarter turn: skip it when the preview is already turned
        landscape_sensor = sensor[0] > sensor[1]
        landscape_preview = image.size[0] > image.size[1]
        if sensor[0] != sensor[1] and image.size[0] != image.size[1] and landscape_sensor != landscape_preview:
            return image
    return image.transpose(getattr(Image.Transpose, _EXIF_TRANSPOSE[orientation]))


_HEAD = 1 << 20  # the TIFF directories of a RAW file sit in its first bytes
_TIFF_LIKE = {b"IIRO": b"II*\x00", b"IIRS": b"II*\x00", b"MMOR": b"MM\x00*", b"IIU\x00": b"II*\x00"}  # ORF, RW2
_EXIF_DATE = re.compile(r"^\s*(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


def _header_date(source: str | bytes) -> int | None:
    """EXIF DateTimeOriginal, else DateTime, from the TIFF directories most RAW formats are
    built on, as ns with the camera's local time read as UTC; read without unpacking the
    sensor data (LibRaw's own date needs that). None for other containers (CR3, RAF) or no date."""
    try:
        if isinstance(source, bytes):
            head = source[:_HEAD]
        else:
            with open(source, "rb") as f:
                head = f.read(_HEAD)
        head = _TIFF_LIKE.get(head[:4], head[:4]) + head[4:]
        from PIL import Image

        exif = Image.Exif()
        exif.load(head)
        for value in (exif.get_ifd(0x8769).get(0x9003), exif.get(0x0132)):
            found = _EXIF_DATE.match(value) if isinstance(value, str) else None
            if found:
                y, mo, d, h, mi, sec = (int(g) for g in found.groups())
                if 1900 <= y <= 2200 and 1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and sec < 62:
                    return calendar.timegm((y, mo, d, h, mi, min(sec, 59), 0, 0, 0)) * 1_000_000_000
    except Exception:  # noqa: BLE001 - a broken header costs the date, never the picture
        return None
    return None


def _libraw_date(raw: Any) -> int | None:
    """LibRaw's date taken (parsed from the camera's local-time string) as ns, local time read as UTC."""
    try:
        stamp = raw.other.timestamp
    except Exception:  # noqa: BLE001 - an old rawpy, or no date: the picture still counts
        return None
    if stamp is None or not 1971 <= stamp.year <= 2200:  # LibRaw says 0 (1970) when it found no date
        return None
    return calendar.timegm(stamp.timetuple()) * 1_000_000_000


def _libraw_reason(exc: BaseException) -> str:
    text = _one_line(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text and text != name else name


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if text.startswith(("b'", 'b"')):  # LibRaw's messages arrive as bytes reprs
        text = text[2:-1]
    return (text.splitlines()[0] if text else "")[:120]
