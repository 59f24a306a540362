"""The relevance cutoff (``search --cutoff auto``) measured on Flickr8k dev with its captions.

    python benchmarks/cutoff.py [--queries 300]

A table of the 1,000 dev images with their 5 captions each (micro-clip). Queries are
captions: one per image for ``--queries`` images spread over dev. An item is relevant to a
query when the query is one of its captions, or when one of its captions holds every key
noun of the query (nouns from a fixed list of concrete Flickr8k nouns, plurals folded).
For each cutoff, kept = the items whose score is at least ``median + z x spread`` of the
query's scores over the table (``retrieval.query.score_stats``); precision and recall are
averaged over queries (a query that keeps nothing has precision 1 only if nothing is
relevant... which never happens here, so it counts as precision 0). Also: fixed cosine
thresholds, for comparison, and what nonsense queries keep. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import DEV, MICRO  # noqa: E402
from benchmarks.datasets import DEV_CAPTIONS as CAPTIONS  # noqa: E402

NOUNS = set("""dog man woman boy girl child kid baby people person player water grass snow beach ball bike
bicycle car street field pool ocean lake river mountain rock sand wave surfer skateboard skateboarder skier
hat shirt jacket frisbee stick tree building crowd horse cat bird camera football soccer basketball boat road
city wall fence bench table stair dirt sky toy rope ramp track park sidewalk swing slide bubble helmet uniform
dress motorcycle truck bus hill wood forest fountain flag sign window crowd team game goal net guitar""".split())
NONSENSE = ["qwzx blorf", "asdf ghjk", "xkcd lorem ipsum dolor", "zzzz", "blue idea sleeps furiously"]
Z_GRID = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
FIXED = [0.5, 0.6, 0.7, 0.8, 0.9]


def nouns(text: str) -> frozenset[str]:
    words = re.findall(r"[a-z]+", text.lower())
    folded = {w[:-2] if w.endswith("es") and w[:-2] in NOUNS else w[:-1] if w.endswith("s") and w[:-1] in NOUNS else w
              for w in words}
    found = {"man" if w == "men" else "woman" if w == "women" else "child" if w == "children" else
             "person" if w == "people" else w for w in folded}
    return frozenset(found & NOUNS | ({"person"} if "people" in words else set()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    import mmembed
    from mmembed.retrieval.query import AUTO_CUTOFF_Z, score_stats
    from mmembed.store.snapshot import Snapshot

    captions: dict[str, list[str]] = defaultdict(list)
    with open(CAPTIONS, newline="") as f:
        for row in csv.DictReader(f):
            captions[row["image"]].append(row["caption"])
    with tempfile.TemporaryDirectory() as work:
        db = str(Path(work) / "dev.lancedb")
        idx = mmembed.Index(db, model=f"local-dir:{MICRO}")
        idx.ingest(DEV, captions=[CAPTIONS])
        snap = Snapshot.open(db, "images")
        matrices = {t: np.asarray(snap.vectors(t)) for t in ("fused", "image")}
        rows = [json.loads(line) for line in open(Path(snap.folder) / "rows.jsonl", "rb")]
        snap_names = [Path(r["path"]).name for r in rows]
        item_nouns = [[nouns(c) for c in captions[n]] for n in snap_names]
        picks = np.linspace(0, len(snap_names) - 1, args.queries).astype(int)
        queries = [(int(i), captions[snap_names[i]][0]) for i in picks]
        vectors = idx.embed_text([q for _, q in queries])
        nonsense = idx.embed_text(NONSENSE)
        result: dict = {"date": str(date.today()), "model": "micro-clip", "rows": len(snap_names),
                        "queries": len(queries), "chosen_z": AUTO_CUTOFF_Z}
        for target, matrix in matrices.items():
            per_z = {z: [] for z in Z_GRID}
            per_t = {t: [] for t in FIXED}
            relevant_counts = []
            for (own, text), vector in zip(queries, vectors):
                key = nouns(text)
                relevant = {own} | ({i for i, caps in enumerate(item_nouns) if any(key <= c for c in caps)} if key else set())
                relevant_counts.append(len(relevant))
                scores = matrix @ vector
                median, spread = score_stats(matrix, vector)
                for z in Z_GRID:
                    per_z[z].append(_pr(set(np.flatnonzero(scores >= median + z * spread)), relevant))
                for t in FIXED:
                    per_t[t].append(_pr(set(np.flatnonzero(scores >= t)), relevant))
            kept_nonsense = {}
            for z in Z_GRID:
                counts = []
                for vector in nonsense:
                    scores = matrix @ vector
                    median, spread = score_stats(matrix, vector)
                    counts.append(int((scores >= median + z * spread).sum()))
                kept_nonsense[z] = counts
            result[target] = {
                "relevant_per_query": {"median": float(np.median(relevant_counts)), "mean": round(float(np.mean(relevant_counts)), 1)},
                "auto": [_summary(f"z={z}", per_z[z], kept_nonsense[z]) for z in Z_GRID],
                "fixed": [_summary(f"cosine>={t}", per_t[t]) for t in FIXED],
            }
    print(json.dumps(result, indent=1))


def _pr(kept: set[int], relevant: set[int]) -> tuple[float, float, int]:
    hit = len(kept & relevant)
    return (hit / len(kept) if kept else 0.0), hit / len(relevant), len(kept)


def _summary(name: str, values: list[tuple[float, float, int]], nonsense: list[int] | None = None) -> dict:
    p = float(np.mean([v[0] for v in values]))
    r = float(np.mean([v[1] for v in values]))
    out = {"cut": name, "precision": round(p, 3), "recall": round(r, 3),
           "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0,
           "kept_median": float(np.median([v[2] for v in values]))}
    if nonsense is not None:
        out["nonsense_kept"] = nonsense
    return out


if __name__ == "__main__":
    main()
