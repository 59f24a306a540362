"""Where vectors live: the LanceDB table with its metadata and write lock, and the plain-file snapshot quick search reads."""

from __future__ import annotations

from .._lazy import lazy_getattr

_EXPORTS = {
    "Store": "table", "TableMeta": "table", "SCHEMA_VERSION": "table", "Snapshot": "snapshot",
    "vector_matrix": "vectors",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
