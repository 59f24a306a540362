"""Thumbnails and large renditions of indexed photos, made from the original file and cached.

A rendition is an upright (EXIF orientation applied) JPEG no larger than ``size`` on its
long side, made with the decoder ingest uses (JPEGs decode at a reduced DCT scale, so a
12 MP photo costs a fraction of a full decode), for every format ingest reads (HEIC and AVIF
included). It is cached on disk under ``<db>/<table>.thumbs/`` (else the user cache when the
database folder is not writable, or is in object storage), keyed by the file's content hash and the size: a moved or
renamed file keeps its thumbnail, an edited one gets a new one.

At most ``workers`` renditions are made at once, so a fast scroll through thousands of
photos queues instead of decoding them all in memory together.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
from dataclasses import dataclass

from ..config import cache_dir
from ..errors import FileChangedError, ImageDecodeError
from ..sources.decode import load_image
from ..sources.indexed import HASH_LIMIT, open_indexed

__all__ = ["Rendition", "Thumbnailer", "render_jpeg", "frame_jpeg", "still_indexed", "indexed_bytes", "indexed_frame",
           "THUMB_SIZE", "LARGE_SIZE"]

THUMB_SIZE = 320  # grid cards (shown at up to 240 CSS px; sharp on 1.5x screens)
LARGE_SIZE = 2048  # the detail view
_QUALITY = {THUMB_SIZE: 82, LARGE_SIZE: 88}
_RECIPE = "v1"  # part of every key: a change in how renditions are made invalidates the cache


@dataclass(frozen=True)
class Rendition:
    """A cached JPEG on disk and its ETag."""

    path: str
    etag: str


def render_jpeg(source: str | bytes, size: int, *, max_megapixels: float = 100.0, quality: int = 82,
                name: str | None = None) -> bytes:
    """An upright JPEG of ``source`` whose long side is at most ``size``; raises ImageDecodeError.
    ``name`` is the file's path when ``source`` is its bytes (a RAW file is known by its extension)."""
    from PIL import Image

    decoded = load_image(source, max_megapixels=max_megapixels, min_side=max(1, size // 2), name=name)
    image = decoded.image
    image.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=False, progressive=size > 1024)
    return out.getvalue()


def frame_jpeg(path: str, frame_time: float, size: int, *, quality: int = 82) -> bytes:
    """An upright JPEG of a video's frame at ``frame_time`` seconds, long side at most ``size``;
    raises ImageDecodeError."""
    from PIL import Image

    from ..sources.video import frame_at

    image = frame_at(path, frame_time, min_side=max(1, size // 2))
    image.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)  # type: ignore[attr-defined]
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)  # type: ignore[attr-defined]
    return out.getvalue()


class Thumbnailer:
    """Makes and caches renditions; thread-safe."""

    def __init__(self, db: str, table: str, *, workers: int = 2, max_megapixels: float = 100.0) -> None:
        self.folder = _writable_folder(os.path.join(db, f"{table}.thumbs"),
                                       os.path.join(cache_dir(), "thumbs", _short_hash(f"{db}\0{table}")))
        self.max_megapixels = max_megapixels
        self._slots = threading.BoundedSemaphore(max(1, workers))

    def key(self, content_hash: str, size: int, frame_time: float | None = None) -> str:
        at = f"-t{frame_time:.3f}" if frame_time is not None else ""
        return f"{content_hash}-{size}{at}-{_RECIPE}"

    def cached(self, content_hash: str, size: int, frame_time: float | None = None) -> Rendition | None:
        """The cached rendition, or None when it has not been made yet."""
        key = self.key(content_hash, size, frame_time)
        path = os.path.join(self.folder, key[:2], f"{key}.jpg")
        return Rendition(path, key) if os.path.isfile(path) else None

    def get(self, source_path: str, content_hash: str, size: int, frame_time: float | None = None,
            file_size: int | None = None, mtime_ns: int | None = None) -> Rendition:
        """The rendition of the file at ``source_path`` (whose content hash is ``content_hash``),
        made now if it is not cached; for a video, of its frame at ``frame_time``. The file is
        opened through ``sources.indexed.open_indexed`` (no symlink swapped in, the row's size and
        mtime; an image's bytes are hashed, a video's only when reached through a link).
        Raises ImageDecodeError (FileChangedError when the file changed or went since it was
        indexed) when it cannot be decoded."""
        found = self.cached(content_hash, size, frame_time)
        if found is not None:  # made before: shown only while the file is still the one indexed
            still_indexed(source_path, file_size, mtime_ns, content_hash)
            return found
        with self._slots:
            found = self.cached(content_hash, size, frame_time)  # made by another request meanwhile (a copy's, maybe)
            if found is not None:
                still_indexed(source_path, file_size, mtime_ns, content_hash)
                return found
            if frame_time is not None:  # a video is not read whole: its frame is decoded by seeking
                row = {"path": source_path, "content_hash": content_hash, "size": file_size, "mtime_ns": mtime_ns,
                       "frame_time": frame_time}
                jpeg = indexed_frame(row, size, quality=_QUALITY.get(size, 85))
                return self._store(self.key(content_hash, size, frame_time), jpeg)
            row = {"path": source_path, "content_hash": content_hash, "size": file_size, "mtime_ns": mtime_ns}
            try:
                data = indexed_bytes(row)  # read once, its hash checked
            except OSError as exc:
                raise ImageDecodeError(source_path, f"cannot read the file ({exc.strerror or exc})") from None
            jpeg = render_jpeg(data, size, max_megapixels=self.max_megapixels, quality=_QUALITY.get(size, 85),
                               name=source_path)
            return self._store(self.key(content_hash, size), jpeg)

    def _store(self, key: str, jpeg: bytes) -> Rendition:
        folder = os.path.join(self.folder, key[:2])
        path = os.path.join(folder, f"{key}.jpg")
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "wb") as f:
            f.write(jpeg)
        os.replace(tmp, path)  # readers see the whole file or none
        return Rendition(path, key)


