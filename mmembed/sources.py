"""Where images come from: file discovery and decoding to RGB.

``walk()`` finds candidate image files under one or more roots; ``load_image()`` turns one
file (or its bytes) into an upright RGB ``PIL.Image`` the encoder can take, or raises
``ImageDecodeError`` with a reason a person can act on.
"""

from __future__ import annotations

import fnmatch
import io
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .errors import ConfigError, ImageDecodeError
from .itemtext import embedded_texts, find_sidecars

__all__ = [
    "IMAGE_EXTENSIONS",
    "DiscoveredFile",
    "DecodedImage",
    "walk",
    "load_image",
    "is_image_path",
]

# Matched case-insensitively. JPEG XL is listed so that a .jxl file gets a clear
# "install the plugin" reason instead of vanishing silently.
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .apng .webp .gif .bmp .dib .tif .tiff "
    ".jp2 .j2k .j2c .jpc .jpf .jpx .pbm .pgm .ppm .pnm .pfm "
    ".heic .heif .hif .avif .jxl".split()
)
_PLUGIN_HINTS = {
    ".heic": "HEIC/HEIF support needs pillow-heif (pip install pillow-heif)",
    ".heif": "HEIC/HEIF support needs pillow-heif (pip install pillow-heif)",
    ".hif": "HEIC/HEIF support needs pillow-heif (pip install pillow-heif)",
    ".avif": "AVIF support needs Pillow >= 11.3 or pillow-heif (pip install -U pillow pillow-heif)",
    ".jxl": "JPEG XL support needs pillow-jxl-plugin (pip install 'mmembed[jxl]')",
}


@dataclass(frozen=True)
class DiscoveredFile:
    """A candidate image file found by ``walk``: absolute path plus what ``stat`` said."""

    path: str
    size: int
    mtime_ns: int
    root: str = ""  # the walked root it was found under
    sidecars: tuple[str, ...] = ()  # names of its caption sidecars in the same folder, by precedence


@dataclass
class DecodedImage:
    """An upright RGB image and what it was decoded from."""

    image: object  # PIL.Image.Image in mode RGB, EXIF orientation applied
    width: int  # after orientation
    height: int
    format: str  # Pillow's format name: JPEG, PNG, HEIF, AVIF, ...
    texts: list[str] = field(default_factory=list)  # captions embedded in the file (EXIF, IPTC, XMP)


def is_image_path(path: str) -> bool:
    """True when the file name ends in an image extension we try to decode."""
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _matches(rel: str, name: str, patterns: Iterable[str]) -> bool:
    return any(
        fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns
    )


