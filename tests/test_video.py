"""Videos: frames sampled from real encoded videos (PyAV), one row per kept frame, a video
found once at its best frame, incremental rules per video file, and the web app playing it."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

import pytest

from conftest import flickr_dev_captions, run_cli, shared_path

av = pytest.importorskip("av", reason="PyAV is in the test extra: pip install -e '.[test]'")
from make_video import make_slideshow  # noqa: E402  (fixtures/, on sys.path via conftest)

KEYWORDS = ["dog", "bike", "guitar", "surf", "climb"]  # one slide each, in this order; the third is "guitar"
SECONDS_EACH = 3.0
SCREENSHOTS = os.environ.get("MMEMBED_SCREENSHOTS")


def pick_slides() -> list[str]:
    """Five Flickr8k dev images whose captions are about clearly different things: for each
    keyword, the first image where 4 of 5 captions say it and no caption says another."""
    captions = flickr_dev_captions()
    picked: list[str] = []
    for key in KEYWORDS:
        for name in sorted(captions):
            texts = captions[name]
            others = [k for k in KEYWORDS if k != key]
            if sum(key in t for t in texts) >= 4 and not any(o in t for o in others for t in texts):
                picked.append(name)
                break
    assert len(picked) == len(KEYWORDS), picked
    return picked


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, micro_clip: str) -> dict:
    """A folder with a 15 s slideshow video (5 slides of 3 s) and 6 distractor photos, ingested with micro-clip."""
    dev = shared_path("data/flickr8k/dev")
    slides = pick_slides()
    folder = tmp_path_factory.mktemp("videos")
    codec = make_slideshow(folder / "slideshow.mp4", [dev / s for s in slides], seconds_each=SECONDS_EACH)
    distractors = [n for n in sorted(os.listdir(dev)) if n not in slides][:6]
    for name in distractors:
        shutil.copy(dev / name, folder / name)
    db = str(tmp_path_factory.mktemp("db") / "v.lancedb")
    done = run_cli("ingest", str(folder), "--db", db, "--model", micro_clip, "--json")
    assert done.returncode == 0, done.stderr
    return {"folder": folder, "db": db, "slides": slides, "report": json.loads(done.stdout), "codec": codec,
            "model": micro_clip}


@pytest.fixture(scope="module")
def index(library: dict):
    """The library's table through the Python API (the model loads once for the module)."""
    import mmembed

    return mmembed.Index(library["db"])


def search(index, query: str, **options) -> list[dict]:
    return [h.to_dict() for h in index.search(query, **options)]


def ingest(index, folder: Path) -> dict:
    return index.ingest(folder).to_dict()


def video_rows(db: str) -> list[dict]:
    import mmembed

    return sorted((r for r in mmembed.Index(db).items() if r.get("media") == "video"),
                  key=lambda r: (r["path"], r["frame_time"]))


def test_a_video_becomes_one_row_per_kept_frame(library: dict) -> None:
    report = library["report"]
    assert report["added"] == 7 and report["skipped"] == [] and report["rows"] == 6 + report["frames"]
    rows = video_rows(library["db"])
    times = [r["frame_time"] for r in rows]
    # keyframes every second, sampled every 2 s -> 0, 2, ..., 14; a slide held on screen gives
    # near-identical frames, which are dropped: at least one frame per slide is kept
    assert len(rows) == report["frames"] and 5 <= len(rows) <= 8, times
    for slide in range(5):
        assert any(slide * SECONDS_EACH <= t < (slide + 1) * SECONDS_EACH for t in times), (slide, times)
    assert all(r["duration"] == pytest.approx(15.0, abs=0.2) for r in rows)
    assert {(r["path"], r["size"], r["content_hash"], r["format"], r["width"], r["height"]) for r in rows} == \
        {(str(library["folder"] / "slideshow.mp4"), rows[0]["size"], rows[0]["content_hash"], "MP4", 320, 240)}


