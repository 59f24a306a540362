"""Files that failed to decode, remembered by size and mtime, so that an unchanged broken file
is not read again (nor the model loaded for it) on every run.

A plain JSON file beside the table, ``<db>/.<table>.failed.json`` (for a database in object
storage, in the user cache: ``<cache>/remote/<hash of URI and table>/``):
``{"signature": ..., "files": {path: [size, mtime_ns, reason]}}``. The signature names what
decoding depended on (Pillow, its plugins, the size cap): when it changes, every file is
tried again. ``mmembed ingest --retry-failed`` tries them again too.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid

from ..config import cache_dir

__all__ = ["FailedFiles"]


class FailedFiles:
    """The remembered failures of one table."""

    def __init__(self, db: str, table: str, signature: str) -> None:
        local = "://" not in db or db.startswith("file://")
        if local:
            self.path: str | None = os.path.join(db.removeprefix("file://"), f".{table}.failed.json")
        elif db.startswith("s3://"):  # kept on this machine, in the user cache, by the database's URI
            key = hashlib.blake2b(f"{db}\0{table}".encode(), digest_size=8).hexdigest()
            self.path = os.path.join(cache_dir(), "remote", key, f".{table}.failed.json")
        else:
            self.path = None
        self.signature = signature
        self.files: dict[str, list] = {}  # path -> [size, mtime_ns, reason]
        self._loaded: dict[str, list] = {}
        if self.path is None:
            return
        try:
            with open(self.path) as f:
                data = json.load(f)
            if data.get("signature") == signature and isinstance(data.get("files"), dict):
                self._loaded = {p: v for p, v in data["files"].items() if isinstance(v, list) and len(v) == 3}
        except (OSError, ValueError, AttributeError):
            pass  # none yet, or unreadable: every file is simply tried
        self.files = dict(self._loaded)

    def reason(self, path: str, size: int, mtime_ns: int) -> str | None:
        """Why the file failed, if it did and has not changed since."""
        entry = self._loaded.get(path)
        return entry[2] if entry and entry[0] == size and entry[1] == mtime_ns else None

    def remember(self, path: str, size: int, mtime_ns: int, reason: str) -> None:
        self.files[path] = [size, mtime_ns, reason]

    def forget(self, path: str) -> None:
        self.files.pop(path, None)

    def save(self) -> None:
        """Write the file if anything changed (atomically); a failure to write only costs speed."""
        if self.path is None or self.files == self._loaded:
            return
        tmp = f"{self.path}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            if self.files:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                with open(tmp, "w") as f:
                    json.dump({"signature": self.signature, "files": self.files}, f)
                os.replace(tmp, self.path)
            elif os.path.exists(self.path):
                os.remove(self.path)
            self._loaded = dict(self.files)
        except OSError:
            try:
                os.remove(tmp)
            except OSError:
                pass
