"""``mmembed serve``: the real server as a subprocess on a free port, over a real table of
Flickr8k dev (micro-clip, with captions), queried over HTTP and through a real browser
(Debian's chromium, driven by Playwright). Plus ``search --html``."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import EVIL_CAPTION as EVIL, FIXTURE_IMAGES, flickr_dev_captions, mmembed_cmd, run_cli, shared_path

DOG_QUERY = "a dog running on grass"
SCREENSHOTS = os.environ.get("MMEMBED_SCREENSHOTS")  # read at import: fixtures clear MMEMBED_* settings
SCREENSHOT_HOME = shared_path("data").resolve()  # with MMEMBED_SCREENSHOTS, the served library lies under ~


def screenshot_env(home: Path) -> dict[str, str]:
    """HOME for a server whose screenshots go in the README: its paths show as ~/..., not a machine's."""
    return {"HOME": str(home)} if SCREENSHOTS else {}


def shown(path: str, home: Path | None = None) -> str:
    """``path`` as the page shows it (under the server's HOME as ~/...)."""
    home_text = str(home or SCREENSHOT_HOME)
    return "~" + path[len(home_text):] if SCREENSHOTS and path.startswith(home_text + "/") else path


# ---------------------------------------------------------------- a served table
def start_server(*args: str, timeout: float = 90, env_extra: dict[str, str] | None = None,
                 host: str = "127.0.0.1") -> tuple[subprocess.Popen, str, list[str]]:
    """``mmembed serve ... --port 0`` (on ``host``) as a subprocess; returns it, its URL and its stderr lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")} | (env_extra or {})
    where = ["--host", host] if host != "127.0.0.1" else []
    proc = subprocess.Popen([*mmembed_cmd(), "serve", "--port", "0", *where, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True).start()
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    url = found[0].strip() if found else ""
    if not url.startswith(f"http://{host}:"):
        stop_server(proc)
        pytest.fail(f"mmembed serve printed no URL: {url!r}; stderr: {''.join(errors)[-2000:]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded: the server answers within seconds
        try:
            with urllib.request.urlopen(url + "api/info", timeout=30) as r:
                if r.status == 200:
                    break
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # a server off the loopback answers, asking for its token
                break
            time.sleep(0.1)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    return proc, url, errors


def index_and_serve(folder: Path, db: str, model: str, cache: Path) -> tuple[Any, subprocess.Popen, str, list[str]]:
    """``folder`` ingested into ``db`` with ``model`` (the user cache at ``cache``), then served:
    the Index, the server process, its URL and its stderr lines."""
    import mmembed

    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CACHE_HOME", str(cache))
        idx = mmembed.Index(db, model=model)
        idx.ingest(folder)
        proc, url, errors = start_server("--db", db)
    return idx, proc, url, errors


def stop_server(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


@pytest.fixture(scope="module")
def served(captioned_dev: dict[str, str], session_cache: Path):
    """The captioned Flickr8k dev table (conftest), served on a free port."""
    with pytest.MonkeyPatch.context() as env:  # the user cache the tests' CLI runs see too
        env.setenv("XDG_CACHE_HOME", str(session_cache))
        for name in [n for n in os.environ if n.startswith("MMEMBED_")]:
            env.delenv(name)
        proc, url, errors = start_server("--db", captioned_dev["db"], env_extra=screenshot_env(SCREENSHOT_HOME))
        yield {"url": url, "db": captioned_dev["db"], "extra": captioned_dev["extra"], "proc": proc, "errors": errors}
        assert stop_server(proc) == 0, "".join(errors)[-2000:]


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def get_json(url: str) -> tuple[int, dict]:
    status, _, body = get(url)
    return status, json.loads(body)


def raw_request(url: str, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A request whose path is sent exactly as given (no client-side normalising of ``..``)."""
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def search_api(url: str, **params: object) -> dict:
    status, data = get_json(url + "api/search?" + urllib.parse.urlencode(params, doseq=True))
    assert status == 200, data
    return data


