"""Answering queries: parse place and time phrases out of them, check and encode them, find the nearest rows (LanceDB or the snapshot), and measure recall."""

from __future__ import annotations

from .._lazy import lazy_getattr

_EXPORTS = {
    "SearchOptions": "query",
    "Hit": "query", "TARGETS": "query", "run_search": "exact", "QuickSearch": "quick",
    "quick_search": "searcher", "evaluate": "evaluation",
    "ParsedQuery": "phrases", "PlaceFilter": "phrases", "PlaceNames": "phrases", "parse_query": "phrases",
    "NearFilter": "near", "parse_near": "near",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
