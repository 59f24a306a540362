"""The semantic tier: the really-trained micro-clip on Flickr8k dev (1000 images, 5 captions each).

The model is small (dev text->image R@10 is about 16 %), so these check wiring, not quality:
queries must beat chance by a wide margin, and our ranking must equal open_clip's own.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import mmembed

from conftest import shared_path

QUERIES = {
    "a dog running on grass": ("dog",),
    "children playing in the water": ("water", "pool", "swim", "ocean", "beach", "splash", "lake", "wave"),
}


@pytest.fixture(scope="module")
def dev_index(tmp_path_factory: pytest.TempPathFactory, micro_clip: str) -> mmembed.Index:
    dev = shared_path("data/flickr8k/dev")
    idx = mmembed.Index(str(tmp_path_factory.mktemp("sem") / "dev.lancedb"), model=micro_clip, batch_size=64)
    report = idx.ingest(dev)
    assert report.added == 1000 and report.skipped == [] and report.rows == 1000
    return idx


@pytest.fixture(scope="module")
def captions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    with open(shared_path("data/flickr8k/dev_captions.csv"), newline="") as f:
        for row in csv.DictReader(f):
            out[row["image"]].append(row["caption"].lower())
    return out


def mentions(caps: list[str], words: tuple[str, ...]) -> bool:
    return any(w in c for c in caps for w in words)


@pytest.mark.parametrize("query", list(QUERIES))
def test_text_query_beats_chance(dev_index: mmembed.Index, captions: dict[str, list[str]], query: str) -> None:
    words = QUERIES[query]
    base_rate = sum(mentions(c, words) for c in captions.values()) / len(captions)
    hits = dev_index.search(query, limit=10)
    relevant = sum(mentions(captions[Path(h.path).name], words) for h in hits)
    # Chance would put base_rate * 10 relevant images in the top 10.
    assert relevant >= max(6, 2.5 * base_rate * 10), (relevant, base_rate)


def test_ranking_equals_open_clip_direct(dev_index: mmembed.Index, micro_clip: str) -> None:
    import open_clip
    import torch
    from PIL import Image

    dev = shared_path("data/flickr8k/dev")
    paths = sorted(dev.glob("*.jpg"))
    model, _, preprocess = open_clip.create_model_and_transforms(micro_clip)
    tokenizer = open_clip.get_tokenizer(micro_clip)
    model.eval()
    feats = []
    with torch.no_grad():
        for start in range(0, len(paths), 100):
            batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths[start:start + 100]])
            feats.append(model.encode_image(batch))
        images = torch.nn.functional.normalize(torch.cat(feats), dim=-1).numpy()
        for query in QUERIES:
            text = torch.nn.functional.normalize(model.encode_text(tokenizer([query])), dim=-1).numpy()[0]
            scores = images @ text
            order = np.argsort(-scores)[:10]
            expected = [str(paths[i]) for i in order]
            hits = dev_index.search(query, limit=10)
            assert [h.path for h in hits] == expected
            np.testing.assert_allclose([h.score for h in hits], scores[order], atol=1e-4)


def test_image_query_returns_itself_then_neighbours(dev_index: mmembed.Index) -> None:
    dev = shared_path("data/flickr8k/dev")
    query = sorted(dev.glob("*.jpg"))[7]
    hits = dev_index.search(image=query, limit=5)
    assert hits[0].path == str(query) and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[1].score < hits[0].score