# ---------------------------------------------------------------- the JSON API
def test_hits_carry_the_fields_of_search_json_plus_an_id(served: dict) -> None:
    data = search_api(served["url"], q=DOG_QUERY, n=10)
    cli = run_cli("search", DOG_QUERY, "--db", served["db"], "--json", "-n", "10")
    assert cli.returncode == 0, cli.stderr
    expected = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [h["path"] for h in data["hits"]] == [h["path"] for h in expected]
    for hit, want in zip(data["hits"], expected):
        assert set(hit) == set(want) and "id" in hit
        assert hit["score"] == pytest.approx(want["score"], abs=1e-5)
    captions = flickr_dev_captions()
    dogs = sum(any("dog" in c for c in captions[os.path.basename(h["path"])]) for h in data["hits"])
    assert dogs >= 7


def test_info_names_the_rows_formats_and_folders(served: dict) -> None:
    status, info = get_json(served["url"] + "api/info")
    assert status == 200 and info["rows"] == 1002 and info["problem"] is None
    assert {f["name"] for f in info["formats"]} == {"JPEG", "HEIF"}
    assert {f["path"]: f["count"] for f in info["folders"]}[served["extra"]] == 2
    assert info["model"].startswith("local-dir:")


def test_pages_go_past_the_first_fifty(served: dict) -> None:
    first = search_api(served["url"], q=DOG_QUERY, n=50)
    second = search_api(served["url"], q=DOG_QUERY, n=50, offset=50)
    assert first["more"] and len(first["hits"]) == 50 and len(second["hits"]) == 50
    ids = [h["id"] for h in first["hits"] + second["hits"]]
    assert len(set(ids)) == 100
    assert first["hits"][-1]["score"] >= second["hits"][0]["score"]


def test_filters_become_the_where_of_the_search(served: dict) -> None:
    folder = search_api(served["url"], q="a photo", folder=served["extra"], n=10)
    assert sorted(os.path.basename(h["path"]) for h in folder["hits"]) == ["evil.jpg", "phone.heic"]
    assert folder["where"] == f"starts_with(path, '{served['extra']}/')"
    heif = search_api(served["url"], q="a photo", format="HEIF", n=10)
    assert [os.path.basename(h["path"]) for h in heif["hits"]] == ["phone.heic"]
    future = search_api(served["url"], q="a photo", date_from="2999-01-01", n=10)
    assert future["hits"] == []
    status, bad = get_json(served["url"] + "api/search?q=dog&date_from=yesterday")
    assert status == 400 and "yesterday" in bad["error"] and "YYYY-MM-DD" in bad["error"]
    status, bad = get_json(served["url"] + "api/search?q=dog&date_to=2020-02-30")
    assert status == 400 and bad["error"] == "to date '2020-02-30' is not a date in the calendar; give YYYY-MM-DD"
    status, bad = get_json(served["url"] + "api/search?q=dog&date_from=2021-01-01&date_to=2020-01-01")
    assert status == 400 and bad["error"] == "from date 2021-01-01 is after to date 2020-01-01; swap them"
    for endpoint in ("api/search?q=dog&", "api/items?"):  # with a query or browsing: the same answer
        status, bad = get_json(served["url"] + endpoint + "where=" + urllib.parse.quote("no_such_column > 1"))
        assert status == 400 and bad["error"].startswith("the SQL filter 'no_such_column > 1' is not a valid filter")
        assert "no column named no_such_column; columns: id, path," in bad["error"], bad


def test_browsing_without_a_query_lists_every_photo(served: dict) -> None:
    status, page = get_json(served["url"] + "api/items?n=50")
    assert status == 200 and len(page["items"]) == 50 and page["more"] and page["total"] == 1002
    status, page = get_json(served["url"] + "api/items?" + urllib.parse.urlencode({"folder": served["extra"]}))
    assert sorted(os.path.basename(i["path"]) for i in page["items"]) == ["evil.jpg", "phone.heic"]


def test_an_item_by_id(served: dict) -> None:
    hit = search_api(served["url"], q="a photo", folder=served["extra"], format="JPEG")["hits"][0]
    status, item = get_json(served["url"] + f"api/items/{hit['id']}")
    assert status == 200 and item["path"].endswith("evil.jpg") and item["text"] == EVIL
    assert item["texts"] == [EVIL] and item["text_source"] == "sidecar" and item["width"] == 48


