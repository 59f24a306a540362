"""Where vectors live: the LanceDB table with its metadata and write lock, the plain-file snapshot quick search reads, and what is derived from the table."""

from __future__ import annotations

from .._lazy import lazy_getattr

_EXPORTS = {
    "Store": "table", "TableMeta": "table", "SCHEMA_VERSION": "table", "Snapshot": "snapshot",
    "vector_matrix": "vectors", "Derived": "derived",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
