"""Zero-shot tags (scoring only; ``ingest/table_tags.py`` writes them): every row's image vector scored against label prompts, as in CLIP's
zero-shot recipe, from the stored vectors (no image is decoded).

A label's vector is the normalised mean of its prompts' vectors (``vocabulary.TEMPLATES``).
For each photo the labels' cosines become probabilities as the model makes them
(``probabilities``: CLIP's softmax over the label set with the model's own logit scale,
SigLIP's sigmoid with its scale and bias); the photo keeps its best label and every other label with a probability of at
least ``threshold``, at most ``MAX_TAGS``, best first. They are stored in the ``tags`` (list
of strings) and ``tag_scores`` (list of probabilities) columns, so ``--where
"array_has(tags, 'beach')"`` and ``search --tag beach`` filter on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from .vocabulary import DEFAULT_LABELS, TEMPLATES

__all__ = ["TagReport", "TagSettings", "LOGIT_SCALE", "probabilities", "MAX_TAGS", "DEFAULT_THRESHOLD", "check_labels",
           "label_vectors", "tags_for"]

LOGIT_SCALE = 100.0  # CLIP's learned temperature, as its zero-shot classifiers use it
MAX_TAGS = 5
DEFAULT_THRESHOLD = 0.1  # softmax probability over the label set
_BLOCK = 8192  # rows scored at once


@dataclass(frozen=True)
class TagSettings:
    """What a table was tagged with; kept with the table so ``ingest --tags`` tags new rows alike."""

    labels: tuple[str, ...] = DEFAULT_LABELS
    templates: tuple[str, ...] = TEMPLATES
    threshold: float = DEFAULT_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TagSettings:
        return cls(tuple(data["labels"]), tuple(data["templates"]), float(data["threshold"]))


@dataclass
class TagReport:
    """What ``Index.tag`` did."""

    rows: int  # rows tagged
    labels: int  # size of the label set
    top: list[tuple[str, int]]  # the most frequent tags and how many rows carry them
    seconds: float = 0.0


def check_labels(labels: Sequence[str] | str | None, threshold: float | None) -> TagSettings:
    """Settings from user input: labels stripped and de-duplicated (a single string is a
    comma-separated list); ConfigError for an empty list or a threshold outside 0..1."""
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not 0.0 <= threshold <= 1.0):
        raise ConfigError(f"--threshold {threshold!r} must be between 0 and 1 (a probability)")
    if labels is None:
        chosen: tuple[str, ...] = DEFAULT_LABELS
    else:
        raw = labels.split(",") if isinstance(labels, str) else list(labels)
        if any(not isinstance(label, str) for label in raw):
            raise ConfigError("labels must be strings, e.g. --labels \"beach,cat,receipt\"")
        chosen = tuple(dict.fromkeys(" ".join(label.split()) for label in raw if label.strip()))
        if not chosen:
            raise ConfigError("the label list is empty; give labels, e.g. --labels \"beach,cat,receipt\" "
                              "(or none, for the built-in set)")
    return TagSettings(chosen, TEMPLATES, DEFAULT_THRESHOLD if threshold is None else float(threshold))


def label_vectors(encode_text: Callable[[list[str]], np.ndarray], settings: TagSettings) -> np.ndarray:
    """(L, D) unit vectors: each label's prompts encoded, normalised, averaged, normalised."""
    prompts = [template.format(label) for label in settings.labels for template in settings.templates]
    vectors = np.asarray(encode_text(prompts), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    per_label = vectors.reshape(len(settings.labels), len(settings.templates), -1).mean(axis=1)
    return per_label / np.linalg.norm(per_label, axis=1, keepdims=True)


def probabilities(cosines: np.ndarray, scores: dict[str, Any] | None = None) -> np.ndarray:
    """Label probabilities from (N, L) cosines as the model itself makes them: CLIP's softmax
    over ``scale * cos`` (``scores`` None: scale 100, CLIP's), SigLIP's sigmoid of
    ``scale * cos + bias`` (each label on its own); ``scores`` as ``Encoder.scores`` gives them."""
    scores = scores or {"kind": "softmax", "scale": LOGIT_SCALE}
    logits = float(scores.get("scale", LOGIT_SCALE)) * np.asarray(cosines, dtype=np.float32)
    if scores.get("kind") == "sigmoid":
        return 1.0 / (1.0 + np.exp(-(logits + float(scores.get("bias", 0.0)))))
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def tags_for(images: np.ndarray, labels: np.ndarray, settings: TagSettings,
             scores: dict[str, Any] | None = None) -> tuple[list[list[str]], list[list[float]]]:
    """Each image's tags (best first) and their probabilities (``probabilities``, the model's own)."""
    names = settings.labels
    out_tags: list[list[str]] = []
    out_scores: list[list[float]] = []
    for start in range(0, len(images), _BLOCK):
        probs = probabilities(np.asarray(images[start:start + _BLOCK], dtype=np.float32) @ labels.T, scores)
        k = min(MAX_TAGS, probs.shape[1])
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        for row, order in zip(probs, top):
            keep = [int(order[0])] + [int(j) for j in order[1:] if row[j] >= settings.threshold]
            out_tags.append([names[j] for j in keep])
            out_scores.append([round(float(row[j]), 4) for j in keep])
    return out_tags, out_scores
