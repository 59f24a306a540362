"""The HTTP API after two user trials: every endpoint refuses a parameter it does not read (and one
given twice) by name, while the page's own requests go through; the search refuses radius without
near and a literal other than 1; the OpenAPI document names every status the server gives and
the shapes of its main answers; a server on another loopback address (127.0.0.2) answers its own
address and still refuses foreign Host headers; an empty search says its place and time in words;
a mistyped address opened in a browser is a small HTML page. A real ``mmembed serve`` over a real
table of real photos; real Chromium for the page."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import flickr_photos
from test_serve import browser, get, get_json, index_and_serve, raw_request, start_server, stop_server  # noqa: F401 - browser: a fixture

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, micro_clip: str, session_cache: Path):
    """Eight Flickr8k photos indexed and served (read-only here)."""
    folder = tmp_path_factory.mktemp("api") / "photos"
    flickr_photos(folder, 8)
    db = str(tmp_path_factory.mktemp("api-db") / "db.lancedb")
    idx, proc, url, errors = index_and_serve(folder, db, micro_clip, session_cache)
    rows = sorted(idx.items(), key=lambda r: r["path"])
    yield {"url": url, "db": db, "rows": rows, "folder": str(folder), "session_cache": session_cache}
    assert stop_server(proc) == 0, "".join(errors)[-2000:]


def _refused_by_name(url: str, path: str, name: str) -> str:
    status, data = get_json(url + path)
    assert status == 400 and list(data) == ["error"], (path, status, data)
    assert repr(name) in data["error"] and "\n" not in data["error"], (path, data)
    return data["error"]


# ---------------------------------------------------------------- parameters refused by name
def test_every_endpoint_refuses_a_parameter_it_does_not_read_by_name(library: dict) -> None:
    url, row = library["url"], library["rows"][0]["id"]
    for path, name in [("api/info?verbose=1", "verbose"), ("api/places?limit=1", "limit"),
                       ("api/timeline?year=2008", "year"), ("api/duplicates?mode=exact&n=5", "n"),
                       (f"api/items/{row}?fields=path", "fields"), (f"thumbs/{row}?size=64", "size"),
                       (f"media/{row}?size=64", "size"), (f"files/{row}?download=1", "download"),
                       ("api/openapi.json?x=1", "x"), ("api/docs?x=1", "x"),
                       ("api/search?q=dog&limit=3", "limit"), ("api/items?offest=5", "offest")]:
        error = _refused_by_name(url, path, name)
        assert "/api/docs" in error or "did you mean" in error or "takes no parameters" in error, error
    assert _refused_by_name(url, "api/info?verbose=1", "verbose") == \
        "unknown parameter 'verbose'; /api/info takes no parameters"
    assert _refused_by_name(url, "api/items?limit=3", "limit") == "unknown parameter 'limit'; did you mean n?"
    status, _ = get_json(url + "api/info?token=anything")  # TokenGate's own parameter (a loopback server asks none)
    assert status == 200


def test_the_pages_own_requests_are_not_refused(library: dict) -> None:
    """What app.js and where.js send to each endpoint (its address's parameters, less the page's own)."""
    url, row = library["url"], library["rows"][0]["id"]
    for path in ["api/info", "api/places", "api/timeline", "api/duplicates?mode=near", f"api/items/{row}",
                 f"thumbs/{row}", f"media/{row}", f"files/{row}", "api/openapi.json", "api/docs",
                 "api/items?n=50", "api/items?n=50&offset=50&folder=%2Fnowhere&format=JPEG&date_field=file"
                 "&date_from=2000-01-01&date_to=2100-01-01&where=width+%3E+0",
                 # a browse from an address that holds place and time (the timeline's month, then the words cleared)
                 "api/items?n=50&taken_after=2019-01-01&taken_before=2019-02-01&sort=date&near=41.9,-87.6&radius=5"
                 "&literal=1",
                 "api/search?q=dog&n=50&offset=50&target=image&mode=vector&not=cat&not=bird,fish&cutoff=none"
                 "&image_weight=0.5&folder=%2Fnowhere&literal=1&sort=date&taken_after=2019-01-01",
                 f"api/search?like={row}&n=12", "?q=dog&view=dupes&item=x&upload=3&utm_source=mail"]:
        status, _, body = get(url + path)
        assert status == 200, (path, status, body[:300])


def test_the_search_refuses_radius_without_near_an_unknown_literal_and_a_repeated_parameter(library: dict) -> None:
    url = library["url"]
    status, data = get_json(url + "api/search?q=dog&radius=5")
    assert status == 400 and data["error"].startswith("radius needs near"), data
    for value in ("yes", "0", "maybe", "true"):
        status, data = get_json(url + f"api/search?q=dog&literal={value}")
        assert status == 400 and f"literal={value!r} is not 1" in data["error"], (value, data)
    status, data = get_json(url + "api/search?q=dog&literal=1&n=2")
    assert status == 200 and len(data["hits"]) == 2, data
    assert _refused_by_name(url, "api/search?q=dog&q=cat", "q") == "parameter 'q' is given 2 times; give it once"
    assert "given 2 times" in _refused_by_name(url, "api/search?q=dog&n=1&n=3", "n")
    assert "given 2 times" in _refused_by_name(url, "api/items?n=1&n=3", "n")
    assert "given 2 times" in _refused_by_name(url, "api/duplicates?mode=near&mode=exact", "mode")
    assert "given 2 times" in _refused_by_name(url, "api/search?q=dog&col.format=JPEG&col.format=PNG", "col.format")
    status, data = get_json(url + "api/search?q=dog&not=cat&not=bird&n=3")  # repeatable: not (and tag)
    assert status == 200 and len(data["hits"]) == 3, data


def test_browse_refuses_the_searchs_own_parameters(library: dict) -> None:
    url = library["url"]
    for name, value in [("q", "dog"), ("like", "x"), ("target", "image"), ("not", "cat"), ("image_weight", "0.5"),
                        ("min_score", "0.2"), ("cutoff", "auto"), ("mode", "text")]:
        error = _refused_by_name(url, f"api/items?{name}={value}", name)
        assert error.endswith(f"send {name} to /api/search"), error
    status, data = get_json(url + "api/items?radius=5")  # the same checks as a search's
    assert status == 400 and data["error"].startswith("radius needs near"), data


# ---------------------------------------------------------------- the document matches the server
def _template_of(doc: dict, path: str) -> str | None:
    for template in doc["paths"]:
        if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), path):
            return template
    return None


def _inline(schema: Any, doc: dict) -> Any:
    """``schema`` with its ``$ref``s to the document's components put in their place."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            target: Any = doc
            for part in schema["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _inline(target, doc)
        return {k: _inline(v, doc) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, doc) for v in schema]
    return schema