def test_image_upload_finds_the_same_photo(served: dict) -> None:
    body = (FIXTURE_IMAGES / "rotated_exif6.jpg").read_bytes()
    status, data = raw_request(served["url"], "POST", "/api/search?target=image&n=5", body,
                               {"Content-Type": "image/jpeg"})
    hits = json.loads(data)["hits"]
    assert status == 200 and hits[0]["path"].endswith("evil.jpg")
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_uploads_are_limited_and_checked(served: dict) -> None:
    status, data = raw_request(served["url"], "POST", "/api/search", b"\xff" * (21 * 1024 * 1024),
                               {"Content-Type": "image/jpeg"})
    assert status == 413 and b"20 MB" in data
    status, data = raw_request(served["url"], "POST", "/api/search", b"not an image at all",
                               {"Content-Type": "image/jpeg"})
    assert status == 400
    assert json.loads(data)["error"] == "the query image: not a readable image (unknown format or corrupt header)"


def test_the_cutoff_reaches_the_api(served: dict) -> None:
    every = search_api(served["url"], q="qwzx blorf", n=100)
    cut = search_api(served["url"], q="qwzx blorf", n=100, cutoff="auto")
    assert len(every["hits"]) == 100 and len(cut["hits"]) < 10 and not cut["more"]
    floor = every["hits"][20]["score"]
    kept = search_api(served["url"], q="qwzx blorf", n=100, min_score=floor)
    assert [h["id"] for h in kept["hits"]] == [h["id"] for h in every["hits"] if h["score"] >= floor]
    status, bad = get_json(served["url"] + "api/search?q=dog&cutoff=maybe")
    assert status == 400 and "cutoff" in bad["error"]


def test_more_like_this_by_id(served: dict) -> None:
    first = search_api(served["url"], q=DOG_QUERY, n=1)["hits"][0]
    like = search_api(served["url"], like=first["id"], n=10, target="image")
    assert len(like["hits"]) == 10 and first["id"] not in {h["id"] for h in like["hits"]}
    status, bad = get_json(served["url"] + "api/search?like=" + "0" * 32)
    assert status == 404


def test_thumbnails_are_upright_cached_and_carry_an_etag(served: dict) -> None:
    from io import BytesIO

    from PIL import Image

    hits = search_api(served["url"], q="a photo", folder=served["extra"], n=10)["hits"]
    by_name = {os.path.basename(h["path"]): h["id"] for h in hits}
    status, headers, body = get(served["url"] + f"thumbs/{by_name['evil.jpg']}")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert Image.open(BytesIO(body)).size == (48, 64)  # stored 64x48 with EXIF orientation 6
    etag = headers["etag"]
    status, headers, body = get(served["url"] + f"thumbs/{by_name['evil.jpg']}", {"If-None-Match": etag})
    assert status == 304 and body == b""
    status, headers, body = get(served["url"] + f"thumbs/{by_name['phone.heic']}")
    assert status == 200 and Image.open(BytesIO(body)).format == "JPEG"
    status, headers, body = get(served["url"] + f"media/{by_name['phone.heic']}")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    cache = Path(served["db"]) / "images.thumbs"
    assert len(list(cache.rglob("*.jpg"))) >= 2


def test_paths_in_requests_are_never_opened(served: dict) -> None:
    unknown = "0123456789abcdef0123456789abcdef"
    for path in ["/thumbs/../../etc/passwd", "/thumbs/..%2F..%2Fetc%2Fpasswd", "/thumbs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                 "/thumbs/%252e%252e%252fetc%252fpasswd", "/files//etc/passwd", "/files/%2Fetc%2Fpasswd",
                 "/media/..", "/api/items/..%2F..%2Fetc%2Fpasswd", "/static/../../../../etc/passwd",
                 "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", f"/thumbs/{unknown}", f"/files/{unknown}",
                 f"/media/{unknown}", f"/api/items/{unknown}", "/thumbs/" + "a" * 300]:
        status, body = raw_request(served["url"], "GET", path)
        assert status == 404, (path, status)
        assert b"root:" not in body