def walk(
    roots: Iterable[str | os.PathLike[str]],
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    hidden: bool = False,
    follow_symlinks: bool = False,
    on_error: Callable[[str, str], None] | None = None,
) -> Iterator[DiscoveredFile]:
    """Yield every candidate image file under ``roots``, each absolute path once, sorted per folder.

    ``include``/``exclude`` are shell globs matched against the path relative to its root
    and against the bare file name (case-insensitively). Hidden files and folders (leading
    dot) are skipped unless ``hidden``. Symlinked folders are followed only with
    ``follow_symlinks``, and never twice, so link loops end. Problems that are not fatal
    (an unreadable folder, a broken link) go to ``on_error(path, reason)``.
    """
    include = [p.lower() for p in include]
    exclude = [p.lower() for p in exclude]
    report = on_error or (lambda path, reason: None)
    seen_files: set[str] = set()
    for root in roots:
        root_path = os.path.realpath(os.fspath(root))
        try:
            st = os.stat(root_path)
        except FileNotFoundError:
            raise ConfigError(f"{root_path}: no such file or folder; check the path") from None
        except PermissionError:
            raise ConfigError(f"{root_path}: permission denied; check its permissions") from None
        if stat.S_ISDIR(st.st_mode):
            visited = {(st.st_dev, st.st_ino)}
            for found in _walk_dir(
                root_path, root_path, include, exclude, hidden, follow_symlinks, visited, report
            ):
                if found.path not in seen_files:
                    seen_files.add(found.path)
                    yield found
        elif root_path not in seen_files:
            seen_files.add(root_path)
            if is_image_path(root_path):
                folder, name = os.path.split(root_path)
                try:
                    names = frozenset(os.listdir(folder))
                except OSError:
                    names = frozenset()
                yield DiscoveredFile(root_path, st.st_size, st.st_mtime_ns, folder, tuple(find_sidecars(name, names)))
            else:
                report(root_path, "not an image file name; supported: " + _short_ext_list())


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def printable_path(path: str) -> str:
    """A path safe to print and store: undecodable bytes become U+FFFD."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _short_ext_list() -> str:
    return "jpg png webp gif bmp tiff jp2 pnm heic avif jxl"


def _walk_dir(
    root: str,
    folder: str,
    include: list[str],
    exclude: list[str],
    hidden: bool,
    follow_symlinks: bool,
    visited: set[tuple[int, int]],
    report: Callable[[str, str], None],
) -> Iterator[DiscoveredFile]:
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except PermissionError:
        report(folder, "folder not readable (permission denied); check its permissions")
        return
    except OSError as exc:
        report(folder, f"folder not readable ({exc.strerror or exc})")
        return
    subdirs = []
    names = frozenset(e.name for e in entries)
    for entry in entries:
        name = entry.name
        if not hidden and name.startswith("."):
            continue
        if not _utf8(name):
            report(printable_path(entry.path), "file name is not valid UTF-8; rename the file to index it")
            continue
        rel = os.path.relpath(entry.path, root).replace(os.sep, "/").lower()
        lname = name.lower()
        try:
            is_dir = entry.is_dir()  # follows links
        except OSError:
            is_dir = False
        if is_dir and entry.is_symlink() and not follow_symlinks:
            continue  # symlinked folder: followed only when asked
        if is_dir:
            if exclude and _matches(rel, lname, exclude):
                continue
            subdirs.append(entry)
            continue
        if not is_image_path(name):
            continue
        if exclude and _matches(rel, lname, exclude):
            continue
        if include and not _matches(rel, lname, include):
            continue
        try:
            st = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            report(entry.path, "broken symlink (its target does not exist)")
            continue
        except OSError as exc:
            report(entry.path, f"cannot stat file ({exc.strerror or exc})")
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        yield DiscoveredFile(entry.path, st.st_size, st.st_mtime_ns, root, tuple(find_sidecars(name, names)))
    for entry in subdirs:
        try:
            st = entry.stat(follow_symlinks=True)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            continue  # a link loop, or a folder reached twice
        visited.add(key)
        yield from _walk_dir(root, entry.path, include, exclude, hidden, follow_symlinks, visited, report)


# ---------------------------------------------------------------- decoding

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

    Example::

        load_image("photos/IMG_1.HEIC").image.size
    """
    from PIL import Image, ImageOps

    _register_plugins()
    label = name or (os.fspath(source) if not isinstance(source, bytes) else "<bytes>")
    ext = os.path.splitext(label)[1].lower()
    if isinstance(source, bytes):
        if not source:
            raise ImageDecodeError(label, "empty file (0 bytes)")
        fp: object = io.BytesIO(source)
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
        except Image.DecompressionBombError:
            raise ImageDecodeError(label, _over_cap(None, max_megapixels)) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageDecodeError(label, f"truncated or corrupt image data ({_short(exc)})") from None
        width, height = im.size
        megapixels = width * height / 1e6
        if megapixels > max_megapixels:
            raise ImageDecodeError(label, _over_cap((width, height), max_megapixels))
        fmt = im.format or "unknown"
        texts = embedded_texts(im)
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
        return DecodedImage(rgb, *full, fmt, texts)
    finally:
        if hasattr(fp, "close"):
            fp.close()  # type: ignore[union-attr]


def _open_file(path: str, label: str) -> io.BufferedReader:
    try:
        if os.path.getsize(path) == 0:
            raise ImageDecodeError(label, "empty file (0 bytes)")
        return open(path, "rb")
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


def _over_cap(size: tuple[int, int] | None, max_megapixels: float) -> str:
    shown = f"{size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.0f} MP)" if size else "larger still"
    return f"image is {shown}, above the --max-megapixels cap of {max_megapixels:g}; raise the cap to ingest it"


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
