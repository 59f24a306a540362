"""Caption queries on Flickr8k dev before and after the OCR pass (issue 22: "R@1 within 0.5 pt of
today with OCR on"): the 1000 dev photos ingested with OCR off, R@1/R@5 of one caption per photo
(the first) as a text query, then ``Index.ocr()``, then the same queries again.

    python benchmarks/ocr_flickr.py [--model local-dir:../shared/models/micro-clip]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEV = ROOT.parent / "shared" / "data" / "flickr8k"


def recall(idx, queries: list[tuple[str, str]]) -> tuple[float, float]:
    r1 = r5 = 0
    for name, caption in queries:
        hits = [Path(h.path).name for h in idx.search(caption, limit=5)]
        r1 += bool(hits) and hits[0] == name
        r5 += name in hits
    return r1 / len(queries), r5 / len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=f"local-dir:{ROOT.parent / 'shared' / 'models' / 'micro-clip'}")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mmembed import Index

    first: dict[str, str] = {}
    with open(DEV / "dev_captions.csv", newline="") as f:
        for row in csv.DictReader(f):
            first.setdefault(row["image"], row["caption"])
    queries = sorted(first.items())
    work = Path(tempfile.mkdtemp(prefix="mmembed-ocr-flickr-"))
    try:
        idx = Index(work / "db", model=args.model)
        idx.ingest(str(DEV / "dev"), ocr=False)
        before = recall(idx, queries)
        started = time.perf_counter()
        report = idx.ocr()
        seconds = time.perf_counter() - started
        after = recall(Index(work / "db"), queries)
        print(f"| OCR off | R@1 {before[0]:.4f} | R@5 {before[1]:.4f} |")
        print(f"| OCR on ({report.read} read, {report.recognized} past the gate, {report.with_text} with text, "
              f"{seconds:.0f} s) | R@1 {after[0]:.4f} | R@5 {after[1]:.4f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