def test_there_are_no_write_endpoints_and_foreign_hosts_are_refused(served: dict) -> None:
    hit = search_api(served["url"], q="a photo", n=1)["hits"][0]
    for method, path in [("PUT", f"/api/items/{hit['id']}"), ("DELETE", f"/api/items/{hit['id']}"),
                         ("POST", f"/api/items/{hit['id']}"), ("POST", "/"), ("DELETE", f"/thumbs/{hit['id']}")]:
        status, _ = raw_request(served["url"], method, path)
        assert status == 405, (method, path, status)
    status, body = raw_request(served["url"], "GET", "/api/info", headers={"Host": "attacker.example"})
    assert status == 400  # a DNS-rebinding page cannot read the library
    assert json.loads(body)["error"].startswith("this server does not answer for that Host header")  # the one error shape
    port = urllib.parse.urlsplit(served["url"]).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert raw_request(served["url"], "GET", "/api/info", headers={"Host": host})[0] == 200, host
    status, headers, _ = get(served["url"])
    assert "script-src 'self'" in headers["content-security-policy"]


# ---------------------------------------------------------------- the command
def test_a_busy_port_and_a_public_host_are_named(served: dict) -> None:
    port = urllib.parse.urlparse(served["url"]).port
    busy = run_cli("serve", "--db", served["db"], "--port", str(port), timeout=60)
    assert busy.returncode == 1
    assert busy.stderr.strip() == f"Error: port {port} on 127.0.0.1 is in use; pass --port N (or --port 0 for any free port)"
    proc, url, errors = start_server("--db", served["db"], "--host", "0.0.0.0")
    try:
        assert url.startswith("http://127.0.0.1:")
    finally:
        assert stop_server(proc) == 0
    warning = [line for line in errors if line.startswith("warning:")]
    assert warning and "0.0.0.0" in warning[0] and "127.0.0.1" in warning[0]


def test_ctrl_c_right_after_start_stops_cleanly(served: dict, session_cache: Path) -> None:
    """Ctrl-C while the server is still starting (warm-up in native code) exits 0, no trace."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    env["XDG_CACHE_HOME"] = str(session_cache)  # the served table's towers, as the fixture's server sees them
    for pause in (0.0, 0.05, 0.2):
        proc = subprocess.Popen([*mmembed_cmd(), "serve", "--db", served["db"], "--port", "0"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline().startswith("http://127.0.0.1:")
        time.sleep(pause)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and err.rstrip().endswith("Stopped.")


def test_serve_without_the_extra_names_it(tmp_path: Path) -> None:
    import sys

    code = ("import sys; sys.modules['uvicorn'] = None; sys.argv = ['mmembed', 'serve', '--db', sys.argv[1]]\n"
            "from mmembed.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "db")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: mmembed serve needs uvicorn; install the web extra: pip install 'mmembed[serve]'"


def test_a_missing_database_is_a_message_not_a_trace(tmp_path: Path) -> None:
    db = tmp_path / "nothing-here.lancedb"
    proc, url, errors = start_server("--db", str(db))
    try:
        status, info = get_json(url + "api/info")
        assert status == 200 and info["rows"] == 0
        assert info["problem"].startswith(f"There is no database at {db}.")
        status, data = get_json(url + "api/search?q=dog")
        assert status == 409 and "mmembed ingest" in data["error"]
        status, data = get_json(url + "api/items")
        assert status == 409 and data["error"] == info["problem"]
    finally:
        assert stop_server(proc) == 0
    assert not db.exists(), "serving must not create the database folder"
    assert "Traceback" not in "".join(errors)


def test_an_empty_table_and_a_lost_model_are_messages(tmp_path: Path, tiny_model: str) -> None:
    import mmembed

    model = tmp_path / "model"
    shutil.copytree(tiny_model.removeprefix("local-dir:"), model)
    empty = tmp_path / "empty"
    empty.mkdir()
    db = str(tmp_path / "db")
    mmembed.Index(db, model=f"local-dir:{model}").ingest(empty)
    proc, url, errors = start_server("--db", db)
    try:
        status, info = get_json(url + "api/info")
        assert info["problem"] == (f"Table 'images' in {db} holds no photos yet. Index a folder first: "
                                   f"mmembed ingest PATH --db {db}")
    finally:
        stop_server(proc)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(FIXTURE_IMAGES / "red.jpg", photos / "red.jpg")
    mmembed.Index(db, model=f"local-dir:{model}").ingest(photos)
    shutil.rmtree(model)  # the model folder the table records is gone
    proc, url, errors = start_server("--db", db, env_extra={"MMEMBED_QUICK": "0"})  # no exported towers used
    try:
        status, data = get_json(url + "api/search?q=red")
        assert status == 500
        assert data["error"].startswith(f"the model folder this table was built with, {model}, is gone")
    finally:
        stop_server(proc)
    assert "Traceback" not in "".join(errors)


def test_search_html_writes_a_self_contained_gallery(served: dict, tmp_path: Path) -> None:
    out = tmp_path / "gallery.html"
    done = run_cli("search", "a photo", "--db", served["db"], "--where", f"starts_with(path, '{served['extra']}/')",
                   "--html", str(out), "--paths")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2  # the results still go to stdout
    page = out.read_text()
    assert page.count('src="data:image/jpeg;base64,') == 2
    assert not re.search(r"""(src|href)=["']?(https?:|/)""", page)  # nothing loads from a server
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f"wrote {out} (2 results, 2 thumbnails inlined)" in done.stderr


