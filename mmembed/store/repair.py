"""Checking a table and bringing back its last good version.

LanceDB keeps a table's versions: each commit writes a new manifest under
``<table>.lance/_versions/``. When the newest manifest is damaged (a disk fault, a copy cut
short), nothing opens the table. ``restore_last_readable`` moves damaged manifests, newest
first, into ``<db>/<table>.mmembed-quarantine/`` until the table opens: the table is then
back at its last good version, and what the discarded versions wrote is gone (an ingest adds
it again). Local tables only.
"""

from __future__ import annotations

import os
import shutil
import time

from ..errors import StoreError
from .snapshot import manifest_versions
from .table import Store

__all__ = ["table_problem", "restore_last_readable", "quarantine_folder"]

_MAX_TRIES = 50  # versions to step back at most


def table_problem(store: Store) -> str | None:
    """Why the table cannot be read (opened, counted, its metadata and ids read), or None."""
    store.reopen()
    try:
        rows = store.count()
        store.meta()
        ids = store.read_columns(["id"])
        if ids.num_rows != rows:
            return f"it counts {rows} rows but {ids.num_rows} can be read"
    except StoreError as exc:
        return str(exc).split("; run `mmembed doctor`")[0]
    return None


def quarantine_folder(store: Store) -> str:
    return os.path.join(store.uri.removeprefix("file://"), f"{store.table_name}.mmembed-quarantine")


def restore_last_readable(store: Store) -> tuple[int | None, list[int]]:
    """Set damaged newest manifests aside until the table reads again.

    Returns (the version the table is now at, or None when no version reads; the versions
    set aside). The manifests set aside are kept in ``quarantine_folder``, not deleted.
    """
    if not store.is_local:
        raise StoreError(f"{store.uri} is not a local folder; restore a version with LanceDB's own tools")
    db = store.uri.removeprefix("file://")
    moved: list[int] = []
    folder = quarantine_folder(store)
    for _ in range(_MAX_TRIES):
        if table_problem(store) is None:
            _drop_stale_hint(db, store.table_name)
            versions = manifest_versions(db, store.table_name)
            return (versions[0][0] if versions else None), moved
        versions = manifest_versions(db, store.table_name)
        if len(versions) <= 1:
            break
        version, path = versions[0]
        os.makedirs(folder, exist_ok=True)
        shutil.move(path, os.path.join(folder, f"{int(time.time())}-{os.path.basename(path)}"))
        moved.append(version)
        store.reopen(reconnect=True)  # LanceDB caches what it read of the table
    return None, moved


def _drop_stale_hint(db: str, table: str) -> None:
    """LanceDB's hint of the latest version may name one set aside; without it, LanceDB lists."""
    hint = os.path.join(db, f"{table}.lance", "_versions", "latest_version_hint.json")
    try:
        os.remove(hint)
    except OSError:
        pass
