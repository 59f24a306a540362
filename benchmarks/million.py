"""A million rows on one laptop (issue 27): the partitioned snapshot, measured.

    python benchmarks/datasets.py vectors --rows 10000 100000 1000000   # random tables (once)
    python benchmarks/million.py clustered --rows 1000000                # clustered table (once)
    python benchmarks/million.py snapshot --tables rows_1000000 clustered_1000000_512
    python benchmarks/million.py cold --tables rows_10000 rows_100000 rows_1000000 --runs 5
    git archive BASE | tar -x -C /tmp/before
    python benchmarks/million.py cold --before /tmp/before --tables rows_1000000 clustered_1000000_512
    python benchmarks/million.py warm --tables rows_1000000 clustered_1000000_512
    python benchmarks/million.py scan --tables rows_1000000 clustered_1000000_512
    python benchmarks/million.py dupes --rows 100000 --tables rows_1000000 clustered_1000000_512
    pip install faiss-cpu && python benchmarks/million.py pq --tables rows_1000000   # not a dependency

- ``clustered``: ``ann_realistic.py``'s clustered rows (micro-clip image vectors of the shared
  photos, perturbed), lifted to 512-d, recorded with the random ViT-B-32 of ``datasets.py``.
- ``snapshot``: writes each table's snapshot (partitioned from 200k rows), timing it and its
  peak RSS (a child process per table).
- ``cold``: whole ``mmembed search "a dog on the beach" --json`` processes, median wall time
  and peak RSS (``wait4``), after one unmeasured run; paired with ``MMEMBED_QUICK=0`` (the
  LanceDB path, what a table past the old 300k snapshot limit took) in the same run. With
  ``--before CHECKOUT``: the quick path only, that checkout's code and this one's, runs interleaved.
- ``scan``: warm ``Snapshot.nearest`` in one process, the scan read through the memory map
  (serve, mcp, the API) against streamed with ``pread`` (the CLI's one-shot search), one way
  after the other; the scan alone too (``snapshot.scan`` over every row, both ways).
- ``warm``: ``Index.search(text)`` p50/p95 in one process (query encoded by the exported
  tower, then the snapshot), and recall@10 of the snapshot's answer against an exact scan of
  the same vectors, for ``ann_realistic.py``'s queries (micro-clip caption vectors and held-out
  image vectors, lifted to 512-d) and for random unit queries.
- ``pq``: a way not taken, measured: faiss's 4-bit product-quantizer fast scan over every row
  (``IndexPQFastScan``, ``--pq-m`` sub-quantizers), its ``--candidates`` then scored exactly
  against the snapshot's float32 vectors; p50 of the scan and of the whole lookup, and recall@10
  against an exact scan, for random unit queries (the case the snapshot's partitions cannot prune).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.datasets import DEFAULT_OUT, SHARED  # noqa: E402

QUERY = "a dog on the beach"  # a hybrid query whose terms no row's words hold: ranked by its vectors
WORDS_QUERY = "bench"  # every row's words hold it (its folder, /bench/): the word ranking's worst case


def _exe() -> str:
    return str(Path(sys.executable).parent / "mmembed")


def run_rss(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one child, measured by ``wait4`` on it alone."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd)} exited {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss / 1024, out.decode()


def clustered(args: argparse.Namespace) -> None:
    from benchmarks.ann_realistic import base_vectors, lift, make_table, perturb
    from benchmarks.datasets import make_model

    bases = base_vectors(args.out / "micro-clip-bases.npy")
    matrix = lift(perturb(bases, args.rows, seed=args.rows), 512)
    name = f"clustered_{args.rows}_512"
    make_table(args.out / "db", name, matrix, make_model(args.out, "ViT-B-32"))
    print(json.dumps({"table": name, "rows": args.rows}))


def snapshot(args: argparse.Namespace) -> None:
    for name in args.tables:
        code = ("import sys,time; from mmembed.store import Store; s=Store(sys.argv[1], sys.argv[2]); "
                "t=time.perf_counter(); ok=s.write_snapshot(); print(ok, round(time.perf_counter()-t,1))")
        wall, rss, out = run_rss([sys.executable, "-c", code, str(args.out / "db"), name])
        info = json.loads(Path(args.out / "db" / f"{name}.mmembed" / "snapshot.json").read_text())
        print(json.dumps({"table": name, "written": out.split(), "wall_s": round(wall, 1), "peak_mb": round(rss),
                          "ivf": info.get("ivf")}), flush=True)


def cold(args: argparse.Namespace) -> None:
    if args.before:
        return cold_before_after(args)
    for name, (query, held), (label, extra) in itertools.product(
            args.tables, ((QUERY, "no row"), (WORDS_QUERY, "every row")),
            (("quick (snapshot)", {}), ("LanceDB path (MMEMBED_QUICK=0)", {"MMEMBED_QUICK": "0"}))):
        env = {**os.environ, **extra}
        cmd = [_exe(), "search", query, "--json", "--db", str(args.out / "db"), "--table", name, "-n", "10"]
        run_rss(cmd, env)  # files into the OS cache
        walls, peaks = [], []
        for _ in range(args.runs):
            wall, rss, _ = run_rss(cmd, env)
            walls.append(wall)
            peaks.append(rss)
        print(json.dumps({"table": name, "query": query, "words held by": held, "path": label,
                          "median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3),
                          "peak_mb": round(max(peaks))}), flush=True)


def cold_before_after(args: argparse.Namespace) -> None:
    """The quick path's cold search with ``--before``'s code and this checkout's, interleaved
    run by run (``python -m mmembed`` with PYTHONPATH set, started outside both checkouts)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_") and k != "PYTHONPATH"}
    if args.path == "lancedb":
        base["MMEMBED_QUICK"] = "0"
    codes = {"before": str(args.before.resolve()), "after": str(HERE.parent)}
    for label, code in codes.items():  # an editable install maps mmembed.cli to its own folder: each side must run its own CLI
        where = subprocess.run([sys.executable, "-c", "import importlib; print(importlib.import_module('mmembed.cli.app').__file__)"],
                               env={**base, "PYTHONPATH": code}, cwd="/", capture_output=True, text=True, check=True).stdout.strip()
        if not where.startswith(code):
            raise SystemExit(f"{label}: mmembed.cli comes from {where}, not {code}; link {code}/mmembed/cli to {code}/cli")
    filters = ["--where", "size >= 1000"] if args.path == "filtered" else []
    for name, query in itertools.product(args.tables, (QUERY, WORDS_QUERY)):
        cmd = [sys.executable, "-m", "mmembed", "search", query, *filters, "--json", "--db", str((args.out / "db").resolve()),
               "--table", name, "-n", "10"]
        envs = {k: {**base, "PYTHONPATH": code} for k, code in codes.items()}
        got: dict[str, list[tuple[float, float]]] = {k: [] for k in codes}
        answers = {}
        for k in codes:
            out = run_rss(cmd, envs[k], cwd="/")[2]  # (and the files into the OS cache)
            answers[k] = [json.loads(line)["id"] for line in out.splitlines() if line.strip()]
        for _ in range(args.runs):
            for k in codes:
                wall, rss, _ = run_rss(cmd, envs[k], cwd="/")
                got[k].append((wall, rss))
        med = {k: (statistics.median(w for w, _ in v), max(r for _, r in v)) for k, v in got.items()}
        print(json.dumps({"table": name, "query": query, "path": args.path, "runs": args.runs,
                          **{f"{k}_median_s": round(m[0], 3) for k, m in med.items()},
                          **{f"{k}_peak_mb": round(m[1]) for k, m in med.items()},
                          "after/before wall": round(med["after"][0] / med["before"][0], 2),
                          "same hits": answers["before"] == answers["after"]}), flush=True)


