"""Issue 24: a server off the loopback asks for a token. A real ``mmembed serve --host 0.0.0.0``
(a real bind to every address of the test's network namespace; the tests reach it at
127.0.0.1 only) over a real table of real photos; real Chromium for the cookie."""

from __future__ import annotations

import http.client
import json
import socket
import os
import re
import urllib.parse
from pathlib import Path

import pytest

from conftest import flickr_photos, run_cli
from test_serve import browser, get, raw_request, start_server, stop_server  # noqa: F401 - browser: a fixture


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, micro_clip: str, session_cache: Path) -> str:
    """Six Flickr8k photos indexed with micro-clip."""
    import mmembed

    folder = tmp_path_factory.mktemp("token-photos")
    flickr_photos(folder, 6)
    path = str(tmp_path_factory.mktemp("token-db") / "db.lancedb")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CACHE_HOME", str(session_cache))
        for name in [n for n in os.environ if n.startswith("MMEMBED_")]:
            env.delenv(name)
        assert mmembed.Index(path, model=micro_clip).ingest(folder).added == 6
    return path


@pytest.fixture(scope="module")
def public(db: str, session_cache: Path):
    """``--host 0.0.0.0`` with no token given: one is made and printed once."""
    proc, url, errors = start_server("--db", db, "--host", "0.0.0.0",
                                     env_extra={"XDG_CACHE_HOME": str(session_cache)})
    lines = [line for line in errors if "?token=" in line]
    assert len(lines) == 1, errors
    token = urllib.parse.parse_qs(urllib.parse.urlparse(lines[0].strip()).query)["token"][0]
    assert lines[0].strip() == f"{url}?token={token}" and len(token) >= 40
    yield {"url": url, "token": token, "proc": proc, "errors": errors}
    if proc.poll() is None:
        assert stop_server(proc) == 0, "".join(errors)[-2000:]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _endpoints(public: dict) -> list[str]:
    status, _, body = get(public["url"] + "api/items?n=1", _bearer(public["token"]))
    assert status == 200, body
    row = json.loads(body)["items"][0]["id"]
    return ["", "?q=dog", "api/info", "api/search?q=a+dog", "api/items", f"api/items/{row}", "api/duplicates",
            f"thumbs/{row}", f"media/{row}", f"files/{row}", "static/app.js", "static/index.html", "no/such/page"]


def _refused(status: int, headers: dict[str, str], body: bytes, path: str, token: str) -> None:
    assert status == 401, (path, status, body[:200])
    assert token.encode() not in body and "set-cookie" not in headers
    if path.startswith("api/"):
        message = json.loads(body)["error"]
        assert "Authorization: Bearer" in message and "\n" not in message
        assert headers["content-type"] == "application/json"
    else:  # the login page: a form to paste the token, nothing of the library
        assert b'<form method="post" action="/login">' in body and b"app.js" not in body


def test_a_public_server_answers_nothing_without_its_token(public: dict) -> None:
    url, token = public["url"], public["token"]
    for path in _endpoints(public):
        _refused(*get(url + path), path, token)
        _refused(*get(url + path, _bearer(token[:-1] + ("A" if token[-1] != "A" else "B"))), path, token)
        _refused(*get(url + path, {"Cookie": f"mmembed_token_{urllib.parse.urlparse(url).port}=wrong"}), path, token)
        _refused(*get(url + path, {"Authorization": f"Basic {token}"}), path, token)
    status, body = raw_request(url, "POST", "/api/search?n=3", body=b"\xff\xd8\xff" + b"0" * 64,
                               headers={"Content-Type": "image/jpeg"})
    assert status == 401 and json.loads(body)["error"].startswith("this server needs its token")
    for path in ("", "api/info"):  # a wrong ?token= sets nothing and says so
        status, headers, body = get(url + path + "?token=not-it")
        _refused(status, headers, body, path, token)
        assert (b"not this server's" in body) if not path else ("wrong" in json.loads(body)["error"])
        assert b"not-it" not in body  # a stale ?token= is not carried into the login's way back


def test_bearer_opens_every_endpoint(public: dict) -> None:
    url, token = public["url"], public["token"]
    for path in _endpoints(public):
        status, headers, body = get(url + path, _bearer(token))
        assert status == (404 if path == "no/such/page" else 200), (path, status, body[:200])
    hits = json.loads(get(url + "api/search?q=a+dog&n=3", _bearer(token))[2])["hits"]
    assert len(hits) == 3


