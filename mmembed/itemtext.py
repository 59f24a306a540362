"""Where an item's words come from: sidecar files, embedded metadata, manifests and the path.

Pure functions only (no model, no database): each turns one source into a list of clean
texts, whitespace collapsed and de-duplicated with order kept. Captions come before keyword
texts ("a, b, c"), so "the first text" is a caption whenever there is one.

- ``find_sidecars`` / ``read_sidecars``: ``IMG_1.jpg.txt``, ``IMG_1.json``, ``IMG_1.xmp`` next to the image;
- ``embedded_texts``: EXIF, Windows XP tags, IPTC and XMP inside the image file, camera junk dropped;
- manifests (captions files) live in ``manifest.py``;
- ``path_text``: folder and file-name words (``germany/2019/beach_day.jpg`` -> ``germany 2019 beach day``).
"""

from __future__ import annotations

import functools
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "SIDECAR_KINDS",
    "RESERVED_COLUMNS",
    "find_sidecars",
    "read_sidecars",
    "embedded_texts",
    "path_text",
]

SIDECAR_KINDS: tuple[str, ...] = ("txt", "json", "xmp")

# Table columns mmembed writes itself; a manifest column may not take one of these names.
RESERVED_COLUMNS = frozenset({
    "id", "path", "size", "mtime_ns", "content_hash", "width", "height", "format",
    "ingested_at", "image_vector", "text", "texts", "text_source", "text_hash", "embedded_texts",
    "manifest_texts", "text_vector", "fused_vector", "score", "image_score", "text_score",
})  # fmt: skip

_MAX_SIDECAR_BYTES = 4 << 20  # a caption file larger than this is not a caption file

# ------------------------------------------------------------------------ text helpers


def _clean(text: str) -> str:
    return " ".join(text.split())


def _dedupe(texts: Iterable[str]) -> list[str]:
    """Clean, drop empties, and keep the first of texts that differ only in case."""
    seen: set[str] = set()
    out: list[str] = []
    for text in texts:
        text = _clean(text)
        key = text.casefold()
        if text and key not in seen:
            seen.add(key)
            out.append(text)
    return out


def _strings(value: object) -> list[str]:
    """A string, or the strings (and numbers) of a list; anything else gives nothing."""
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items if isinstance(v, (str, int, float)) and not isinstance(v, bool)]


def _joined(items: Iterable[str]) -> list[str]:
    """Keywords as one text, 'a, b, c', or nothing when there are none."""
    words = _dedupe(items)
    return [", ".join(words)] if words else []


def _without_nuls(text: str) -> str | None:
    """Trailing NUL padding removed; None when a NUL remains inside (binary junk)."""
    text = text.rstrip("\x00 \t\r\n")
    return None if "\x00" in text else text


# ------------------------------------------------------------------------ camera junk

_JUNK_TEXTS = frozenset({
    "olympus digital camera", "sony dsc", "digital camera", "kodak digital still camera",
    "default", "untitled", "image", "picture", "photo", "camera", "exif_jpeg_picture",
    "lead technologies inc. v1.01", "no description", "description", "title",
})  # fmt: skip
_JUNK_RE = re.compile(
    r"""(?ix)^(?:
        .*\bdigital\s+(?:still\s+)?camera          # SANYO DIGITAL CAMERA, KONICA MINOLTA DIGITAL CAMERA
      | [a-z]{0,6}[_-]?\d{3,}(?:[_-]\d+)*(?:\.[a-z0-9]{3,4})?   # a file name: IMG_0231, P6260031
      | [0-9a-f]{16,}                              # a hash
    )$"""
)


def _is_junk(text: str, camera_names: Collection[str] = ()) -> bool:
    key = text.casefold()
    return (
        not any(c.isalpha() for c in text)
        or key in _JUNK_TEXTS
        or key in camera_names
        or _JUNK_RE.match(text) is not None
    )


# ------------------------------------------------------------------------ sidecars


