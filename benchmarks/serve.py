"""The web app's speed: warm search at 100k rows, thumbnails, and the first paint with results.

    python benchmarks/datasets.py vectors --rows 100000     # once: a 100k-row table (random ViT-B-32 vectors)
    python benchmarks/datasets.py phones --count 40         # once: 40 phone-sized 4000x3000 JPEGs
    python benchmarks/serve.py [--queries 50]

Everything runs against a real ``mmembed serve`` process on 127.0.0.1; prints one JSON object:

- ``search_100k``: ``GET /api/search?q=...&n=50`` over ``--queries`` different text queries
  after one warm-up query: ``server_ms`` is the handler's own time (``took_ms`` in the reply:
  query encoding on the ONNX text tower, the exact scan of 100k vectors, the page of hits),
  ``wall_ms`` the client's round trip (HTTP and JSON included); p50 and p95.
- ``thumbs``: on a table of the phone JPEGs, ``first_ms`` = the first request for each
  photo's thumbnail (decode at a reduced DCT scale, resize, JPEG encode, write the cache;
  file hash check included; ``very_first_ms`` is the server's first thumbnail) and ``cached_ms`` = the same request again (from the disk
  cache), client wall time, p50 and max; ``render_ms`` = ``render_jpeg`` alone in-process.
- ``first_paint``: chromium (Playwright) opens ``/?q=...`` as soon as the server answers;
  ``grid_ms`` = until the result cards are in the page, ``images_ms`` = until every
  thumbnail in the first screen has loaded, measured from the server's first answer, with a
  cold thumbnail cache and again with a warm one; ``first_paint_100k``: ``grid_ms`` on the
  100k-row table (its rows name no real files, so no thumbnails there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import DEFAULT_OUT  # noqa: E402
from benchmarks.search import WORDS  # noqa: E402

MMEMBED = str(Path(sys.executable).parent / "mmembed")
MICRO = ROOT.parent / "shared" / "models" / "micro-clip"


def start(db: str, table: str = "images") -> tuple[subprocess.Popen, str, float]:
    """A served table; returns the process, its URL and when it first answered."""
    proc = subprocess.Popen([MMEMBED, "serve", "--db", db, "--table", table, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = proc.stdout.readline().strip()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "api/info", timeout=60):
                return proc, url, time.perf_counter()
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"the server at {url} did not answer")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)


def fetch(url: str) -> tuple[float, bytes]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
    return (time.perf_counter() - t) * 1000, body


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


def search_100k(out: Path, queries: int) -> dict:
    proc, url, _ = start(str(out / "db"), "rows_100000")
    try:
        fetch(url + "api/search?q=warm+up&n=50")
        server, wall = [], []
        for i in range(queries):
            q = f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7 + 3) % len(WORDS)]}"
            ms, body = fetch(url + "api/search?" + urllib.parse.urlencode({"q": q, "n": 50}))
            data = json.loads(body)
            assert len(data["hits"]) == 50
            server.append(data["took_ms"])
            wall.append(ms)
    finally:
        stop(proc)
    return {"rows": 100_000, "queries": queries, "server_ms": {"p50": pct(server, 0.5), "p95": pct(server, 0.95)},
            "wall_ms": {"p50": pct(wall, 0.5), "p95": pct(wall, 0.95)}}


def phones_table(out: Path, work: Path) -> str:
    db = str(work / "phones.lancedb")
    done = subprocess.run([MMEMBED, "ingest", str(out / "phones"), "--db", db, "--model", f"local-dir:{MICRO}"],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return db


def thumbs(db: str) -> dict:
    from mmembed.serve.thumbs import THUMB_SIZE, render_jpeg

    proc, url, _ = start(db)
    try:
        _, body = fetch(url + "api/items?n=200")
        items = json.loads(body)["items"]
        first = [fetch(url + f"thumbs/{item['id']}")[0] for item in items]
        cached = [fetch(url + f"thumbs/{item['id']}")[0] for item in items for _ in range(3)]
    finally:
        stop(proc)
    render = []
    for item in items[:10]:
        t = time.perf_counter()
        render_jpeg(item["path"], THUMB_SIZE)
        render.append((time.perf_counter() - t) * 1000)
    size = f"{items[0]['width']}x{items[0]['height']}"
    return {"photos": len(items), "size": size, "very_first_ms": round(first[0], 1),
            "first_ms": {"p50": pct(first, 0.5), "max": round(max(first), 1)},
            "cached_ms": {"p50": pct(cached, 0.5), "max": round(max(cached), 1)},
            "render_ms": {"p50": pct(render, 0.5), "max": round(max(render), 1)}}


def first_paint(db: str, chromium: str, cold: bool, table: str = "images") -> dict:
    from playwright.sync_api import sync_playwright

    if cold:
        shutil.rmtree(Path(db) / "images.thumbs", ignore_errors=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True).new_page()
        page.goto("about:blank")
        proc, url, answered = start(db, table)
        try:
            page.goto(url + "?q=a+photo+of+a+street")
            page.wait_for_selector(".card", timeout=30_000)
            grid = (time.perf_counter() - answered) * 1000
            if table != "images":  # the benchmark tables' rows name no real files: no thumbnails
                return {"table": table, "grid_ms": round(grid)}
            page.wait_for_function("""() => [...document.querySelectorAll('.card img')]
                .filter(i => i.getBoundingClientRect().top < innerHeight)
                .every(i => i.complete && i.naturalWidth > 0)""", timeout=60_000)
            images = (time.perf_counter() - answered) * 1000
            visible = page.evaluate("[...document.querySelectorAll('.card img')].filter(i => i.getBoundingClientRect().top < innerHeight).length")
        finally:
            stop(proc)
            browser.close()
    return {"thumbnail_cache": "cold" if cold else "warm", "grid_ms": round(grid), "images_ms": round(images),
            "thumbnails_on_screen": visible}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--chromium", default=os.environ.get("MMEMBED_CHROMIUM") or shutil.which("chromium"))
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    flags = open("/proc/cpuinfo").read()
    result: dict = {"date": str(date.today()), "cpu": cpu, "avx512_bf16": "avx512_bf16" in flags,
                    "cores": os.cpu_count(), "python": platform.python_version()}
    result["search_100k"] = search_100k(args.out, args.queries)
    if args.chromium:
        result["first_paint_100k"] = first_paint(str(args.out / "db"), args.chromium, cold=False, table="rows_100000")
    with tempfile.TemporaryDirectory() as work:
        db = phones_table(args.out, Path(work))
        result["thumbs"] = thumbs(db)
        if args.chromium:
            result["first_paint"] = [first_paint(db, args.chromium, cold=True), first_paint(db, args.chromium, cold=False)]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
