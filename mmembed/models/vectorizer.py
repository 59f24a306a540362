"""An item's vectors from its words: text vectors (aggregated per item), fused vectors, and
the text hash that says when they must be made again.

The hash covers the texts and how they are aggregated, so a changed caption re-encodes only
the text and the fused vector, never the image.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .fusion import FusionConfig, FusionStrategy, aggregate_texts, fuse

__all__ = ["Vectorizer", "text_hash"]


def text_hash(texts: Sequence[str], config: FusionConfig) -> str | None:
    if not texts:
        return None
    payload = json.dumps([list(texts), config.text_aggregate], ensure_ascii=False)
    return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


class Vectorizer:
    """Text vectors (aggregated per item) and fused vectors, for one encoder and fusion setting."""

    def __init__(self, encoder: Any, config: FusionConfig, attention: Any | None = None) -> None:
        if config.strategy is FusionStrategy.ATTENTION and attention is None:
            raise ConfigError("attention fusion needs trained weights; run `mmembed fusion train` first")
        self.encoder = encoder
        self.config = config
        self.attention = attention

    def text_vectors(self, items: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(N, D) aggregated unit text vectors and an (N,) has-text mask; one batched encode."""
        unique = sorted({t for texts in items for t in texts})
        dim = self.encoder.dim
        out = np.zeros((len(items), dim), dtype=np.float32)
        has = np.array([bool(t) for t in items])
        if unique:
            vectors = dict(zip(unique, self.encoder.encode_text(unique)))
            for i, texts in enumerate(items):
                if texts:
                    out[i] = aggregate_texts(np.stack([vectors[t] for t in texts]), self.config.text_aggregate)
        return out, has

    def fuse(self, image: np.ndarray, text: np.ndarray, has_text: np.ndarray) -> np.ndarray:
        return fuse(image, text, has_text, self.config, self.attention)
