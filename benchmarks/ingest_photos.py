"""First ingest, no-op re-ingest, and a subfolder move, timed as fresh `mmembed` processes.

Runs on a temporary copy of ../shared/data/photos (so it can move files) and prints one
JSON object with wall times (process start included) and the reports.

    python benchmarks/ingest_photos.py [--model local-dir:../shared/models/micro-clip] [--repeat 3]
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
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def run(*args: str) -> tuple[float, dict]:
    exe = shutil.which("mmembed", path=str(Path(sys.executable).parent)) or "mmembed"
    started = time.perf_counter()
    done = subprocess.run([exe, *args, "--json", "-q"], capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=f"local-dir:{SHARED / 'models' / 'micro-clip'}")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    first_times, noop_times, noop_inner, first_inner = [], [], [], []
    results: dict = {}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            photos = Path(tmp) / "photos"
            shutil.copytree(SHARED / "data" / "photos", photos)
            db = str(Path(tmp) / "db.lancedb")
            t, first = run("ingest", str(photos), "--db", db, "--model", args.model)
            first_times.append(t)
            first_inner.append(first["seconds"])
            t, noop = run("ingest", str(photos), "--db", db)
            noop_times.append(t)
            noop_inner.append(noop["seconds"])
            shutil.move(photos / "phone_formats" / "albums", photos / "albums-moved")
            for victim in sorted((photos / "coco").iterdir())[:5]:
                victim.unlink()
            _, after = run("ingest", str(photos), "--db", db)
            results = {
                "files_added": first["added"],
                "skipped": first["skipped"],
                "noop_unchanged": noop["unchanged"],
                "after_move_and_delete": {k: after[k] for k in ("added", "updated", "moved", "unchanged", "removed")},
            }
    print(json.dumps({
        "benchmark": "ingest_photos",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "model": args.model,
        "repeat": args.repeat,
        "first_ingest_s_median": round(statistics.median(first_times), 2),
        "first_ingest_in_library_s_median": round(statistics.median(first_inner), 2),
        "noop_reingest_s_median": round(statistics.median(noop_times), 2),
        "noop_reingest_in_library_s_median": round(statistics.median(noop_inner), 3),
        "noop_over_first_ratio": round(statistics.median(noop_times) / statistics.median(first_times), 3),
        **results,
    }, indent=2))


if __name__ == "__main__":
    main()
