"""Real JPEGs with GPS and dates in their EXIF, written with Pillow's EXIF writer (no mocks):
several cities, several months, for tests/test_where*.py and benchmarks/where.py.

``make_photos(folder)`` writes one file per (city, month) shot and returns the truth: name -> (city key, date).
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np

# key -> (lat, lon, the GeoNames name the gazetteer should give)
CITIES = {
    "barcelona": (41.3851, 2.1734, "Barcelona"),
    "kyoto": (35.0116, 135.7681, "Kyoto"),
    "chicago": (41.8781, -87.6298, "Chicago"),
    "paris": (48.8566, 2.3522, "Paris"),
    "paris_tx": (33.6609, -95.5555, "Paris"),
}
# (city, when): the shots; Kyoto in December 2021 and summer 2019, Barcelona in July 2019...
SHOTS = [
    ("barcelona", datetime(2019, 7, 14, 18, 30)), ("barcelona", datetime(2019, 7, 20, 11, 0)),
    ("barcelona", datetime(2022, 3, 2, 9, 15)),
    ("kyoto", datetime(2021, 12, 5, 10, 0)), ("kyoto", datetime(2021, 12, 24, 16, 45)),
    ("kyoto", datetime(2019, 8, 1, 12, 0)),
    ("chicago", datetime(2021, 12, 10, 8, 0)), ("chicago", datetime(2020, 6, 30, 19, 0)),
    ("paris", datetime(2019, 7, 3, 15, 0)), ("paris_tx", datetime(2020, 1, 15, 13, 0)),
]  # fmt: skip


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60, 4)
    return Fraction(degrees), Fraction(minutes), Fraction(seconds).limit_denominator(10000)


def write_photo(path: Path, *, lat: float | None, lon: float | None, taken: datetime | None,
                seed: int = 0, size: int = 64, altitude: float | None = None) -> Path:  # fmt: skip
    """A real JPEG (noise) whose EXIF holds GPSLatitude/Longitude(+Ref) and DateTimeOriginal."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    exif = Image.Exif()
    if taken is not None:
        stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
        exif[0x0132] = stamp
        exif.get_ifd(0x8769)[0x9003] = stamp
    if lat is not None and lon is not None:
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = ("N" if lat >= 0 else "S"), _dms(lat)
        gps[3], gps[4] = ("E" if lon >= 0 else "W"), _dms(lon)
        if altitude is not None:
            gps[5], gps[6] = (0 if altitude >= 0 else 1), Fraction(abs(altitude)).limit_denominator(100)
    image.save(path, "JPEG", quality=85, exif=exif)
    return path


def make_photos(folder: Path, shots: list[tuple[str, datetime]] = SHOTS, *, size: int = 64,
                repeat: int = 1) -> dict[str, tuple[str, datetime]]:  # fmt: skip
    """Write the shots (each ``repeat`` times, a few km apart) into ``folder``; name -> (city, when)."""
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, tuple[str, datetime]] = {}
    for k in range(repeat):
        for i, (city, when) in enumerate(shots):
            lat, lon, _ = CITIES[city]
            name = f"{city}_{when:%Y%m%d}_{k:03d}_{i:02d}.jpg"
            jitter = ((k * 7919 + i * 104729) % 200 - 100) / 10000  # up to ~1 km
            write_photo(folder / name, lat=lat + jitter, lon=lon - jitter, taken=when, seed=k * 100 + i, size=size)
            truth[name] = (city, when)
    return truth
