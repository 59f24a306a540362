"""Answering queries: check and encode them, find the nearest rows (LanceDB or the snapshot), and measure recall."""

from __future__ import annotations

from .._lazy import lazy_getattr

_EXPORTS = {
    "SearchOptions": "query",
    "Hit": "query", "TARGETS": "query", "run_search": "exact", "QuickSearch": "quick",
    "quick_search": "quick", "evaluate": "evaluation",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