# ---------------------------------------------------------------- a real browser
@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (Playwright's own download is not reachable)."""
    executable = os.environ.get("MMEMBED_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright (pip install -e '.[test]')"
    if executable is None:
        missing = "chromium (apt-get install -y chromium)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests need {missing}")
        pytest.skip(f"the browser tests need {missing}")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, served: dict):
    # bypass_csp only lets Playwright's own helpers evaluate script; escaping is what keeps
    # the caption below from running, and the CSP header is checked above
    context = browser.new_context(viewport={"width": 1280, "height": 860}, bypass_csp=True)
    tab = context.new_page()
    tab.dialogs = []  # type: ignore[attr-defined]
    tab.page_errors = []  # type: ignore[attr-defined]
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    tab.on("pageerror", lambda e: tab.page_errors.append(str(e)))
    yield tab
    context.close()
    assert tab.page_errors == []


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots of the main states (MMEMBED_SCREENSHOTS=DIR keeps them, e.g. for the README)."""
    folder = Path(SCREENSHOTS or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def results_of(tab, query: str | None = None) -> list[dict[str, str]]:
    tab.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=30_000)
    if query is not None:
        assert tab.input_value("input[type=search][name=q]") == query
    return tab.eval_on_selector_all(".card", "cs => cs.map(c => ({id: c.dataset.id, path: c.dataset.path}))")


def thumbnails_loaded(tab) -> None:
    """Wait until every thumbnail on screen has loaded (each is a real decoded image)."""
    tab.wait_for_function("""() => [...document.querySelectorAll('.card img')]
        .filter(i => i.getBoundingClientRect().top < innerHeight)
        .every(i => i.complete && i.naturalWidth > 0)""", timeout=30_000)


def type_query(tab, query: str) -> list[dict[str, str]]:
    before = tab.url
    tab.fill("input[type=search][name=q]", query)
    tab.wait_for_function("(u) => location.href !== u", arg=before, timeout=10_000)  # debounced, then in the URL
    return results_of(tab, query)


def test_browser_search_detail_more_like_this_and_back(page, served: dict, shots: Path) -> None:
    page.goto(served["url"])
    page.wait_for_selector(".card")  # before a query: every photo, newest first
    cards = type_query(page, DOG_QUERY)
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["q"] == [DOG_QUERY]
    captions = flickr_dev_captions()
    first10 = cards[:10]
    assert len(first10) == 10
    assert sum(any("dog" in c for c in captions[os.path.basename(c_["path"])]) for c_ in first10) >= 7
    thumbnails_loaded(page)
    page.screenshot(path=str(shots / "search.png"))

    page.click(f".card[data-id='{cards[0]['id']}']")
    page.wait_for_selector("#detail:not([hidden])")
    assert page.text_content("#detail-meta").count(shown(cards[0]["path"])) == 1
    page.wait_for_selector("#strip img")
    page.wait_for_function("() => document.querySelector('#detail-image').src.includes('/media/')", timeout=15_000)
    page.screenshot(path=str(shots / "detail.png"))

    page.click("#more-like")
    page.wait_for_function("() => new URLSearchParams(location.search).get('like')", timeout=10_000)
    like = results_of(page)
    assert len(like) == 50 and cards[0]["id"] not in {c["id"] for c in like}
    assert page.is_visible("#query-image")

    page.go_back()  # to the detail view of the first result
    page.wait_for_selector("#detail:not([hidden])")
    page.go_back()  # to the results
    page.wait_for_selector("#detail", state="hidden")
    assert [c["id"] for c in results_of(page, DOG_QUERY)] == [c["id"] for c in cards]


def test_browser_back_restores_the_previous_query(page, served: dict) -> None:
    page.goto(served["url"])
    dogs = type_query(page, DOG_QUERY)
    water = type_query(page, "children playing in the water")
    assert water[0]["id"] != dogs[0]["id"]
    page.go_back()
    page.wait_for_function("(q) => document.querySelector('input[name=q]').value === q", arg=DOG_QUERY)
    page.wait_for_function("(id) => document.querySelector('.card')?.dataset.id === id", arg=dogs[0]["id"])
    assert [c["id"] for c in results_of(page, DOG_QUERY)] == [c["id"] for c in dogs]
    page.go_forward()
    page.wait_for_function("(id) => document.querySelector('.card')?.dataset.id === id", arg=water[0]["id"])


def test_browser_drop_an_image(page, served: dict, shots: Path) -> None:
    page.goto(served["url"])
    page.wait_for_selector(".card")
    data = list((FIXTURE_IMAGES / "rotated_exif6.jpg").read_bytes())
    page.evaluate("""(bytes) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], 'query.jpg', {type: 'image/jpeg'}));
        document.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true}));
        document.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", data)
    cards = results_of(page)
    assert cards and os.path.basename(cards[0]["path"]) == "evil.jpg"  # the same photo, at score 1
    assert page.text_content("#query-image-label") == "query.jpg"
    assert page.is_hidden("#drop")
    thumbnails_loaded(page)
    page.screenshot(path=str(shots / "image-query.png"))