def scan_ways(args: argparse.Namespace) -> None:
    from mmembed.store.snapshot import Snapshot, scan

    rng = np.random.default_rng(3)
    qs = rng.standard_normal((args.runs + 5, 512)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    for name in args.tables:
        snaps = {way: Snapshot.open(str(args.out / "db"), name, stream=way == "streamed") for way in ("mapped", "streamed")}
        got: dict[str, dict[str, list[float]]] = {way: {"nearest": [], "scan": []} for way in snaps}
        # each way and each measure in a block of its own: BLAS's threads spin on after a mapped
        # product and would slow a streamed scan that came right after it
        for (way, snap), what in itertools.product(snaps.items(), ("nearest", "scan")):
            for i, q in enumerate(qs):
                started = time.perf_counter()
                if what == "nearest":
                    snap.nearest(q, target="image", limit=10)
                else:
                    scan(snap._array("image"), q, stream=way == "streamed")
                if i >= 5:  # the first queries map the pages and load the centroids
                    got[way][what].append(time.perf_counter() - started)
        print(json.dumps({"table": name, "queries": args.runs, **{
            f"{way} {what} p50_ms": round(1000 * statistics.median(v), 1)
            for way, by in got.items() for what, v in by.items()}}), flush=True)


def _queries(count: int) -> dict[str, np.ndarray]:
    from benchmarks.ann_realistic import base_vectors, lift, queries

    bases = base_vectors(DEFAULT_OUT / "micro-clip-bases.npy")
    qs = lift(queries(count, bases), 512)
    rng = np.random.default_rng(5)
    rand = rng.standard_normal((count, 512)).astype(np.float32)
    return {"captions": qs[:count], "held-out images": qs[count:],
            "random": rand / np.linalg.norm(rand, axis=1, keepdims=True)}


def _path_at(snap, position: int) -> str:
    offsets = snap._array("offsets")
    with open(Path(snap.folder) / "rows.jsonl", "rb") as f:
        f.seek(int(offsets[position]))
        return json.loads(f.read(int(offsets[position + 1] - offsets[position])))["path"]


def warm(args: argparse.Namespace) -> None:
    from mmembed import Index
    from mmembed.store.snapshot import Snapshot

    with open(SHARED / "data" / "flickr8k" / "dev_captions.csv") as f:
        texts = [row[1] for row in csv.reader(f)][1:][: args.queries]
    sets = _queries(args.queries)
    for name in args.tables:
        db = str(args.out / "db")
        index = Index(db, table=name)
        index.search("warm up")
        times, cpu = [], []
        for text in texts:
            started, used = time.perf_counter(), time.process_time()
            index.search(text, limit=10)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - used) * 1000)
        snap = Snapshot.open(db, name)
        assert snap is not None
        target = (snap.info.get("ivf") or {}).get("target", "image")
        matrix = snap.vectors(target)
        row = {"table": name, "rows": snap.rows, "ivf": snap.info.get("ivf"),
               "warm_p50_ms": round(statistics.median(times), 1), "warm_cpu_p50_ms": round(statistics.median(cpu), 1),
               "warm_p95_ms": round(sorted(times)[int(len(times) * .95)], 1)}
        for label, qs in sets.items():
            exact = np.concatenate([np.argsort(-(qs[i:i + 16] @ np.asarray(matrix).T), axis=1)[:, :10]
                                    for i in range(0, len(qs), 16)])
            found, vec_ms, vec_cpu = [], [], []
            for q, e in zip(qs, exact):
                started, used = time.perf_counter(), time.process_time()
                rows = snap.nearest(q, target=target, limit=10)
                vec_ms.append((time.perf_counter() - started) * 1000)
                vec_cpu.append((time.process_time() - used) * 1000)
                want = {_path_at(snap, int(i)) for i in e}  # the exact top 10's rows (snapshot positions)
                found.append(len(want & {r["path"] for r in rows}) / 10)
            row[label] = {"recall_at_10": round(float(np.mean(found)), 4), "vector_p50_ms": round(statistics.median(vec_ms), 1),
                          "vector_cpu_p50_ms": round(statistics.median(vec_cpu), 2)}
        print(json.dumps(row), flush=True)


