"""Words embedded in an image file: EXIF, Windows XP tags, IPTC and XMP, camera junk dropped."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .clean import _clean, _dedupe, _is_junk, _joined, _without_nuls
from .xmp import _xmp_texts

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["embedded_texts"]

_EXIF_IFD = 0x8769
_IMAGE_DESCRIPTION, _MAKE, _MODEL, _USER_COMMENT = 0x010E, 0x010F, 0x0110, 0x9286
_XP_TITLE, _XP_COMMENT, _XP_KEYWORDS, _XP_SUBJECT = 0x9C9B, 0x9C9C, 0x9C9E, 0x9C9F


def embedded_texts(image: Image.Image) -> list[str]:
    """Texts embedded in an opened image file: EXIF, XP tags, IPTC and XMP, camera junk dropped.

    Reads EXIF ImageDescription and UserComment, XPTitle/XPComment/XPSubject, IPTC caption
    (2:120) and object name (2:5), and XMP dc:description/dc:title; then the keyword texts
    (XPKeywords, IPTC 2:25, XMP dc:subject and lr:hierarchicalSubject), each as one ``'a, b'`` text.
    Placeholders such as ``'OLYMPUS DIGITAL CAMERA'``, the camera's own make/model, file-name-like
    strings and text without letters are dropped. Broken metadata is ignored field by field;
    this never raises and never decodes pixels.
    """
    exif = _guarded(_exif_of, image)
    camera = _guarded(_camera_names, exif) or frozenset()
    captions: list[str] = []
    keywords: list[str] = []
    for found in (_exif_texts(exif), _guarded(_iptc_texts, image), _guarded(_xmp_info_texts, image)):
        if found:
            captions += found[0]
            keywords += found[1]
    return [t for t in _dedupe(captions + keywords) if not _is_junk(t, camera)]


def _guarded(read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)``, or None when it raises."""
    try:
        return read(*args)
    except Exception:  # Pillow's metadata parsers raise anything on broken files; a field is optional
        return None


def _exif_of(image: Image.Image) -> Image.Exif | None:
    from PIL import Image as PILImage

    raw = image.info.get("exif")
    if isinstance(raw, (bytes, bytearray)):
        exif = PILImage.Exif()
        exif.load(bytes(raw))
        return exif
    if image.format == "PNG":
        return None  # PNG getexif() decodes the pixels to look for a late eXIf chunk
    return image.getexif()


def _camera_names(exif: Image.Exif | None) -> frozenset[str]:
    """Make, model and 'make model': cameras write these into the description field."""
    if exif is None:
        return frozenset()
    parts = [_exif_field(exif, tag, _exif_string) or "" for tag in (_MAKE, _MODEL)]
    names = {_clean(p).casefold() for p in [*parts, " ".join(parts)]}
    return frozenset(n for n in names if n)


def _exif_texts(exif: Image.Exif | None) -> tuple[list[str], list[str]]:
    if exif is None:
        return [], []
    captions = [
        _exif_field(exif, _IMAGE_DESCRIPTION, _exif_string),
        _exif_field(exif, _USER_COMMENT, _user_comment, ifd=_EXIF_IFD),
        *(_exif_field(exif, tag, _xp_string) for tag in (_XP_TITLE, _XP_COMMENT, _XP_SUBJECT)),
    ]
    keywords = _exif_field(exif, _XP_KEYWORDS, _xp_string) or ""
    return [c for c in captions if c], _joined(keywords.split(";"))


def _exif_field(
    exif: Image.Exif, tag: int, decode: Callable[[object], str | None], ifd: int | None = None
) -> str | None:
    """One decoded EXIF field, or None when it is missing or broken."""
    return _guarded(lambda: decode((exif.get_ifd(ifd) if ifd else exif).get(tag)))


def _fix_mojibake(text: str) -> str:
    """Pillow decodes EXIF ASCII as Latin-1; modern tools write UTF-8 there."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def _exif_string(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    text = _without_nuls(value)
    return _fix_mojibake(text) if text else None


def _xp_string(value: object) -> str | None:
    if isinstance(value, tuple):
        value = bytes(value)
    if not isinstance(value, bytes):
        return None
    return _without_nuls(value[: len(value) // 2 * 2].decode("utf-16-le"))


def _user_comment(value: object) -> str | None:
    """UserComment: an 8-byte charset prefix, then the text in that charset."""
    if isinstance(value, str):
        return _without_nuls(value)
    if not isinstance(value, bytes):
        return None
    prefix, body = value[:8], value[8:]
    if prefix == b"ASCII\x00\x00\x00":
        text = _fix_mojibake(body.decode("latin-1"))
    elif prefix == b"UNICODE\x00":
        text = _utf16_guess(body)
    elif prefix == b"JIS\x00\x00\x00\x00\x00":
        text = body.decode("shift_jis")
    elif prefix == b"\x00" * 8:
        text = _fix_mojibake(body.decode("latin-1"))
    else:
        text = value.decode("utf-8")
    return _without_nuls(text)


def _utf16_guess(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    data = data[: len(data) // 2 * 2]
    # ASCII-range text has its zero bytes first in big-endian order
    big = data[0::2].count(0) > data[1::2].count(0)
    return data.decode("utf-16-be" if big else "utf-16-le")


def _iptc_texts(image: Image.Image) -> tuple[list[str], list[str]]:
    from PIL import IptcImagePlugin

    info = IptcImagePlugin.getiptcinfo(image) or {}
    utf8 = b"\x1b%G" in (info.get((1, 90)) or b"")
    captions = _iptc_strings(info.get((2, 120)), utf8) + _iptc_strings(info.get((2, 5)), utf8)
    return captions, _joined(_iptc_strings(info.get((2, 25)), utf8))


def _iptc_strings(value: object, utf8: bool) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bytes):
            try:
                text = item.decode("utf-8")
            except UnicodeDecodeError:
                text = item.decode("cp1252" if not utf8 else "utf-8", errors="replace")
            cleaned = _without_nuls(text)
            if cleaned:
                out.append(cleaned)
    return out


def _xmp_info_texts(image: Image.Image) -> tuple[list[str], list[str]]:
    for key in ("xmp", "XML:com.adobe.xmp"):
        packet = image.info.get(key)
        if isinstance(packet, (bytes, bytearray, str)) and packet:
            return _xmp_texts(packet)
    return [], []
