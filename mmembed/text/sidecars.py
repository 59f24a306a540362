"""Caption sidecars next to an image: ``IMG_1.jpg.txt``/``IMG_1.txt``, ``IMG_1.json``, ``IMG_1.xmp``.

Pure functions only (no model, no database): each turns one source into a list of clean
texts, whitespace collapsed and de-duplicated with order kept. Captions come before keyword
texts ("a, b, c"), so "the first text" is a caption whenever there is one. The other
sources of words are ``embedded.py`` (inside the file), ``manifest.py`` (captions files) and
``paths.py`` (folder and file-name words).
"""

from __future__ import annotations

import functools
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Iterable, Sequence

from .clean import _dedupe, _is_junk, _joined, _strings
from .xmp import _xmp_texts

__all__ = ["SIDECAR_KINDS", "find_sidecars", "read_sidecars"]

SIDECAR_KINDS: tuple[str, ...] = ("txt", "json", "xmp")

_MAX_SIDECAR_BYTES = 4 << 20  # a caption file larger than this is not a caption file


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


def read_sidecars(folder: str, sidecar_names: Sequence[str],
                  read: Callable[[str, int], bytes] | None = None) -> list[str]:
    """Texts from the first sidecar in ``sidecar_names`` that yields any.

    ``.txt`` is one caption; ``.json`` gives ``caption``/``captions``/``description`` and one
    ``tags``/``keywords`` text; ``.xmp`` gives dc:description, dc:title, dc:subject and the leaves
    of lr:hierarchicalSubject. A sidecar that cannot be read or parsed is skipped; ``[]`` when
    none yields. ``read(path, limit)`` reads them where they are not local files (object
    storage: at most ``limit + 1`` bytes, OSError when it cannot).
    """
    for name in sidecar_names:
        texts = _read_sidecar(os.path.join(folder, name), read)
        if texts:
            return texts
    return []


def _read_sidecar(path: str, read: Callable[[str, int], bytes] | None = None) -> list[str]:
    reader = _SIDECAR_READERS.get(os.path.splitext(path)[1].lower())
    if reader is None:
        return []
    try:
        if read is not None:
            data = read(path, _MAX_SIDECAR_BYTES)
        else:
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