def pq(args: argparse.Namespace) -> None:
    import faiss  # not a dependency of mmembed: pip install faiss-cpu

    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    qs = rng.standard_normal((args.runs + 5, 512)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    for name in args.tables:
        matrix = np.load(args.out / "db" / f"{name}.mmembed" / "image.npy", mmap_mode="r")
        rows, dim = matrix.shape
        exact = np.concatenate([np.argsort(-(qs[i:i + 8] @ np.asarray(matrix).T), axis=1)[:, :10]
                                for i in range(0, len(qs), 8)])
        for m in args.pq_m:
            started = time.perf_counter()
            sample = np.ascontiguousarray(matrix[np.sort(rng.choice(rows, min(rows, 65536), replace=False))])
            index = faiss.IndexPQFastScan(dim, m, 4, faiss.METRIC_INNER_PRODUCT)
            index.train(sample)
            for start in range(0, rows, 100_000):
                index.add(np.ascontiguousarray(matrix[start:start + 100_000]))
            built = time.perf_counter() - started
            for r in args.candidates:
                whole, scans, found = [], [], []
                for i, (q, e) in enumerate(zip(qs, exact)):
                    t0 = time.perf_counter()
                    _, got = index.search(q[None], r)
                    t1 = time.perf_counter()
                    cand = np.sort(got[0])
                    top = cand[np.argsort(-(np.asarray(matrix[cand]) @ q))[:10]]
                    if i >= 5:  # the first queries fault the codes and the rows in
                        whole.append((time.perf_counter() - t0) * 1000)
                        scans.append((t1 - t0) * 1000)
                        found.append(len(set(top.tolist()) & set(e.tolist())) / 10)
                print(json.dumps({"table": name, "pq_m": m, "codes_mb": round(rows * m / 2 / 1e6), "build_s": round(built, 1),
                                  "candidates": r, "threads": args.threads, "scan_p50_ms": round(statistics.median(scans), 2),
                                  "whole_p50_ms": round(statistics.median(whole), 2),
                                  "recall_at_10": round(float(np.mean(found)), 4)}), flush=True)


def _components(pairs: list[tuple[int, int, float]], cut: float) -> set[frozenset[int]]:
    """The groups that linking every pair at or above ``cut`` makes (what the near check
    confirms: near copies score 0.9 and up; the check itself needs the files)."""
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, score in pairs:
        if score >= cut:
            parent[find(j)] = find(i)
    groups: dict[int, set[int]] = {}
    for i in list(parent):
        groups.setdefault(find(i), set()).add(i)
    return {frozenset(g) for g in groups.values() if len(g) > 1}


def dupes(args: argparse.Namespace) -> None:
    """The near mode's candidate stage: all pairs against ANN candidates on the same vectors
    (100k random rows with 1,000 planted near copies, and 100k clustered rows), then the whole
    ``mmembed dupes`` process on the 1M tables (ANN only: all pairs would take hours)."""
    import tracemalloc

    from benchmarks.ann_realistic import base_vectors, lift, perturb
    from mmembed.retrieval import dupes as d

    rows = args.rows if args.rows < 1_000_000 else 100_000
    rng = np.random.default_rng(0)
    random = rng.standard_normal((rows, 512)).astype(np.float32)
    source = rng.choice(rows - 1000, 1000, replace=False)
    random[rows - 1000:] = random[source] + 0.006 * np.linalg.norm(random[source], axis=1, keepdims=True) * \
        rng.standard_normal((1000, 512)).astype(np.float32)
    random /= np.linalg.norm(random, axis=1, keepdims=True)
    tables = [("random + 1,000 planted", random)]
    if args.clustered:
        tables.append(("clustered", lift(perturb(base_vectors(args.out / "micro-clip-bases.npy"), rows, seed=rows), 512)))
    for label, matrix in tables:
        found = {}
        for stage in ("_all_pairs", "_candidate_pairs"):
            cache = args.out / f"dupes-all-pairs-{label.split()[0]}-{rows}.npy"
            if stage == "_all_pairs" and cache.exists():  # the full pass is deterministic: reuse it
                found[stage] = [(int(i), int(j), float(s)) for i, j, s in np.load(cache)]
                continue
            tracemalloc.start()
            started = time.perf_counter()
            pairs = getattr(d, stage)(matrix, d.THRESHOLDS["near"], None).take_pairs()
            seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            found[stage] = pairs
            if stage == "_all_pairs":
                np.save(cache, np.column_stack([pairs.i, pairs.j, pairs.score]).astype(np.float64))
            print(json.dumps({"table": f"{label}, {rows} rows", "stage": stage, "seconds": round(seconds, 1),
                              "peak_mb_beyond_vectors": round(peak / 2**20), "proposed": len(pairs)}), flush=True)
        exact, ann = (_components(found[s], 0.9) for s in ("_all_pairs", "_candidate_pairs"))
        close = {(i, j) for i, j, sc in found["_all_pairs"] if sc >= 0.9}
        print(json.dumps({"table": f"{label}, {rows} rows", "groups_at_0.9_exact": len(exact), "groups_at_0.9_ann": len(ann),
                          "same_groups": exact == ann, "close_pairs_exact": len(close),
                          "close_pairs_also_ann": len(close & {(i, j) for i, j, _ in found["_candidate_pairs"]})}), flush=True)
    for name in args.tables:
        cmd = [_exe(), "dupes", "--db", str(args.out / "db"), "--table", name, "--json", "-q"]
        wall, rss, out = run_rss(cmd)
        print(json.dumps({"table": name, "mmembed dupes": "whole process", "seconds": round(wall, 1),
                          "peak_mb": round(rss), "groups": len(out.splitlines())}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["clustered", "snapshot", "cold", "warm", "scan", "dupes", "pq"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tables", nargs="*", default=["rows_1000000"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, help="cold: a checkout to compare against, side by side")
    parser.add_argument("--path", choices=["quick", "lancedb", "filtered"], default="quick",
                        help="cold --before: the snapshot path, LanceDB's (MMEMBED_QUICK=0), or a filtered search (LanceDB's too)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--clustered", action="store_true", help="dupes: the clustered 100k table too")
    parser.add_argument("--pq-m", type=int, nargs="*", default=[128, 256], help="pq: sub-quantizers (4 bits each)")
    parser.add_argument("--candidates", type=int, nargs="*", default=[200, 500, 1000, 2000], help="pq: rows scored exactly")
    parser.add_argument("--threads", type=int, default=2, help="pq: faiss's OpenMP threads")
    args = parser.parse_args()
    {"clustered": clustered, "snapshot": snapshot, "cold": cold, "warm": warm, "scan": scan_ways, "dupes": dupes, "pq": pq}[args.what](args)


if __name__ == "__main__":
    main()
