"""Build the benchmark inputs (never committed): models, image folders, and big vector tables.

    python benchmarks/datasets.py all [--out /tmp/mmembed-bench]
    python benchmarks/datasets.py model | phones [--count 1000] | tiles [--count 10000] | vectors [--rows 100000 1000000]

What it makes under ``--out``:

- ``models/vit-b-32``: open_clip ViT-B-32 with random weights (seed 0) as a ``local-dir:``
  folder. Speed does not depend on weight values, and this machine cannot download weights.
- ``coco``: nothing is made; benchmarks read ``../shared/data/photos/coco`` (239 photos, 640 px).
- ``phones/``: phone-camera-sized JPEGs, 4000x3000 at quality 92, upscaled (bicubic) from
  the COCO photos, each with its own crop and mirror so every file has different bytes.
- ``tiles/``: small distinct JPEGs (320 px crops of the COCO photos) for the 10k-file no-op
  re-ingest and peak-memory runs.
- ``db/``: tables ``rows_100000`` and ``rows_1000000``, mmembed tables (schema v2, the ViT-B-32
  folder's fingerprint, 512-d) of random unit vectors, with a ``bucket`` column for --where tests.

Each step skips what already exists, so rerunning is cheap.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
COCO = SHARED / "data" / "photos" / "coco"
COCO_CAPTIONS = SHARED / "data" / "photos" / "coco_captions.csv"
DEV = SHARED / "data" / "flickr8k" / "dev"
DEV_CAPTIONS = SHARED / "data" / "flickr8k" / "dev_captions.csv"
MICRO = SHARED / "models" / "micro-clip"
DEFAULT_OUT = Path(os.environ.get("MMEMBED_BENCH_DIR", "/tmp/mmembed-bench"))
sys.path.insert(0, str(ROOT))


def make_model(out: Path, name: str = "ViT-B-32") -> Path:
    """Save ``name`` with random weights as an open_clip local-dir folder."""
    folder = out / "models" / name.lower()
    if (folder / "open_clip_model.safetensors").exists():
        return folder
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    cfg = open_clip.get_model_config(name)
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None)
    pre = model.visual.preprocess_cfg if hasattr(model.visual, "preprocess_cfg") else {}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": dict(pre)}, indent=2))
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
              str(folder / "open_clip_model.safetensors"))
    return folder


def _coco_photos() -> list[Path]:
    photos = sorted(COCO.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"no photos under {COCO}; benchmarks need ../shared/data/photos/coco")
    return photos


def _upright(src: Path):
    from PIL import Image, ImageOps

    with Image.open(src) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def _phone(args: tuple[Path, Path, int]) -> None:
    from PIL import Image, ImageOps

    src, dst, seed = args
    rng = random.Random(seed)
    im = _upright(src)
    w, h = im.size
    # a random 90-100 % crop, maybe mirrored: distinct bytes for every output file
    cw, ch = int(w * rng.uniform(0.9, 1.0)), int(h * rng.uniform(0.9, 1.0))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    im = im.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        im = ImageOps.mirror(im)
    size = (4000, 3000) if cw >= ch else (3000, 4000)
    im.resize(size, Image.Resampling.BICUBIC).save(dst, "JPEG", quality=92)


def _tile(args: tuple[Path, Path, int]) -> None:
    src, dst, seed = args
    rng = random.Random(seed)
    im = _upright(src)
    w, h = im.size
    side = min(w, h, 320)
    x, y = rng.randint(0, w - side), rng.randint(0, h - side)
    im.crop((x, y, x + side, y + side)).save(dst, "JPEG", quality=88)


def make_images(out: Path, kind: str, count: int, workers: int) -> Path:
    folder = out / kind
    folder.mkdir(parents=True, exist_ok=True)
    photos = _coco_photos()
    work = []
    for i in range(count):
        dst = folder / f"{i // 1000:03d}" / f"{kind[:-1]}_{i:06d}.jpg"
        if not dst.exists():
            dst.parent.mkdir(exist_ok=True)
            work.append((photos[i % len(photos)], dst, i))
    if work:
        fn = _phone if kind == "phones" else _tile
        with ProcessPoolExecutor(workers) as pool:
            for done, _ in enumerate(pool.map(fn, work, chunksize=8), start=1):
                if done % 100 == 0:
                    print(f"{kind}: {done}/{len(work)}", file=sys.stderr)
    return folder


def make_vectors(out: Path, rows: int, model_dir: Path, dim: int = 512, chunk: int = 100_000) -> str:
    """An mmembed table of ``rows`` random unit vectors (seeded), built with mmembed's own schema."""
    import numpy as np
    import pyarrow as pa

    from mmembed.models.encoder import LOCAL_PREFIX, local_fingerprint
    from mmembed.models.fusion import FusionConfig
    from mmembed.store import Store, TableMeta
    from mmembed.text.words import item_words

    name = f"rows_{rows}"
    store = Store(str(out / "db"), name)
    if store.exists() and store.count() == rows:
        refresh(out, name)
        return name
    meta = TableMeta(LOCAL_PREFIX + str(model_dir.resolve()), None, local_fingerprint(model_dir), dim,
                     FusionConfig().to_dict())
    store.create(meta, dim, replace=True)
    store.ensure_columns({"bucket": pa.int32()})
    schema = store.table.schema
    rng = np.random.default_rng(rows)
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        vec = rng.standard_normal((n, dim), dtype=np.float32)
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        flat = pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), dim)
        ids = [f"{start + i:012x}" for i in range(n)]
        data = {
            "id": ids,
            "path": [f"/bench/{start + i:08d}.jpg" for i in range(n)],
            "words": [item_words({"path": f"/bench/{start + i:08d}.jpg"}) for i in range(n)],  # as ingest writes them
            "size": pa.array(np.full(n, 100_000), pa.int64()),
            "mtime_ns": pa.array(np.zeros(n, np.int64)),
            "content_hash": ids,
            "image_vector": flat,
            "fused_vector": flat,
            "bucket": pa.array(rng.integers(0, 100, n, dtype=np.int32)),
        }
        columns = {f.name: data.get(f.name, pa.nulls(n, f.type)) for f in schema}
        store.add(pa.Table.from_pydict(columns, schema=schema))
        print(f"{name}: {start + n}/{rows}", file=sys.stderr)
    store.compact()
    refresh(out, name)
    return name


def refresh(out: Path, name: str) -> None:
    """What ingest does after writing: ANN index past the threshold, snapshot, text tower."""
    from mmembed import Index

    Index(out / "db", table=name).refresh()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["all", "model", "phones", "tiles", "vectors"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--count", type=int, help="images to make (phones: 1000, tiles: 10000)")
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    started = time.perf_counter()
    made: dict[str, object] = {}
    if args.what in ("all", "model", "vectors"):
        made["model"] = str(make_model(args.out))
    if args.what in ("all", "phones"):
        made["phones"] = str(make_images(args.out, "phones", args.count or 1000, args.workers))
    if args.what in ("all", "tiles"):
        made["tiles"] = str(make_images(args.out, "tiles", args.count or 10_000, args.workers))
    if args.what in ("all", "vectors"):
        made["tables"] = [make_vectors(args.out, n, Path(str(made["model"]))) for n in args.rows]
        made["db"] = str(args.out / "db")
    made["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(made, indent=2))


if __name__ == "__main__":
    main()
