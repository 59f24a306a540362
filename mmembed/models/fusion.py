"""Item-level fusion of an image vector with its text vector, in one place for ingest, search and eval.

Strategies (``w`` is the image weight, î and t̂ unit vectors):

- ``mean``: normalize(w·î + (1−w)·t̂), in the shared CLIP space (dimension D), so text and
  image queries hit it directly.
- ``concat``: [√w·î ; √(1−w)·t̂] (dimension 2D, unit norm). A query maps to
  [√a·q_img ; √(1−a)·q_txt] (one query: q_img = q_txt = q), so with a = w a score is
  w·cos(q, î) + (1−w)·cos(q, t̂): a weighted sum of cosines. ``mean`` gives the same sum
  divided by ‖w·î + (1−w)·t̂‖, a per-item factor that grows when the item's image and text
  agree; ``concat`` drops that factor.
- ``attention``: a learned module (``AttentionFusion``): the text attends over (image, text)
  and refines the text vector through a zero-initialised projection before the ``mean`` mix,
  so an untrained module is exactly ``mean``; training moves it away only as far as it helps.

An item without text falls back to its image: î (mean, attention) or [√w·î ; √(1−w)·î] (concat).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelMismatchError

__all__ = [
    "FusionStrategy",
    "FusionConfig",
    "DEFAULT_WEIGHT",
    "TRAIN_EPOCHS",
    "fuse",
    "fuse_query",
    "AttentionFusion",
    "train_attention",
    "save_attention",
    "load_attention",
]

# Image weight w for mean/concat. Chosen on Flickr8k dev with micro-clip by `mmembed eval --sweep`
# (see EVALUATION.md); text carries most of an item's meaning for caption-style queries.
DEFAULT_WEIGHT = 0.2

# Passes over the captioned items when training attention (1024 items a step). On Flickr8k train
# (6,000 items, 800 steps) that is 46-58 s on 2 CPU cores; R@1 on dev kept rising up to here.
TRAIN_EPOCHS = 160


class FusionStrategy(str, Enum):
    MEAN = "mean"
    CONCAT = "concat"
    ATTENTION = "attention"


@dataclass(frozen=True)
class FusionConfig:
    """How an item's image and text vectors become its fused vector."""

    strategy: FusionStrategy = FusionStrategy.MEAN  # mean, concat or attention
    weight: float = DEFAULT_WEIGHT  # image weight w in [0, 1]
    text_aggregate: str = "mean"  # several captions: 'mean' of their vectors, or the 'first'
    attention_id: str | None = None  # fingerprint of the trained attention weights in use

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "strategy", FusionStrategy(self.strategy))
        except ValueError:
            valid = ", ".join(s.value for s in FusionStrategy)
            raise ConfigError(f"fusion {self.strategy!r} is not known; use one of {valid}") from None
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)):
            raise ConfigError(f"fusion weight must be a number between 0 and 1, not {self.weight!r}")
        if not 0.0 <= self.weight <= 1.0:
            raise ConfigError(f"fusion weight {self.weight} must be between 0 and 1")
        if self.text_aggregate not in ("mean", "first"):
            raise ConfigError(f"text aggregate {self.text_aggregate!r} must be 'mean' or 'first'")

    def fused_dim(self, dim: int) -> int:
        return 2 * dim if self.strategy is FusionStrategy.CONCAT else dim

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["strategy"] = self.strategy.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FusionConfig:
        return cls(**{k: data[k] for k in ("strategy", "weight", "text_aggregate", "attention_id") if k in data})


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def aggregate_texts(vectors: np.ndarray, how: str = "mean") -> np.ndarray:
    """One unit text vector from an item's caption vectors (rows)."""
    return _unit(vectors.mean(axis=0)) if how == "mean" else _unit(vectors[0])


def fuse(
    image: np.ndarray,
    text: np.ndarray,
    has_text: np.ndarray,
    config: FusionConfig,
    module: AttentionFusion | None = None,
) -> np.ndarray:
    """Fused vectors (N, F) for items with image vectors (N, D) and text vectors (N, D).

    Rows where ``has_text`` is False ignore ``text`` and fall back to the image.
    """
    image = np.asarray(image, dtype=np.float32)
    text = np.where(has_text[:, None], np.asarray(text, dtype=np.float32), image)
    w = config.weight
    if config.strategy is FusionStrategy.CONCAT:
        return np.concatenate([np.sqrt(w) * image, np.sqrt(1 - w) * text], axis=1).astype(np.float32)
    if config.strategy is FusionStrategy.ATTENTION and module is not None:
        return module.fuse_numpy(image, text, has_text)
    return _unit(w * image + (1 - w) * text)


