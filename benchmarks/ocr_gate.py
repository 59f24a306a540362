"""The OCR gate (``TextReader.has_text``) on text-bearing pictures and on ordinary photos, and what
the gated read (the boxes of the gate's look reused) finds against a full read.

    python benchmarks/ocr_sets.py --count 20 --seed 7                                        # dev (tuning)
    python benchmarks/ocr_sets.py --count 52 --seed 8 --out /tmp/mmembed-bench/ocr-holdout    # held out
    python benchmarks/ocr_gate.py --sets /tmp/mmembed-bench/ocr-holdout [--read]

Recall: the share of the set's pictures the gate passes. COCO: how many of the 239 photos pass and
the gate's cost per photo (decode excluded). ``--read``: word recall (as benchmarks/ocr.py counts it)
of ``read_text(gate=True)`` against ``read_text()`` on the same pictures, and the COCO photos in
which a full read finds a line (confidence >= 0.8) that the gate drops.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
COCO = ROOT.parent / "shared" / "data" / "photos" / "coco"
SETS = ("screenshots", "signs", "documents")


def _norm(text: str) -> str:
    return "".join(text.lower().split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=Path, default=Path("/tmp/mmembed-bench/ocr-holdout"))
    parser.add_argument("--read", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--only", action="append", choices=SETS, help="only this set (repeatable); COCO is skipped")
    parser.add_argument("--det", type=Path, help="another detector ONNX file (an int8 one, say)")
    args = parser.parse_args()
    from PIL import Image

    from dataclasses import replace

    from mmembed.models.ocr import OcrConfig, OcrModels, TextReader
    from mmembed.sources.decode import load_image

    models = replace(OcrModels.bundled(), det=args.det) if args.det else None
    reader = TextReader(OcrConfig(threads=args.threads), models)
    reader.has_text(Image.new("RGB", (64, 64), "gray"))
    print("| set | pictures | gate recall | missed | gated read word recall | full read word recall |")
    print("|---|---|---|---|---|---|")
    total, passed_all = 0, 0
    for name in args.only or SETS:
        rows = [json.loads(line) for line in (args.sets / name / "truth.jsonl").read_text().splitlines()]
        passed, missed, gated_rec, full_rec = 0, [], [], []
        for row in rows:
            image = load_image(args.sets / name / row["file"]).image
            ok = reader.has_text(image)
            passed += ok
            if not ok:
                missed.append(row["file"])
            if args.read:
                for out, gate in ((gated_rec, True), (full_rec, False)):
                    text = _norm(reader.read_text(image, gate=gate).text)
                    out.append(sum(_norm(w) in text for w in row["words"]) / len(row["words"]))
        total += len(rows)
        passed_all += passed
        reads = f"{statistics.mean(gated_rec):.3f} | {statistics.mean(full_rec):.3f}" if args.read else "- | -"
        print(f"| {name} | {len(rows)} | {passed / len(rows):.3f} | {', '.join(missed) or 'none'} | {reads} |", flush=True)
    print(f"| all | {total} | {passed_all / total:.3f} | | | |")
    if args.only:
        return
    photos = [load_image(p, min_side=1536).image for p in sorted(COCO.glob("*.jpg"))]
    start = time.perf_counter()
    gates = [reader.has_text(im) for im in photos]
    ms = (time.perf_counter() - start) / len(photos) * 1000
    print(f"\nCOCO: {sum(gates)}/{len(photos)} photos pass the gate, {ms:.1f} ms per photo")
    if args.read:
        dropped = 0
        for im, ok in zip(photos, gates):
            if not ok and any(line.confidence >= 0.8 for line in reader.read_text(im).lines):
                dropped += 1
        print(f"COCO photos where a full read finds a line (confidence >= 0.8) but the gate drops it: {dropped}")


if __name__ == "__main__":
    main()
