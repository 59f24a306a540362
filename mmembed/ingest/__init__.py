"""Bringing a table in step with folders: plan what changed, read and decode in threads, encode, fuse and write in batches."""

from __future__ import annotations

from .._lazy import lazy_getattr

_EXPORTS = {
    "IngestOptions": "options",
    "run_ingest": "pipeline", "run_ingest_ray": "ray", "IngestReport": "report", "IngestProgress": "report",
    "SkippedFile": "report", "ImageDecoder": "prepare", "refuse_table": "table_fusion",
    "train_on_table": "table_fusion", "WatchOptions": "watch", "WatchEvent": "watch", "run_watch": "watch",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