def fuse_query(
    config: FusionConfig, image_query: np.ndarray | None, text_query: np.ndarray | None, image_weight: float | None = None
) -> np.ndarray:
    """A query in the fused space: for concat, the image part and text part go to their halves."""
    parts = [q for q in (image_query, text_query) if q is not None]
    if not parts:
        raise ValueError("a query needs a text or an image vector")
    if config.strategy is not FusionStrategy.CONCAT:
        a = 0.5 if image_weight is None else image_weight
        if image_query is not None and text_query is not None:
            return _unit(a * image_query + (1 - a) * text_query)
        return _unit(parts[0])
    a = config.weight if image_weight is None else image_weight
    q_img = image_query if image_query is not None else text_query
    q_txt = text_query if text_query is not None else image_query
    return np.concatenate([np.sqrt(a) * _unit(q_img), np.sqrt(1 - a) * _unit(q_txt)]).astype(np.float32)


# ---------------------------------------------------------------- attention

def _torch() -> Any:
    import torch

    return torch


def _build_attention_class() -> type:
    torch = _torch()
    nn = torch.nn
    functional = torch.nn.functional

    class _AttentionFusion(nn.Module):
        """The text token attends over (image, text); the result, through a zero-initialised
        projection, refines the text vector, which is renormalised and mixed with the image at
        the fixed weight w. At initialisation the output is exactly ``mean``; rows without text
        return exactly the image vector. (The mix stays fixed because a learned mix leans on
        images, which look far more reliable on the encoder's own training data.)"""

        def __init__(self, dim: int, weight: float, hidden: int = 64) -> None:
            super().__init__()
            self.dim, self.hidden = dim, hidden
            self.register_buffer("weight", torch.tensor(float(weight)))
            self.modality = nn.Parameter(torch.zeros(2, dim))
            self.norm = nn.LayerNorm(dim)
            self.q, self.k, self.v = nn.Linear(dim, hidden), nn.Linear(dim, hidden), nn.Linear(dim, hidden)
            self.out = nn.Linear(hidden, dim)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

        def forward(self, image: Any, text: Any, has_text: Any) -> Any:
            mask = has_text.to(image.dtype)[:, None]
            text = mask * text + (1 - mask) * image
            x = self.norm(torch.stack([image, text], dim=1) + self.modality)
            attn = (self.q(x[:, 1:2]) @ self.k(x).transpose(1, 2) / self.hidden ** 0.5).softmax(-1)
            text = functional.normalize(text + mask * self.out((attn @ self.v(x))[:, 0]), dim=-1)
            fused = functional.normalize(self.weight * image + (1 - self.weight) * text, dim=-1)
            return torch.where(has_text[:, None], fused, image)

        def fuse_numpy(self, image: np.ndarray, text: np.ndarray, has_text: np.ndarray) -> np.ndarray:
            self.eval()
            with torch.inference_mode():
                out = self(*(torch.from_numpy(np.array(a)) for a in (image, text, has_text)))  # writable copies
            return out.numpy().astype(np.float32)

    return _AttentionFusion


_ATTENTION_CLASS: type | None = None


def AttentionFusion(dim: int, weight: float = DEFAULT_WEIGHT, hidden: int = 64) -> Any:  # noqa: N802
    """Build the attention fusion module (torch is imported only when one is needed)."""
    global _ATTENTION_CLASS
    if _ATTENTION_CLASS is None:
        _ATTENTION_CLASS = _build_attention_class()
    return _ATTENTION_CLASS(dim, weight, hidden)


@dataclass
class TrainStats:
    """What ``train_attention`` did."""

    items: int
    epochs: int
    steps: int
    seconds: float
    final_loss: float


