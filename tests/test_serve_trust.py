"""Issue 25 (trust), the web app's parts: a real ``mmembed serve`` over a real table of real
photos, files swapped under it, uploads that are not images, where-filters, messages, the
duplicates view; real Chromium where the page is concerned."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import run_cli, shared_path
from test_serve import browser, get, get_json, index_and_serve, raw_request, start_server, stop_server  # noqa: F401 - browser: a fixture

SECRET = b"root:x:0:0:the secret that must never leak:/root:/bin/bash\n"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, micro_clip: str, session_cache: Path):
    """Twelve Flickr8k photos (four in a subfolder) indexed and served; tests change files under it."""
    dev = sorted(shared_path("data/flickr8k/dev").glob("*.jpg"))[:12]
    folder = tmp_path_factory.mktemp("trusted") / "photos"
    (folder / "sub").mkdir(parents=True)
    for i, src in enumerate(dev):
        shutil.copy2(src, folder / ("sub" if i >= 8 else "") / src.name)
    secrets = tmp_path_factory.mktemp("secrets")
    db = str(tmp_path_factory.mktemp("trusted-db") / "db.lancedb")
    idx, proc, url, errors = index_and_serve(folder, db, micro_clip, session_cache)
    rows = {os.path.basename(r["path"]): r for r in idx.items()}
    yield {"url": url, "db": db, "folder": folder.resolve(), "rows": rows, "secrets": secrets, "proc": proc}
    assert stop_server(proc) == 0, "".join(errors)[-2000:]


def _names(library: dict, start: int, count: int) -> list[str]:
    return sorted(n for n in library["rows"] if "sub" not in library["rows"][n]["path"].split(os.sep))[start:start + count]


def _assert_nothing_leaks(library: dict, name: str, secret: bytes = SECRET) -> None:
    row_id = library["rows"][name]["id"]
    for endpoint in ("files", "media", "thumbs"):
        status, headers, body = get(library["url"] + f"{endpoint}/{row_id}")
        assert status == 410, (endpoint, status, body[:200])
        assert secret not in body and b"root:x" not in body
        assert "changed since it was indexed" in json.loads(body)["error"] or "gone" in json.loads(body)["error"]


# ---------------------------------------------------------------- 1. files served only while they are the indexed ones
def test_an_unchanged_file_is_served_whole_and_by_ranges(library: dict) -> None:
    name = _names(library, 0, 1)[0]
    row = library["rows"][name]
    status, headers, body = get(library["url"] + f"files/{row['id']}")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert body == Path(row["path"]).read_bytes()
    status, headers, body = get(library["url"] + f"files/{row['id']}", {"Range": "bytes=10-29"})
    assert status == 206 and body == Path(row["path"]).read_bytes()[10:30]


def test_a_file_swapped_for_a_symlink_to_a_secret_leaks_through_no_endpoint(library: dict) -> None:
    name = _names(library, 1, 1)[0]
    secret = library["secrets"] / "passwd"
    secret.write_bytes(SECRET)
    path = Path(library["rows"][name]["path"])
    path.unlink()
    path.symlink_to(secret)
    _assert_nothing_leaks(library, name)


def test_a_symlink_to_a_secret_of_the_same_size_and_mtime_is_refused(library: dict) -> None:
    name = _names(library, 2, 1)[0]
    row = library["rows"][name]
    path = Path(row["path"])
    secret = library["secrets"] / "same-size"
    secret.write_bytes((SECRET * (row["size"] // len(SECRET) + 1))[: row["size"]])
    os.utime(secret, ns=(row["mtime_ns"], row["mtime_ns"]))
    path.unlink()
    path.symlink_to(secret)
    _assert_nothing_leaks(library, name)


def test_a_same_size_same_mtime_content_swap_is_refused(library: dict) -> None:
    name = _names(library, 3, 1)[0]
    row = library["rows"][name]
    path = Path(row["path"])
    data = bytearray(path.read_bytes())
    data[-100:-2] = SECRET[:98].ljust(98, b"-")  # the JPEG still decodes; its last bytes are the secret
    path.write_bytes(bytes(data))
    os.utime(path, ns=(row["mtime_ns"], row["mtime_ns"]))
    assert path.stat().st_size == row["size"] and path.stat().st_mtime_ns == row["mtime_ns"]
    _assert_nothing_leaks(library, name)
    status, _, body = get(library["url"] + f"files/{row['id']}")  # what to do is said, and it works
    error = json.loads(body)["error"]
    assert "though its size and date did not" in error and "(`touch FILE`), then run `mmembed ingest`" in error, error
    os.utime(path)
    done = run_cli("ingest", str(library["folder"]), "--db", library["db"], "--no-ocr", "--json", "-q")
    assert done.returncode == 0 and json.loads(done.stdout)["updated"] == 1, done.stderr
    deadline = time.monotonic() + 20
    while (status := get(library["url"] + f"files/{row['id']}")[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)  # the server sees the table's new version
    assert status == 200 and get(library["url"] + f"files/{row['id']}")[2] == bytes(data)


def test_a_parent_folder_swapped_for_a_symlink_to_secrets_is_refused(library: dict) -> None:
    sub = library["folder"] / "sub"
    names = sorted(os.listdir(sub))
    evil = library["secrets"] / "evil-sub"
    evil.mkdir()
    for n in names:
        (evil / n).write_bytes(SECRET)
    sub.rename(library["folder"] / "sub-moved")
    sub.symlink_to(evil, target_is_directory=True)
    for n in names:
        _assert_nothing_leaks(library, n)


def test_a_file_swapped_for_a_fifo_answers_at_once(library: dict) -> None:
    name = _names(library, 4, 1)[0]
    path = Path(library["rows"][name]["path"])
    path.unlink()
    os.mkfifo(path)
    started = time.monotonic()
    status, _, body = get(library["url"] + f"files/{library['rows'][name]['id']}")
    assert status == 410 and "no longer a regular file" in json.loads(body)["error"]
    assert time.monotonic() - started < 10


# ---------------------------------------------------------------- 6. uploads that are not images are refused early
def _memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0])
    return fields


def parallel_uploads(url: str, count: int, body: bytes, content_type: str) -> list[int]:
    """``count`` POSTs of ``body`` to /api/search at once (to 127.0.0.1); their status codes."""
    statuses: list[int] = [0] * count
    go = threading.Barrier(count)

    def one(i: int) -> None:
        go.wait(timeout=30)
        try:
            statuses[i], _ = raw_request(url, "POST", "/api/search", body, {"Content-Type": content_type})
        except (ConnectionError, OSError):
            statuses[i] = -1  # the server closed the connection after answering early
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return statuses


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_sixteen_parallel_large_non_image_uploads_stay_small(library: dict) -> None:
    proc, url, errors = start_server("--db", library["db"])
    try:
        assert url.startswith("http://127.0.0.1:")
        before = _memory_kb(proc.pid)
        body = os.urandom(19 * 1024 * 1024)  # 19 MB, under the 20 MB limit, not an image
        started = time.monotonic()
        statuses = parallel_uploads(url, 16, body, "application/octet-stream")
        seconds = time.monotonic() - started
        time.sleep(1.0)
        after = _memory_kb(proc.pid)
        print(f"\n16 x 19 MB non-image uploads: {seconds:.1f} s, statuses {sorted(statuses)}, "
              f"VmHWM {before['VmHWM'] // 1024} -> {after['VmHWM'] // 1024} MB, "
              f"VmRSS {before['VmRSS'] // 1024} -> {after['VmRSS'] // 1024} MB")
        assert all(s in (400, 503, -1) for s in statuses), statuses
        assert after["VmHWM"] - before["VmHWM"] < 150 * 1024
        assert after["VmRSS"] - before["VmRSS"] < 100 * 1024
        status, data = get_json(url + "api/search?q=dog")
        assert status == 200  # still answering
    finally:
        assert stop_server(proc) == 0, "".join(errors)[-2000:]


# ---------------------------------------------------------------- 5. one where check; the page's own words
def test_a_second_statement_in_the_filter_is_refused_by_browse_search_and_cli(library: dict) -> None:
    bad = "width > 300; garbage"
    status, data = get_json(library["url"] + "api/items?" + urllib.parse.urlencode({"where": bad}))
    assert status == 400 and "';'" in data["error"], data
    status, searched = get_json(library["url"] + "api/search?" + urllib.parse.urlencode({"q": "dog", "where": bad}))
    assert status == 400 and searched["error"] == data["error"]
    assert data["error"].startswith("the SQL filter 'width > 300; garbage' holds a ';'")
    done = run_cli("search", "dog", "--db", library["db"], "--where", bad)
    assert done.returncode != 0 and "holds a ';'" in done.stderr
    status, fine = get_json(library["url"] + "api/items?" + urllib.parse.urlencode({"where": "width > 300 AND text != ';'"}))
    assert status == 200, fine  # a ';' inside a string is no second statement


def test_the_web_app_names_no_cli_flags(library: dict) -> None:
    cases = {"api/search?q=": "type words, or drop an image here",
             "api/items?where=no_such_column+%3E+1": "the SQL filter 'no_such_column > 1' is not a valid filter",
             "api/search?q=dog&where=no_such_column+%3E+1": "the SQL filter 'no_such_column > 1' is not a valid filter",
             "api/search?q=dog&image_weight=3": "image weight",
             "api/duplicates?mode=fuzzy": "mode 'fuzzy' is not one of",
             "api/search?q=dog&mode=bogus": "mode 'bogus' is not one of",
             "api/search?q=dog&sort=bogus": "sort 'bogus' is not one of",
             "api/search?q=dog&radius=-5&near=Paris": "radius -5",
             "api/search?q=dog&taken_after=yesterday": "taken_after 'yesterday'"}
    for path, words in cases.items():
        status, data = get_json(library["url"] + path)
        assert status == 400 and words in data["error"] and "--" not in data["error"], (path, data)


def test_browser_counter_filter_line_and_a_forgotten_image(browser, library: dict) -> None:
    name = _names(library, 6, 1)[0]
    one = f"starts_with(path, '{library['rows'][name]['path']}')"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.goto(library["url"] + "?" + urllib.parse.urlencode({"q": "a dog", "where": one}))
    tab.wait_for_selector("body[data-state=ready]")
    assert re.fullmatch(r"1 result · [\d.]+ ms", tab.text_content("#stats")), tab.text_content("#stats")
    assert tab.text_content("#applied-where") == "where " + one
    tab.goto(library["url"] + "?" + urllib.parse.urlencode({"q": "a dog", "where": "width >"}))
    tab.wait_for_selector("body[data-state=error]")
    assert tab.text_content("#applied-where") == ""  # not the previous page's filter
    message = tab.text_content("#message")
    assert "the SQL filter 'width >'" in message and "--" not in message
    tab.goto(library["url"] + "?" + urllib.parse.urlencode({"q": "a dog", "upload": "u1"}))  # a reload of an image + words query
    tab.wait_for_selector("body[data-state=ready]")
    assert tab.is_visible("#message")
    assert "no longer in memory" in tab.text_content("#message") and "words alone" in tab.text_content("#message")
    assert re.match(r"\d+\+? results · ", tab.text_content("#stats"))
    context.close()


# ---------------------------------------------------------------- 6. the Similar strip is a regular grid
def test_browser_the_similar_strip_is_a_regular_grid(browser, library: dict, tmp_path: Path) -> None:
    name, gone = _names(library, 7, 1)[0], _names(library, 5, 1)[0]
    Path(library["rows"][gone]["path"]).unlink()  # its thumbnail answers 410: its cell stays a square
    for thumbs in Path(library["db"]).glob("*.thumbs"):
        shutil.rmtree(thumbs)  # none cached from the tests before
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    tab.goto(library["url"] + "?" + urllib.parse.urlencode({"q": "a dog", "item": library["rows"][name]["id"]}))
    tab.wait_for_selector("#strip img")
    tab.wait_for_function("""() => [...document.querySelectorAll('#strip img')].every(i => i.complete)""", timeout=30_000)
    tab.wait_for_timeout(300)
    boxes = tab.eval_on_selector_all("#strip img", "is => is.map(i => { const b = i.getBoundingClientRect(); "
                                     "return [Math.round(b.x), Math.round(b.y), Math.round(b.width), Math.round(b.height)]; })")
    strip = tab.eval_on_selector("#strip", "s => { const b = s.getBoundingClientRect(); "
                                 "return [b.x, b.width, s.scrollWidth, s.clientWidth]; }")
    tab.screenshot(path=str(tmp_path / "strip.png"))
    context.close()
    assert len(boxes) >= 6, boxes
    assert len({(w, h) for _, _, w, h in boxes}) == 1, boxes  # every thumbnail the same size, square
    assert boxes[0][2] == boxes[0][3] and abs(3 * boxes[0][2] + 2 * 6 - strip[1]) <= 3, (boxes[0], strip)
    assert strip[2] <= strip[3], strip  # nothing spills out to the right
    xs = sorted({x for x, _, _, _ in boxes})
    ys = sorted({y for _, y, _, _ in boxes})
    assert len(xs) == 3 and abs(xs[0] - strip[0]) <= 1, (xs, strip)  # three columns from the left edge
    assert len(ys) == -(-len(boxes) // 3), (ys, boxes)  # rows filled in order, no gaps
    for i, (x, y, _, _) in enumerate(boxes):
        assert x == xs[i % 3] and y == ys[i // 3], (i, boxes)
    gaps = {b - a for a, b in zip(ys, ys[1:])}
    assert max(gaps) - min(gaps) <= 1, ys  # rows evenly spaced


def test_parallel_image_uploads_past_the_limit_are_told_to_wait_and_others_are_refused_by_their_headers(library: dict) -> None:
    name = _names(library, 0, 1)[0]
    jpeg = Path(library["rows"][name]["path"]).read_bytes()
    body = jpeg + b"\0" * (19 * 1024 * 1024 - len(jpeg))  # a real JPEG, 19 MB with what follows its end
    statuses = parallel_uploads(library["url"], 16, body, "image/jpeg")
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 4 and 503 in statuses, statuses
    status, data = raw_request(library["url"], "POST", "/api/search", body[:1000], {"Content-Type": "text/plain"})
    assert status == 415 and "not an image" in json.loads(data)["error"]
    for kind in ("image/jpeg", "application/x-www-form-urlencoded"):  # the latter: curl --data-binary @photo.jpg
        status, data = raw_request(library["url"], "POST", "/api/search", jpeg, {"Content-Type": kind})
        assert status == 200 and json.loads(data)["hits"][0]["path"] == library["rows"][name]["path"]


# ---------------------------------------------------------------- 1. the HTML gallery inlines only what was indexed
def test_search_html_inlines_no_file_swapped_since_it_was_indexed(library: dict, tmp_path: Path) -> None:
    from PIL import Image

    name = _names(library, 0, 1)[0]  # unchanged by the tests before
    row = library["rows"][name]
    impostor = library["secrets"] / "impostor.jpg"  # a picture that was never indexed, at the same path
    Image.new("RGB", (224, 224), (255, 0, 0)).save(impostor, "JPEG")
    os.utime(impostor, ns=(row["mtime_ns"], row["mtime_ns"]))
    where = f"starts_with(path, '{row['path']}')"
    before = tmp_path / "before.html"
    done = run_cli("search", "a photo", "--db", library["db"], "--where", where, "--html", str(before))
    assert done.returncode == 0, done.stderr
    assert before.read_text().count('src="data:image/jpeg;base64,') == 1
    Path(row["path"]).rename(library["secrets"] / "kept.jpg")
    Path(row["path"]).symlink_to(impostor)
    after = tmp_path / "after.html"
    done = run_cli("search", "a photo", "--db", library["db"], "--where", where, "--html", str(after))
    assert done.returncode == 0, done.stderr
    page = after.read_text()
    assert 'src="data:image/jpeg;base64,' not in page and "changed since it was indexed" in page
    assert f"wrote {after} (1 results, 0 thumbnails inlined)" in done.stderr


# ---------------------------------------------------------------- 6. no machine's absolute path on screen
def test_browser_shows_paths_under_home_as_a_tilde(browser, library: dict) -> None:
    home = library["folder"].parent  # the library lies in ~/photos for this server
    name = _names(library, 6, 1)[0]
    proc, url, errors = start_server("--db", library["db"], env_extra={"HOME": str(home)})
    try:
        status, info = get_json(url + "api/info")
        assert info["home"] == str(home)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        tab = context.new_page()
        tab.goto(url + "?" + urllib.parse.urlencode({"item": library["rows"][name]["id"]}))  # a shared link: before /api/info
        tab.wait_for_function("(p) => document.querySelector('#detail-meta').textContent.includes(p)", arg=f"~/photos/{name}")
        tab.wait_for_timeout(300)
        assert str(home) not in tab.text_content("#detail-meta")
        tab.keyboard.press("Escape")
        tab.click("#toggle-filters")
        assert "~/photos" in " ".join(tab.eval_on_selector_all("#folder option", "os => os.map(o => o.textContent)"))
        context.close()
    finally:
        assert stop_server(proc) == 0, "".join(errors)[-2000:]


def test_dupes_html_inlines_no_file_swapped_since_it_was_indexed(tmp_path: Path, micro_clip: str) -> None:
    from PIL import Image

    src = sorted(shared_path("data/flickr8k/dev").glob("*.jpg"))[0]
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy2(src, folder / "a.jpg")
    shutil.copy2(src, folder / "b.jpg")
    db = str(tmp_path / "db.lancedb")
    done = run_cli("ingest", str(folder), "--db", db, "--model", micro_clip, "-q")
    assert done.returncode == 0, done.stderr
    impostor = tmp_path / "impostor.jpg"
    Image.new("RGB", (224, 224), (0, 0, 255)).save(impostor, "JPEG")
    (folder / "b.jpg").unlink()
    (folder / "b.jpg").symlink_to(impostor)
    out = tmp_path / "dupes.html"
    done = run_cli("dupes", "--db", db, "--mode", "exact", "--html", str(out), "-q")
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    # dupes itself leaves a file that changed since it was indexed out of every group (and says so on
    # stderr), so the swapped file never reaches the gallery: no group, no picture of the impostor
    assert "b.jpg changed since it was indexed" in done.stderr
    assert 'src="data:image/jpeg;base64,' not in page and "b.jpg" not in page
