"""Where and when, wired (issue 23): what reverse geocoding adds to an ingest, paired, and what the
search box's parse adds to a warm search; plus the quality of place/time queries.

    python benchmarks/where_ingest.py [--photos 239] [--pairs 3] [--model local-dir:../shared/models/micro-clip]

Ingest: the COCO photos of ``../shared/data/photos/coco`` (full size) re-saved with EXIF GPS (six cities)
and dates; each run ingests them into a new table in a fresh interpreter, alternately ``on`` (GPS read,
place named: the gazetteer loaded on the first position, ~0.8 s, and one lookup per photo) and ``off``
(GPS read, ``PlaceLookup.columns`` without the lookup: no gazetteer). ``ratio`` = median on / median off
of ``IngestReport.seconds`` (model load included, as a user sees it); ``lookup_cpu_share_median``: the CPU
time spent inside ``PlaceLookup.columns`` (the gazetteer's load and every lookup; thread CPU time summed
over the prepare threads) over the run's process CPU time, a direct measure that the machine's noise
(other processes) does not swamp. One ``on`` run first, not counted,
exports the model's towers and writes the gazetteer's compact copy in the user cache (a machine's
first run with GPS pays the ~0.8 s read of the wheel's JSON once; ``benchmarks/where.py`` measures that).

Search: on the ``on`` table, warm ``Index.search`` of place/time queries; ``parse_ms`` is the time of
``located.plan_search`` alone (the box read against the table's places, the SQL built), median per query.
Quality: for each place/time query, precision and recall of the photos returned against the truth
written into the files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COCO = ROOT.parent / "shared" / "data" / "photos" / "coco"
sys.path.insert(0, str(ROOT / "tests"))

CITIES = {"barcelona": (41.3851, 2.1734), "kyoto": (35.0116, 135.7681), "chicago": (41.8781, -87.6298),
          "paris": (48.8566, 2.3522), "sydney": (-33.8688, 151.2093), "lisbon_not": None}  # fmt: skip
MONTHS = [datetime(2019, 7, 14), datetime(2021, 12, 5), datetime(2022, 3, 2), datetime(2020, 6, 30)]

RUN = """
import json, sys
import mmembed
from mmembed.ingest import where
if sys.argv[1] == "off":
    lookup = where.PlaceLookup.columns
    def gps_only(self, gps):
        row = dict(where._NULLS)
        if gps is not None:
            row.update(gps_lat=round(gps.lat, 7), gps_lon=round(gps.lon, 7), gps_alt=gps.altitude)
        return row
    where.PlaceLookup.columns = gps_only
import threading, time
spent = [0.0]
lock = threading.Lock()
timed = where.PlaceLookup.columns
def columns(self, gps):
    t = time.thread_time()
    try:
        return timed(self, gps)
    finally:
        with lock:
            spent[0] += time.thread_time() - t