def train_attention(
    image: np.ndarray,
    captions: np.ndarray,
    caption_item: np.ndarray,
    *,
    weight: float = DEFAULT_WEIGHT,
    epochs: int | None = None,
    batch_size: int = 1024,
    lr: float = 3e-3,
    weight_decay: float = 0.05,
    image_mixup: float = 0.7,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[Any, TrainStats]:
    """Train attention fusion contrastively on stored vectors.

    ``image`` (N, D) item image vectors; ``captions`` (M, D) caption vectors; ``caption_item``
    (M,) the item index of each caption; ``epochs`` defaults to ``TRAIN_EPOCHS``. Each step
    takes a batch of items, fuses each item's image with one of its captions (A), and asks
    every *other* caption of the item to retrieve it from among the batch's fused items
    (cross-entropy over the batch, learnable temperature): the search task itself, with the
    whole batch as negatives. Items need at least two captions.

    Large batches (hard negatives at gallery scale) and a long schedule matter for R@1: on
    Flickr8k, 256-item batches with one query per item tie with ``mean``; 1024-item batches
    with every other caption as a query beat it (EVALUATION.md).

    ``image_mixup`` blends each training image vector with a random other one
    (normalize((1−m)·î + m·î_other)): on the encoder's own training data images look far more
    reliable than on new photos, and unblended training learns to lean on them. m = 0.7 was
    the one value chosen on Flickr8k dev (benchmarks/fusion_variants.py).
    """
    torch = _torch()
    functional = torch.nn.functional
    epochs = epochs or TRAIN_EPOCHS
    started = time.perf_counter()
    members, counts = _caption_table(np.asarray(caption_item), len(image))
    items = np.flatnonzero(counts >= 2)
    if len(items) < 8:
        raise ConfigError(
            f"attention training needs items with at least two captions each; found {len(items)} "
            "(give a manifest with several rows per image)"
        )
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    module = AttentionFusion(image.shape[1], weight)
    logit_scale = torch.nn.Parameter(torch.tensor(np.log(20.0), dtype=torch.float32))
    opt = torch.optim.AdamW([*module.parameters(), logit_scale], lr=lr, weight_decay=weight_decay)
    # copies: vectors read from the table are read-only views, which torch warns about
    img_t = torch.from_numpy(np.array(image, dtype=np.float32))
    cap_t = torch.from_numpy(np.array(captions, dtype=np.float32))
    batch_size = min(batch_size, len(items))
    steps_per_epoch = max(1, len(items) // batch_size)
    total = epochs * steps_per_epoch
    sched = lr_schedule(opt, lr, total)
    slots = np.arange(members.shape[1])[None, :]
    module.train()
    loss_value, step = float("nan"), 0
    for epoch in range(epochs):
        order = items[rng.permutation(len(items))]
        for s in range(steps_per_epoch):
            batch = order[s * batch_size:(s + 1) * batch_size]
            n = counts[batch]
            chosen = (rng.random(len(batch)) * n).astype(np.int64)  # caption A's slot, per item
            images = img_t[batch]
            if image_mixup:
                others = img_t[rng.integers(0, len(img_t), len(batch))]
                images = functional.normalize((1 - image_mixup) * images + image_mixup * others, dim=-1)
            fused = module(images, cap_t[members[batch, chosen]], torch.ones(len(batch), dtype=torch.bool))
            is_query = (slots < n[:, None]) & (slots != chosen[:, None])  # every other caption of the item
            owner, slot = np.nonzero(is_query)
            logits = logit_scale.exp().clamp(max=100) * cap_t[members[batch[owner], slot]] @ fused.T
            loss = functional.cross_entropy(logits, torch.from_numpy(owner))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_value = float(loss.detach())
        if progress:
            progress(epoch + 1, epochs, loss_value)
    module.eval()
    return module, TrainStats(len(items), epochs, step, time.perf_counter() - started, loss_value)


def lr_schedule(opt: Any, lr: float, total_steps: int) -> Any:
    """One-cycle (10 % warm-up, cosine decay) for runs of 20+ steps; a constant rate for shorter ones,
    which one-cycle cannot schedule."""
    torch = _torch()
    if total_steps < 20:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=0.1)


def _caption_table(caption_item: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(members, counts): ``members[i, :counts[i]]`` are the caption rows of item i."""
    counts = np.bincount(caption_item, minlength=n_items)
    members = np.zeros((n_items, max(1, int(counts.max(initial=0)))), dtype=np.int64)
    order = np.argsort(caption_item, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(order)) - starts[caption_item[order]]
    members[caption_item[order], slot] = order
    return members, counts


def save_attention(module: Any, encoder_fingerprint: str) -> bytes:
    """Safetensors bytes of the module, with its shape and the encoder it was trained for."""
    from safetensors.torch import save

    meta = {"dim": str(module.dim), "hidden": str(module.hidden),
            "weight": repr(float(module.weight)), "encoder_fingerprint": encoder_fingerprint}
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    return save(state, metadata=meta)


def load_attention(blob: bytes, encoder_fingerprint: str) -> Any:
    """Rebuild a module from ``save_attention`` bytes; refuses weights trained for another encoder."""
    from safetensors.torch import load

    meta = _safetensors_metadata(blob)
    if meta.get("encoder_fingerprint") != encoder_fingerprint:
        raise ModelMismatchError(
            f"these attention fusion weights were trained for encoder {meta.get('encoder_fingerprint')}, "
            f"not {encoder_fingerprint}; retrain with `mmembed fusion train`"
        )
    module = AttentionFusion(int(meta["dim"]), float(meta["weight"]), int(meta["hidden"]))
    module.load_state_dict(load(blob))
    module.eval()
    return module


def _safetensors_metadata(blob: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (an 8-byte length, then a JSON header)."""
    size = int.from_bytes(blob[:8], "little")
    try:
        return json.loads(blob[8 : 8 + size]).get("__metadata__") or {}
    except (ValueError, UnicodeDecodeError):
        raise ConfigError("stored attention fusion weights are damaged; retrain with `mmembed fusion train`") from None


def fingerprint_blob(blob: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(blob).hexdigest()[:16]
