"""Queries: text or an image (or both) -> one unit vector -> nearest rows -> ``Hit`` objects."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import ImageDecodeError, IndexEmptyError, QueryError
from .sources import load_image
from .store import Store

__all__ = ["Hit", "query_vector", "run_search"]


@dataclass(frozen=True)
class Hit:
    """One search result. ``score`` is the cosine similarity: higher is better, at most 1."""

    path: str
    score: float
    id: str
    width: int | None = None
    height: int | None = None
    format: str | None = None
    size: int | None = None
    text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def query_vector(
    encoder: Any,
    text: str | None = None,
    image: str | os.PathLike[str] | None = None,
    *,
    max_megapixels: float = 100.0,
) -> np.ndarray:
    """Encode a query into one unit vector.

    Text and an image together give the normalised sum of their unit vectors (equal
    weights). The image is decoded exactly as ingest decodes files.
    """
    text = check_query(text, image)
    parts = []
    if text:
        parts.append(encoder.encode_text([text])[0])
    if image is not None:
        path = os.fspath(image)
        try:
            decoded = load_image(path, max_megapixels=max_megapixels)
        except ImageDecodeError as exc:
            raise QueryError(f"query image {exc.path}: {exc.reason}") from None
        parts.append(encoder.encode_images([decoded.image])[0])
    vector = np.sum(parts, axis=0)
    return (vector / max(np.linalg.norm(vector), 1e-12)).astype(np.float32)


def check_query(text: str | None, image: str | os.PathLike[str] | None) -> str | None:
    """Reject an empty query or a missing query image before any model is loaded."""
    text = text.strip() if isinstance(text, str) else None
    if not text and image is None:
        raise QueryError("empty query; give search text, or --image PATH")
    if image is not None and not os.path.isfile(os.fspath(image)):
        raise QueryError(f"{os.fspath(image)}: query image not found; check the path")
    return text or None


def run_search(
    store: Store,
    encoder: Any,
    text: str | None = None,
    *,
    image: str | os.PathLike[str] | None = None,
    limit: int = 10,
    where: str | None = None,
    max_megapixels: float = 100.0,
) -> list[Hit]:
    """Search the table's image vectors; see ``Index.search``."""
    if not isinstance(limit, int) or limit < 1:
        raise QueryError(f"limit must be at least 1, got {limit!r}")
    if where is not None and not where.strip():
        raise QueryError("--where is empty; give a SQL filter such as \"format = 'JPEG'\"")
    check_query(text, image)
    if store.count() == 0:
        raise IndexEmptyError(
            f"the index in {store.uri} (table '{store.table_name}') is empty; "
            "run `mmembed ingest PATH` first"
        )
    vector = query_vector(encoder, text, image, max_megapixels=max_megapixels)
    rows = store.nearest(vector, limit=limit, where=where)
    return [
        Hit(
            path=r["path"], score=r["score"], id=r["id"], width=r.get("width"),
            height=r.get("height"), format=r.get("format"), size=r.get("size"), text=r.get("text"),
        )
        for r in rows
    ]