def test_browser_shows_a_script_caption_as_text(page, served: dict) -> None:
    page.goto(served["url"] + "?" + urllib.parse.urlencode({"folder": served["extra"]}))
    page.wait_for_selector(".card[data-path$='evil.jpg']")
    card = ".card[data-path$='evil.jpg']"
    assert page.text_content(f"{card} .caption") == EVIL
    page.click(card)
    page.wait_for_selector("#detail:not([hidden])")
    assert page.text_content("#detail-caption") == EVIL
    page.wait_for_timeout(300)
    assert page.dialogs == []
    assert page.eval_on_selector_all("main script, #detail script, main img[src=x]", "n => n.length") == 0


def test_browser_keyboard_and_infinite_scroll(page, served: dict) -> None:
    page.goto(served["url"] + "?" + urllib.parse.urlencode({"q": DOG_QUERY}))
    cards = results_of(page, DOG_QUERY)
    assert len(cards) == 50
    page.focus("input[name=q]")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.id") == cards[0]["id"]
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.id") == cards[1]["id"]
    page.keyboard.press("Enter")
    page.wait_for_selector("#detail:not([hidden])")
    assert shown(cards[1]["path"]) in page.text_content("#detail-meta")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("(p) => document.querySelector('#detail-meta').textContent.includes(p)", arg=shown(cards[2]["path"]))
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")
    page.mouse.wheel(0, 20_000)
    page.wait_for_function("() => document.querySelectorAll('.card').length > 50", timeout=20_000)


def test_browser_shows_a_missing_database_on_the_page(browser, tmp_path: Path, shots: Path) -> None:
    proc, url, _ = start_server("--db", str(tmp_path / "none.lancedb"))
    try:
        context = browser.new_context(viewport={"width": 1000, "height": 500})
        tab = context.new_page()
        tab.goto(url)
        tab.wait_for_selector("#message:not([hidden])")
        assert "There is no database at" in tab.text_content("#message")
        assert "mmembed ingest" in tab.text_content("#message")
        tab.wait_for_selector("body[data-state=error]")
        assert tab.is_hidden("#end") and tab.text_content("#stats") == ""
        tab.screenshot(path=str(shots / "no-database.png"))
        context.close()
    finally:
        stop_server(proc)