def test_a_caption_query_finds_the_video_at_the_right_frame(library: dict, index) -> None:
    captions = flickr_dev_captions()
    third = library["slides"][2]
    query = captions[third][0]
    frames = search(index, query, frames=True, where="media = 'video'", limit=3)
    best = frames[0]
    assert best["media"] == "video" and 2 * SECONDS_EACH <= best["frame_time"] < 3 * SECONDS_EACH, (query, frames)
    hits = search(index, query, limit=5)
    videos = [h for h in hits if h["media"] == "video"]
    assert len(videos) == 1, hits  # once, at its best frame
    assert videos[0]["frame_time"] == best["frame_time"] and videos[0]["duration"] == pytest.approx(15.0, abs=0.2)
    assert hits.index(videos[0]) <= 2, [(h["path"], h["score"]) for h in hits]
    plain = run_cli("search", query, "--db", library["db"], "-n", "1", "--frames", "--where", "media = 'video'")
    assert f"slideshow.mp4 @ 0:0{int(best['frame_time'])}" in plain.stdout
    (line,) = run_cli("search", query, "--db", library["db"], "-n", "1", "--where", "media = 'video'",
                      "--json").stdout.splitlines()
    assert json.loads(line)["frame_time"] == best["frame_time"]


def test_frames_lists_every_matching_frame(library: dict, index) -> None:
    hits = search(index, "a photo", frames=True, limit=20)
    video_hits = [h for h in hits if h["media"] == "video"]
    assert len(video_hits) == len(video_rows(library["db"])) >= 5
    assert len({h["frame_time"] for h in video_hits}) == len(video_hits)
    images = [h for h in hits if h["media"] == "image"]
    assert len(images) == 6 and all(h["frame_time"] is None for h in images)
    once = search(index, "a photo", limit=20)
    assert len(once) == 7 and sum(h["media"] == "video" for h in once) == 1


def test_unchanged_touched_and_moved_videos_are_not_decoded(library: dict, tmp_path: Path) -> None:
    import mmembed

    folder = tmp_path / "clips"
    shutil.copytree(library["folder"], folder)
    db = str(tmp_path / "db")
    idx = mmembed.Index(db, model=library["model"])
    first = ingest(idx, folder)
    ids = [r["id"] for r in video_rows(db)]
    again = ingest(idx, folder)
    assert (again["unchanged"], again["frames"], again["added"]) == (7, 0, 0)
    video = folder / "slideshow.mp4"
    os.utime(video, (time.time() + 5, time.time() + 5))  # touched: read and hashed, not decoded
    touched = ingest(idx, folder)
    assert (touched["unchanged"], touched["frames"], touched["updated"]) == (7, 0, 0)
    (folder / "holiday").mkdir()
    video.rename(folder / "holiday" / "beach day.mp4")
    moved = ingest(idx, folder)
    assert (moved["moved"], moved["frames"], moved["removed"], moved["rows"]) == (1, 0, 0, first["rows"])
    rows = video_rows(db)
    assert [r["id"] for r in rows] == ids and {r["path"] for r in rows} == {str(folder / "holiday" / "beach day.mp4")}


def test_a_changed_video_replaces_its_frames_and_a_copy_reuses_them(library: dict, tmp_path: Path) -> None:
    import mmembed

    dev = shared_path("data/flickr8k/dev")
    folder = tmp_path / "clips"
    folder.mkdir()
    slides = [dev / s for s in library["slides"]]
    make_slideshow(folder / "a.mp4", slides[:2], seconds_each=SECONDS_EACH)
    db = str(tmp_path / "db")
    idx = mmembed.Index(db, model=library["model"])
    ingest(idx, folder)
    old_ids = {r["id"] for r in video_rows(db)}
    make_slideshow(folder / "a.mp4", slides[2:], seconds_each=SECONDS_EACH)  # new content, same name
    changed = ingest(idx, folder)
    assert (changed["updated"], changed["added"]) == (1, 0), changed
    a = video_rows(db)
    assert not old_ids & {r["id"] for r in a}  # the old frames are gone, none left twice
    assert changed["frames"] == len(a) >= 3
    shutil.copy(folder / "a.mp4", folder / "b.mp4")  # a copy of an indexed video
    copied = ingest(idx, folder)
    assert (copied["added"], copied["unchanged"], copied["frames"]) == (1, 1, 0), copied  # not decoded: frames copied
    b = [r for r in video_rows(db) if r["path"].endswith("b.mp4")]
    assert [r["frame_time"] for r in a] == [r["frame_time"] for r in b] and not {r["id"] for r in a} & {r["id"] for r in b}
    assert max(r["frame_time"] for r in a) >= 2 * SECONDS_EACH and a[0]["duration"] == pytest.approx(9.0, abs=0.2)
    (folder / "b.mp4").unlink()
    pruned = ingest(idx, folder)
    assert pruned["removed"] == 1 and pruned["rows"] == len(a)



