"""Queries: words, an image, or both (with negatives) -> a query vector -> nearest rows -> ``Hit``.

How a composite query is scored (all vectors unit length; ``a`` = image weight, default 0.5;
``λ`` = negative weight, default 0.5):

1. Text: ``t`` = normalise(mean of the vectors of the positive terms). A query string may hold
   several terms: ``"red car + night - blurry"`` has positives ``red car``, ``night`` and the
   negative ``blurry``; ``--not TEXT`` adds negatives too. ``n`` = normalise(mean of the
   negative vectors).
2. ``q`` = normalise(a·i + (1−a)·t) with an image ``i`` and text, else whichever is given;
   then ``q`` = normalise(q − λ·n) when there are negatives.
3. Targets ``image``, ``text`` and ``fused`` (mean or attention fusion) score cos(q, column).
   ``fused`` with concat fusion instead maps the query to [√a·q_img ; √(1−a)·q_txt], where
   q_img comes from the image (or the text, if no image) and q_txt from the text (or the
   image), each minus λ·n and normalised, and ``a`` defaults to the table's fusion weight
   ``w``: the score is then w·cos(q_img, î) + (1−w)·cos(q_txt, t̂).

Every hit also carries ``image_score`` = cos(query, image vector) and ``text_score`` =
cos(query, text vector) (None without text), the parts a person reads to see why it matched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import ImageDecodeError, IndexEmptyError, QueryError
from .fusion import FusionStrategy
from .sources import load_image
from .store import Store

__all__ = ["Hit", "Query", "parse_terms", "run_search", "TARGETS"]

TARGETS = ("image", "text", "fused")
_TERM_SPLIT = re.compile(r"\s+([+-])\s+")
_CORE = {"id", "path", "size", "mtime_ns", "content_hash", "width", "height", "format", "ingested_at",
         "image_vector", "text", "texts", "text_source", "text_hash", "embedded_texts", "manifest_texts",
         "text_vector", "score"}


@dataclass(frozen=True)
class Hit:
    """One search result. ``score`` is the cosine similarity used for ranking (higher is better)."""

    path: str
    score: float
    id: str
    width: int | None = None
    height: int | None = None
    format: str | None = None
    size: int | None = None
    text: str | None = None  # the item's caption (first text)
    text_source: str | None = None  # where the caption came from
    image_score: float | None = None  # cosine of the query with the image vector
    text_score: float | None = None  # cosine of the query with the text vector; None without text
    target: str = "image"  # the vector column that was searched
    extra: dict[str, Any] = field(default_factory=dict)  # manifest columns

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**data, **{k: v for k, v in extra.items() if k not in data}}


def parse_terms(text: str | None) -> tuple[list[str], list[str]]:
    """Split ``"a + b - c"`` into positives [a, b] and negatives [c] (signs need spaces around them)."""
    if not text or not text.strip():
        return [], []
    parts = _TERM_SPLIT.split(" " + text.strip())
    positives, negatives = [], []
    sign = "+"
    for part in parts:
        if part in ("+", "-"):
            sign = part
            continue
        if part.strip():
            (positives if sign == "+" else negatives).append(part.strip())
    return positives, negatives


@dataclass
class Query:
    """A checked query: its terms, image, and weights."""

    positives: list[str]
    negatives: list[str]
    image: str | None
    image_weight: float | None
    negative_weight: float


def check_query(text: str | None, image: str | os.PathLike[str] | None, negatives: Sequence[str] = (),
                image_weight: float | None = None, negative_weight: float = 0.5) -> Query:
    """Reject an empty query, a missing query image or a bad weight before any model is loaded."""
    positives, minus = parse_terms(text)
    if not positives and image is None:
        raise QueryError("empty query; give search text, or --image PATH")
    if image is not None and not os.path.isfile(os.fspath(image)):
        raise QueryError(f"{os.fspath(image)}: query image not found; check the path")
    if image_weight is not None and not 0.0 <= image_weight <= 1.0:
        raise QueryError(f"--image-weight {image_weight} must be between 0 and 1")
    if not 0.0 <= negative_weight <= 1.0:
        raise QueryError(f"negative weight {negative_weight} must be between 0 and 1")
    negatives = [*minus, *(n.strip() for n in negatives if n and n.strip())]
    return Query(positives, negatives, os.fspath(image) if image is not None else None, image_weight, negative_weight)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def query_vectors(encoder: Any, query: Query, max_megapixels: float = 100.0) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(image vector, text vector, negative vector), each unit length or None."""
    texts = query.positives + query.negatives
    vecs = encoder.encode_text(texts) if texts else np.zeros((0, 0), np.float32)
    pos = _unit(vecs[: len(query.positives)].mean(axis=0)) if query.positives else None
    neg = _unit(vecs[len(query.positives):].mean(axis=0)) if query.negatives else None
    img = None
    if query.image is not None:
        try:
            decoded = load_image(query.image, max_megapixels=max_megapixels)
        except ImageDecodeError as exc:
            raise QueryError(f"query image {exc.path}: {exc.reason}") from None
        img = encoder.encode_images([decoded.image])[0]
    return img, pos, neg


