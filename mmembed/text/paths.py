"""Words from an image's folders and file name (``germany/2019/beach_day.jpg`` -> "germany 2019 beach day")."""

from __future__ import annotations

import os
import re

__all__ = ["path_text"]

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
