"""Near-duplicate detection measured on a benchmark generated from Flickr8k dev.

    python benchmarks/dupes.py [--model local-dir:PATH] [--source FOLDER] [--natural]

What it builds in a temporary folder (seeded, so every run builds the same files):

- 300 originals (of the first 1,000 photos of ``--source``, default Flickr8k dev), each with
  1-3 variants of different kinds: ``jpeg`` (quality 15-60), ``resize`` (50 %), ``rotate``
  (pixels turned 90 degrees with the EXIF orientation that turns them back), ``turn`` (pixels
  turned 90 or 180 degrees, no EXIF), ``tilt`` (turned 2-10 degrees), ``crop`` (keeping
  80-90 % of each side), ``deepcrop`` (50-80 %), ``tone`` (brightness or contrast
  0.85-1.15), ``png`` (a lossless re-save), ``border`` (screenshot-like: shrunk onto a plain
  frame with a bar); and for one original in three a ``mirror``, which is *not* a duplicate;
- the other 700 photos, unrelated;
- hard negatives (dev only): the 200 pairs of different dev images whose captions are most
  alike (by the model's own caption vectors), already in the set.

It ingests all of it with ``--model`` (micro-clip), runs ``Index.duplicates`` (near mode) once
and reports, over *all pairs* of the library, pairwise recall per variant kind (pairs
original-variant found in one group), pairwise precision per kind (of the found pairs that
hold a variant of that kind, the share that are true), overall precision and recall, the
pairs holding a mirror that were grouped, and the hard negatives kept apart. ``--natural``
also ingests Flickr8k dev and ../shared/data/photos as they are and counts the groups of
unrelated photos (for photos: any group that is not one of ``TRUE_FAMILIES``). The tuning
run is ``--source ../shared/data/flickr8k/train``; the report is on dev. Prints one JSON object.

    python benchmarks/dupes.py --scale 100000

The speed run: ``find_duplicates`` over 100k random 512-d unit vectors with 1,000 planted
near copies and 500 byte copies; seconds and the peak memory it allocates beyond the vectors.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import DEV, MICRO  # noqa: E402
from benchmarks.datasets import DEV_CAPTIONS as CAPTIONS  # noqa: E402
KINDS = ("jpeg", "resize", "rotate", "turn", "tilt", "crop", "deepcrop", "tone", "png", "border")
MIRROR = "mirror"  # made too, but not a duplicate: kept apart is right (EVALUATION.md says why)


def make_variant(src: Path, kind: str, rng: random.Random, out: Path) -> Path:
    from PIL import Image, ImageEnhance

    im = Image.open(src).convert("RGB")
    w, h = im.size
    if kind == "jpeg":
        path = out.with_suffix(".jpg")
        im.save(path, "JPEG", quality=rng.randint(15, 60))
    elif kind == "resize":
        path = out.with_suffix(".jpg")
        im.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS).save(path, "JPEG", quality=90)
    elif kind == "rotate":
        path = out.with_suffix(".jpg")
        turned = im.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise; orientation 6 turns it back
        exif = Image.Exif()
        exif[0x0112] = 6
        turned.save(path, "JPEG", quality=92, exif=exif.tobytes())
    elif kind == "turn":
        path = out.with_suffix(".jpg")
        im.transpose(rng.choice([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180])).save(path, "JPEG", quality=90)
    elif kind == "tilt":
        path = out.with_suffix(".jpg")
        angle = rng.choice([-1, 1]) * rng.uniform(2, 10)
        im.rotate(angle, Image.Resampling.BICUBIC, expand=False).save(path, "JPEG", quality=90)
    elif kind == "border":  # screenshot-like: the photo shrunk (70 %) onto a plain frame of its size, a bar on top
        path = out.with_suffix(".png")
        frame = Image.new("RGB", (w, h), rng.choice([(255, 255, 255), (0, 0, 0), (32, 32, 36)]))
        small = im.resize((int(w * 0.7), int(h * 0.7)), Image.Resampling.LANCZOS)
        frame.paste(small, ((w - small.width) // 2, int(h * 0.18)))
        frame.paste(Image.new("RGB", (w, int(h * 0.07)), (90, 90, 96)), (0, 0))
        frame.save(path, "PNG")
    elif kind == MIRROR:
        path = out.with_suffix(".jpg")
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path, "JPEG", quality=90)
    elif kind in ("crop", "deepcrop"):
        path = out.with_suffix(".jpg")
        keep = rng.uniform(0.80, 0.90) if kind == "crop" else rng.uniform(0.50, 0.80)
        cw, ch = int(w * keep), int(h * keep)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        im.crop((x, y, x + cw, y + ch)).save(path, "JPEG", quality=90)
    elif kind == "tone":
        path = out.with_suffix(".jpg")
        enhancer = ImageEnhance.Brightness if rng.random() < 0.5 else ImageEnhance.Contrast
        enhancer(im).enhance(rng.choice([rng.uniform(0.85, 0.93), rng.uniform(1.07, 1.15)])).save(path, "JPEG", quality=90)
    else:
        path = out.with_suffix(".png")
        im.save(path, "PNG")
    return path


def build(folder: Path, seed: int = 0, source: Path = DEV) -> tuple[dict[str, str], dict[str, str]]:
    """Copy ``source`` (1,000 photos: Flickr8k dev) and write the variants (1-3 duplicate kinds
    and, for one original in three, a mirror, which is *not* a duplicate: its own origin);
    returns (file name -> its original's name, variant name -> kind)."""
    rng = random.Random(seed)
    images = sorted(source.glob("*.jpg"))[:1000]
    rng.shuffle(images)
    originals, unrelated = images[:300], images[300:]
    origin: dict[str, str] = {}
    kind_of: dict[str, str] = {}
    for src in unrelated:
        shutil.copy(src, folder / src.name)
        origin[src.name] = src.name
    for n, src in enumerate(originals):
        shutil.copy(src, folder / src.name)
        origin[src.name] = src.name
        kinds = rng.sample(KINDS, rng.randint(1, 3))
        for kind in kinds:
            path = make_variant(src, kind, rng, folder / f"variant_{n:03d}_{kind}")
            origin[path.name] = src.name
            kind_of[path.name] = kind
        if rng.random() < 1 / 3:
            path = make_variant(src, MIRROR, rng, folder / f"variant_{n:03d}_{MIRROR}")
            origin[path.name] = path.name
            kind_of[path.name] = MIRROR
    return origin, kind_of


def hard_negatives(idx, count: int = 200) -> list[tuple[str, str]]:
    """The ``count`` pairs of different dev images whose captions are most alike."""
    captions: dict[str, list[str]] = defaultdict(list)
    with open(CAPTIONS, newline="") as f:
        for row in csv.DictReader(f):
            captions[row["image"]].append(row["caption"])
    names = sorted(captions)
    vecs = idx.embed_text([captions[n][0] for n in names])
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -1)
    top = np.dstack(np.unravel_index(np.argsort(-sims, axis=None), sims.shape))[0]
    pairs, seen = [], set()
    for i, j in top:
        if i < j and (i, j) not in seen:
            seen.add((i, j))
            pairs.append((names[i], names[j]))
            if len(pairs) == count:
                break
    return pairs