@functools.lru_cache(maxsize=8)
def _lowered_frozen(names: frozenset[str]) -> dict[str, str]:
    return _lowered(names)


def _lowered(names: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in sorted(names):
        out.setdefault(name.lower(), name)
    return out


def find_sidecars(image_name: str, names_in_folder: Collection[str]) -> list[str]:
    """File names of this image's sidecars present in ``names_in_folder``, in precedence order.

    The order is ``<name>.txt, <stem>.txt, <name>.json, <stem>.json, <name>.xmp, <stem>.xmp``;
    matching is case-insensitive and the spelling found is returned. Pass a ``frozenset`` to
    make repeated calls for one folder O(1) each.

    >>> find_sidecars("IMG_1.jpg", {"IMG_1.jpg", "img_1.XMP", "IMG_1.jpg.txt"})
    ['IMG_1.jpg.txt', 'img_1.XMP']
    """
    if isinstance(names_in_folder, frozenset):
        lowered = _lowered_frozen(names_in_folder)
    else:
        lowered = _lowered(names_in_folder)
    stem = os.path.splitext(image_name)[0]
    out: list[str] = []
    for kind in SIDECAR_KINDS:
        for base in (image_name, stem):
            candidate = f"{base}.{kind}".lower()
            found = lowered.get(candidate)
            if found and candidate != image_name.lower() and found not in out:
                out.append(found)
    return out


def read_sidecars(folder: str, sidecar_names: Sequence[str]) -> list[str]:
    """Texts from the first sidecar in ``sidecar_names`` that yields any.

    ``.txt`` is one caption; ``.json`` gives ``caption``/``captions``/``description`` and one
    ``tags``/``keywords`` text; ``.xmp`` gives dc:description, dc:title, dc:subject and the leaves
    of lr:hierarchicalSubject. A sidecar that cannot be read or parsed is skipped; ``[]`` when
    none yields.
    """
    for name in sidecar_names:
        texts = _read_sidecar(os.path.join(folder, name))
        if texts:
            return texts
    return []


def _read_sidecar(path: str) -> list[str]:
    reader = _SIDECAR_READERS.get(os.path.splitext(path)[1].lower())
    if reader is None:
        return []
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_SIDECAR_BYTES + 1)
        if len(data) > _MAX_SIDECAR_BYTES:
            return []
        return _dedupe(reader(data))
    except (OSError, ValueError, ET.ParseError, RecursionError):
        return []  # an unreadable sidecar is no text; the next source may have some


