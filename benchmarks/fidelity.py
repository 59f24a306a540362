"""Fidelity: mmembed's image vectors against open_clip's reference path.

Reference: model.encode_image(preprocess(Image.open(p).convert("RGB"))), L2-normalised.
Only images without an EXIF rotation are compared (mmembed rotates upright; the reference
does not). Prints one JSON object.

    python benchmarks/fidelity.py [--model local-dir:../shared/models/micro-clip] [--folder DIR]...
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def has_rotation(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.getexif().get(0x0112, 1) not in (0, 1)
    except Exception:  # noqa: BLE001 - an unreadable file is simply not compared
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=f"local-dir:{SHARED / 'models' / 'micro-clip'}")
    parser.add_argument("--folder", action="append", type=Path)
    parser.add_argument("--precision", default="fp32", help="mmembed's precision (auto = the default: int8 on ONNX Runtime on a CPU)")
    parser.add_argument("--runtime", choices=("auto", "torch"), default="auto",
                        help="auto: at fp32 on the exported ONNX towers (exported first if missing); torch: open_clip")
    args = parser.parse_args()
    folders = args.folder or [SHARED / "data" / "flickr8k" / "dev", SHARED / "data" / "photos"]

    import open_clip
    import torch
    from PIL import Image

    import mmembed
    from mmembed.sources import walk

    paths = []
    for folder in folders:
        for found in walk([folder]):
            p = Path(found.path)
            try:
                mmembed.load_image(p)
            except mmembed.ImageDecodeError:
                continue
            if not has_rotation(p):
                paths.append(p)

    started = time.perf_counter()
    encoder = mmembed.Encoder(args.model, batch_size=64, device="cpu", precision=args.precision, runtime=args.runtime)
    if args.runtime == "auto" and args.precision == "fp32":
        from mmembed.models.image_tower import export_image_tower, image_tower_exists, image_tower_folder
        from mmembed.models.text_tower import export_text_tower, tower_exists, tower_folder

        fingerprint = encoder.spec.fingerprint
        for folder, exists, export in ((tower_folder(fingerprint), tower_exists, export_text_tower),
                                       (image_tower_folder(fingerprint), image_tower_exists, export_image_tower)):
            if not exists(folder, fingerprint):
                export(mmembed.Encoder(args.model, device="cpu", precision="fp32", runtime="torch"), folder)
        encoder = mmembed.Encoder(args.model, batch_size=64, device="cpu", precision="fp32")
    ours = encoder.encode_images(paths)
    model, _, preprocess = open_clip.create_model_and_transforms(args.model)
    model.eval()
    refs = []
    with torch.no_grad():
        for start in range(0, len(paths), 64):
            batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths[start:start + 64]])
            refs.append(torch.nn.functional.normalize(model.encode_image(batch), dim=-1).numpy())
    ref = np.concatenate(refs)
    cos = (ours * ref).sum(axis=1)
    worst = int(np.argmin(cos))
    print(json.dumps({
        "benchmark": "fidelity",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "model": args.model,
        "precision": args.precision,
        "runtime": "onnxruntime" if encoder.on_onnx else "torch",
        "images": len(paths),
        "cosine_min": round(float(cos.min()), 6),
        "cosine_mean": round(float(cos.mean()), 6),
        "worst_image": str(paths[worst]),
        "seconds": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