def score(groups, origin: dict[str, str], kind_of: dict[str, str], hard: list[tuple[str, str]]) -> dict:
    together = set()
    for g in groups:
        names = sorted(Path(f.path).name for f in g.files)
        together.update(itertools.combinations(names, 2))
    truth = set()
    by_origin: dict[str, list[str]] = defaultdict(list)
    for name, orig in origin.items():
        by_origin[orig].append(name)
    for members in by_origin.values():
        truth.update(itertools.combinations(sorted(members), 2))
    out: dict = {}
    for kind in KINDS:
        pairs = {tuple(sorted((v, origin[v]))) for v, k in kind_of.items() if k == kind}
        found = {p for p in together if kind_of.get(p[0]) == kind or kind_of.get(p[1]) == kind}
        out[kind] = {"pairs": len(pairs), "recall": round(len(pairs & together) / len(pairs), 3),
                     "precision": round(len(found & truth) / len(found), 3) if found else None}
    out[MIRROR] = {"variants": sum(1 for k in kind_of.values() if k == MIRROR),
                   "pairs_grouped": sum(1 for p in together if MIRROR in p[0] or MIRROR in p[1])}
    out["false_pairs"] = sorted(together - truth)[:20]
    out["all"] = {"found_pairs": len(together), "true_pairs": len(truth),
                  "precision": round(len(together & truth) / len(together), 3) if together else None,
                  "recall": round(len(together & truth) / len(truth), 3)}
    apart = sum(1 for a, b in hard if tuple(sorted((a, b))) not in together)
    out["hard_negatives"] = {"pairs": len(hard), "kept_apart": round(apart / len(hard), 3) if hard else None}
    return out


# groups of ../shared/data/photos that are one photo: the same file or the same shot
# (orientation tags, a copy in two folders, HDR on/off); any other group is of unrelated photos
TRUE_FAMILIES = ("orientation/Landscape_", "orientation/Portrait_", "orientation/landscape_",
                 "orientation/portrait_", "el_torcal_rocks", "metadata/faces/portrait", "hdr/canon_hdr_",
                 "hdr/iphone_hdr_")


