"""Whether an upload's first bytes are an image format's, so a large body that is not an image
is refused after its first chunk instead of being read whole and handed to a decoder; how many
are held at once (Slots). (The heap is given back after one: ``store.memory``.)"""

from __future__ import annotations

__all__ = ["looks_like_image", "Slots"]

_PREFIXES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
    b"II", b"MM",  # TIFF, and the TIFF-like RAW files (CR2, CRW, NEF, ARW, DNG, ORF, RW2, ...)
    b"FUJIFILMCCD-RAW", b"FOVb", b"\x00MRM",  # Fuji RAF, Sigma X3F, Minolta MRW
    b"\xff\x0a", b"\x00\x00\x00\x0cJXL ",  # JPEG XL
    b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51",  # JPEG 2000 (jp2, j2k)
    b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"P7", b"PF", b"Pf",  # PBM/PGM/PPM/PAM/PFM
    b"\x00\x00\x01\x00", b"icns", b"qoif", b"8BPS", b"\x76\x2f\x31\x01",  # ICO, ICNS, QOI, PSD, EXR
)


def looks_like_image(head: bytes | bytearray) -> bool:
    """True when ``head`` (the first 16 or more bytes of a file) starts like an image format the
    decoder may read: JPEG, PNG, GIF, BMP, TIFF and TIFF-based RAW, WebP, HEIC/AVIF (ISO ``ftyp``),
    JPEG 2000, Netpbm and a few more. A false True only costs a decode that fails."""
    head = bytes(head[:16])
    if head.startswith(_PREFIXES):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return head[4:8] == b"ftyp"  # HEIC, HEIF, AVIF, CR3


class Slots:
    """At most ``n`` uploads read at once (the event loop is one thread: a plain counter)."""

    def __init__(self, n: int) -> None:
        self.n, self.used = n, 0

    def busy(self) -> bool:
        return self.used >= self.n

    def __enter__(self) -> None:
        self.used += 1

    def __exit__(self, *exc: object) -> None:
        self.used -= 1
