"""Ingest with OCR on against OCR off, paired in one process (issue 22: "ingest of the 239 COCO
photos with OCR on, paired against OCR off: >= 0.75x the speed"), and OCR throughput on a folder.

    python benchmarks/datasets.py model            # once: ViT-B-32 with random weights
    python benchmarks/ocr_sets.py                  # once: screenshots and 12 MP photos for --folder
    python benchmarks/ocr_ingest.py [--rounds 2] [--model local-dir:/tmp/mmembed-bench/models/vit-b-32]
    python benchmarks/ocr_ingest.py --folder /tmp/mmembed-bench/ocr/screenshots   # OCR pass alone
    python benchmarks/ocr_ingest.py --folder PHONES --min-side 1536 --min-side 1024 --rounds 4  # decode sizes side by side
    python benchmarks/ocr_ingest.py --floor --rounds 3   # the best ratio a perfect gate that cost nothing could give

Each round ingests the COCO photos into a new table twice, OCR off then on (the order alternates
between rounds), with the model already loaded and its ONNX towers exported by a warm-up run; the
ratio is (seconds off) / (seconds on). ``--floor``: the OCR-off ingest timed (wall and CPU
seconds), then each photo decoded and read as the OCR pass does it, timed alone; the photos that
gave text are the least any gate must let through, so (seconds off) / (seconds off + their seconds)
bounds the ratio from above for a gate that is perfect and free. ``--folder``: the photos ingested with OCR off, then
``Index.ocr`` timed alone (the OCR pass a table indexed before gets).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
COCO = ROOT.parent / "shared" / "data" / "photos" / "coco"
MODEL = "local-dir:/tmp/mmembed-bench/models/vit-b-32"


def _ingest(model: str, photos: Path, db: Path, ocr: bool) -> tuple[float, dict | None]:
    from mmembed import Index

    report = Index(db, model=model).ingest(str(photos), ocr=ocr)
    return report.seconds, report.ocr


def _warm_up(model: str, photos: Path, work: Path) -> None:
    """Four of the photos ingested with OCR on: the model loaded, its towers exported, the OCR sessions made."""
    warm = work / "warm"
    warm.mkdir()
    for p in sorted(photos.glob("*.jpg"))[:4]:
        shutil.copy(p, warm / p.name)
    _ingest(model, warm, work / "warm-db", True)


def paired(model: str, photos: Path, rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="mmembed-ocr-ingest-"))
    try:
        _warm_up(model, photos, work)
        off, on = [], []
        for r in range(rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            for ocr in order:
                seconds, stats = _ingest(model, photos, work / f"db-{r}-{ocr}", ocr)
                (on if ocr else off).append(seconds)
                extra = (f"; OCR pass {stats['seconds']:.1f} s: {stats['read']} read, {stats['recognized']} past the gate, "
                         f"{stats['with_text']} with text") if stats else ""
                print(f"round {r} ocr={'on' if ocr else 'off'}: {seconds:.1f} s{extra}", flush=True)
        ratios = [a / b for a, b in zip(off, on)]
        print(f"| {len(list(photos.glob('*.jpg')))} photos | off {statistics.median(off):.1f} s | on {statistics.median(on):.1f} s "
              f"| speed on/off {statistics.median(ratios):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)}) |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def floor(model: str, photos: Path, rounds: int) -> None:
    """See the module docstring (``--floor``)."""
    from mmembed.ingest import ocr_pass
    from mmembed.models.ocr import shared_reader
    from mmembed.sources.decode import load_image

    work = Path(tempfile.mkdtemp(prefix="mmembed-ocr-floor-"))
    try:
        _warm_up(model, photos, work)
        reader = shared_reader()
        files = sorted(photos.glob("*.jpg"))
        for r in range(rounds):
            cpu, wall = time.process_time(), time.perf_counter()
            _ingest(model, photos, work / f"db-{r}", False)
            off_wall, off_cpu = time.perf_counter() - wall, time.process_time() - cpu
            text_wall = text_cpu = all_wall = all_cpu = 0.0
            with_text = 0
            for path in files:
                cpu, wall = time.process_time(), time.perf_counter()
                image = load_image(path, min_side=ocr_pass.DECODE_MIN_SIDE).image
                result = reader.read_text(image, gate=True)
                spent_wall, spent_cpu = time.perf_counter() - wall, time.process_time() - cpu
                all_wall, all_cpu = all_wall + spent_wall, all_cpu + spent_cpu
                if result.lines:
                    with_text += 1
                    text_wall, text_cpu = text_wall + spent_wall, text_cpu + spent_cpu
            cores = os.cpu_count() or 1
            print(f"| round {r} | off {off_wall:.1f} s ({off_cpu:.1f} CPU-s) | every photo read one by one {all_wall:.1f} s "
                  f"({all_cpu:.1f} CPU-s) | the {with_text} with text {text_wall:.1f} s ({text_cpu:.1f} CPU-s) "
                  f"| perfect free gate, read after the ingest: {off_wall / (off_wall + text_wall):.2f}x "
                  f"| and on {cores} cores shared perfectly: {off_wall / max(off_wall, (off_cpu + text_cpu) / cores):.2f}x |",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def folder_pass(model: str, folder: Path, min_sides: list[int], rounds: int) -> None:
    """The OCR pass alone over ``folder``, once per round and per decode size (``min_sides``:
    ``ocr_pass.DECODE_MIN_SIDE`` values, taken in turn, the order flipping each round)."""
    from mmembed import Index
    from mmembed.ingest import ocr_pass

    work = Path(tempfile.mkdtemp(prefix="mmembed-ocr-pass-"))
    try:
        idx = Index(work / "db", model=model)
        idx.ingest(str(folder), ocr=False)
        from PIL import Image

        from mmembed.models.ocr import shared_reader

        first = next(p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".png", ".jpg"))
        shared_reader().read_text(Image.open(first))  # sessions made before the timing
        sides = min_sides or [ocr_pass.DECODE_MIN_SIDE]
        for r in range(rounds):
            for side in (sides if r % 2 == 0 else sides[::-1]):
                ocr_pass.DECODE_MIN_SIDE = side
                started = time.perf_counter()
                report = idx.ocr(redo=True)
                seconds = time.perf_counter() - started
                print(f"| {folder} | decode min side {side} | round {r} | {report.read} images | {seconds:.1f} s "
                      f"| {report.read / seconds:.2f} images/s | {report.recognized} past the gate, {report.with_text} with text |",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--photos", type=Path, default=COCO)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--floor", action="store_true", help="the best ratio a perfect, free gate could give")
    parser.add_argument("--folder", type=Path, action="append", default=[])
    parser.add_argument("--min-side", type=int, action="append", default=[],
                        help="--folder: the OCR decode's min side (ocr_pass.DECODE_MIN_SIDE), one pass each, side by side")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.floor:
        floor(args.model, args.photos, args.rounds)
    elif args.folder:
        for folder in args.folder:
            folder_pass(args.model, folder, args.min_side, max(1, args.rounds if args.min_side else 1))
    else:
        paired(args.model, args.photos, args.rounds)


if __name__ == "__main__":
    main()
