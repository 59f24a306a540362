"""The table's write lock: one writer at a time.

Every writer holds it: ingest, fusion apply and train, index build and drop, refresh and
doctor. A writer that finds it taken does not wait: it raises ``IngestLockedError`` at
once, naming the process that holds it (the CLI prints that and exits 1), so two writers
can never interleave and no row is ever fused with settings other than the table's.

Local databases only: an ``flock`` on a file beside the table, released by the kernel even
after ``kill -9``. Object stores rely on LanceDB's own commit conflict handling.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from ..errors import IngestLockedError, StoreError

__all__ = ["WriteLock", "lock_held"]


def lock_held(folder: str, table: str) -> bool:
    """Whether a writer holds ``table``'s lock now (a look, not a wait; False where there are no
    advisory locks). The no-op check asks it: a table being written is not known unchanged."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        handle = open(os.path.join(folder, f".{table}.ingest.lock"))
    except OSError:
        return False  # never locked here (or unreadable: the writer's own open says so)
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


class WriteLock:
    """Reentrant within one owner (an ingest that re-fuses or builds an index keeps its lock)."""

    def __init__(self, folder: str | None, table: str, uri: str) -> None:
        self.path = os.path.join(folder, f".{table}.ingest.lock") if folder else None
        self.table = table
        self.uri = uri
        self._depth = 0

    @contextmanager
    def hold(self, action: str) -> Iterator[None]:
        if self._depth or self.path is None:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here
            yield
            return
        folder = os.path.dirname(self.path)
        for _ in range(3):  # bounded: another writer removes the file only once, as it gives up
            made_folder = not os.path.exists(folder)
            handle = self._open()
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(handle)
                handle.close()
                raise IngestLockedError(
                    f"another mmembed ingest or writer ({holder}) is writing to table "
                    f"'{self.table}' in {self.uri}; wait for it to finish, then rerun"
                ) from None
            if _is_at(handle, self.path):
                break
            handle.close()  # locked a file a failed first writer removed meanwhile: lock the one there now
        else:
            raise IngestLockedError(f"the write lock of table '{self.table}' in {self.uri} keeps being "
                                    "removed under this writer; rerun")
        with handle:
            _write_holder(handle, action)
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                if made_folder:
                    _remove_if_only_lock(folder, self.path)
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _open(self) -> IO[str]:
        assert self.path is not None
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            return open(self.path, "a+")
        except OSError as exc:
            folder = os.path.dirname(self.path)
            raise StoreError(
                f"cannot write to database folder {folder} ({exc.strerror or exc}); check its permissions"
            ) from None


def _is_at(handle: IO[str], path: str) -> bool:
    """Whether the open file ``handle`` is still the file at ``path`` (not one removed since)."""
    try:
        here, there = os.fstat(handle.fileno()), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _remove_if_only_lock(folder: str, path: str) -> None:
    """A writer that made the database folder and failed before writing anything leaves no
    folder holding only its lock file behind. Runs while the lock is still held; a writer that
    opened the file meanwhile sees, once it has the lock, that the file is no longer at the path
    (``_is_at``) and locks the one made there again."""
    try:
        if os.listdir(folder) == [os.path.basename(path)]:
            os.unlink(path)
            os.rmdir(folder)
    except OSError:
        pass  # another writer made something there meanwhile: keep it


def _write_holder(handle: IO[str], action: str) -> None:
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}: {action}\n")
        handle.flush()
    except OSError:
        pass  # a full disk must not stop the lock itself; the name of the holder is a courtesy


def _holder(handle: IO[str]) -> str:
    try:
        handle.seek(0)
        text = handle.read(200).strip()
    except OSError:
        text = ""
    return text or "holder unknown"
