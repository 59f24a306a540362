"""Big folders: no-op re-ingest, new files among many, and peak memory of ingest by folder size.

    python benchmarks/datasets.py tiles model [--count 100000]   # once: small JPEGs, ViT-B-32 folder
    python benchmarks/scale.py noop [--count 100000] [--repeat 3] [--new 100] [--extra --no-ocr]
    python benchmarks/scale.py rss [--counts 1000 10000] [--model local-dir:...vit-b-32]

``noop``: micro-clip builds the table (the model never loads on a no-op), then unchanged
re-ingests; with ``--new N``, N files not seen before are added to the folder (tiles of other
crops) and the incremental ingest that finds them is timed, beside the encode time of N images
at the first ingest's rate (the issue's "plus their encoding").

Every figure is a fresh ``mmembed ingest`` process. ``noop`` prints the whole-process wall time
and the library's own ``report.seconds``; ``rss`` prints the peak resident set size of the
process (``/usr/bin/time``-style, from ``wait4``) and its throughput.
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
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import DEFAULT_OUT, SHARED  # noqa: E402

TILES = DEFAULT_OUT / "tiles"


def ingest(folder: Path, db: str, model: str | None, *extra: str) -> tuple[float, int, dict]:
    """Run `mmembed ingest`; return (wall seconds, peak RSS in MB, report)."""
    exe = shutil.which("mmembed", path=str(Path(sys.executable).parent)) or "mmembed"
    cmd = [exe, "ingest", str(folder), "--db", db, "--json", "-q", *(["--model", model] if model else []), *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"ingest failed: {err[-2000:]}")
    return elapsed, usage.ru_maxrss // 1024, json.loads(out)


def subset(count: int) -> Path:
    """A folder of links to the first ``count`` tiles (same bytes, so the same work per image);
    past the tiles there are, the same tiles again under other names (at least 10,000 tiles)."""
    files = sorted(TILES.rglob("*.jpg"))
    if len(files) < min(count, 10_000):
        raise SystemExit(f"only {len(files)} tiles under {TILES}; run benchmarks/datasets.py tiles --count 10000")
    folder = Path(tempfile.mkdtemp(prefix=f"mmembed-tiles-{count}-"))
    for i in range(count):
        f = files[i % len(files)]
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        os.symlink(f, sub / f"{i:06d}_{f.name}")
    return folder


def _add_new(folder: Path, count: int) -> None:
    """``count`` pictures the table has not seen: other crops of the COCO photos, in a new sub-folder."""
    from benchmarks.datasets import _coco_photos, _tile

    new = folder / "new"
    new.mkdir()
    photos = _coco_photos()
    for i in range(count):
        _tile((photos[i % len(photos)], new / f"new_{i:04d}.jpg", 10_000_000 + i))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["noop", "rss"])
    parser.add_argument("--model", default=None)
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--count", type=int, default=None, help="noop: the first COUNT tiles (default: all)")
    parser.add_argument("--new", type=int, default=0, help="noop: then this many new files among them")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `mmembed ingest` options")
    args = parser.parse_args()
    base = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cpus"}
    if args.what == "noop":
        model = args.model or f"local-dir:{SHARED / 'models' / 'micro-clip'}"
        folder = subset(args.count) if args.count else TILES
        try:
            with tempfile.TemporaryDirectory() as tmp:
                first, first_rss, report = ingest(folder, tmp, model, "--follow-symlinks", *args.extra)
                runs = [ingest(folder, tmp, None, "--follow-symlinks", *args.extra) for _ in range(args.repeat)]
                assert all(r[2]["unchanged"] == report["added"] for r in runs), "the re-ingest was not a no-op"
                row = {**base, "files": report["added"], "first_ingest_s": round(first, 2),
                       "first_ingest_rss_mb": first_rss,
                       "noop_wall_s": round(statistics.median(r[0] for r in runs), 3),
                       "noop_library_s": round(statistics.median(r[2]["seconds"] for r in runs), 3),
                       "noop_rss_mb": max(r[1] for r in runs)}
                if args.new:
                    _add_new(folder, args.new)
                    wall, rss, added = ingest(folder, tmp, None, "--follow-symlinks", *args.extra)
                    assert added["added"] == args.new, added
                    encode = args.new * first / report["added"]
                    row.update(new_files=args.new, new_wall_s=round(wall, 2), new_rss_mb=rss,
                               new_encode_s_at_first_rate=round(encode, 2),
                               new_wall_minus_encode_s=round(wall - encode, 2))
        finally:
            if folder != TILES:
                shutil.rmtree(folder)
        print(json.dumps(row))
        return
    model = args.model or f"local-dir:{DEFAULT_OUT / 'models' / 'vit-b-32'}"
    for count in args.counts:
        folder = subset(count)
        with tempfile.TemporaryDirectory() as tmp:
            wall, rss, report = ingest(folder, tmp, model, "--follow-symlinks", *args.extra)
        shutil.rmtree(folder)
        print(json.dumps({**base, "model": Path(model).name, "images": report["added"], "peak_rss_mb": rss,
                          "wall_s": round(wall, 1), "img_s": round(report["added"] / wall, 2),
                          "extra": args.extra}), flush=True)


if __name__ == "__main__":
    main()