def test_frames_left_by_a_run_stopped_mid_replace_are_cleaned_up(library: dict, tmp_path: Path) -> None:
    """A run killed after writing a changed video's new frames and before deleting the old ones
    leaves both generations; the next run keeps the frames that match the file."""
    import lancedb
    import mmembed
    import pyarrow as pa

    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(library["folder"] / "slideshow.mp4", folder / "a.mp4")
    db = str(tmp_path / "db")
    idx = mmembed.Index(db, model=library["model"])
    ingest(idx, folder)
    current = video_rows(db)
    table = lancedb.connect(db).open_table("images")
    old = table.search().where("media = 'video'").limit(None).to_arrow().to_pylist()
    for row in old:  # the previous version of the file: other size and mtime, other ids
        row.update(id=row["id"][::-1], size=row["size"] - 1, mtime_ns=row["mtime_ns"] - 10**9, frame_time=row["frame_time"] + 0.5)
    table.add(pa.Table.from_pylist(old, schema=table.schema))
    assert len(video_rows(db)) == 2 * len(current)
    report = ingest(idx, folder)
    assert (report["unchanged"], report["frames"], report["removed"]) == (1, 0, 0)
    assert [r["id"] for r in video_rows(db)] == [r["id"] for r in current]


def test_a_truncated_or_corrupt_video_is_skipped_with_a_reason(library: dict, tmp_path: Path, tiny_model: str) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    data = (library["folder"] / "slideshow.mp4").read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])
    # seeded: os.urandom's bytes now and then read as an audio stream to FFmpeg ("no video stream")
    (folder / "noise.mov").write_bytes(random.Random(1).randbytes(20_000))
    shutil.copy(shared_path("data/flickr8k/dev") / library["slides"][0], folder / "ok.jpg")
    done = run_cli("ingest", str(folder), "--db", str(tmp_path / "db"), "--model", tiny_model, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"cut.mp4", "noise.mov"} and report["added"] == 1 and report["rows"] == 1
    assert all("truncated or corrupt video" in r for r in reasons.values()), reasons
    assert "cut.mp4" in done.stderr  # one line per skipped file for the person watching


def test_without_pyav_a_video_is_skipped_naming_the_extra(library: dict, tmp_path: Path, tiny_model: str) -> None:
    folder = tmp_path / "v"
    folder.mkdir()
    shutil.copy(library["folder"] / "slideshow.mp4", folder / "clip.mp4")
    code = ("import sys; sys.modules['av'] = None; from mmembed.cli import main; "
            f"sys.argv = ['mmembed', 'ingest', {str(folder)!r}, '--db', {str(tmp_path / 'db')!r}, "
            f"'--model', {tiny_model!r}, '--json']; main()")
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (skipped,) = json.loads(done.stdout)["skipped"]
    assert skipped["reason"] == "video support needs PyAV; install the extra: pip install 'mmembed[video]'"


def test_the_web_app_shows_the_frame_and_plays_from_it(library: dict) -> None:
    from test_serve import get, get_json, screenshot_env, search_api, start_server, stop_server

    proc, url, errors = start_server("--db", library["db"], env_extra=screenshot_env(library["folder"].parent))
    try:
        status, page = get_json(url + "api/items?n=50")
        assert status == 200 and page["total"] == 7  # browsing shows the video once
        (video,) = [h for h in page["items"] if h.get("media") == "video"]
        assert video["frame_time"] == min(r["frame_time"] for r in video_rows(library["db"]))
        hits = search_api(url, q=flickr_dev_captions()[library["slides"][2]][0], n=10)["hits"]
        (best,) = [h for h in hits if h["media"] == "video"]
        status, headers, body = get(url + "thumbs/" + best["id"])
        assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
        from io import BytesIO

        from PIL import Image

        assert Image.open(BytesIO(body)).size == (320, 240)
        status, headers, body = get(url + "files/" + best["id"], {"Range": "bytes=0-99"})
        assert status == 206 and headers["content-type"] == "video/mp4" and len(body) == 100
        _play_in_browser(url, best)
    finally:
        assert stop_server(proc) == 0, "".join(errors)[-2000:]


