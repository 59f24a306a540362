"""mmembed: local-first multimodal (CLIP) embedding, indexing and search.

Example::

    import mmembed
    idx = mmembed.Index(db="./photos.lancedb", model="local-dir:./micro-clip")
    report = idx.ingest("./photos")
    hits = idx.search("cat on sofa", limit=10)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    ImageDecodeError,
    IndexEmptyError,
    IngestLockedError,
    MmembedError,
    ModelLoadError,
    ModelMismatchError,
    QueryError,
    StoreError,
)

if TYPE_CHECKING:
    from .config import Config
    from .encoders import Encoder, ModelSpec
    from .fusion import FusionConfig, FusionStrategy
    from .index import Index, IndexInfo
    from .ingest import IngestProgress, IngestReport, SkippedFile
    from .query import Hit
    from .sources import load_image

# Loaded on first use: `import mmembed` (and the CLI's quick search path) must not pay
# for pyarrow, lancedb or torch before they are needed.
_LAZY = {
    "Config": "config", "Encoder": "encoders", "ModelSpec": "encoders", "FusionConfig": "fusion",
    "FusionStrategy": "fusion", "Index": "index", "IndexInfo": "index", "IngestProgress": "ingest",
    "IngestReport": "ingest", "SkippedFile": "ingest", "Hit": "query", "load_image": "sources",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmembed' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "Config",
    "Encoder",
    "ModelSpec",
    "FusionConfig",
    "FusionStrategy",
    "Index",
    "IndexInfo",
    "IngestReport",
    "IngestProgress",
    "SkippedFile",
    "Hit",
    "load_image",
    "search",
    "MmembedError",
    "ConfigError",
    "ModelLoadError",
    "ModelMismatchError",
    "IndexEmptyError",
    "QueryError",
    "ImageDecodeError",
    "IngestLockedError",
    "StoreError",
    "__version__",
]


def search(text: str | None = None, *, db: str | None = None, **kwargs: object) -> list[Hit]:
    """Open the index at ``db`` (or ``MMEMBED_DB``) and search it once; see ``Index.search``."""
    index_keys = {"table", "model", "pretrained", "device"}
    index_args = {k: kwargs.pop(k) for k in list(kwargs) if k in index_keys}
    from .index import Index

    return Index(db, **index_args).search(text, **kwargs)  # type: ignore[arg-type]
