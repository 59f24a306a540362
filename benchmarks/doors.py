"""Two checkouts side by side, alternating run by run: a cold CLI text search and image query,
a no-op ingest, and an ingest of one new file after a no-op (what issue 21's thin door must not slow down).

    python benchmarks/doors.py --checkout main=/work/main --checkout branch=. --runs 7

Each checkout runs its own ``.venv/bin/mmembed`` (its own code) on its own copy of one table
of Flickr8k dev images (micro-clip, towers exported; its own, since a no-op stamp is read by
the code that wrote it), so the two differ only in code. Reports the median and min wall seconds of each command per
checkout and the ratio of medians (second / first).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MICRO = f"local-dir:{SHARED / 'models' / 'micro-clip'}"
DEV = SHARED / "data" / "flickr8k" / "dev"


def run(exe: str, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    started = time.perf_counter()
    subprocess.run([exe, *args], check=True, capture_output=True, env=env, cwd=tempfile.gettempdir())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", action="append", required=True, help="NAME=PATH (twice)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--only", help="run only the command whose name starts with this (e.g. 'cold')")
    args = parser.parse_args()
    checkouts = [(n, str(Path(p).resolve() / ".venv" / "bin" / "mmembed")) for n, p in
                 (c.split("=", 1) for c in args.checkout)]
    work = Path(tempfile.mkdtemp(prefix="doors-"))
    images = sorted(DEV.glob("*.jpg"))
    spare = iter(images[args.images:])
    places = {}  # each checkout its own folder and table: a stamp is read by the code that wrote it
    for n, exe in checkouts:
        photos, db = work / n / "photos", str(work / n / "db.lancedb")
        photos.mkdir(parents=True)
        for p in images[: args.images]:
            os.symlink(p, photos / p.name)
        run(exe, "ingest", str(photos), "--db", db, "--model", MICRO, "-q")
        places[exe] = (photos, db)
    commands = {
        "cold text search": lambda exe: run(exe, "search", "a dog running on grass", "--db", places[exe][1], "-n", "10"),
        "cold image query": lambda exe: run(exe, "search", "--image", str(images[0]), "--db", places[exe][1], "-n", "10"),
        "no-op ingest": lambda exe: run(exe, "ingest", str(places[exe][0]), "--db", places[exe][1], "-q"),
        "one new file after a no-op": lambda exe: _one_new(exe, *places[exe], next(spare)),
    }
    for name, command in commands.items():
        if args.only and not name.startswith(args.only):
            continue
        times: dict[str, list[float]] = {n: [] for n, _ in checkouts}
        for _, exe in checkouts:
            command(exe)  # unmeasured: warms the OS file cache
        for i in range(args.runs):
            for n, exe in checkouts if i % 2 == 0 else checkouts[::-1]:
                times[n].append(command(exe))
        medians = {n: statistics.median(t) for n, t in times.items()}
        cells = "  ".join(f"{n}: median {medians[n]:.3f} s, min {min(t):.3f} s" for n, t in times.items())
        first, second = (medians[n] for n, _ in checkouts[:2])
        print(f"{name:28s} {cells}  ratio {second / first:.2f}", flush=True)
    shutil.rmtree(work, ignore_errors=True)


def _one_new(exe: str, photos: Path, db: str, extra: Path) -> float:
    """A no-op ingest (unmeasured: it writes the stamp), then one new file, measured."""
    run(exe, "ingest", str(photos), "--db", db, "-q")
    os.symlink(extra, photos / extra.name)
    return run(exe, "ingest", str(photos), "--db", db, "-q")


if __name__ == "__main__":
    sys.exit(main())