def still_indexed(path: str, size: int | None, mtime_ns: int | None, content_hash: str | None) -> None:
    """FileChangedError unless the file at ``path`` is still the one indexed: a regular file of
    the row's size and mtime, no link swapped in (``open_indexed``; the bytes are hashed only for
    a link or a touched file). A cached rendition is served only after this: a photo deleted or
    replaced since is not shown from the cache. Objects in object storage are not checked."""
    if path.startswith("s3://"):
        return
    open_indexed(path, size=size, mtime_ns=mtime_ns, content_hash=content_hash, hash_limit=0).close()


def indexed_bytes(row: dict) -> bytes:
    """The bytes of a row's file, read only while it is the file indexed (``open_indexed`` with its
    content hash checked); an ``s3://`` object from object storage. FileChangedError otherwise."""
    path, content_hash = row["path"], row.get("content_hash")
    if path.startswith("s3://"):
        from ..sources.remote import read_bytes

        try:
            data = read_bytes(path)
        except OSError as exc:
            raise FileChangedError(path, f"cannot read the object ({exc.strerror or exc})") from None
        hashed = False
    else:
        with open_indexed(path, size=row.get("size"), mtime_ns=row.get("mtime_ns"), content_hash=content_hash) as f:
            data = f.read()
        hashed = len(data) <= HASH_LIMIT  # open_indexed checked its hash
    if content_hash and not hashed and hashlib.blake2b(data, digest_size=16).hexdigest() != content_hash:
        raise FileChangedError(path, "the file changed since it was indexed; run `mmembed ingest` again")
    return data


def indexed_frame(row: dict, size: int, *, quality: int = 85) -> bytes:
    """An upright JPEG of a video row's frame (long side at most ``size``), decoded from the file
    only while it is the one indexed (the descriptor that was checked, through /proc/self/fd)."""
    path, at = row["path"], float(row.get("frame_time") or 0.0)
    if path.startswith("s3://"):
        return frame_jpeg(path, at, size, quality=quality)
    with open_indexed(path, size=row.get("size"), mtime_ns=row.get("mtime_ns"), content_hash=row.get("content_hash"),
                      hash_limit=0) as f:
        same = f"/proc/self/fd/{f.fileno()}"
        try:
            return frame_jpeg(same if os.path.exists(same) else path, at, size, quality=quality)
        except ImageDecodeError as exc:
            raise ImageDecodeError(path, exc.reason) from None


def _writable_folder(preferred: str, fallback: str) -> str:
    """``preferred`` when its parent (the database folder) exists and is writable; nothing is
    created here, so serving a missing database leaves no folder behind."""
    parent = os.path.dirname(preferred)
    if os.path.isdir(preferred) and os.access(preferred, os.W_OK):
        return preferred
    return preferred if os.path.isdir(parent) and os.access(parent, os.W_OK) else fallback


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
