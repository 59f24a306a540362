"""Reading only regular files: a named pipe, a socket or a device file (``x.jpg`` linked to
``/dev/zero``, say) would block a reader for good or never end, so each is refused with a reason."""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

__all__ = ["NotRegularFileError", "not_regular", "open_regular"]

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "named pipe"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


class NotRegularFileError(OSError):
    """The path is a named pipe, socket, device or folder; ``strerror`` says which."""


def not_regular(mode: int) -> str | None:
    """None for a regular file, else the reason to skip it, e.g. ``not a regular file (named pipe)``."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "special file")
    return f"not a regular file ({kind})"


def open_regular(path: str) -> BinaryIO:
    """``open(path, "rb")`` that never blocks on a named pipe and never reads a device:
    opened with O_NONBLOCK, then checked with ``fstat`` (no race with a swap after a ``stat``).
    Raises ``NotRegularFileError`` for anything but a regular file, OSError as ``open`` does."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        reason = not_regular(os.fstat(fd).st_mode)
        if reason is not None:
            raise NotRegularFileError(0, reason, path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def unlinked(f: BinaryIO) -> bool:
    """True when the open file has been deleted (no name links to it any more)."""
    try:
        return os.fstat(f.fileno()).st_nlink == 0
    except OSError:
        return False
