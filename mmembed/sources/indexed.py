"""Opening an indexed file only while it is still the file that was indexed.

Every adapter that shows a file to someone other than its owner at the keyboard (the web
app's ``/files``, ``/media`` and ``/thumbs``, the HTML gallery, a picture tool) opens it
through :func:`open_indexed`, handing it the row's path, size, mtime and content hash:

- each folder of the path is opened with ``O_NOFOLLOW`` relative to the one above it, and the
  file itself with ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO put in its place cannot hang a reader);
- the opened descriptor is ``fstat``-ed: it must be a regular file of the row's size and mtime
  (a file of another mtime only while its bytes hash to the row's content hash: touched, or
  copied without its dates, as ingest takes it);
- its content hash is checked, read from that same descriptor, when the file is at most
  ``hash_limit`` bytes, and always when the path passes through a symlink (a link that was
  indexed is served only while it leads to the same bytes; one swapped in is refused); a file
  whose hash was checked is not hashed again while its inode, size, mtime and ctime stay;
- the caller reads from the returned file object: what was checked is what is read, with no
  window between a check and an open.

Raises :class:`~mmembed.errors.FileChangedError` (with the path and the reason) otherwise.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from typing import BinaryIO

from ..errors import FileChangedError

__all__ = ["open_indexed", "HASH_LIMIT"]

HASH_LIMIT = 256 * 1024 * 1024  # bytes: files up to this size have their content hash checked on open
_CHUNK = 1024 * 1024
_VERIFIED: set[tuple[int, int, int, int, int, str]] = set()
_VERIFIED_MAX = 4096
_CHANGED = "the file changed since it was indexed; run `mmembed ingest` again"
# The bytes changed in place with the size and date kept (an editor that restores the date): ingest
# goes by size and date, so a plain rerun keeps taking it as unchanged; a new date makes it look.
_SAME_STAMP = ("its bytes changed since it was indexed though its size and date did not, so ingest takes it "
               "as unchanged; give it a new date (`touch FILE`), then run `mmembed ingest` again")


def open_indexed(path: str, *, size: int | None, mtime_ns: int | None, content_hash: str | None,
                 hash_limit: int = HASH_LIMIT) -> BinaryIO:
    """The file at ``path`` opened for reading, positioned at its start, after checking that it
    is still the indexed one (see the module notes). Raises FileChangedError."""
    fd, linked = _open_no_follow(path)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileChangedError(path, "it is no longer a regular file; run `mmembed ingest` again")
        if size is not None and st.st_size != size:
            raise FileChangedError(path, _CHANGED)
        # another mtime with the same size (touched, or copied without its dates): the same file
        # only when its bytes still hash to the indexed content hash, as ingest decides
        touched = mtime_ns is not None and st.st_mtime_ns != mtime_ns
        if touched and not (content_hash and st.st_size <= HASH_LIMIT):
            raise FileChangedError(path, _CHANGED)
        if content_hash and (linked or touched or st.st_size <= hash_limit):
            _check_hash(fd, st, path, content_hash, _CHANGED if touched or linked else _SAME_STAMP)
        if getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)  # reads of the caller's (a regular file never blocks anyway)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_no_follow(path: str) -> tuple[int, bool]:
    """A read descriptor for ``path`` and whether reaching it went through a symlink. Folders and
    the file are opened one by one without following links; a link anywhere falls back to a
    plain open, and the caller then insists on the content hash."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    no_follow = getattr(os, "O_NOFOLLOW", 0)
    if not no_follow or os.open not in os.supports_dir_fd or not os.path.isabs(path):
        return _plain_open(path, flags), os.path.islink(path)
    parts = [p for p in path.split(os.sep) if p]
    folder = os.open(os.sep, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | no_follow, dir_fd=folder)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    return _plain_open(path, flags), True
                raise _gone(path, exc) from None
            os.close(folder)
            folder = inner
        try:
            return os.open(parts[-1], flags | no_follow, dir_fd=folder), False
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return _plain_open(path, flags), True
            raise _gone(path, exc) from None
    finally:
        os.close(folder)


def _plain_open(path: str, flags: int) -> int:
    try:
        return os.open(path, flags)
    except OSError as exc:
        raise _gone(path, exc) from None


def _gone(path: str, exc: OSError) -> FileChangedError:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return FileChangedError(path, "the file is gone since it was indexed (moved or deleted?)")
    return FileChangedError(path, f"cannot read the file ({exc.strerror or exc})")


def _check_hash(fd: int, st: os.stat_result, path: str, content_hash: str, changed: str = _CHANGED) -> None:
    """FileChangedError unless the bytes behind ``fd`` hash to ``content_hash``. A file already
    checked is not read again while its inode, size, mtime and ctime are the same (any write,
    ``utime`` or rename-over changes its ctime, which no one can set back), so a video's many
    range requests pay for one hash."""
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, content_hash)
    if key in _VERIFIED:
        return
    if _hash_fd(fd) != content_hash:
        raise FileChangedError(path, changed)
    os.lseek(fd, 0, os.SEEK_SET)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED.add(key)


def _hash_fd(fd: int) -> str:
    """The blake2b-128 of the file behind ``fd`` (as ingest computes it), read from its start."""
    digest = hashlib.blake2b(digest_size=16)
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
