"""The ANN index chosen on vectors that cluster like real CLIP embeddings (issue 10, item 5).

    python benchmarks/ann_realistic.py [--rows 1000000] [--queries 200]

Random unit vectors (``datasets.py vectors``) are the worst case for a partitioned index: no
two are close. Real photo collections are bursts of similar pictures. This builds a table
that clusters so, from real vectors:

- **bases**: micro-clip's image vectors of the shared photos (Flickr8k train and dev, COCO:
  7,239), encoded by mmembed at fp32;
- **rows**: ``--rows`` perturbed copies, ``base + noise`` renormalised, the noise scaled per
  row so that a copy's cosine to its base is 0.78-0.96 (photos of one scene, one trip);
- **queries**: micro-clip *text* vectors of ``--queries`` Flickr8k dev captions (how people
  search), and as many held-out image vectors with their own noise.

For each index configuration it prints the build time, recall@10 against exact search (numpy
over the same matrix) and the p50/p95 of LanceDB's vector query alone (limit 10), so the
shipped setting (``store/table.py``: ANN_*) can be compared with partitioned ones on data
where partitions mean something. The table is made once under ``--out``/db (about 1 GB at
1M x 256).

``--dim 512`` lifts every vector into 512 dimensions by one fixed orthonormal map (every
cosine, hence the clustering, is unchanged) so that the table has ViT-B-32's width, and
records ``--model`` (default: the random-weights ViT-B-32 folder of ``datasets.py``) as its
model, so that ``Index.search`` runs end to end (text query through the exported tower,
then the ANN query): ``warm_ms`` is its p50/p95 over the dev captions with each setting.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.datasets import DEFAULT_OUT, SHARED  # noqa: E402

MICRO = SHARED / "models" / "micro-clip"


def base_vectors(cache: Path) -> np.ndarray:
    if cache.exists():
        return np.load(cache)
    from mmembed import Encoder
    from mmembed.sources import walk

    roots = [SHARED / "data" / "flickr8k" / "train", SHARED / "data" / "flickr8k" / "dev", SHARED / "data" / "photos" / "coco"]
    paths = [f.path for f in walk(roots)]
    encoder = Encoder(f"local-dir:{MICRO}", device="cpu", precision="fp32", batch_size=64)
    parts = []
    for start in range(0, len(paths), 512):
        parts.append(encoder.encode_images(paths[start : start + 512], max_megapixels=200))
        print(f"bases: {min(start + 512, len(paths))}/{len(paths)}", file=sys.stderr)
    vectors = np.concatenate(parts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def perturb(bases: np.ndarray, rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(bases), rows)
    noise = rng.standard_normal((rows, bases.shape[1]), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    scale = rng.uniform(0.3, 0.8, (rows, 1)).astype(np.float32)  # cosine to the base 1/sqrt(1+s^2)
    out = bases[pick] + scale * noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def lift(vectors: np.ndarray, dim: int) -> np.ndarray:
    """``vectors`` in ``dim`` dimensions by a fixed orthonormal map: every cosine unchanged."""
    if dim == vectors.shape[1]:
        return vectors
    q, _ = np.linalg.qr(np.random.default_rng(7).standard_normal((dim, vectors.shape[1])))
    return np.ascontiguousarray(vectors @ q.T.astype(np.float32), dtype=np.float32)


def make_table(db: Path, name: str, matrix: np.ndarray, model: Path = MICRO) -> None:
    import pyarrow as pa

    from mmembed.models.encoder import LOCAL_PREFIX, local_fingerprint
    from mmembed.models.fusion import FusionConfig
    from mmembed.store import Store, TableMeta
    from mmembed.text.words import item_words

    store = Store(str(db), name)
    if store.exists() and store.count() == len(matrix):
        return
    dim = matrix.shape[1]
    store.create(TableMeta(LOCAL_PREFIX + str(model), None, local_fingerprint(model), dim, FusionConfig().to_dict()),
                 dim, replace=True)
    schema = store.table.schema
    for start in range(0, len(matrix), 100_000):
        vec = matrix[start : start + 100_000]
        n = len(vec)
        flat = pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), dim)
        ids = [f"{start + i:012x}" for i in range(n)]
        paths = [f"/bench/{start + i:08d}.jpg" for i in range(n)]
        data = {"id": ids, "path": paths, "words": [item_words({"path": p}) for p in paths],  # as ingest writes them
                "size": pa.array(np.full(n, 100_000), pa.int64()), "mtime_ns": pa.array(np.zeros(n, np.int64)),
                "content_hash": ids, "image_vector": flat, "fused_vector": flat}
        store.add(pa.Table.from_pydict({f.name: data.get(f.name, pa.nulls(n, f.type)) for f in schema}, schema=schema))
        print(f"{name}: {start + n}/{len(matrix)}", file=sys.stderr)
    store.compact()


def queries(count: int, bases: np.ndarray) -> np.ndarray:
    from mmembed import Encoder

    with open(SHARED / "data" / "flickr8k" / "dev_captions.csv") as f:
        captions = [row[1] for row in csv.reader(f)][1:]
    step = max(1, len(captions) // count)
    text = Encoder(f"local-dir:{MICRO}", device="cpu", precision="fp32").encode_text(captions[::step][:count])
    image = perturb(bases, count, seed=99)
    return np.concatenate([text, image]).astype(np.float32)


def measure(table, matrix: np.ndarray, qs: np.ndarray, *, nprobes: int | None, refine: int | None) -> dict:
    exact = np.concatenate([np.argsort(-(qs[i : i + 25] @ matrix.T), axis=1)[:, :10] for i in range(0, len(qs), 25)])
    found, times = [], []
    for q in qs:
        query = table.search(q, vector_column_name="image_vector").distance_type("cosine").select(["path"]).limit(10)
        if nprobes is not None:
            query = query.nprobes(nprobes)
        if refine is not None:
            query = query.refine_factor(refine)
        started = time.perf_counter()
        rows = query.to_list()
        times.append((time.perf_counter() - started) * 1000)
        found.append([int(r["path"][7:15]) for r in rows])
    recall = statistics.mean(len(set(f) & set(e.tolist())) / 10 for f, e in zip(found, exact))
    times.sort()
    return {"recall_at_10": round(recall, 4), "p50_ms": round(times[len(times) // 2], 1),
            "p95_ms": round(times[int(len(times) * 0.95)], 1)}


def warm_search(db: Path, name: str, texts: list[str], nprobes: int, refine: int) -> dict:
    """p50/p95 of ``Index.search(text)`` in one process: query encoding and the ANN query."""
    from mmembed import Index
    from mmembed.store import table as store_table

    store_table.ANN_NPROBES, store_table.ANN_REFINE = nprobes, refine
    index = Index(str(db), table=name)
    index.search("warm up")
    times = []
    for text in texts:
        started = time.perf_counter()
        index.search(text, limit=10)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50": round(times[len(times) // 2], 1), "p95": round(times[int(len(times) * 0.95)], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200, help="text queries (and as many image queries)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--dim", type=int, default=256, help="256 (micro-clip's) or 512 (ViT-B-32's width)")
    parser.add_argument("--model", type=Path, help="the model a --dim 512 table records [default: datasets.py's ViT-B-32]")
    args = parser.parse_args()

    from lancedb.index import IvfPq, IvfRq

    from mmembed.store import Store

    bases = base_vectors(args.out / "micro-clip-bases.npy")
    matrix = lift(perturb(bases, args.rows, seed=args.rows), args.dim)
    name = f"clustered_{args.rows}" + (f"_{args.dim}" if args.dim != 256 else "")
    model = MICRO
    if args.dim != bases.shape[1]:
        from benchmarks.datasets import make_model

        model = args.model or make_model(args.out, "ViT-B-32")
    make_table(args.out / "db", name, matrix, model)
    table = Store(str(args.out / "db"), name).table
    qs = lift(queries(args.queries, bases), args.dim)
    warm_texts = None
    if args.dim != bases.shape[1]:
        with open(SHARED / "data" / "flickr8k" / "dev_captions.csv") as f:
            warm_texts = [row[1] for row in csv.reader(f)][1:][: args.queries]
    print(json.dumps({"bases": len(bases), "rows": args.rows, "dim": int(matrix.shape[1]), "queries": len(qs)}))
    configs = [
        ("IVF_RQ 1 partition, 4 bits (the setting before)", IvfRq(distance_type="cosine", num_partitions=1, num_bits=4), [(1, 5)]),
        ("IVF_RQ 256 partitions, 4 bits (shipped at 1M: nprobes 32)", IvfRq(distance_type="cosine", num_partitions=256, num_bits=4),
         [(8, 5), (16, 5), (32, 5)]),
        ("IVF_PQ 256 partitions, 32 sub-vectors", IvfPq(distance_type="cosine", num_partitions=256, num_sub_vectors=32),
         [(16, 10), (32, 10)]),
    ]
    for label, config, settings in configs:
        started = time.perf_counter()
        table.create_index("image_vector", config=config, replace=True)
        built = time.perf_counter() - started
        for nprobes, refine in settings:
            result = measure(table, matrix, qs, nprobes=nprobes, refine=refine)
            if warm_texts:
                result["warm_ms"] = warm_search(args.out / "db", name, warm_texts, nprobes, refine)
            print(json.dumps({"index": label, "build_s": round(built, 1), "nprobes": nprobes, "refine": refine, **result}),
                  flush=True)


if __name__ == "__main__":
    main()
