"""Fused search when only some photos carry text (a user trial, 2026-12-07): does the fused
column still beat the image column, or do the captioned photos crowd out the rest?

    python benchmarks/partial_captions.py [--shares 0.1 0.25 0.5 1.0] [--model local-dir:../shared/models/micro-clip]

Flickr8k dev (1,000 photos, 5 captions each). For each share p, a seeded p of the photos get their
first caption as item text (a manifest, as ``--captions`` gives it); the other four captions of
every photo are the queries (4,000). R@1/R@5 of each query's own photo, searching the image vectors
and the fused vectors (mean fusion, the default weight), over all queries and apart for the queries
of photos with and without text; and what a nonsense query's ``--cutoff auto`` keeps.

A third row is a way not built, simulated on the snapshot's vectors: the fused cosine standardised
within each group (photos with text, photos without) by the group's own median and robust spread
for that query, then ranked across both; its "keeps" counts rows more than ``AUTO_CUTOFF_Z`` spreads
above their group's median.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
DEV = SHARED / "data" / "flickr8k" / "dev"
CAPTIONS = SHARED / "data" / "flickr8k" / "dev_captions.csv"


def r_at(values: list[int], k: int) -> str:
    return f"{sum(r <= k for r in values) / len(values):.3f}" if values else "-"


def calibrated(index, names: list[str], captions: dict[str, list[str]], texted: set[str],
               per_group: bool = True) -> tuple[dict, int]:
    """Ranks of each query's photo when the fused cosine is standardised per group (see the docstring)."""
    import numpy as np

    from mmembed.retrieval.query import AUTO_CUTOFF_Z
    from mmembed.store.snapshot import Snapshot

    snap = Snapshot.open(str(index.config.db), index.config.table)
    fused = np.asarray(snap.vectors("fused"), dtype=np.float32)
    has_text = np.asarray(snap._array("text_mask"), dtype=bool)
    order = [Path(snap.rows_at(np.array([i]), np.array([0.0]))[0]["path"]).name for i in range(snap.rows)]
    where = {name: i for i, name in enumerate(order)}

    def z(scores: np.ndarray) -> np.ndarray:
        if not per_group:  # the plain fused ranking, as a check of the simulation against the search
            median = np.median(scores)
            return (scores - median) / (1.4826 * np.median(np.abs(scores - median)) or 1.0)
        out = np.empty_like(scores)
        for group in (has_text, ~has_text):
            if group.any():
                median = np.median(scores[group])
                spread = 1.4826 * np.median(np.abs(scores[group] - median)) or 1.0
                out[group] = (scores[group] - median) / spread
        return out

    ranks: dict[bool, list[int]] = {True: [], False: []}
    queries = [(name, q) for name in names for q in captions[name][1:]]
    vectors = index.embed_text([q for _, q in queries])
    for (name, _), vector in zip(queries, vectors):
        scored = z(fused @ vector)
        rank = int((scored > scored[where[name]]).sum()) + 1
        ranks[name in texted].append(rank)
    nonsense = z(fused @ index.embed_text(["xqzvvk blorf"])[0])
    return ranks, int((nonsense > AUTO_CUTOFF_Z).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=float, nargs="*", default=[0.1, 0.25, 0.5, 1.0])
    parser.add_argument("--model", default="local-dir:" + str(SHARED / "models" / "micro-clip"))
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import mmembed

    captions: dict[str, list[str]] = defaultdict(list)
    with open(CAPTIONS, newline="") as f:
        for row in csv.DictReader(f):
            captions[row["image"]].append(row["caption"])
    names = sorted(captions)
    print("| photos with text | target | R@1 all | R@5 all | R@1 of photos with text | R@1 of photos without | "
          "nonsense query, --cutoff auto keeps |")
    print("|---|---|---|---|---|---|---|")
    for share in args.shares:
        rng = random.Random(args.seed)
        texted = set(rng.sample(names, round(share * len(names))))
        work = Path(tempfile.mkdtemp(prefix="mmembed-partial-"))
        try:
            manifest = work / "captions.csv"
            with open(manifest, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["image", "caption"])
                for name in sorted(texted):
                    writer.writerow([name, captions[name][0]])
            index = mmembed.Index(work / "db", model=args.model, batch_size=64)
            index.ingest(str(DEV), captions=[str(manifest)], ocr=False)
            for target in ("image", "fused"):
                ranks = {True: [], False: []}
                for name in names:
                    for query in captions[name][1:]:
                        hits = index.search(query, target=target, mode="vector", limit=5)
                        found = [Path(h.path).name for h in hits]
                        ranks[name in texted].append(found.index(name) + 1 if name in found else 99)
                every = ranks[True] + ranks[False]

                kept = len(index.search("xqzvvk blorf", target=target, mode="vector", limit=300, cutoff="auto"))
                print(f"| {share:.2f} ({len(texted)}) | {target} | {r_at(every, 1)} | {r_at(every, 5)} | "
                      f"{r_at(ranks[True], 1)} | {r_at(ranks[False], 1)} | {kept} |", flush=True)
            for per_group in (False, True):
                ranks, kept = calibrated(index, names, captions, texted, per_group)
                every = ranks[True] + ranks[False]
                label = "fused, calibrated per group (simulated)" if per_group else "fused (simulated, a check)"
                print(f"| {share:.2f} ({len(texted)}) | {label} | {r_at(every, 1)} | "
                      f"{r_at(every, 5)} | {r_at(ranks[True], 1)} | {r_at(ranks[False], 1)} | {kept} |", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