def _play_in_browser(url: str, best: dict) -> None:
    """The detail view of a video hit is a player that starts at the frame that matched."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the browser check needs chromium (apt-get install -y chromium)")
        pytest.skip("the browser check needs chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            tab = browser.new_page(bypass_csp=True, viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(url + "?q=guitar", wait_until="load")
            tab.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=30_000)
            card = tab.locator(f'.card[data-id="{best["id"]}"]')
            if card.count() == 0:  # not on this query's first page: open it by its link
                tab.goto(url + "?q=guitar&item=" + best["id"], wait_until="load")
            else:
                assert "▶ 0:0" in card.inner_text()
                _screenshot(tab, "video-search.png")
                card.click()
            tab.wait_for_function("() => { const v = document.getElementById('detail-video');"
                                  " return v && !v.hidden && v.readyState >= 1; }", timeout=30_000)
            state = tab.evaluate("() => { const v = document.getElementById('detail-video');"
                                 " return {t: v.currentTime, err: v.error && v.error.code, img: document.getElementById('detail-image').hidden}; }")
            assert state["err"] is None and state["img"] is True, state
            assert abs(state["t"] - best["frame_time"]) < 0.6, (state, best["frame_time"])
            tab.wait_for_function("() => { const v = document.getElementById('detail-video');"
                                  " return v.readyState >= 2 && !v.seeking; }", timeout=30_000)
            tab.evaluate("() => { const v = document.getElementById('detail-video'); v.muted = true; v.play(); }")
            tab.wait_for_function(f"() => document.getElementById('detail-video').currentTime > {best['frame_time'] + 1.0}",
                                  timeout=30_000)  # it plays on from the matched frame
            tab.evaluate("() => document.getElementById('detail-video').pause()")
            _screenshot(tab, "video-detail.png")
            assert errors == []
        finally:
            browser.close()


def _screenshot(tab, name: str) -> None:
    """Kept for the README when MMEMBED_SCREENSHOTS=DIR (read at import: fixtures clear MMEMBED_* settings)."""
    if SCREENSHOTS:
        tab.wait_for_timeout(500)
        tab.screenshot(path=str(Path(SCREENSHOTS) / name))


def test_a_gallery_shows_the_matched_frame_and_its_time(library: dict, tmp_path: Path) -> None:
    out = tmp_path / "v.html"
    query = flickr_dev_captions()[library["slides"][2]][0]
    done = run_cli("search", query, "--db", library["db"], "-n", "1", "--where", "media = 'video'", "--html", str(out))
    assert done.returncode == 0 and "(1 results, 1 thumbnails inlined)" in done.stderr, done.stderr
    page = out.read_text()
    assert "▶ 0:0" in page and "data:image/jpeg;base64," in page and 'class="missing"' not in page


def test_dupes_and_doctor_on_a_table_where_a_video_came_in_its_own_run(library: dict, tmp_path: Path) -> None:
    """A video ingested on its own gives scan batches of frames only: `dupes` broke on them (a (0, 0)
    vector matrix), and `doctor` counted a video's frames, which share its path, as repeated rows."""
    photos, clip = tmp_path / "photos", tmp_path / "clip"
    photos.mkdir()
    clip.mkdir()
    for name in sorted(os.listdir(library["folder"])):
        if name.endswith(".jpg"):
            shutil.copy(library["folder"] / name, photos / name)
    shutil.copy(library["folder"] / "slideshow.mp4", clip / "slideshow.mp4")
    db = str(tmp_path / "db.lancedb")
    for folder in (photos, clip):
        done = run_cli("ingest", str(folder), "--db", db, "--model", library["model"], "-q", "--no-ocr")
        assert done.returncode == 0, done.stderr
    done = run_cli("dupes", "--db", db, "--json")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    done = run_cli("doctor", "--db", db, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = next(f for f in map(json.loads, done.stdout.splitlines()) if f["check"] == "rows")
    assert rows["status"] == "ok", rows