where.PlaceLookup.columns = columns
cpu = time.process_time()
report = mmembed.Index(sys.argv[2], model=sys.argv[4]).ingest(sys.argv[3])
cpu = time.process_time() - cpu
print(json.dumps({"seconds": report.seconds, "added": report.added, "lookup_s": spent[0], "cpu_s": cpu}))
"""


def make_library(folder: Path, count: int) -> dict[str, tuple[str | None, datetime]]:
    """COCO photos, full size, re-saved with GPS (a city, or none for every sixth) and a date."""
    from PIL import Image

    from where_photos import write_photo  # noqa: F401 - the same EXIF writing as the tests

    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    cities = list(CITIES)
    for i, src in enumerate(sorted(COCO.iterdir())[:count]):
        city = cities[i % len(cities)]
        when = MONTHS[(i // len(cities)) % len(MONTHS)].replace(hour=9 + i % 8)
        with Image.open(src) as im:
            exif = Image.Exif()
            stamp = when.strftime("%Y:%m:%d %H:%M:%S")
            exif.get_ifd(0x8769)[0x9003] = stamp
            if CITIES[city] is not None:
                from where_photos import _dms

                lat, lon = CITIES[city]
                lat += (i % 7) / 1000
                gps = exif.get_ifd(0x8825)
                gps[1], gps[2] = ("N" if lat >= 0 else "S"), _dms(lat)
                gps[3], gps[4] = ("E" if lon >= 0 else "W"), _dms(lon)
            im.convert("RGB").save(folder / f"{i:04d}_{city}.jpg", "JPEG", quality=90, exif=exif)
        truth[f"{i:04d}_{city}.jpg"] = (city if CITIES[city] else None, when)
    return truth


def ingest_pairs(folder: Path, work: Path, model: str, pairs: int) -> dict:
    times: dict[str, list[float]] = {"on": [], "off": []}
    inside: list[float] = []  # share of an "on" run's CPU time spent inside PlaceLookup.columns (all threads)
    warm = work / "warm.lancedb"  # not counted: exports the model's towers and writes the gazetteer's cached copy
    subprocess.run([sys.executable, "-c", RUN, "on", str(warm), str(folder), model], capture_output=True, cwd=ROOT, check=True)
    shutil.rmtree(warm)
    for k in range(pairs):
        for mode in (("on", "off") if k % 2 == 0 else ("off", "on")):
            db = work / f"{mode}{k}.lancedb"
            done = subprocess.run([sys.executable, "-c", RUN, mode, str(db), str(folder), model],
                                  capture_output=True, text=True, cwd=ROOT, check=True)
            out = json.loads(done.stdout.strip().splitlines()[-1])
            times[mode].append(out["seconds"])
            if mode == "on":
                inside.append(out["lookup_s"] / out["cpu_s"])
            if not (mode == "on" and k == 0):
                shutil.rmtree(db)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    return {"on_s": [round(t, 2) for t in times["on"]], "off_s": [round(t, 2) for t in times["off"]],
            "ratio": round(on / off, 4), "lookup_cpu_share_median": round(statistics.median(inside), 4), "db": str(work / "on0.lancedb")}


def search_side(db: str, truth: dict[str, tuple[str | None, datetime]], repeat: int = 20) -> dict:
    import mmembed
    from mmembed.retrieval.located import plan_search
    from mmembed.retrieval.query import SearchOptions

    index = mmembed.Index(db)
    queries = {
        "photos in Barcelona": lambda c, w: c == "barcelona",
        "Kyoto in December 2021": lambda c, w: c == "kyoto" and (w.year, w.month) == (2021, 12),
        "a street in Chicago": lambda c, w: c == "chicago",
        "2019年7月的照片": lambda c, w: (w.year, w.month) == (2019, 7),
        "悉尼的照片": lambda c, w: c == "sydney",
        "Paris in summer 2019": lambda c, w: c == "paris" and w.year == 2019 and w.month in (6, 7, 8),
    }
    quality = {}
    for query, wanted in queries.items():
        hits = index.search(query, limit=1000)
        got = {Path(h.path).name for h in hits}
        want = {n for n, (c, w) in truth.items() if wanted(c, w)}
        quality[query] = {"precision": round(len(got & want) / len(got), 3) if got else None,
                          "recall": round(len(got & want) / len(want), 3) if want else None,
                          "returned": len(got), "truth": len(want), "notes": hits.located.notes}
    plain = ["a dog", "a red car", "people on a beach"]
    unchanged = all([(h.path, h.score) for h in index.search(q, limit=20)]
                    == [(h.path, h.score) for h in index.search(q, limit=20, literal=True)] for q in plain)
    parse, search = [], []
    options = SearchOptions(limit=10)
    for query in [*queries, *plain]:
        index.search(query)  # warm
        for _ in range(repeat):
            t = time.perf_counter()
            plan_search(query, options, index._places)
            parse.append(time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(5):
            index.search(query)
        search.append((time.perf_counter() - t) / 5)
    return {"quality": quality, "plain_queries_unchanged": unchanged,
            "parse_ms_median": round(statistics.median(parse) * 1000, 3),
            "parse_ms_p95": round(sorted(parse)[int(len(parse) * 0.95)] * 1000, 3),
            "warm_search_ms_median": round(statistics.median(search) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=239)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--model", default="local-dir:" + str(ROOT.parent / "shared" / "models" / "micro-clip"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("XDG_CACHE_HOME", str(work / "cache"))
        truth = make_library(work / "photos", args.photos)
        result = {"photos": len(truth), "with_gps": sum(c is not None for c, _ in truth.values())}
        result["ingest"] = ingest_pairs(work / "photos", work, args.model, args.pairs)
        result["search"] = search_side(result["ingest"].pop("db"), truth)
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
