"""``mmembed watch``: the time from the last file of a copy to its being searchable.

    python benchmarks/watch.py [--counts 200 1000] [--debounce 1.0] [--model local-dir:PATH]

For each count: a fresh folder holding one photo and a fresh table; a real ``mmembed watch
--json`` process on it; once its catch-up is done, COUNT Flickr8k dev photos (224 px JPEGs)
are copied in. Prints one JSON object with, per count:

- ``copy_s``: the copy itself (``shutil.copy`` of each file);
- ``searchable_s``: from the end of the copy until an image search (``Index.search`` in this
  process, warmed up beforehand: image tower loaded, lancedb imported; polled every 50 ms) with the last file copied finds that
  file first: the figure the issue asks for;
- ``event_s``: from the end of the copy until the watch reports the batch holding every file;
- ``batches`` (ingests that added files) and ``ingest_s`` (their ``report.seconds``);
- ``debounce``: the ``--debounce`` setting (the floor of both latencies).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MMEMBED = str(Path(sys.executable).parent / "mmembed")
DEV = ROOT.parent / "shared" / "data" / "flickr8k" / "dev"
MICRO = ROOT.parent / "shared" / "models" / "micro-clip"


def one_run(count: int, debounce: float, model: str, work: Path) -> dict[str, Any]:
    import mmembed

    files = sorted(DEV.iterdir())
    if count + 1 > len(files):
        raise SystemExit(f"--counts: at most {len(files) - 1} (the photos in {DEV})")
    photos, db = work / f"photos-{count}", str(work / f"db-{count}.lancedb")
    photos.mkdir()
    shutil.copy(files[-1], photos / "seed.jpg")
    proc = subprocess.Popen([MMEMBED, "watch", str(photos), "--db", db, "--model", model, "--debounce", str(debounce),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
    threading.Thread(target=lambda: [events.put((time.monotonic(), json.loads(line))) for line in proc.stdout],
                     daemon=True).start()
    try:
        while events.get(timeout=300)[1]["event"] != "catch-up":
            pass
        index = mmembed.Index(db)
        index.search(image=str(photos / "seed.jpg"), limit=1)  # warm: the image tower loaded,
        index.info()  # and lancedb imported (a search takes the LanceDB path while the snapshot lags)
        target = photos / "copy"
        target.mkdir()
        started = time.monotonic()
        for src in files[:count]:
            shutil.copy(src, target / src.name)
        copied = time.monotonic()
        last = str((target / files[count - 1].name).resolve())
        while True:
            hits = index.search(image=last, limit=1)
            if hits and hits[0].path == last:
                break
            if time.monotonic() - copied > 600:
                raise SystemExit("the copied files did not become searchable in 600 s")
            time.sleep(0.05)
        searchable = time.monotonic()
        batches = []
        while not batches or batches[-1][1]["report"]["rows"] < count + 1:
            at, event = events.get(timeout=60)
            if event["event"] == "batch" and event["report"]["added"]:
                batches.append((at, event))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return {
        "files": count, "debounce": debounce, "copy_s": round(copied - started, 3),
        "searchable_s": round(searchable - copied, 3), "event_s": round(batches[-1][0] - copied, 3),
        "batches": len(batches), "ingest_s": round(sum(e["report"]["seconds"] for _, e in batches), 3),
    }


def cpu() -> dict[str, Any]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in text}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[200, 999])
    parser.add_argument("--debounce", type=float, default=1.0)
    parser.add_argument("--model", default=f"local-dir:{MICRO}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmembed-watch-bench-") as tmp:
        os.environ.setdefault("XDG_CACHE_HOME", str(Path(tmp) / "cache"))  # towers exported once, here
        runs = [one_run(n, args.debounce, args.model, Path(tmp)) for n in args.counts]
    print(json.dumps({"date": str(date.today()), **cpu(), "model": args.model, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