def _decode(data: bytes) -> str:
    """UTF-8 (BOM tolerated) or UTF-16 with a BOM; raises UnicodeDecodeError otherwise."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def _txt_texts(data: bytes) -> list[str]:
    return [_decode(data)]


def _json_texts(data: bytes) -> list[str]:
    obj = json.loads(_decode(data))
    if not isinstance(obj, dict):
        return []
    fields = {str(k).lower(): v for k, v in obj.items()}
    captions = [t for key in ("caption", "captions", "description") for t in _strings(fields.get(key))]
    tags = _strings(fields.get("tags")) + _strings(fields.get("keywords"))
    return captions + _joined(tags)


def _xmp_sidecar_texts(data: bytes) -> list[str]:
    captions, keywords = _xmp_texts(data)
    return [t for t in _dedupe(captions + keywords) if not _is_junk(t)]


_SIDECAR_READERS: dict[str, Callable[[bytes], list[str]]] = {
    ".txt": _txt_texts,
    ".json": _json_texts,
    ".xmp": _xmp_sidecar_texts,
}

# ------------------------------------------------------------------------ XMP

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_LR = "{http://ns.adobe.com/lightroom/1.0/}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_CONTAINERS = (_RDF + "Alt", _RDF + "Bag", _RDF + "Seq")


def _xmp_string(packet: bytes | str) -> str:
    if isinstance(packet, str):
        return packet.strip("\x00")
    packet = bytes(packet)
    if packet.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = packet.decode("utf-16")
    elif packet.startswith(b"<\x00"):
        text = packet[: len(packet) // 2 * 2].decode("utf-16-le")
    elif packet.startswith(b"\x00<"):
        text = packet[: len(packet) // 2 * 2].decode("utf-16-be")
    else:
        text = packet.decode("utf-8-sig", errors="replace")
    return text.strip("\x00")  # NUL padding after the packet (HEIF, some JPEG writers)


def _xmp_texts(packet: bytes | str) -> tuple[list[str], list[str]]:
    """(captions, keyword texts) of an XMP packet; raises ValueError/ParseError when unusable."""
    text = _xmp_string(packet)
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise ValueError("XMP with a DOCTYPE is refused (entity expansion)")
    start, end = text.find("<"), text.rfind(">")
    if start < 0 or end < start:
        raise ValueError("no XML in the XMP packet")
    root = ET.fromstring(text[start : end + 1])
    fields: dict[str, list[str]] = {"description": [], "title": [], "subject": [], "hierarchy": []}
    tags = {_DC + "description": "description", _DC + "title": "title",
            _DC + "subject": "subject", _LR + "hierarchicalSubject": "hierarchy"}  # fmt: skip
    for description in root.iter(_RDF + "Description"):
        for tag, field in tags.items():
            if description.get(tag):
                fields[field].append(description.get(tag, ""))
        for child in description:
            if child.tag in tags:
                fields[tags[child.tag]].extend(_xmp_values(child))
    leaves = [value.split("|")[-1] for value in fields["hierarchy"]]
    captions = fields["description"] + fields["title"]
    return captions, _joined(fields["subject"]) + _joined(leaves)


def _xmp_values(element: ET.Element) -> list[str]:
    """The rdf:li items of an Alt/Bag/Seq (x-default first), or the element's own text."""
    items = [li for c in element if c.tag in _CONTAINERS for li in c if li.tag == _RDF + "li"]
    if not items:
        return [element.text] if element.text and element.text.strip() else []
    items.sort(key=lambda li: li.get(_XML_LANG) != "x-default")  # stable: x-default first
    return ["".join(li.itertext()) for li in items]


# ------------------------------------------------------------------------ embedded metadata

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


# ------------------------------------------------------------------------ path words

_WORD_RE = re.compile(r"[^\W_]+")
_CAMERA_TOKENS = frozenset(
    "img dsc dscn dscf pxl mvimg vid photo image screenshot copy edited original".split()
)
_COUNTER_RE = re.compile(r"(?:img|dsc|dscn|dscf|pxl|mvimg|vid)\d+", re.I)  # DSCN0010
_HASH_RE = re.compile(r"(?=.*\d)[0-9a-f]{8,}", re.I)  # flickr-style 'a4e66ec76b'



def path_text(path: str, root: str) -> str:
    """Words from the folders below ``root`` and the file name, or ``''``.

    Drops the extension, numbers other than years 1900-2099, camera tokens (img, dsc, pxl, ...),
    camera counters such as ``DSCN0010`` and hex hashes of 8+ characters.

    >>> path_text("/r/germany/2019/beach_day-03.jpg", "/r")
    'germany 2019 beach day'
    """
    path, root = os.path.abspath(path), os.path.abspath(root)
    folder, name = os.path.split(path)
    parts = []
    if path != root and _is_under(path, root):
        relative = os.path.relpath(folder, root)
        if relative != os.curdir:
            parts = relative.split(os.sep)
    parts.append(os.path.splitext(name)[0])
    return " ".join(w for part in parts for w in _WORD_RE.findall(part) if _is_word(w))


def _is_under(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False


def _is_word(token: str) -> bool:
    if token.isdecimal():
        return len(token) == 4 and token.isascii() and 1900 <= int(token) <= 2099
    if token.lower() in _CAMERA_TOKENS:
        return False
    return _COUNTER_RE.fullmatch(token) is None and _HASH_RE.fullmatch(token) is None
