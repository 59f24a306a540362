"""``mmembed doctor``: check a table and what is derived from it, and mend what can be mended.

Derived data (the search snapshot, the exported text tower) and a staging table left by a
killed ``--reindex`` are always put right: nothing is lost by it. A table whose newest
version cannot be read is brought back to its last good version only with ``repair``,
because the rows the damaged versions wrote are dropped with them (an ingest adds them
again); without it, doctor says what it would do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .config import Config
from .errors import StoreError, StoreWriteError
from .store.derived import Derived
from .store.repair import quarantine_folder, restore_last_readable, table_problem
from .store.table import Store

__all__ = ["Finding", "run_doctor"]


@dataclass(frozen=True)
class Finding:
    """One check: ``status`` is 'ok', 'repaired' or 'problem' (then ``detail`` says what to do)."""

    check: str
    status: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_doctor(store: Store, derived: Derived, config: Config, *, finish_fusion: Callable[[], int],
               repair: bool = False) -> list[Finding]:
    """Check ``store`` and what ``derived`` keeps from it; ``finish_fusion`` completes a fusion
    apply that was cut short. The caller holds the table's write lock."""
    findings = [_staging(store)]
    table = _table(store, repair)
    findings.append(table)
    if table.status == "problem" or not store.exists():
        return findings
    findings.append(_rows(store))
    findings.append(_fusion(store, finish_fusion, repair))
    findings += _derived(store, derived, config)
    return findings


def _staging(store: Store) -> Finding:
    staging = Store(store.uri, f"{store.table_name}__staging")
    if not staging.exists():
        return Finding("staging", "ok", "no table left by an interrupted --reindex")
    staging.drop()
    return Finding("staging", "repaired", f"removed '{staging.table_name}', left by an interrupted --reindex")


def _table(store: Store, repair: bool) -> Finding:
    if not store.exists():
        return Finding("table", "ok", f"no table '{store.table_name}' yet in {store.uri}")
    problem = table_problem(store)
    if problem is None:
        return Finding("table", "ok", f"{store.count()} rows, version {store.table.version}")
    if not repair:
        return Finding("table", "problem", f"{problem}; run `mmembed doctor --repair` to go back to the last "
                       "version that reads (rows written since are dropped; rerun ingest to add them)")
    version, moved = restore_last_readable(store)
    if version is None:
        return Finding("table", "problem", f"{problem}; no earlier version reads either: rebuild it with "
                       "`mmembed ingest PATH --reindex`")
    return Finding("table", "repaired", f"restored version {version} ({store.count()} rows); damaged version(s) "
                   f"{', '.join(map(str, moved))} set aside in {quarantine_folder(store)}; rerun ingest to add "
                   "what they held")


def _rows(store: Store) -> Finding:
    frames = "frame_time" in store.table.schema.names  # a video's frames share its path, one row a frame
    state = store.read_columns(["id", "path", *(["frame_time"] if frames else [])])
    ids, paths = state.column("id").to_pylist(), state.column("path").to_pylist()
    places = list(zip(paths, state.column("frame_time").to_pylist())) if frames else paths
    doubled = len(ids) - len(set(ids)) + len(places) - len(set(places))
    if doubled:
        return Finding("rows", "problem", f"{doubled} repeated ids or paths; rebuild with `mmembed ingest PATH --reindex`")
    return Finding("rows", "ok", f"{len(ids)} rows, each id and path once")


def _fusion(store: Store, finish_fusion: Callable[[], int], repair: bool) -> Finding:
    meta = store.meta()
    if not meta.fusion_pending:  # type: ignore[union-attr]
        return Finding("fusion", "ok", f"fused vectors match the table's settings {meta.fusion}")  # type: ignore[union-attr]
    if not repair:
        return Finding("fusion", "problem", "a fusion apply did not finish; run `mmembed fusion apply` "
                       "(or `mmembed doctor --repair`)")
    rows = finish_fusion()
    return Finding("fusion", "repaired", f"finished the interrupted fusion apply ({rows} rows)")


def _derived(store: Store, derived: Derived, config: Config) -> list[Finding]:
    """The snapshot and the text tower, checked by loading them, and written again if needed."""
    from .retrieval.quick import QuickSearch

    fingerprint = store.meta().fingerprint  # type: ignore[union-attr]
    snapshot_ok = derived.snapshot_reads()
    tower_ok = QuickSearch(config.db, config.table, precision=config.precision).tower(fingerprint) is not None
    try:
        derived.refresh(force=not snapshot_ok, strict=True)
    except StoreError as exc:  # a failed write is the disk's; anything else is mmembed's own failure
        advice = ("free space or fix permissions, then rerun doctor" if isinstance(exc, StoreWriteError) or
                  isinstance(exc.__cause__, OSError) else
                  "searches take LanceDB's path meanwhile; please report this message as a bug")
        return [Finding("derived", "problem", f"{exc}; {advice}")]
    fresh = QuickSearch(config.db, config.table, precision=config.precision)  # loads the tower anew
    out = []
    for name, was_ok, is_ok in (
        ("snapshot", snapshot_ok, derived.snapshot_reads()),
        ("text tower", tower_ok, fresh.tower(fingerprint) is not None),
    ):
        if was_ok:
            out.append(Finding(name, "ok", "current and readable"))
        elif is_ok:
            out.append(Finding(name, "repaired", "written again"))
        else:
            out.append(Finding(name, "ok", "none for this table (searches take the LanceDB path)"))
    return out
