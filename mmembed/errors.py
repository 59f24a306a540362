"""Typed errors raised by mmembed.

Every message is one line that names the file or value at fault and says what to do next.
The CLI prints ``Error: <message>`` and exits 1; the library never prints or exits.

Hierarchy::

    MmembedError
    ├── ConfigError          a bad option value (unknown device, limit <= 0, ...)
    ├── ModelLoadError       weights or config could not be loaded (offline, missing folder, ...)
    │   └── OcrUnavailableError  reading text needs the ocr extra (pip install 'mmembed[ocr]')
    ├── ModelMismatchError   the table was built by a different model than the one asked for
    ├── IndexEmptyError      a search or lookup on a table that holds no rows yet
    ├── QueryError           an empty query, a missing query image, a bad --where filter
    ├── ImageDecodeError     one image could not be decoded (carries .path and .reason)
    │   └── FileChangedError the file at an indexed path is no longer the one indexed
    ├── IngestLockedError    another ingest is writing to the same table
    └── StoreError           the database could not be opened or written
        └── StoreWriteError  a write failed (disk full, permissions); carries .reason
"""

from __future__ import annotations

__all__ = [
    "MmembedError",
    "ConfigError",
    "ModelLoadError",
    "OcrUnavailableError",
    "ModelMismatchError",
    "IndexEmptyError",
    "QueryError",
    "ImageDecodeError",
    "FileChangedError",
    "IngestLockedError",
    "StoreError",
    "StoreWriteError",
]


class MmembedError(Exception):
    """Base class for every error mmembed raises on purpose."""


class ConfigError(MmembedError, ValueError):
    """An option has a value mmembed cannot use."""


class ModelLoadError(MmembedError):
    """The encoder's config or weights could not be loaded."""


class OcrUnavailableError(ModelLoadError):
    """OCR was asked for but its models or libraries are not installed; the message names the extra."""


class ModelMismatchError(MmembedError):
    """The table records a different model from the one requested."""


class IndexEmptyError(MmembedError):
    """The table does not exist yet or holds no rows."""


class QueryError(MmembedError, ValueError):
    """A search query that cannot be run as given."""


class ImageDecodeError(MmembedError):
    """One image file could not be turned into an RGB picture."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class FileChangedError(ImageDecodeError):
    """The file at an indexed path is gone, or is no longer the file that was indexed (another
    size, mtime or content, a symlink that leads elsewhere, not a regular file)."""


class IngestLockedError(MmembedError):
    """Another process holds the ingest lock for this table."""


class StoreError(MmembedError):
    """The LanceDB database or table could not be read or written."""


class StoreWriteError(StoreError):
    """A write to the table failed; ``reason`` is the plain cause, e.g. 'No space left on device'."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