def test_token_in_the_url_sets_a_strict_cookie_and_leaves_the_url(public: dict) -> None:
    url, token = public["url"], public["token"]
    port = urllib.parse.urlparse(url).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/?q=a+dog&token={token}&tag=x")
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 303 and response.getheader("Location") == "/?q=a+dog&tag=x"
    cookie = response.getheader("Set-Cookie")
    assert cookie.startswith(f"mmembed_token_{port}={token};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    status, _, body = get(url + "api/info", {"Cookie": f"mmembed_token_{port}={token}"})
    assert status == 200 and json.loads(body)["rows"] == 6


def test_the_token_is_printed_once_and_never_logged(public: dict) -> None:
    url, token = public["url"], public["token"]
    for path in ("", f"?token={token}", f"api/info?token={token}", f"thumbs/nope?token={token}", "api/info"):
        get(url + path, _bearer(token))
        get(url + path)
    port = urllib.parse.urlparse(url).port
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:  # a request uvicorn cannot parse
        sock.sendall(f"GET /?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n".encode())
        sock.recv(4096)
    assert stop_server(public["proc"]) == 0
    assert public["proc"].stdout.read().count(token) == 0
    assert "".join(public["errors"]).count(token) == 1


def test_loopback_needs_no_token_unless_one_is_given(db: str, session_cache: Path) -> None:
    secret = "a-token-from-the-environment-0123456789"
    proc, url, errors = start_server("--db", db, env_extra={"XDG_CACHE_HOME": str(session_cache),
                                                            "MMEMBED_TOKEN": secret})
    try:
        assert get(url + "api/info")[0] == 401
        assert get(url + "api/info", _bearer(secret))[0] == 200
    finally:
        assert stop_server(proc) == 0
    assert secret not in "".join(errors)  # a token given is never printed
    proc, url, errors = start_server("--db", db, env_extra={"XDG_CACHE_HOME": str(session_cache)})
    try:
        assert get(url + "api/info")[0] == 200 and not [e for e in errors if "?token=" in e or "Bearer" in e]
    finally:
        assert stop_server(proc) == 0


def test_an_empty_token_is_refused(db: str) -> None:
    result = run_cli("serve", "--db", db, "--host", "0.0.0.0", "--port", "0", env={"MMEMBED_TOKEN": ""}, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().startswith("Error: the token (--token or MMEMBED_TOKEN) is empty")


def test_a_browser_logs_in_once_and_keeps_the_cookie(browser, db: str, session_cache: Path) -> None:  # noqa: F811
    token = "given-by-flag-" + "x" * 30
    proc, url, errors = start_server("--db", db, "--host", "0.0.0.0", "--token", token,
                                     env_extra={"XDG_CACHE_HOME": str(session_cache)})
    try:
        context = browser.new_context()
        tab = context.new_page()
        response = tab.goto(url)
        assert response.status == 401 and tab.locator("form input[name=token]").count() == 1
        with tab.expect_navigation():
            tab.fill("input[name=token]", "not the token")
            tab.click("button[type=submit]")
        assert "not this server's" in tab.content() and context.cookies() == []
        tab.fill("input[name=token]", token)
        tab.click("button[type=submit]")
        tab.wait_for_url(url)
        tab.wait_for_function("() => document.body && document.body.dataset.state === 'ready'", timeout=30_000)
        assert tab.url == url and tab.locator(".card").count() == 6
        context.close()

        context = browser.new_context()  # a search's address asks for the token, and comes back after it
        tab = context.new_page()
        assert tab.goto(url + "?q=a+dog").status == 401
        assert tab.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(17, 18, 20)"  # the app's looks
        tab.fill("input[name=token]", token)
        tab.click("button[type=submit]")
        tab.wait_for_url(url + "?q=a+dog")
        assert tab.goto(url + "api/docs").status == 200
        context.close()
        docs = context = browser.new_context()
        tab = docs.new_page()
        assert tab.goto(url + "api/docs").status == 401 and tab.locator("form input[name=token]").count() == 1
        docs.close()

        context = browser.new_context()  # a fresh browser: the token in the URL, once
        tab = context.new_page()
        tab.goto(url + f"?q=a+dog&token={token}")
        tab.wait_for_function("() => document.body && document.body.dataset.state === 'ready'", timeout=30_000)
        assert token not in tab.url and "q=a" in tab.url
        [cookie] = context.cookies()
        assert cookie["value"] == token and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert tab.evaluate("document.cookie") == ""  # no script reads it
        assert tab.evaluate("fetch('/api/info').then(r => r.status)") == 200  # the cookie alone
        tab.reload()
        tab.wait_for_function("() => document.body && document.body.dataset.state === 'ready'", timeout=30_000)
        context.clear_cookies()
        assert tab.goto(url).status == 401 and tab.locator("form input[name=token]").count() == 1
        context.close()
    finally:
        assert stop_server(proc) == 0
    assert token not in "".join(errors)
    assert re.search(r"asks for the token", "".join(errors))


# ---------------------------------------------------------------- the API describes itself; one error shape
@pytest.fixture(scope="module")
def local(db: str, session_cache: Path):
    proc, url, errors = start_server("--db", db, env_extra={"XDG_CACHE_HOME": str(session_cache)})
    yield {"url": url, "db": db}
    assert stop_server(proc) == 0, "".join(errors)[-2000:]


def _served_operations(db: str) -> set[tuple[str, str]]:
    """(path, method) of every route of the app itself (not the page, the login or /static)."""
    import mmembed
    from mmembed.serve.app import create_app
    from mmembed.serve.library import Library
    from starlette.routing import Route

    app = create_app(Library(mmembed.Index(db)))
    return {(r.path, m.lower()) for r in app.routes if isinstance(r, Route) and r.path != "/"
            for m in r.methods if m != "HEAD"}


def test_openapi_names_every_route_and_no_other(local: dict) -> None:
    from openapi_spec_validator import validate

    status, headers, body = get(local["url"] + "api/openapi.json")
    assert status == 200 and headers["content-type"] == "application/json"
    doc = json.loads(body)
    validate(doc)  # a valid OpenAPI 3.1 document
    assert doc["openapi"] == "3.1.0"
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    served = _served_operations(local["db"])
    assert {p for p, _ in served if p.startswith("/api/")} and documented == served
    row = json.loads(get(local["url"] + "api/items?n=1")[2])["items"][0]["id"]
    for path, method in sorted(documented):  # each answers as documented
        if method == "get":
            query = "?q=a+dog" if path == "/api/search" else ""
            status, _, body = get(local["url"] + path.lstrip("/").replace("{item_id}", row) + query)
            assert str(status) in doc["paths"][path]["get"]["responses"], (path, status, body[:200])
            assert status in (200, 202), (path, status)


def test_the_docs_page_renders_the_document_offline(browser, local: dict) -> None:  # noqa: F811
    context = browser.new_context()
    tab = context.new_page()
    asked: list[str] = []
    tab.on("request", lambda r: asked.append(r.url))
    tab.goto(local["url"] + "api/docs")
    tab.wait_for_selector("#paths[data-state=ready]", timeout=30_000)
    shown = set(tab.eval_on_selector_all("section.op", "s => s.map(x => x.dataset.method + ' ' + x.dataset.path)"))
    doc = json.loads(get(local["url"] + "api/openapi.json")[2])
    assert shown == {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item}
    assert "like" in tab.inner_text("section.op[data-path='/api/search'][data-method=GET]")
    assert asked and all(u.startswith(local["url"]) for u in asked), asked  # nothing from a CDN
    context.close()


def test_every_error_has_one_shape(local: dict, db: str) -> None:
    url = local["url"]
    cases = [("GET", "/api/items/no-such-row", None, {}, 404), ("GET", "/api/no/such/thing", None, {}, 404),
             ("GET", "/thumbs/no-such-row", None, {}, 404), ("GET", "/files/no-such-row", None, {}, 404),
             ("GET", "/api/search?q=dog&n=many", None, {}, 400), ("GET", "/api/items?date_from=soon", None, {}, 400),
             ("GET", "/api/search?q=dog&where=nonsense+%3D%3D", None, {}, 400),
             ("PUT", "/api/info", b"x", {}, 405), ("DELETE", "/thumbs/x", None, {}, 405),
             ("POST", "/api/openapi.json", b"", {}, 405),
             ("POST", "/api/search", b"hello, not an image", {"Content-Type": "text/plain"}, 415),
             ("POST", "/api/search", b"hello, not an image at all", {"Content-Type": "image/jpeg"}, 400)]
    for method, path, body, headers, want in cases:
        status, answer = raw_request(url, method, path, body=body, headers=headers)
        assert status == want, (method, path, status, answer[:200])
        data = json.loads(answer)
        assert list(data) == ["error"] and isinstance(data["error"], str), (path, data)
        assert data["error"].strip() and "\n" not in data["error"], (path, data)
        assert "Method Not Allowed" not in data["error"] and "Traceback" not in data["error"]
