"""Retrieval metrics for ``mmembed eval``: text->image and image->text recall, and the fusion protocol.

Fusion protocol: item i = image i + caption #1 of image i; queries are captions #2..#5; a
query hits when its own item ranks within the top K. Recall is reported in percent.
Ranks count strictly better candidates, so ties favour the correct answer.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..models.fusion import FusionConfig, FusionStrategy, fuse, fuse_query

__all__ = ["CaptionSet", "load_caption_set", "recall", "text_to_image", "image_to_text", "fusion_protocol"]

KS = (1, 5, 10)


@dataclass
class CaptionSet:
    """Images of a folder with their captions, in the order of the captions file."""

    images: list[str]  # absolute image paths, one per distinct image
    captions: list[str]
    caption_image: np.ndarray  # (M,) index into images for each caption


def load_caption_set(folder: str | os.PathLike[str], captions_csv: str | os.PathLike[str]) -> CaptionSet:
    """Read an ``image,caption`` CSV (several rows per image) whose image names are relative to ``folder``."""
    folder, path = Path(folder), Path(captions_csv)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder; give the folder that holds the captions file's images")
    if not path.is_file():
        raise ConfigError(f"{path}: captions file not found; give an image,caption CSV")
    index: dict[str, int] = {}
    images: list[str] = []
    captions: list[str] = []
    owner: list[int] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = {name.lower(): name for name in reader.fieldnames or []}
        if "image" not in fields or "caption" not in fields:
            raise ConfigError(f"{path}: needs 'image' and 'caption' columns; found {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            name, caption = row[fields["image"]], row[fields["caption"]]
            image = str((folder / name).resolve())
            if image not in index:
                if not os.path.isfile(image):
                    raise ConfigError(f"{path}:{line}: image {name} not found in {folder}")
                index[image] = len(images)
                images.append(image)
            captions.append(caption)
            owner.append(index[image])
    if not images:
        raise ConfigError(f"{path}: no rows")
    return CaptionSet(images, captions, np.asarray(owner))


def recall(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    return {f"R@{k}": round(float((ranks < k).mean() * 100), 2) for k in ks}


def _ranks(sims: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """For each row, how many columns score strictly above the correct column."""
    target = sims[np.arange(len(sims)), correct][:, None]
    return (sims > target).sum(axis=1)


def text_to_image(image: np.ndarray, captions: np.ndarray, caption_image: np.ndarray) -> dict[str, float]:
    return recall(_ranks(captions @ image.T, caption_image))


def image_to_text(image: np.ndarray, captions: np.ndarray, caption_image: np.ndarray) -> dict[str, float]:
    """An image hits when any of its captions ranks within the top K."""
    sims = image @ captions.T
    best = np.full(len(image), np.iinfo(np.int64).max)
    for j, i in enumerate(caption_image):
        rank = int((sims[i] > sims[i, j]).sum())
        best[i] = min(best[i], rank)
    return recall(best)


def protocol_split(caption_image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first caption index per image, query caption indices, their image index)."""
    first: dict[int, int] = {}
    queries = []
    for j, i in enumerate(caption_image.tolist()):
        if i in first:
            queries.append(j)
        else:
            first[i] = j
    item_caption = np.array([first[i] for i in range(len(first))])
    q = np.array(queries)
    return item_caption, q, caption_image[q]


def fusion_protocol(
    image: np.ndarray,
    captions: np.ndarray,
    caption_image: np.ndarray,
    *,
    weight: float,
    attention: Any | None = None,
) -> dict[str, dict[str, float]]:
    """R@K of the fusion protocol for image-only, text-only, mean, concat and (if given) attention items."""
    item_caption, queries, owner = protocol_split(caption_image)
    item_text = captions[item_caption]
    has_text = np.ones(len(image), dtype=bool)
    q = captions[queries]
    out: dict[str, dict[str, float]] = {
        "image_only": recall(_ranks(q @ image.T, owner)),
        "text_only": recall(_ranks(q @ item_text.T, owner)),
    }
    strategies = [FusionStrategy.MEAN, FusionStrategy.CONCAT] + ([FusionStrategy.ATTENTION] if attention is not None else [])
    for strategy in strategies:
        config = FusionConfig(strategy, weight)
        items = fuse(image, item_text, has_text, config, attention)
        mapped = np.stack([fuse_query(config, None, row) for row in q])
        out[strategy.value] = recall(_ranks(mapped @ items.T, owner))
    return out


def encode_caption_set(encoder: Any, data: CaptionSet, max_megapixels: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """(image vectors, caption vectors) for a caption set; images decoded exactly as ingest does."""
    return encoder.encode_images(data.images, max_megapixels=max_megapixels), encoder.encode_text(data.captions)


def evaluate(
    encoder: Any,
    folder: str | os.PathLike[str],
    captions_csv: str | os.PathLike[str],
    *,
    weight: float | None = None,
    train_folder: str | os.PathLike[str] | None = None,
    train_captions: str | os.PathLike[str] | None = None,
    epochs: int | None = None,
    seed: int = 0,
    sweep: Sequence[float] = (),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Everything ``mmembed eval`` prints: retrieval R@K, the fusion protocol, optional attention
    trained on another split, and an optional sweep of the fusion weight. ``progress`` gets a
    line of text for each step, and about ten during attention training."""
    import time

    from ..models.fusion import DEFAULT_WEIGHT, train_attention

    weight = DEFAULT_WEIGHT if weight is None else weight
    started = time.perf_counter()
    say = progress or (lambda line: None)
    data = load_caption_set(folder, captions_csv)
    say(f"encoding {len(data.images)} images and {len(data.captions)} captions of {folder}")
    image, caps = encode_caption_set(encoder, data)
    result: dict[str, Any] = {
        "model": encoder.spec.label,
        "images": len(data.images),
        "captions": len(data.captions),
        "weight": weight,
        "text_to_image": text_to_image(image, caps, data.caption_image),
        "image_to_text": image_to_text(image, caps, data.caption_image),
    }
    attention = None
    if train_folder is not None:
        if train_captions is None:
            raise ConfigError("--train needs --train-captions CSV as well")
        train = load_caption_set(train_folder, train_captions)
        say(f"encoding {len(train.images)} images and {len(train.captions)} captions of {train_folder}")
        t_image, t_caps = encode_caption_set(encoder, train)

        def epoch_line(epoch: int, total: int, loss: float) -> None:
            if epoch == total or epoch % max(1, total // 10) == 0:
                say(f"attention training: epoch {epoch}/{total}  loss {loss:.4f}")

        attention, stats = train_attention(t_image, t_caps, train.caption_image, weight=weight, epochs=epochs,
                                           seed=seed, progress=epoch_line)
        result["attention_training"] = {"images": len(train.images), "captions": len(train.captions),
                                        "epochs": stats.epochs, "seconds": round(stats.seconds, 2)}
    result["fusion_protocol"] = fusion_protocol(image, caps, data.caption_image, weight=weight, attention=attention)
    if sweep:
        result["weight_sweep"] = {
            f"{w:g}": {k: v["R@1"] for k, v in fusion_protocol(image, caps, data.caption_image, weight=w).items()
                        if k in ("mean", "concat")}
            for w in sweep
        }
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result
