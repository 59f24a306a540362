"""Where a photo was taken: the GPS position in its EXIF GPS IFD or its XMP ``exif:GPS*`` fields.

Cameras and phones write latitude and longitude as three rationals (degrees, minutes, seconds)
plus a hemisphere letter; XMP writes ``"DDD,MM,SSk"`` or ``"DDD,MM.mmk"``. Positions that are
no place are refused (None): out of range, a zero denominator, and exactly 0,0, which cameras
write when they had no fix ("Null Island").
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .xmp import _xmp_string

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["GpsPosition", "gps_position", "gps_from_exif", "gps_from_xmp", "gps_from_iso6709"]

_GPS_IFD = 0x8825
_LAT_REF, _LAT, _LON_REF, _LON, _ALT_REF, _ALT = 1, 2, 3, 4, 5, 6
_EXIF_NS = "{http://ns.adobe.com/exif/1.0/}"
_XMP_COORD = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)(?:\s*,\s*(\d+(?:\.\d+)?))?\s*([NSEWnsew])\s*$")


@dataclass(frozen=True)
class GpsPosition:
    """A position on the earth, as the file recorded it."""

    lat: float  # degrees, north positive, -90..90
    lon: float  # degrees, east positive, -180..180
    altitude: float | None = None  # metres above sea level (negative below); None when not recorded


def gps_position(image: Image.Image) -> GpsPosition | None:
    """The GPS position in an opened image's EXIF, else in its XMP packet; None when absent or nonsense.

    Never raises and never decodes pixels.

    >>> from PIL import Image
    >>> gps_position(Image.new("RGB", (4, 4))) is None
    True
    """
    try:
        exif = image.getexif() if image.format != "PNG" else None
        found = gps_from_exif(exif.get_ifd(_GPS_IFD)) if exif is not None else None
    except Exception:  # Pillow's EXIF parser raises anything on broken files; GPS is optional
        found = None
    if found is not None:
        return found
    for key in ("xmp", "XML:com.adobe.xmp"):
        packet = image.info.get(key)
        if isinstance(packet, (bytes, bytearray, str)) and packet:
            return gps_from_xmp(packet)
    return None


def gps_from_exif(gps: dict[int, object]) -> GpsPosition | None:
    """A position from an EXIF GPS IFD (tag number -> value, as ``Exif.get_ifd(0x8825)`` gives).

    >>> gps_from_exif({1: "N", 2: (35.0, 0.0, 36.0), 3: "E", 4: (135.0, 46.0, 12.0)})
    GpsPosition(lat=35.01, lon=135.77, altitude=None)
    """
    lat = _signed(_dms(gps.get(_LAT)), gps.get(_LAT_REF), "S")
    lon = _signed(_dms(gps.get(_LON)), gps.get(_LON_REF), "W")
    if lat is None or lon is None:
        return None
    return _valid(lat, lon, _altitude(gps.get(_ALT), gps.get(_ALT_REF)))


def gps_from_xmp(packet: bytes | str) -> GpsPosition | None:
    """A position from an XMP packet's ``exif:GPSLatitude``/``exif:GPSLongitude`` (attributes or elements)."""
    try:
        text = _xmp_string(packet)
        if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
            return None  # entity expansion: refused as everywhere else
        start, end = text.find("<"), text.rfind(">")
        root = ET.fromstring(text[start : end + 1])
    except (ET.ParseError, ValueError, UnicodeError):
        return None
    fields: dict[str, str] = {}
    for element in root.iter():
        for name in ("GPSLatitude", "GPSLongitude", "GPSAltitude", "GPSAltitudeRef"):
            value = element.get(_EXIF_NS + name)
            if element.tag == _EXIF_NS + name and element.text:
                value = element.text
            if value and name not in fields:
                fields[name] = value.strip()
    lat, lon = _xmp_coord(fields.get("GPSLatitude")), _xmp_coord(fields.get("GPSLongitude"))
    if lat is None or lon is None:
        return None
    altitude = _xmp_rational(fields.get("GPSAltitude"))
    return _valid(lat, lon, _altitude(altitude, fields.get("GPSAltitudeRef")))


_ISO6709 = re.compile(r"^\s*([+-]\d{1,2}(?:\.\d+)?)([+-]\d{1,3}(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?(?:CRS[^/]*)?/?\s*$")


def gps_from_iso6709(text: object) -> GpsPosition | None:
    """A video's location atom (QuickTime ``©xyz`` / ``com.apple.quicktime.location.ISO6709``, as
    ffmpeg reports it in the container's ``location`` tag): ``"+35.0116+135.7681+012.345/"``.

    >>> gps_from_iso6709("+35.0116+135.7681/")
    GpsPosition(lat=35.0116, lon=135.7681, altitude=None)
    >>> gps_from_iso6709("+00.0000+000.0000/") is None
    True
    """
    match = _ISO6709.match(str(text)) if isinstance(text, (str, bytes)) and text else None
    if match is None:
        return None
    lat, lon = float(match.group(1)), float(match.group(2))
    return _valid(lat, lon, float(match.group(3)) if match.group(3) else None)


def _number(value: object) -> float | None:
    """A finite float from an int, float, IFDRational or (numerator, denominator) pair; None for x/0."""
    if isinstance(value, tuple) and len(value) == 2:
        num, den = value
        if not den:
            return None
        value = num / den
    denominator = getattr(value, "denominator", 1)
    if denominator == 0:  # IFDRational(1, 0) is nan in Pillow; refuse it before float()
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _dms(value: object) -> float | None:
    """Degrees from (d, m, s), (d, m) or a bare number; None when any part is garbage."""
    if not isinstance(value, (tuple, list)):
        return _number(value)
    parts = [_number(p) for p in value]
    if not parts or len(parts) > 3 or any(p is None or p < 0 for p in parts):
        return None
    if any(p >= 60 for p in parts[1:]):  # type: ignore[operator]
        return None
    return sum(p / 60**i for i, p in enumerate(parts))  # type: ignore[operator]


def _signed(degrees: float | None, ref: object, negative: str) -> float | None:
    if degrees is None:
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("latin-1", errors="replace")
    letter = ref.strip("\x00 ").upper()[:1] if isinstance(ref, str) else ""
    return -abs(degrees) if letter == negative else degrees


def _altitude(value: object, ref: object) -> float | None:
    metres = _number(value)
    if metres is None:
        return None
    if isinstance(ref, bytes):
        ref = ref[:1] == b"\x01"
    below = ref in (1, "1", True)
    return -abs(metres) if below else metres


def _xmp_coord(value: str | None) -> float | None:
    match = _XMP_COORD.match(value or "")
    if not match:
        return None
    degrees, minutes, seconds, ref = match.groups()
    if float(minutes) >= 60 or (seconds is not None and float(seconds) >= 60):
        return None
    parts = [float(degrees), float(minutes), float(seconds or 0)]
    return _signed(_dms(tuple(parts)), ref, "S" if ref.upper() in "NS" else "W")


def _xmp_rational(value: str | None) -> float | None:
    if not value:
        return None
    num, _, den = value.partition("/")
    try:
        return _number((float(num), float(den)) if den else float(num))
    except ValueError:
        return None


def _valid(lat: float, lon: float, altitude: float | None) -> GpsPosition | None:
    """The position, rounded to ~1 cm, or None out of range or at exactly 0,0 (no fix)."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return GpsPosition(round(lat, 7), round(lon, 7), round(altitude, 2) if altitude is not None else None)
