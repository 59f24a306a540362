"""mmembed: local-first multimodal (CLIP) embedding, indexing and search.

Example::

    import mmembed
    idx = mmembed.Index(db="./photos.lancedb", model="local-dir:./micro-clip")
    report = idx.ingest("./photos")
    hits = idx.search("cat on sofa", limit=10)
"""

from __future__ import annotations

from .config import Config
from .encoders import Encoder, ModelSpec
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
from .fusion import FusionConfig, FusionStrategy
from .index import Index, IndexInfo
from .ingest import IngestProgress, IngestReport, SkippedFile
from .search import Hit
from .sources import load_image

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
    return Index(db, **index_args).search(text, **kwargs)  # type: ignore[arg-type]
