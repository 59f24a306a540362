"""RAW photos: the preview path against the half-size demosaic path (``sources/raw.py``).

    python benchmarks/raw.py                 # 20 DNGs of 24 MP with a 1600 px JPEG preview
    python benchmarks/raw.py --n 5 --megapixels 12

Each DNG is a COCO photo (``../shared/data/photos/coco``) scaled to a 3:2 frame of the given
size, laid out as a 12-bit RGGB Bayer mosaic (``fixtures/make_dng.py``, pidng, uncompressed
as in many cameras' DNGs), with a JPEG preview of ``--preview`` px on the long side, as a
camera embeds it. Written to a temporary folder and deleted afterwards.

Reported, one JSON object:

- ``files_per_s``: ``load_image`` of each file (read, LibRaw open, develop, RGB), one thread,
  files in the page cache: the preview path at a ViT-B-32 input (224 px) and at micro-clip's
  (64 px), and the half-size demosaic path (``min_side=None``, what ``--decode exact`` and a
  RAW without a usable preview take); then the same with a thread per core, whose pictures
  must equal the one-thread ones (one LibRaw object per call: safe in the decode pool).
- ``cosine``: micro-clip image vectors through the ingest decoder (``ImageDecoder``, fast:
  the preview; exact: the demosaic) against each other and against the same frame saved as a
  full-size JPEG (the JPEG of a RAW+JPEG pair).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "fixtures"))
from benchmarks.datasets import COCO, SHARED  # noqa: E402

MICRO = f"local-dir:{SHARED / 'models' / 'micro-clip'}"


def cpu() -> dict:
    info = Path("/proc/cpuinfo").read_text() if os.path.exists("/proc/cpuinfo") else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), platform.processor())
    return {"model_name": name, "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in info}


def make_dngs(folder: Path, n: int, megapixels: float, preview: int) -> list[tuple[Path, Path]]:
    """(DNG, JPEG) pairs: the JPEG is the same frame at full size (quality 92), as the camera's
    JPEG of a RAW+JPEG pair would be."""
    from make_dng import dng_bytes, preview_jpeg
    from PIL import Image

    height = int(round((megapixels * 1e6 / 1.5) ** 0.5 / 2)) * 2
    width = int(round(height * 1.5 / 2)) * 2
    out = []
    for source in sorted(COCO.glob("*.jpg"))[:n]:
        with Image.open(source) as im:
            im = im.convert("RGB")
            crop_h = min(im.height, int(im.width / 1.5))
            top = (im.height - crop_h) // 2
            frame = im.crop((0, top, int(crop_h * 1.5), top + crop_h)).resize((width, height), Image.Resampling.BICUBIC)
        path = folder / f"{source.stem}.dng"
        path.write_bytes(dng_bytes(np.asarray(frame), preview=preview_jpeg(frame, preview), date="2026:12:02 10:00:00"))
        frame.save(folder / f"{source.stem}.jpg", quality=92)
        out.append((path, folder / f"{source.stem}.jpg"))
    return out


def timed(paths: list[Path], min_side: int | None, workers: int) -> tuple[float, list]:
    from mmembed.sources.decode import load_image

    def one(path: Path):
        return load_image(path, min_side=min_side).image

    started = time.perf_counter()
    if workers == 1:
        images = [one(p) for p in paths]
    else:
        with ThreadPoolExecutor(workers) as pool:
            images = list(pool.map(one, paths))
    return len(paths) / (time.perf_counter() - started), images


def speed(paths: list[Path]) -> dict:
    from mmembed.sources.raw import develop

    out: dict = {"paths": {}}
    threads = os.cpu_count() or 1
    for name, min_side in (("preview_224", 224), ("preview_64", 64), ("demosaic_half", None)):
        assert develop(str(paths[0]), "x", min_side=min_side).path == ("demosaic" if min_side is None else "preview")
        one, first = timed(paths, min_side, 1)
        many, again = timed(paths, min_side, threads)
        same = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, again))
        out["paths"][name] = {"files_per_s_1_thread": round(one, 2), f"files_per_s_{threads}_threads": round(many, 2),
                              "picture": list(first[0].size), "threads_give_same_pictures": same}
    demosaic = out["paths"]["demosaic_half"]["files_per_s_1_thread"]
    for name in ("preview_224", "preview_64"):
        out["paths"][name]["speedup_vs_demosaic"] = round(out["paths"][name]["files_per_s_1_thread"] / demosaic, 1)
    return out


def cosines(pairs: list[tuple[Path, Path]]) -> dict:
    from mmembed.ingest import ImageDecoder
    from mmembed.models.encoder import Encoder

    encoder = Encoder(MICRO, precision="fp32")

    def vectors(paths: list[Path], fast: bool) -> np.ndarray:
        decode = ImageDecoder(encoder, fast=fast)
        return encoder.encode_pixels([decode(str(p), 100.0)[1] for p in paths])

    preview = vectors([d for d, _ in pairs], True)
    demosaic = vectors([d for d, _ in pairs], False)
    original = vectors([s for _, s in pairs], True)

    def stats(a: np.ndarray, b: np.ndarray) -> dict:
        cos = (a * b).sum(axis=1)
        return {"min": round(float(cos.min()), 4), "mean": round(float(cos.mean()), 4)}

    return {"model": "micro-clip (64 px)", "preview_vs_demosaic": stats(preview, demosaic),
            "preview_vs_jpeg": stats(preview, original), "demosaic_vs_jpeg": stats(demosaic, original)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="DNG files")
    parser.add_argument("--megapixels", type=float, default=24.0, help="sensor size of each DNG")
    parser.add_argument("--preview", type=int, default=1600, help="long side of the embedded JPEG preview")
    args = parser.parse_args()
    import rawpy

    with tempfile.TemporaryDirectory(prefix="mmembed-raw-") as tmp:
        started = time.perf_counter()
        pairs = make_dngs(Path(tmp), args.n, args.megapixels, args.preview)
        made = time.perf_counter() - started
        paths = [d for d, _ in pairs]
        result = {
            "date": date.today().isoformat(), "cpu": cpu(), "rawpy": rawpy.__version__,
            "files": len(paths), "megapixels": args.megapixels, "preview_long_side": args.preview,
            "mb_per_file": round(paths[0].stat().st_size / 1e6, 1), "seconds_to_make": round(made, 1),
            **speed(paths), "cosine": cosines(pairs),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
