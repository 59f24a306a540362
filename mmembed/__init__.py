"""mmembed: local-first multimodal (CLIP) embedding, indexing and search.

Example::

    import mmembed
    idx = mmembed.Index(db="./photos.lancedb", model="local-dir:./micro-clip")
    report = idx.ingest("./photos")
    hits = idx.search("cat on sofa", limit=10)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_getattr
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
    StoreWriteError,
)

if TYPE_CHECKING:
    from .config import Config
    from .index import Index, IndexInfo
    from .ingest.report import IngestProgress, IngestReport, SkippedFile
    from .models.encoder import Encoder, ModelSpec
    from .models.fusion import FusionConfig, FusionStrategy
    from .retrieval.query import Hit
    from .sources.decode import load_image

# Loaded on first use: `import mmembed` (and the CLI's quick search path) must not pay
# for pyarrow, lancedb or torch before they are needed.
_LAZY = {
    "Config": "config", "Encoder": "models.encoder", "ModelSpec": "models.encoder",
    "FusionConfig": "models.fusion", "FusionStrategy": "models.fusion", "Index": "index",
    "IndexInfo": "index", "IngestProgress": "ingest.report", "IngestReport": "ingest.report",
    "SkippedFile": "ingest.report", "Hit": "retrieval.query", "load_image": "sources.decode",
}
__getattr__ = lazy_getattr(__name__, _LAZY)

from ._version import __version__  # noqa: E402

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
    "StoreWriteError",
    "__version__",
]


def search(text: str | None = None, *, db: str | None = None, **kwargs: object) -> list[Hit]:
    """Open the index at ``db`` (or ``MMEMBED_DB``) and search it once; see ``Index.search``."""
    index_keys = {"table", "model", "pretrained", "device"}
    index_args = {k: kwargs.pop(k) for k in list(kwargs) if k in index_keys}
    from .index import Index

    return Index(db, one_query=True, **index_args).search(text, **kwargs)  # type: ignore[arg-type]
