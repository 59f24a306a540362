"""``--near PLACE|LAT,LON --radius KM``: a circle on the earth, as a SQL bounding box plus an exact check.

LanceDB's SQL filter narrows the rows to the circle's bounding box (``gps_lat``/``gps_lon``
columns); ``NearFilter.contains`` then keeps those truly within ``radius_km`` (haversine).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import QueryError
from ..text.places import Gazetteer, Place, fold, haversine_km

__all__ = ["NearFilter", "parse_near", "DEFAULT_RADIUS_KM"]

DEFAULT_RADIUS_KM = 10.0
_KM_PER_DEGREE = 111.195  # along a meridian, on the mean-radius sphere haversine_km uses
_LAT_LON = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*[, ]\s*([+-]?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class NearFilter:
    """Rows taken within ``radius_km`` of a point."""

    lat: float
    lon: float
    radius_km: float
    label: str  # "Kyoto, Japan" or "35.0116,135.7681", for the note line
    notes: tuple[str, ...] = ()

    def bbox(self) -> tuple[float, float, float, float]:
        """(south, west, north, east) in degrees; west > east when the box crosses the antimeridian."""
        dlat = self.radius_km / _KM_PER_DEGREE
        south, north = max(-90.0, self.lat - dlat), min(90.0, self.lat + dlat)
        if north >= 90 or south <= -90:  # a circle over a pole spans every longitude
            return south, -180.0, north, 180.0
        widest = max(abs(south), abs(north))
        dlon = self.radius_km / (_KM_PER_DEGREE * math.cos(math.radians(widest)))
        if dlon >= 180:
            return south, -180.0, north, 180.0
        west, east = self.lon - dlon, self.lon + dlon
        return south, (west + 540) % 360 - 180, north, (east + 540) % 360 - 180

    def where_sql(self) -> str:
        """The bounding box as a LanceDB filter over ``gps_lat``/``gps_lon``.

        >>> NearFilter(0.0, 179.95, 11.1195, "x").where_sql()
        'gps_lat >= -0.1 AND gps_lat <= 0.1 AND (gps_lon >= 179.85 OR gps_lon <= -179.95)'
        """
        south, west, north, east = (round(v, 6) for v in self.bbox())
        lat = f"gps_lat >= {south} AND gps_lat <= {north}"
        if west <= east:
            return f"{lat} AND gps_lon >= {west} AND gps_lon <= {east}"
        return f"{lat} AND (gps_lon >= {west} OR gps_lon <= {east})"

    def contains(self, lat: float | None, lon: float | None) -> bool:
        """Whether a row's position lies within the circle (rows without a position never do)."""
        if lat is None or lon is None:
            return False
        return haversine_km(self.lat, self.lon, lat, lon) <= self.radius_km


def parse_near(spec: str, radius_km: float = DEFAULT_RADIUS_KM, places: Sequence[Place] = (),
               gazetteer: Gazetteer | None = None) -> NearFilter:  # fmt: skip
    """A circle from ``"LAT,LON"`` or a place name (the places given first, then the gazetteer).

    Raises QueryError for a radius that is not positive, coordinates out of range and a name
    that names no place; of several places of one name the biggest is taken, with a note.

    >>> parse_near("35.0116,135.7681", 5).label
    '35.0116,135.7681'
    """
    if not (radius_km > 0 and math.isfinite(radius_km)):
        raise QueryError(f"--radius {radius_km}: give a distance in km above 0, e.g. --radius 10")
    match = _LAT_LON.match(spec)
    if match:
        lat, lon = float(match.group(1)), float(match.group(2))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise QueryError(f"--near {spec!r}: latitude must be within -90..90 and longitude within -180..180")
        return NearFilter(lat, lon, radius_km, f"{lat},{lon}")
    found = [p for p in places if fold(spec) in {fold(n) for n in (p.city, *p.names)}]
    if not found and gazetteer is not None:
        found = gazetteer.find(spec)
    if not found:
        raise QueryError(f"--near {spec!r}: no place of that name; give LAT,LON instead, e.g. --near 35.01,135.77")
    found = sorted({p.geonameid: p for p in found}.values(), key=lambda p: -p.population)
    label = ", ".join(part for part in (found[0].city, found[0].region, found[0].country) if part)
    notes = (f"{spec!r} names {len(found)} places; took the biggest, {label}",) if len(found) > 1 else ()
    return NearFilter(found[0].lat, found[0].lon, radius_km, label, notes)
