"""Zero-shot tags: fidelity to open_clip, accuracy against COCO captions, and speed at 100k rows.

    python benchmarks/tags.py                  # fidelity and accuracy on ../shared/data/photos/coco
    python benchmarks/datasets.py vectors --rows 100000 && python benchmarks/tags.py --speed

Fidelity: the 239 COCO photos ingested with micro-clip at fp32 with open_clip's own
preprocessing (``precision="fp32"``, ``decode="exact"``), tagged with the built-in label set;
every photo's top-1 tag is compared with a direct computation: open_clip's model, its
tokenizer and transform, the same labels and templates, numpy (``top1_agreement``). The same
with mmembed's defaults (int8, fast decode) as ``top1_agreement_defaults``.

Accuracy: of the photos whose COCO captions name at least one label of the set, the share
whose top-1 tag is named in one of their captions (a word match, plurals folded); for the
built-in set and for the 10 CIFAR-10 class names (micro-clip was trained on CIFAR-10).

Speed: ``Index.tag`` with 300 labels (2,100 prompts) on the 100k-row benchmark table
(ViT-B-32 shape, random weights): seconds, split into prompt encoding and the rest.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import COCO, COCO_CAPTIONS, DEFAULT_OUT, MICRO  # noqa: E402


def direct_top1(paths: list[str], labels: tuple[str, ...], templates: tuple[str, ...]) -> list[str]:
    import open_clip
    import torch
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{MICRO}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{MICRO}")
    model.eval()
    with torch.inference_mode():
        prompts = [t.format(label) for label in labels for t in templates]
        text = model.encode_text(tokenizer(prompts)).float().numpy()
        text /= np.linalg.norm(text, axis=1, keepdims=True)
        label_vecs = text.reshape(len(labels), len(templates), -1).mean(axis=1)
        label_vecs /= np.linalg.norm(label_vecs, axis=1, keepdims=True)
        out = []
        for path in paths:
            from PIL import ImageOps

            image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
            vec = model.encode_image(preprocess(image).unsqueeze(0)).float().numpy()[0]
            vec /= np.linalg.norm(vec)
            out.append(labels[int(np.argmax(label_vecs @ vec))])
    return out


CIFAR10 = ("airplane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def mmembed_top1(work: Path, labels: tuple[str, ...] | None = None, **config: str) -> dict[str, str]:
    import mmembed

    idx = mmembed.Index(str(work / f"db-{'-'.join(config.values()) or 'defaults'}"), model=f"local-dir:{MICRO}", **config)
    idx.ingest(COCO)
    idx.tag(labels)
    rows = idx.store.read_columns(["path", "tags"]).to_pylist()
    return {r["path"]: r["tags"][0] for r in rows}


def words(text: str) -> set[str]:
    found = set(re.findall(r"[a-z]+", text.lower()))
    return found | {w[:-1] for w in found if w.endswith("s")}


def accuracy(top1: dict[str, str], labels: tuple[str, ...]) -> dict:
    captions: dict[str, list[str]] = defaultdict(list)
    with open(COCO_CAPTIONS, newline="") as f:
        for row in csv.DictReader(f):
            captions[row["image"]].append(row["caption"])
    named, right = 0, 0
    for path, tag in top1.items():
        caption_words = set().union(*(words(c) for c in captions[Path(path).name])) if captions[Path(path).name] else set()
        in_set = [label for label in labels if set(label.split()) <= caption_words]
        if not in_set:
            continue
        named += 1
        right += set(tag.split()) <= caption_words
    return {"photos_with_a_named_label": named, "top1_named_in_captions": round(right / named, 3) if named else None}


def speed(out: Path) -> dict:
    import mmembed
    from mmembed.models.vocabulary import DEFAULT_LABELS

    idx = mmembed.Index(out / "db", table="rows_100000")
    labels = list(DEFAULT_LABELS[:300])
    started = time.perf_counter()
    idx.embed_text([f"a photo of a {label}." for label in labels[:10]])  # load the text tower first
    load = time.perf_counter() - started
    started = time.perf_counter()
    report = idx.tag(labels)
    return {"rows": report.rows, "labels": report.labels, "prompts": report.labels * 7,
            "seconds": round(time.perf_counter() - started, 1), "text_tower_load_seconds": round(load, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--speed", action="store_true", help="only the 100k-row speed run")
    args = parser.parse_args()
    result: dict = {"date": str(date.today()), "model": "micro-clip"}
    if args.speed:
        result["speed_100k"] = speed(args.out)
        print(json.dumps(result, indent=1))
        return
    from mmembed.models.vocabulary import DEFAULT_LABELS, TEMPLATES

    with tempfile.TemporaryDirectory() as work:
        exact = mmembed_top1(Path(work), precision="fp32", decode="exact")
        defaults = mmembed_top1(Path(work))
        cifar = mmembed_top1(Path(work), CIFAR10, precision="fp32", decode="exact")
    paths = sorted(exact)
    direct = direct_top1(paths, DEFAULT_LABELS, TEMPLATES)
    same = sum(exact[p] == d for p, d in zip(paths, direct))
    same_defaults = sum(defaults.get(p) == d for p, d in zip(paths, direct))
    result.update({"photos": len(paths), "labels": len(DEFAULT_LABELS),
                   "top1_agreement": round(same / len(paths), 4),
                   "top1_agreement_defaults": round(same_defaults / len(paths), 4),
                   "accuracy": accuracy(exact, DEFAULT_LABELS),
                   "accuracy_cifar10_labels": accuracy(cifar, CIFAR10),
                   "most_common_top1": sorted({t: list(exact.values()).count(t) for t in set(exact.values())}.items(),
                                              key=lambda kv: -kv[1])[:8]})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
