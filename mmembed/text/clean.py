"""Text clean-up shared by every source of words: whitespace, de-duplication, camera junk."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable


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