def run_search(
    store: Store,
    vectorizer: Any,
    text: str | None = None,
    *,
    image: str | os.PathLike[str] | None = None,
    limit: int = 10,
    where: str | None = None,
    target: str | None = None,
    image_weight: float | None = None,
    negatives: Sequence[str] = (),
    negative_weight: float = 0.5,
    max_megapixels: float = 100.0,
) -> list[Hit]:
    """Search the table; see the module docstring for the scoring."""
    if not isinstance(limit, int) or limit < 1:
        raise QueryError(f"limit must be at least 1, got {limit!r}")
    if where is not None and not where.strip():
        raise QueryError("--where is empty; give a SQL filter such as \"format = 'JPEG'\"")
    if target is not None and target not in TARGETS:
        raise QueryError(f"target {target!r} is not one of {', '.join(TARGETS)}")
    query = check_query(text, image, negatives, image_weight, negative_weight)
    if store.count() == 0:
        raise IndexEmptyError(
            f"the index in {store.uri} (table '{store.table_name}') is empty; run `mmembed ingest PATH` first"
        )
    captioned = store.count_where("text_vector IS NOT NULL")
    target = target or ("fused" if captioned else "image")
    if target == "text" and not captioned:
        raise QueryError("no item in this index has text; ingest captions (sidecars, metadata or --captions) first")
    if target == "fused" and store.meta().fusion_pending:  # type: ignore[union-attr]
        raise QueryError(
            "a fusion apply on this index did not finish; run `mmembed fusion apply` again "
            "(or search with --target image meanwhile)"
        )
    img, txt, neg = query_vectors(vectorizer.encoder, query, max_megapixels)
    config = vectorizer.config
    lam = query.negative_weight

    def minus_neg(v: np.ndarray) -> np.ndarray:
        return _unit(v - lam * neg) if neg is not None else v

    if img is not None and txt is not None:
        a = 0.5 if query.image_weight is None else query.image_weight
        q = minus_neg(_unit(a * img + (1 - a) * txt))
    else:
        q = minus_neg(img if img is not None else txt)  # type: ignore[arg-type]
    q_img = minus_neg(img if img is not None else txt)  # type: ignore[arg-type]
    q_txt = minus_neg(txt if txt is not None else img)  # type: ignore[arg-type]
    concat = target == "fused" and config.strategy is FusionStrategy.CONCAT
    if concat:
        a = config.weight if query.image_weight is None else query.image_weight
        search_vector = np.concatenate([np.sqrt(a) * q_img, np.sqrt(1 - a) * q_txt]).astype(np.float32)
    else:
        q_img = q_txt = q
        search_vector = q
    column = {"image": "image_vector", "text": "text_vector", "fused": "fused_vector"}[target]
    filters = [f"({where})"] if where else []
    if target == "text":
        filters.append("text_vector IS NOT NULL")
    rows = store.nearest(search_vector, column=column, limit=limit, where=" AND ".join(filters) or None)
    return [_hit(r, target, q_img, q_txt) for r in rows]


def _hit(row: dict[str, Any], target: str, q_img: np.ndarray, q_txt: np.ndarray) -> Hit:
    image_vec = row.get("image_vector")
    text_vec = row.get("text_vector")
    return Hit(
        path=row["path"], score=row["score"], id=row["id"], width=row.get("width"),
        height=row.get("height"), format=row.get("format"), size=row.get("size"), text=row.get("text"),
        text_source=row.get("text_source"),
        image_score=float(np.dot(q_img, image_vec)) if image_vec is not None else None,
        text_score=float(np.dot(q_txt, text_vec)) if text_vec is not None else None,
        target=target,
        extra={k: v for k, v in row.items() if k not in _CORE and not k.startswith("_")},
    )
