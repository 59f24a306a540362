"""Search latency: fresh `mmembed search` processes, warm `Index.search`, and ANN recall@10.

    python benchmarks/datasets.py vectors               # once: 100k and 1M random-vector tables
    python benchmarks/search.py [--rows 100000 1000000] [--queries 50]

Prints one JSON object per table:

- ``cli_seconds``: wall time of ``mmembed search "TEXT" --json`` as a fresh process (Python
  start, imports, model or text-tower load, query, output), median of ``--cli-runs`` after one
  unmeasured run (so the OS file cache is warm, as on a machine in use);
- ``warm_ms``: ``Index.search(text)`` in one long-lived process, p50 and p95 over
  ``--queries`` different queries (query encoding included), and ``store_ms`` for the vector
  query alone (``Store.nearest`` with a ready vector);
- with ``--ann``: the same with the table's ANN index, its build time, and ``recall_at_10``
  against exact search over the same query vectors (random unit vectors, like the rows);
- ``where_ms``: ``Index.search`` with ``--where "bucket < 10"`` (10 % of rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import DEFAULT_OUT  # noqa: E402

WORDS = ("dog cat red car beach sunset child bicycle mountain snow city street food plate "
         "train bridge river boat flower garden bird sky night market table window").split()


def _queries(n: int) -> list[str]:
    import random

    rng = random.Random(0)
    return [" ".join(rng.sample(WORDS, 3)) for _ in range(n)]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def cli_seconds(db: Path, table: str, runs: int) -> list[float]:
    exe = shutil.which("mmembed", path=str(Path(sys.executable).parent)) or "mmembed"
    cmd = [exe, "search", "a dog on the beach", "--db", str(db), "--table", table, "--json"]
    subprocess.run(cmd, check=True, capture_output=True)  # unmeasured: warms the OS file cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def timed(fn, items) -> list[float]:
    out = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_OUT / "db")
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--cli-runs", type=int, default=5)
    parser.add_argument("--ann", action="store_true", help="also build the ANN index and measure it")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--skip-exact", action="store_true")
    args = parser.parse_args()
    import numpy as np

    from mmembed import Index

    for rows in args.rows:
        table = f"rows_{rows}"
        out: dict[str, object] = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
                                  "table": table, "rows": rows}
        index = Index(args.db, table=table)
        if hasattr(index, "drop_vector_index"):
            index.drop_vector_index()  # exact first
        texts = _queries(args.queries)
        if not args.skip_cli:
            times = cli_seconds(args.db, table, args.cli_runs)
            out["cli_seconds"] = {"median": round(statistics.median(times), 3), "min": round(min(times), 3)}
        index.search("warm up")
        rng = np.random.default_rng(1)
        vecs = rng.standard_normal((args.queries, index.meta.dim), dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        exact = [[r["id"] for r in index.store.nearest(v, limit=10)] for v in vecs]
        if not args.skip_exact:
            warm = timed(lambda t: index.search(t), texts)
            store = timed(lambda v: index.store.nearest(v, limit=10), vecs)
            where = timed(lambda t: index.search(t, where="bucket < 10"), texts)
            out["exact"] = {
                "warm_ms": {"p50": round(_pct(warm, 0.5), 1), "p95": round(_pct(warm, 0.95), 1)},
                "store_ms": {"p50": round(_pct(store, 0.5), 1), "p95": round(_pct(store, 0.95), 1)},
                "where_ms": {"p50": round(_pct(where, 0.5), 1), "p95": round(_pct(where, 0.95), 1)},
            }
        if args.ann and hasattr(index, "build_vector_index"):
            started = time.perf_counter()
            built = index.build_vector_index()
            build_s = time.perf_counter() - started
            index.search("warm up")
            approx = [[r["id"] for r in index.store.nearest(v, limit=10)] for v in vecs]
            recall = statistics.mean(len(set(a) & set(e)) / 10 for a, e in zip(approx, exact))
            warm = timed(lambda t: index.search(t), texts)
            store = timed(lambda v: index.store.nearest(v, limit=10), vecs)
            where = timed(lambda t: index.search(t, where="bucket < 10"), texts)
            out["ann"] = {
                "index": built, "build_seconds": round(build_s, 1), "recall_at_10": round(recall, 4),
                "warm_ms": {"p50": round(_pct(warm, 0.5), 1), "p95": round(_pct(warm, 0.95), 1)},
                "store_ms": {"p50": round(_pct(store, 0.5), 1), "p95": round(_pct(store, 0.95), 1)},
                "where_ms": {"p50": round(_pct(where, 0.5), 1), "p95": round(_pct(where, 0.95), 1)},
            }
            if not args.skip_cli:
                times = cli_seconds(args.db, table, args.cli_runs)
                out["ann"]["cli_seconds"] = {"median": round(statistics.median(times), 3), "min": round(min(times), 3)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