def natural(model: str, folder: Path, work: Path, families: tuple[str, ...]) -> dict:
    """Ingest a natural folder with ``model`` and count near groups of unrelated photos."""
    import mmembed

    idx = mmembed.Index(str(work / f"natural-{folder.name}-{Path(model).name}"), model=model)
    idx.ingest(folder)
    started = time.perf_counter()
    groups = idx.duplicates(mode="near")
    seconds = time.perf_counter() - started
    false = [[f.path for f in g.files] for g in groups
             if not any(all(fam in f.path for f in g.files) for fam in families)]
    return {"folder": str(folder), "photos": len(idx.items()), "groups": len(groups),
            "groups_of_unrelated_photos": len(false), "unrelated": false, "seconds": round(seconds, 1)}


def at_scale(rows: int, dim: int = 512, planted: int = 1000, copies: int = 500) -> dict:
    """``find_duplicates`` on ``rows`` random unit vectors with ``planted`` near copies (cosine
    about 0.98) and ``copies`` byte copies (same content hash): the pairs proposed for the
    geometric check, seconds and peak memory. The rows name no real files (and carry no size,
    so the disk is not asked whether they changed): the byte copies are grouped, but no near
    pair can be confirmed here (no file to decode). This measures the vector pass and the size
    of the check's work; a check's cost per pair comes from the photo runs."""
    import tracemalloc

    from mmembed.retrieval.dupes import find_duplicates

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((rows, dim), dtype=np.float32)
    source = rng.choice(rows - planted - copies, planted + copies, replace=False)
    n_base = rows - planted - copies
    noise = rng.standard_normal((planted, dim), dtype=np.float32) * 0.006
    vectors[n_base:n_base + planted] = vectors[source[:planted]] + noise * np.linalg.norm(vectors[source[:planted]], axis=1, keepdims=True)
    vectors[n_base + planted:] = vectors[source[planted:]]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    table = [{"id": f"{i:012x}", "path": f"/bench/{i:08d}.jpg", "size": None, "width": 10, "height": 10,
              "content_hash": f"h{i}", "mtime_ns": i} for i in range(rows)]
    for k, i in enumerate(range(n_base + planted, rows)):
        table[i]["content_hash"] = table[int(source[planted + k])]["content_hash"]
    from mmembed.retrieval import dupes

    propose, take, counted = dupes.nearest_photos, dupes.Nearest.take_pairs, {"seconds": 0.0}

    def timed(stage):  # the pairs the vectors propose, and how long that took
        def run(*args, **kwargs):
            started = time.perf_counter()
            out = stage(*args, **kwargs)
            counted["seconds"] += time.perf_counter() - started
            if isinstance(out, dupes.Pairs):
                counted["pairs"] = len(out)
            return out
        return run

    dupes.nearest_photos, dupes.Nearest.take_pairs = timed(propose), timed(take)
    tracemalloc.start()
    started = time.perf_counter()
    groups = find_duplicates(table, vectors, mode="near")
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    dupes.nearest_photos, dupes.Nearest.take_pairs = propose, take
    return {"rows": rows, "dim": dim, "planted_near": planted, "planted_exact": copies, "groups": len(groups),
            "proposed_pairs": counted["pairs"], "proposing_seconds": round(counted["seconds"], 1),
            "seconds": round(seconds, 1), "peak_mb_beyond_the_vectors": round(peak / 2**20, 1),
            "vectors_mb": round(vectors.nbytes / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=f"local-dir:{MICRO}", help="open_clip model for the ingests")
    parser.add_argument("--source", type=Path, default=DEV, help="the natural photos (1,000 are used)")
    parser.add_argument("--natural", action="store_true", help="also Flickr8k dev and ../shared/data/photos as they are")
    parser.add_argument("--scale", type=int, help="only the speed run: this many random rows with planted duplicates")
    args = parser.parse_args()
    if args.scale:
        print(json.dumps({"date": str(date.today()), **at_scale(args.scale)}, indent=1))
        return
    import mmembed

    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "photos"
        folder.mkdir()
        origin, kind_of = build(folder, source=args.source)
        idx = mmembed.Index(str(Path(work) / "db"), model=args.model)
        report = idx.ingest(folder)
        hard = hard_negatives(idx) if args.source == DEV else []
        result: dict = {"date": str(date.today()), "model": args.model, "source": str(args.source),
                        "files": len(origin), "variants": {k: sum(1 for v in kind_of.values() if v == k)
                                                           for k in (*KINDS, MIRROR)},
                        "ingested": report.rows}
        started = time.perf_counter()
        groups = idx.duplicates(mode="near")
        result["near"] = {"seconds": round(time.perf_counter() - started, 2), **score(groups, origin, kind_of, hard)}
        if args.natural:
            photos = ROOT.parent / "shared" / "data" / "photos"
            result["natural"] = [natural(args.model, DEV, Path(work), ()),
                                 natural(args.model, photos, Path(work), TRUE_FAMILIES)]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