# ---------------------------------------------------------------- dates and filters (no server)
def test_ingest_records_the_date_taken_and_date_filters_use_it(tmp_path: Path, tiny_model: str) -> None:
    import calendar

    import mmembed
    from mmembed.serve.filters import Filters

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("Canon_40D.jpg", "Canon_PowerShot_S40.jpg"):
        shutil.copy(shared_path(f"data/photos/camera_exif/{name}"), folder / name)
    shutil.copy(FIXTURE_IMAGES / "red.jpg", folder / "red.jpg")  # no EXIF date: its file date counts
    old = calendar.timegm((2010, 6, 1, 12, 0, 0, 0, 0, 0))
    os.utime(folder / "red.jpg", (old, old))
    idx = mmembed.Index(str(tmp_path / "db"), model=tiny_model)
    idx.ingest(folder)
    taken = {os.path.basename(i["path"]): i["taken_ns"] for i in idx.items()}
    assert taken == {"Canon_40D.jpg": calendar.timegm((2008, 5, 30, 15, 56, 1, 0, 0, 0)) * 10**9,
                     "Canon_PowerShot_S40.jpg": calendar.timegm((2003, 12, 14, 12, 1, 44, 0, 0, 0)) * 10**9,
                     "red.jpg": None}
    columns = list(idx.items()[0])

    def found(**filters: str) -> list[str]:
        where = Filters(**filters).where_sql(columns)
        return sorted(os.path.basename(h.path) for h in idx.search("a photo", where=where, limit=10))

    assert found(date_from="2008-01-01", date_to="2008-12-31") == ["Canon_40D.jpg"]
    assert found(date_to="2005-01-01") == ["Canon_PowerShot_S40.jpg"]
    assert found(date_from="2010-06-01", date_to="2010-06-01") == ["red.jpg"]  # the file date, inclusive
    assert found(date_field="file", date_from="2020-01-01") == ["Canon_40D.jpg", "Canon_PowerShot_S40.jpg"]
    assert found(folder=str(folder.resolve()), format="JPEG") == ["Canon_40D.jpg", "Canon_PowerShot_S40.jpg", "red.jpg"]
    assert found(folder=str(folder.resolve()) + "_other") == []
    assert found(folder="/x' OR '1'='1") == []  # quoted: the value cannot widen the filter
    with pytest.raises(mmembed.QueryError, match="no_column"):
        Filters(columns={"no_column": "x"}).where_sql(columns)


def test_a_filter_value_cannot_end_its_string(tmp_path: Path, tiny_model: str) -> None:
    from mmembed.serve.filters import Filters

    where = Filters(folder="/x' OR '1'='1", format="JPEG' OR 'a'='a").where_sql(["path", "format"])
    assert where == "starts_with(path, '/x'' OR ''1''=''1/') AND format = 'JPEG'' OR ''a''=''a'"


def test_browser_a_shared_photo_link_and_a_phone_screen(page, served: dict, shots: Path) -> None:
    first = search_api(served["url"], q=DOG_QUERY, n=1)["hits"][0]
    link = served["url"] + "?" + urllib.parse.urlencode({"q": DOG_QUERY, "item": first["id"]})
    page.goto(link)  # a bookmarked or shared photo: nothing of ours before it in the history
    page.wait_for_selector("#detail:not([hidden])")
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")
    assert page.url == served["url"] + "?" + urllib.parse.urlencode({"q": DOG_QUERY})  # still here
    results_of(page, DOG_QUERY)

    page.click(f".card[data-id='{first['id']}']")
    page.wait_for_selector("#strip img")
    shown = set(page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.id)"))
    strip = page.eval_on_selector_all("#strip img", "is => is.map(i => i.dataset.id)")
    at = next(i for i, found in enumerate(strip) if found not in shown)  # a similar photo the results do not hold
    similar = strip[at]
    page.click(f"#strip img >> nth={at}")
    page.wait_for_function("(id) => new URLSearchParams(location.search).get('item') === id", arg=similar)
    page.keyboard.press("ArrowLeft")  # a photo from the strip is not in the results: no stepping away
    page.wait_for_timeout(200)
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["item"] == [similar]

    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    close = page.locator("#close").bounding_box()
    assert close and close["x"] + close["width"] <= 390
    page.screenshot(path=str(shots / "phone-detail.png"))
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("#toggle-filters").bounding_box()["x"] + 36 <= 390