def test_the_status_codes_and_shapes_served_are_the_documented_ones(library: dict, tmp_path: Path) -> None:
    from jsonschema import Draft202012Validator

    url, rows = library["url"], library["rows"]
    doc = get_json(url + "api/openapi.json")[1]
    row = rows[1]["id"]
    given: list[tuple[str, str, str, int, bytes, dict[str, str]]] = []  # (server, method, path, status, body, headers)

    def ask(base: str, path: str, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> int:
        if method == "GET":
            status, answer_headers, answer = get(base + path.lstrip("/"), headers)
        else:
            status, answer = raw_request(base, method, path, body=body, headers=headers)
            answer_headers = {}
        given.append((base, method, path, status, answer, answer_headers))
        return status

    for path in ["/api/info", "/api/info?verbose=1", "/api/places", "/api/places?limit=1", "/api/timeline",
                 "/api/timeline?year=2008", "/api/duplicates?mode=exact", "/api/duplicates?mode=exact&n=5",
                 "/api/duplicates?mode=nope", f"/api/items/{row}", f"/api/items/{row}?fields=path",
                 "/api/items/0123456789abcdef", "/api/items?n=3", "/api/items?date_from=soon", "/api/search?q=dog&n=5",
                 "/api/search?q=dog&radius=5", "/api/search?like=0123456789abcdef", "/api/openapi.json",
                 "/api/openapi.json?x=1", "/api/docs", "/api/docs?x=1", f"/thumbs/{row}", f"/thumbs/{row}?size=64",
                 "/thumbs/0123456789abcdef", f"/media/{row}", "/media/0123456789abcdef", f"/files/{row}",
                 "/files/0123456789abcdef"]:
        ask(url, path)
    etag = get(url + f"thumbs/{row}")[1]["etag"]
    assert ask(url, f"/thumbs/{row}", headers={"If-None-Match": etag}) == 304
    etag = get(url + f"media/{row}")[1]["etag"]
    assert ask(url, f"/media/{row}", headers={"If-None-Match": etag}) == 304
    assert ask(url, f"/files/{row}", headers={"Range": "bytes=0-99"}) == 206
    assert ask(url, f"/files/{row}", headers={"Range": "bytes=99999999-"}) == 416
    ask(url, "/api/search?q=dog", "POST", b"hello, not an image", {"Content-Type": "text/plain"})
    ask(url, "/api/search?q=dog", "POST", b"hello, not an image at all", {"Content-Type": "image/jpeg"})
    ask(url, "/api/search?n=3", "POST", Path(rows[2]["path"]).read_bytes(), {"Content-Type": "image/jpeg"})

    env = {"XDG_CACHE_HOME": str(library["session_cache"])}
    proc, empty, errors = start_server("--db", str(tmp_path / "none.lancedb"), env_extra=env)  # no database yet
    try:
        for path in ["/api/info", "/api/duplicates", "/api/items", "/api/search?q=dog", "/api/places", "/api/timeline"]:
            ask(empty, path)
    finally:
        assert stop_server(proc) == 0, "".join(errors)[-2000:]
    proc, guarded, errors = start_server("--db", library["db"], "--token", "a-long-random-test-token-" + "x" * 20,
                                         env_extra=env)  # a token on the loopback: 401 without it
    try:
        for path in ["/api/info", "/api/search?q=dog", f"/thumbs/{row}", "/api/docs"]:
            assert ask(guarded, path) == 401, path
    finally:
        assert stop_server(proc) == 0, "".join(errors)[-2000:]

    seen = {(method, _template_of(doc, urllib.parse.urlsplit(path).path), status)
            for _, method, path, status, _, _ in given}
    assert {s for _, _, s in seen} >= {200, 206, 304, 400, 401, 404, 409, 415, 416}, seen
    undocumented = sorted((m, p, s) for m, p, s in seen
                          if p is None or str(s) not in doc["paths"][p][m.lower()]["responses"])
    assert not undocumented, undocumented
    assert {p for _, p, _ in seen} == set(doc["paths"])  # every documented path was asked

    # the main answers have real shapes, and the real answers fit them
    schemas = doc["components"]["schemas"]
    for name, keys in [("Hit", {"id", "path", "score", "width", "height", "format", "text", "target", "mode"}),
                       ("Item", {"id", "path", "size", "mtime_ns", "content_hash", "taken_ns", "texts"}),
                       ("Info", {"rows", "model", "formats", "folders", "columns", "tags", "problem"}),
                       ("SearchPage", {"hits", "more", "where", "parsed", "took_ms"}),
                       ("ItemsPage", {"items", "total", "more"})]:
        assert keys <= set(schemas[name]["properties"]), name
    checked = set()
    for base, method, path, status, body, headers in given:
        template = _template_of(doc, urllib.parse.urlsplit(path).path)
        content = doc["paths"][template][method.lower()]["responses"][str(status)].get("content", {})
        if "application/json" not in content or not headers.get("content-type", "application/json").startswith(
                "application/json"):  # a login page (401 outside /api/), a picture
            continue
        schema = _inline(content["application/json"]["schema"], doc)
        answer = json.loads(body)
        errors_found = sorted(e.message for e in Draft202012Validator(schema).iter_errors(answer))
        assert not errors_found, (method, path, status, errors_found[:3])
        if status == 200 and "properties" in schema:
            checked.add(template)
    assert {"/api/info", "/api/search", "/api/items", "/api/items/{item_id}"} <= checked, checked


# ---------------------------------------------------------------- another loopback address


def test_a_server_on_another_loopback_address_answers_it_and_refuses_foreign_hosts(library: dict) -> None:
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
    except OSError as exc:
        pytest.skip(f"127.0.0.2 cannot be bound here ({exc}); Linux routes all of 127/8 to lo")
    proc, url, errors = start_server("--db", library["db"], host="127.0.0.2",
                                     env_extra={"XDG_CACHE_HOME": str(library["session_cache"])})
    try:
        assert url.startswith("http://127.0.0.2:")
        status, info = get_json(url + "api/info")
        assert status == 200 and info["rows"] == len(library["rows"]), info
        status, _, body = get(url)
        assert status == 200 and b"<html" in body.lower()
        port = urllib.parse.urlsplit(url).port
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.3:{port}", f"127.0.0.2.evil.example:{port}"):
            status, body = raw_request(url, "GET", "/api/info", headers={"Host": host})
            assert status == 400 and "Host header" in json.loads(body)["error"], (host, status, body[:200])
        assert raw_request(url, "GET", "/api/info", headers={"Host": f"localhost:{port}"})[0] == 200
    finally:
        assert stop_server(proc) == 0, "".join(errors)[-2000:]
    status, body = raw_request(library["url"], "GET", "/api/info", headers={"Host": "127.0.0.2"})
    assert status == 400, "a server on 127.0.0.1 answers its own address only"


# ---------------------------------------------------------------- messages
def test_an_empty_search_says_its_place_and_time_in_words(library: dict) -> None:
    status, data = get_json(library["url"] + "api/search?" + urllib.parse.urlencode({"q": "a dog in January 1995"}))
    assert status == 200 and data["hits"] == [] and data["parsed"]["taken_after"] == "1995-01-01", data
    assert data["note"] == "nothing matched: no row passes the date filters (taken from 1995-01-01 to before 1995-02-01)"
    assert "parsed" not in data["note"]
    explicit = {"q": "a dog", "taken_after": "1995-01-01", "taken_before": "1995-02-01"}  # the same, as parameters
    status, data = get_json(library["url"] + "api/search?" + urllib.parse.urlencode(explicit))
    assert status == 200 and data["hits"] == [] and data["parsed"]["taken_after"] == "1995-01-01", data
    assert data["note"] == "nothing matched: no row passes the date filters (taken from 1995-01-01 to before 1995-02-01)"


def test_a_mistyped_address_is_a_page_in_a_browser_and_json_for_api_clients(library: dict, browser) -> None:  # noqa: F811
    url = library["url"]
    status, headers, body = get(url + "nothing%3Cscript%3Ealert(1)%3C/script%3E", {"Accept": BROWSER_ACCEPT})
    page = body.decode()
    assert status == 404 and headers["content-type"].startswith("text/html"), (status, headers)
    assert '<a href="/">' in page and "<script>" not in page and "&lt;script&gt;" in page, page
    assert "content-security-policy" in headers
    for accept in (None, "*/*", "application/json", "application/json, text/html", "text/html;q=0.5, application/json"):
        status, headers, body = get(url + "nothing", {"Accept": accept} if accept else {})
        assert status == 404 and json.loads(body) == {"error": "not found"}, (accept, body[:200])
    status, _, body = get(url + "api/items/0123456789abcdef", {"Accept": BROWSER_ACCEPT})  # an API answer stays JSON
    assert status == 404 and "error" in json.loads(body)

    context = browser.new_context()
    tab = context.new_page()
    answer = tab.goto(url + "no/such/page")
    assert answer is not None and answer.status == 404
    assert tab.locator("h1").inner_text() == "Not found"
    tab.click("a[href='/']")
    tab.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=30_000)
    assert tab.locator(".card").count() == len(library["rows"])
    context.close()


def test_browser_the_page_works_with_every_parameter_it_sends(library: dict, browser) -> None:  # noqa: F811
    """The page's requests (search, browse with place and time in its address, a photo, duplicates)
    are none of them refused: nothing it asks for answers 400."""
    url, row = library["url"], library["rows"][0]["id"]
    context = browser.new_context()
    tab = context.new_page()
    refused: list[str] = []
    tab.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status == 400 else None)
    for address in [f"?q=dog&utm_source=mail&item={row}", "?taken_after=2019-01-01&taken_before=2019-02-01&sort=date",
                    "?folder=" + urllib.parse.quote(library["folder"]) + "&near=41.9,-87.6&radius=5&literal=1"]:
        tab.goto(url + address)
        tab.wait_for_function("() => ['ready', 'error'].includes(document.body.dataset.state)", timeout=30_000)
        assert tab.evaluate("document.body.dataset.state") == "ready", (address, tab.inner_text("body")[:500])
    tab.goto(url + "?view=dupes")
    tab.wait_for_function("() => ['ready', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    assert tab.evaluate("document.body.dataset.state") == "ready", tab.inner_text("body")[:500]
    context.close()
    assert refused == [], refused
