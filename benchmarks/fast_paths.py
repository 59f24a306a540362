"""How much the fast paths change vectors and retrieval, on real images.

    python benchmarks/fast_paths.py decode      # fast (DCT-scaled) JPEG decode vs exact
    python benchmarks/fast_paths.py precision   # bf16 vs fp32 on CPU
    python benchmarks/fast_paths.py text        # ONNX text tower vs torch, and its speed

``decode``: vectors of the fast and exact decode paths (the ingest decoder, ``ImageDecoder``)
for Flickr8k dev (micro-clip, whose 64 px input lets the fast path scale every image) and the
COCO photos and 300 of the 4000x3000 JPEGs (ViT-B-32); cosine min/mean, and text->image and
image->text R@1/5/10 on Flickr8k dev with both.

``precision``: image and text vectors in bf16 against fp32 for the same models and images.

``text``: the exported text tower (onnxruntime) against ``Encoder.encode_text`` on the
Flickr8k dev captions (cosine), and per-query latency of both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import COCO, DEFAULT_OUT, SHARED  # noqa: E402

MICRO = f"local-dir:{SHARED / 'models' / 'micro-clip'}"
VITB32 = f"local-dir:{DEFAULT_OUT / 'models' / 'vit-b-32'}"
DEV = SHARED / "data" / "flickr8k" / "dev"
DEV_CAPTIONS = SHARED / "data" / "flickr8k" / "dev_captions.csv"


def vectors(encoder, paths: list[str], fast: bool) -> np.ndarray:
    from mmembed.ingest import ImageDecoder

    decode = ImageDecoder(encoder, fast=fast)
    out = []
    for start in range(0, len(paths), 64):
        out.append(encoder.encode_pixels([decode(p, 100.0)[1] for p in paths[start:start + 64]]))
    return np.concatenate(out)


def cos_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = (a * b).sum(axis=1)
    return {"cosine_min": round(float(cos.min()), 5), "cosine_mean": round(float(cos.mean()), 5), "n": len(cos)}


def decode_study() -> dict:
    from mmembed.models.encoder import Encoder
    from mmembed.retrieval.evaluation import image_to_text, load_caption_set, text_to_image

    out: dict[str, object] = {}
    data = load_caption_set(DEV, DEV_CAPTIONS)
    micro = Encoder(MICRO, batch_size=64, device="cpu")
    exact, fast = vectors(micro, data.images, False), vectors(micro, data.images, True)
    caps = micro.encode_text(data.captions)
    owner = data.caption_image
    out["flickr_dev_micro_clip"] = {
        **cos_stats(exact, fast),
        "t2i_exact": text_to_image(exact, caps, owner), "t2i_fast": text_to_image(fast, caps, owner),
        "i2t_exact": image_to_text(exact, caps, owner), "i2t_fast": image_to_text(fast, caps, owner),
    }
    coco = sorted(str(p) for p in COCO.glob("*.jpg"))
    out["coco_micro_clip"] = cos_stats(vectors(micro, coco, False), vectors(micro, coco, True))
    vit = Encoder(VITB32, batch_size=32, device="cpu")
    out["coco_vit_b_32"] = cos_stats(vectors(vit, coco, False), vectors(vit, coco, True))
    phones = sorted(str(p) for p in (DEFAULT_OUT / "phones").rglob("*.jpg"))[:300]
    if phones:
        out["phones_vit_b_32"] = cos_stats(vectors(vit, phones, False), vectors(vit, phones, True))
        out["phones_micro_clip"] = cos_stats(vectors(micro, phones, False), vectors(micro, phones, True))
    return out


def precision_study() -> dict:
    from mmembed.models.encoder import Encoder
    from mmembed.retrieval.evaluation import load_caption_set

    coco = sorted(str(p) for p in COCO.glob("*.jpg"))
    data = load_caption_set(DEV, DEV_CAPTIONS)
    out: dict[str, object] = {}
    for label, model in (("micro_clip", MICRO), ("vit_b_32", VITB32)):
        fp32 = Encoder(model, batch_size=32, device="cpu", precision="fp32")
        bf16 = Encoder(model, batch_size=32, device="cpu", precision="bf16")
        out[f"{label}_images_coco"] = cos_stats(vectors(fp32, coco, True), vectors(bf16, coco, True))
        texts = data.captions[:500]
        out[f"{label}_texts_dev"] = cos_stats(fp32.encode_text(texts), bf16.encode_text(texts))
    return out


def text_study() -> dict:
    from mmembed.models.encoder import Encoder
    from mmembed.retrieval.evaluation import load_caption_set
    from mmembed.models.text_tower import OnnxTextEncoder, export_text_tower

    data = load_caption_set(DEV, DEV_CAPTIONS)
    out: dict[str, object] = {}
    for label, model in (("micro_clip", MICRO), ("vit_b_32", VITB32)):
        enc = Encoder(model, device="cpu", batch_size=64, precision="fp32")  # the reference: fp32 torch
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            info = export_text_tower(enc, tmp)
            export_s = time.perf_counter() - started
            assert info is not None, "export refused"
            onnx = OnnxTextEncoder(tmp)
            texts = data.captions[:1000]
            stats = cos_stats(enc.encode_text(texts), np.concatenate([onnx.encode_text([t]) for t in texts]))
            queries = texts[:100]
            torch_ms = [_ms(lambda t=t: enc.encode_text([t])) for t in queries]
            onnx_ms = [_ms(lambda t=t: onnx.encode_text([t])) for t in queries]
            size_mb = os.path.getsize(os.path.join(tmp, "text.onnx")) / 1e6
        out[label] = {**stats, "export_s": round(export_s, 1), "onnx_mb": round(size_mb, 1),
                      "query_ms_torch_p50": round(statistics.median(torch_ms), 2),
                      "query_ms_onnx_p50": round(statistics.median(onnx_ms), 2)}
    return out


def _ms(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["decode", "precision", "text"])
    args = parser.parse_args()
    import torch

    result = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
              "torch": torch.__version__, "threads": torch.get_num_threads(), "study": args.what}
    result.update({"decode": decode_study, "precision": precision_study, "text": text_study}[args.what]())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