# ---------------------------------------------------------------- organise: duplicates view and tag chips
@pytest.fixture(scope="module")
def organised(tmp_path_factory: pytest.TempPathFactory, micro_clip: str, session_cache: Path):
    """A small library with a byte copy and a re-encoded copy of one photo, tagged; served."""
    import random

    import mmembed
    from benchmarks.dupes import make_variant

    dev = sorted(shared_path("data/flickr8k/dev").glob("*.jpg"))[:8]
    folder = tmp_path_factory.mktemp("organised")
    for src in dev:
        shutil.copy(src, folder / src.name)
    shutil.copy(dev[0], folder / "copy.jpg")
    make_variant(dev[0], "jpeg", random.Random(1), folder / "reencoded")
    db = str(tmp_path_factory.mktemp("organised-db") / "db.lancedb")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CACHE_HOME", str(session_cache))
        idx = mmembed.Index(db, model=micro_clip)
        idx.ingest(folder)
        idx.tag(["dog", "water", "grass", "child"])
        proc, url, errors = start_server("--db", db)
    yield {"url": url, "db": db, "first": dev[0].name}
    assert stop_server(proc) == 0, "".join(errors)[-2000:]


def duplicates_when_done(url: str, mode: str = "near", timeout: float = 120) -> dict:
    """/api/duplicates asked again while it answers 202 (searching in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        status, data = get_json(url + f"api/duplicates?mode={mode}")
        if status != 202 or time.monotonic() > deadline:
            assert status == 200 and data["state"] == "done", data
            return data
        assert data["state"] == "running" and 0 <= data["percent"] <= 100
        time.sleep(0.2)


def test_duplicates_api(organised: dict) -> None:
    data = duplicates_when_done(organised["url"])
    assert len(data["groups"]) == 1
    group = data["groups"][0]
    assert sorted(os.path.basename(f["path"]) for f in group["files"]) == sorted([organised["first"], "copy.jpg", "reencoded.jpg"])
    assert sum(f["keep"] for f in group["files"]) == 1
    status, bad = get_json(organised["url"] + "api/duplicates?mode=fuzzy")
    assert status == 400 and "fuzzy" in bad["error"] and "--" not in bad["error"]


def test_duplicates_of_a_thousand_photos_answer_at_once_with_their_progress(served: dict, browser) -> None:
    """The search runs in the background: every request answers within a second or so, 202 with
    the progress until it is done; the page shows "finding duplicates… N%"."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    seen: list[str] = []
    tab.on("response", lambda r: seen.append(str(r.status)) if "/api/duplicates" in r.url else None)
    tab.goto(served["url"] + "?view=dupes")
    started = time.monotonic()
    status, data = get_json(served["url"] + "api/duplicates?mode=similar")
    assert time.monotonic() - started < 3 and status in (200, 202), (status, data)
    assert data["state"] in ("running", "done")
    texts: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and tab.locator("body[data-state=loading]").count():
        texts.append(tab.text_content("#stats") or "")
        tab.wait_for_timeout(100)
    tab.wait_for_selector("body[data-state=ready]", timeout=5_000)
    context.close()
    assert "202" in seen and any(re.fullmatch(r"finding duplicates… \d+%", t) for t in texts), (seen, set(texts))
    assert duplicates_when_done(served["url"], "similar")["groups"]


def test_browser_duplicates_view_and_tag_chips(browser, organised: dict, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(organised["url"])
    tab.wait_for_selector("body[data-state=ready]")
    tab.click("#dupes-link")
    tab.wait_for_function("() => new URLSearchParams(location.search).get('view') === 'dupes'")
    tab.wait_for_selector("body[data-state=ready] .grid h2.group")
    assert tab.locator(".grid h2.group").count() == 1 and tab.locator(".card").count() == 3
    assert tab.locator(".card .badge").count() == 1
    thumbnails_loaded(tab)
    tab.screenshot(path=str(shots / "duplicates.png"))
    tab.go_back()
    tab.wait_for_function("() => !new URLSearchParams(location.search).get('view')")
    tab.wait_for_selector(".chip")
    chip = tab.locator(".chip").first
    name = chip.get_attribute("data-tag")
    chip.click()
    tab.wait_for_function("(t) => new URLSearchParams(location.search).getAll('tag').includes(t)", arg=name)
    tab.wait_for_selector("body[data-state=ready]")
    ids = tab.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.id)")
    status, page = get_json(organised["url"] + "api/items?" + urllib.parse.urlencode({"tag": name}))
    assert ids and sorted(ids) == sorted(i["id"] for i in page["items"])
    assert all(name in i["tags"] for i in page["items"])
    assert tab.get_attribute(f".chip[data-tag='{name}']", "aria-pressed") == "true"
    context.close()
    assert errors == []
