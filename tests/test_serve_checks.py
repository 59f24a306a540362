"""A fresh user's trial of the web app, the gallery and the API (stop 38): every way a photo is
shown or searched with goes through the indexed-file check, a touched file is still the file, the
API refuses what it does not read and says why a search found nothing. A real ``mmembed serve``
over a real table of real photos; real Chromium for the page."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import flickr_photos
from test_serve import browser, get, get_json, index_and_serve, stop_server  # noqa: F401 - browser: a fixture


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, micro_clip: str, session_cache: Path):
    """Eight Flickr8k photos indexed and served; the tests change files under it."""
    folder = tmp_path_factory.mktemp("checked") / "photos"
    flickr_photos(folder, 8)
    outside = tmp_path_factory.mktemp("outside")
    db = str(tmp_path_factory.mktemp("checked-db") / "db.lancedb")
    idx, proc, url, errors = index_and_serve(folder, db, micro_clip, session_cache)
    rows = sorted(idx.items(), key=lambda r: r["path"])
    yield {"url": url, "db": db, "idx": idx, "rows": rows, "outside": outside, "proc": proc}
    assert stop_server(proc) == 0, "".join(errors)[-2000:]


def test_a_cached_thumbnail_is_not_shown_once_its_file_is_gone(library: dict) -> None:
    row = library["rows"][0]
    for endpoint in ("thumbs", "media"):  # made and cached while the file is there
        status, headers, _ = get(library["url"] + f"{endpoint}/{row['id']}")
        assert status == 200, endpoint
    etag = headers["etag"]
    Path(row["path"]).rename(library["outside"] / "moved-away.jpg")
    for endpoint in ("thumbs", "media"):
        status, _, body = get(library["url"] + f"{endpoint}/{row['id']}")
        assert status == 410 and "gone since it was indexed" in json.loads(body)["error"], (endpoint, status, body[:200])
    status, _, body = get(library["url"] + f"media/{row['id']}", {"If-None-Match": etag})  # not "your copy is fine"
    assert status == 410, status


def test_a_touched_file_with_the_same_bytes_is_still_served(library: dict) -> None:
    row = library["rows"][1]
    path = Path(row["path"])
    os.utime(path, ns=(row["mtime_ns"] + 10**9, row["mtime_ns"] + 10**9))  # touched: same size and bytes
    for endpoint in ("files", "media", "thumbs"):
        status, _, body = get(library["url"] + f"{endpoint}/{row['id']}")
        assert status == 200, (endpoint, status, body[:200])
    assert get(library["url"] + f"files/{row['id']}")[2] == path.read_bytes()
    data = path.read_bytes()  # the same size, another mtime, other bytes: refused
    path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    status, _, body = get(library["url"] + f"files/{row['id']}")
    assert status == 410 and "changed since it was indexed" in json.loads(body)["error"]
    path.write_bytes(data)


def test_more_like_this_searches_with_the_indexed_pixels_only(library: dict) -> None:
    row, other = library["rows"][2], library["rows"][3]
    status, data = get_json(library["url"] + f"api/search?like={row['id']}&n=3")
    assert status == 200 and data["hits"] and row["id"] not in [h["id"] for h in data["hits"]]
    stranger = library["outside"] / "stranger.jpg"  # another photo, never indexed, in its place
    shutil.copy2(other["path"], stranger)
    path = Path(row["path"])
    path.rename(library["outside"] / "kept.jpg")
    path.symlink_to(stranger)
    status, data = get_json(library["url"] + f"api/search?like={row['id']}&n=3")
    assert status == 410 and "changed since it was indexed" in data["error"], data
    path.unlink()
    status, data = get_json(library["url"] + f"api/search?like={row['id']}&n=3")
    assert status == 410 and "gone since it was indexed" in data["error"], data
    status, data = get_json(library["url"] + "api/search?like=0123456789abcdef&n=3")
    assert status == 404, data


def test_the_api_refuses_parameters_it_does_not_read_and_takes_deep_object_columns(library: dict) -> None:
    status, data = get_json(library["url"] + "api/search?q=dog&limit=3")
    assert status == 400 and data["error"] == "unknown parameter 'limit'; did you mean n?", data
    status, data = get_json(library["url"] + "api/items?offest=5")
    assert status == 400 and "did you mean offset?" in data["error"], data
    status, data = get_json(library["url"] + "api/search?q=dog&col%5Bnope%5D=1")  # col[nope]=1, as OpenAPI's clients send it
    assert status == 400 and "no column 'nope'" in data["error"], data
    status, data = get_json(library["url"] + "api/search?q=dog&col.nope=1")
    assert status == 400 and "no column 'nope'" in data["error"], data
    doc = get_json(library["url"] + "api/openapi.json")[1]
    params = {p["name"]: p for p in doc["paths"]["/api/search"]["get"]["parameters"]}
    assert params["tag"]["schema"]["type"] == "array" and params["not"]["schema"]["type"] == "array"
    assert {"404", "410"} <= set(doc["paths"]["/api/search"]["get"]["responses"])
    assert "409" in doc["paths"]["/api/items"]["get"]["responses"]


def test_browse_pages_past_the_searches_limit(library: dict) -> None:
    status, data = get_json(library["url"] + "api/items?n=5&offset=2500")
    assert status == 200 and data["items"] == [] and data["total"] == len(library["rows"]) and not data["more"], data
    status, data = get_json(library["url"] + "api/search?q=dog&offset=2500")
    assert status == 400 and "pages stop after 2000" in data["error"]


def test_a_search_that_finds_nothing_says_why_in_the_apis_words(library: dict) -> None:
    status, data = get_json(library["url"] + "api/search?q=dog&where=width+%3E+100000&folder=/nowhere")
    assert status == 200 and data["hits"] == [], data
    assert data["note"] == "nothing matched: no row passes folder=/nowhere and where='width > 100000'", data
    status, data = get_json(library["url"] + "api/search?q=dog&n=3")
    assert status == 200 and data["hits"] and "note" not in data


def test_the_python_gallery_inlines_only_files_still_as_indexed(library: dict, tmp_path: Path, session_cache: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from mmembed.serve.gallery import write_gallery

    monkeypatch.setenv("XDG_CACHE_HOME", str(session_cache))
    idx, row = library["idx"], library["rows"][4]
    hits = idx.search("a photo", where=f"path = '{row['path']}'")
    assert [h.id for h in hits] == [row["id"]]
    assert write_gallery(hits, tmp_path / "before.html", index=idx, title="before") == 1
    impostor = library["outside"] / "impostor.jpg"
    shutil.copy2(library["rows"][5]["path"], impostor)
    Path(row["path"]).rename(library["outside"] / "kept-4.jpg")
    Path(row["path"]).symlink_to(impostor)
    assert write_gallery(hits, tmp_path / "after.html", index=idx, title="after") == 0
    assert "changed since it was indexed" in (tmp_path / "after.html").read_text()
    assert write_gallery(hits, tmp_path / "unchecked.html") == 0  # no rows to check against: not inlined
    assert "not checked against the index" in (tmp_path / "unchecked.html").read_text()


def test_browser_marks_whole_words_and_shows_a_gone_photo_in_words(browser, library: dict) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    try:
        tab.goto(library["url"] + "?q=a+dog&utm_source=mail")  # a shared link with a tracker's parameter: still found
        tab.wait_for_selector(".card", timeout=30_000)
        assert tab.locator("#message").is_hidden()
        tab.keyboard.press("ArrowRight")  # fresh from the link, nothing focused: the arrows start at the first photo
        assert tab.evaluate("document.activeElement.classList.contains('card')")
        tab.goto(library["url"] + "?item=0123456789abcdef")  # a link to a photo this library does not have
        tab.wait_for_selector("#message:not([hidden])", timeout=30_000)
        assert "No photo in this library has the id 0123456789abcdef" in tab.inner_text("#message")
        marked = tab.evaluate("""() => wordsSnippet({terms: ["a", "car", "会议纪要", "kx-482"],
                                   words: "A cat sat on a table by a scar and a car, two cars, cargo"}).innerHTML""")
        # as the server counts them: a whole word or with a plural ending ("car" is not inside "scar" nor the start
        # of "cargo"); a one- or two-letter term as a whole word only ("a" is not marked at the start of "and")
        assert marked == ("<mark>A</mark> cat sat on <mark>a</mark> table by <mark>a</mark> scar and "
                          "<mark>a</mark> <mark>car</mark>, two <mark>car</mark>s, cargo"), marked
        marked = tab.evaluate("""() => wordsSnippet({terms: ["会议纪要", "kx-482"],
                                   words: "第三季度会议纪要 Plate KX-482-PD"}).innerHTML""")
        assert marked == "第三季度<mark>会议纪要</mark> Plate <mark>KX-482</mark>-PD", marked
        marked = tab.evaluate("""() => wordsSnippet({terms: ["cafe"], words: "Café Paris"}).innerHTML""")  # folded
        assert marked == "<mark>Café</mark> Paris", marked
        # as Python's casefold: the server's "strasse" is found in "Straße"
        marked = tab.evaluate("""() => wordsSnippet({terms: ["strasse"], words: "Große Straße 5"}).innerHTML""")
        assert marked == "Große <mark>Straße</mark> 5", marked
        gone = library["rows"][0]  # moved away by the first test of this file (or here)
        if Path(gone["path"]).exists():
            Path(gone["path"]).rename(library["outside"] / "moved-away-too.jpg")
        tab.goto(library["url"])  # browse: every photo
        tab.locator(f'.card[data-id="{gone["id"]}"]').scroll_into_view_if_needed()  # its thumbnail loads lazily
        tab.wait_for_selector(f'.card[data-id="{gone["id"]}"] .gone', timeout=30_000)
        assert "cannot be shown" in tab.inner_text(f'.card[data-id="{gone["id"]}"] .gone')
        assert tab.locator(f'.card[data-id="{gone["id"]}"] img').count() == 0  # no broken-image icon
        tab.click(f'.card[data-id="{gone["id"]}"]')
        tab.wait_for_selector("#detail-gone:not([hidden])", timeout=30_000)
        assert "gone since it was indexed" in tab.inner_text("#detail-gone")
        assert tab.locator("#detail-image").is_hidden()
    finally:
        context.close()
