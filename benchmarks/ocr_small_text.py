"""How small can text be in a 12 MP photo and still be read? (issue 22, noticed 2026-12-07)

    python benchmarks/ocr_small_text.py [--sizes 20 26 32 40 48 56 80] [--min-side 1536 1024]

For each font size, a 4000x3000 JPEG: a COCO photo upscaled, a light page drawn over the middle
70 % of it, and lines of four English words and a number in DejaVu Sans (or the CJK font) at that
size. Each is decoded as the OCR pass decodes it (``load_image(min_side=DECODE_MIN_SIDE)``, for each
``--min-side``) and read through the gate (``TextReader.read_text(gate=True)``): whether the gate
passed, how many of the page's distinct words were read, and the time. The page fills the frame
as a phone photo of a sheet of paper would; its letters are ``size / 3000`` of the picture's height.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
COCO = ROOT.parent / "shared" / "data" / "photos" / "coco"
WORDS = ("invoice payment delivery meeting schedule account balance transfer weather forecast station "
         "platform departure arrival ticket museum garden library hospital pharmacy parking entrance").split()
FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")


def page(size: int, photo: Path, rng: random.Random, out: Path) -> set[str]:
    from PIL import Image, ImageDraw, ImageFont

    picture = Image.open(photo).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(picture)
    draw.rectangle([600, 500, 3400, 2500], fill=(245, 245, 240))
    font = ImageFont.truetype(next(f for f in FONTS if os.path.exists(f)), size)
    words: set[str] = set()
    y = 560
    while y < 2400:
        line = " ".join(rng.choice(WORDS) for _ in range(4)) + f" {rng.randint(1000, 99999)}"
        draw.text((660, y), line, fill=(20, 20, 20), font=font)
        words.update(line.lower().split())
        y += int(size * 2.2)
    picture.save(out, quality=90)
    return words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20, 26, 32, 40, 48, 56, 80])
    parser.add_argument("--min-side", type=int, nargs="*", default=[1024])
    args = parser.parse_args()
    from mmembed.models.ocr import TextReader
    from mmembed.sources.decode import load_image

    rng = random.Random(3)
    photos = sorted(COCO.glob("*.jpg"))
    reader = TextReader()
    with tempfile.TemporaryDirectory(prefix="mmembed-small-text-") as work:
        pages = {size: (Path(work) / f"{size}.jpg", page(size, photos[i * 7], rng, Path(work) / f"{size}.jpg"))
                 for i, size in enumerate(args.sizes)}
        reader.read_text(load_image(pages[args.sizes[0]][0], max_megapixels=100, min_side=1024).image)  # sessions made
        print("| font px | of the height | decode min side | decoded | gate | words read | ms |")
        print("|---|---|---|---|---|---|---|")
        for size, (path, words) in pages.items():
            for side in args.min_side:
                started = time.perf_counter()
                image = load_image(path, max_megapixels=100, min_side=side).image
                result = reader.read_text(image, gate=True)
                ms = (time.perf_counter() - started) * 1000
                got = words & set(result.text.lower().split())
                print(f"| {size} | 1/{3000 // size} | {side} | {image.width}x{image.height} | "
                      f"{'passed' if result.gate_passed else 'no'} | {len(got)} of {len(words)} | {ms:.0f} |", flush=True)


if __name__ == "__main__":
    main()
