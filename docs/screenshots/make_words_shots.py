"""The README's screenshots of words in the pixels (issue 22) and of the one search box (issue 23).

    python docs/screenshots/make_words_shots.py [--out docs/screenshots]

Builds a small library in a temporary folder, with nothing mocked: pages rendered in Chromium
(a receipt, a boarding pass, Chinese meeting minutes), 30 COCO photos from ../shared, and 8 of
them again with GPS and dates written into their EXIF (tests/where_photos.py's cities). Indexes it
with micro-clip (the small, really trained CLIP in ../shared) with OCR on, starts ``mmembed
serve`` on a free loopback port and saves:

- ``words-search.png``: "bakery receipt": the receipt first, its matched words marked;
- ``words-detail.png``: its detail view, the text read in it listed and boxed over the picture;
- ``where-search.png``: "Kyoto in December 2021": the chips of what the box understood;
- ``phone-search.jpg``, ``phone-detail.jpg``: a search and a photo at phone size (390x844).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "tests"))

PAGES = {
    "receipt.png": ("#ffffff", "#222222", "<h2>Harbor Street Bakery</h2><p>2 sourdough loaves 9.80</p>"
                    "<p>1 cinnamon roll 2.60</p><p><b>Total 12.40</b></p><p>Invoice 20231187</p>"),
    "boarding.png": ("#0d1b2a", "#e0e1dd", "<h2>BOARDING PASS</h2><p>Oslo OSL, Gate 27</p><p>Seat 14C</p>"
                     "<p>Flight SK 4035</p>"),
    "minutes.png": ("#fffbe6", "#333333", "<h2>第三季度会议纪要</h2><p>地点：三楼会议室</p><p>议题：预算与招聘</p>"),
}
SHOTS = [("kyoto", datetime(2021, 12, 5, 10, 0)), ("kyoto", datetime(2021, 12, 24, 16, 45)),
         ("kyoto", datetime(2019, 8, 1, 12, 0)), ("barcelona", datetime(2019, 7, 14, 18, 30)),
         ("chicago", datetime(2021, 12, 10, 8, 0)), ("paris", datetime(2019, 7, 3, 15, 0)),
         ("kyoto", datetime(2021, 12, 26, 9, 30)), ("barcelona", datetime(2022, 3, 2, 9, 15))]


def render_pages(folder: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 560, "height": 360})
        for name, (bg, fg, body) in PAGES.items():
            page.set_content(f'<!doctype html><html><body style="margin:0;padding:24px;font:24px sans-serif;'
                             f'background:{bg};color:{fg}">{body}</body></html>')
            page.screenshot(path=str(folder / name))
        browser.close()


def geotag(folder: Path, coco: list[Path]) -> None:
    from PIL import Image

    from where_photos import CITIES, _dms

    for (city, when), source in zip(SHOTS, coco):
        lat, lon, _ = CITIES[city]
        image = Image.open(source).convert("RGB")
        exif = Image.Exif()
        stamp = when.strftime("%Y:%m:%d %H:%M:%S")
        exif[0x0132] = stamp
        exif.get_ifd(0x8769)[0x9003] = stamp
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = ("N" if lat >= 0 else "S"), _dms(lat)
        gps[3], gps[4] = ("E" if lon >= 0 else "W"), _dms(lon)
        image.save(folder / f"{city}_{when:%Y%m%d}.jpg", "JPEG", quality=90, exif=exif)


def serve(db: str) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    proc = subprocess.Popen([sys.executable, "-m", "mmembed", "serve", "--db", db, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    url = proc.stdout.readline().strip() if proc.stdout else ""
    for _ in range(300):  # bounded: the server answers within seconds
        try:
            with urllib.request.urlopen(url + "api/info", timeout=10):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"mmembed serve did not answer at {url!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmembed-shots-"))
    folder = work / "Pictures"
    (folder / "screenshots").mkdir(parents=True)
    (folder / "trips").mkdir()
    (folder / "coco").mkdir()
    render_pages(folder / "screenshots")
    coco = sorted((SHARED / "data" / "photos" / "coco").glob("*.jpg"))
    for source in coco[:30]:
        shutil.copy(source, folder / "coco" / source.name)
    geotag(folder / "trips", coco[30:])
    db = str(work / "db")
    model = f"local-dir:{SHARED / 'models' / 'micro-clip'}"
    subprocess.run([sys.executable, "-m", "mmembed", "ingest", str(folder), "--db", db, "--model", model, "--ocr"],
                   check=True)
    proc, url = serve(db)
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            tab = browser.new_page(viewport={"width": 1280, "height": 760})
            tab.goto(url + "?q=bakery+receipt")
            tab.wait_for_selector(".card .words mark")
            time.sleep(1.0)  # thumbnails
            tab.screenshot(path=str(args.out / "words-search.png"))
            tab.click(".card")
            tab.wait_for_selector("svg.ocr-boxes polygon")
            time.sleep(0.5)
            tab.screenshot(path=str(args.out / "words-detail.png"))
            tab.goto(url + "?q=" + urllib.request.quote("Kyoto in December 2021"))
            tab.wait_for_selector(".where-chip")
            time.sleep(1.0)
            tab.screenshot(path=str(args.out / "where-search.png"))
            phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                     has_touch=True, is_mobile=True)
            phone.goto(url + "?q=" + urllib.request.quote("a street with people"))
            phone.wait_for_selector(".card img")
            time.sleep(1.5)  # thumbnails
            phone.screenshot(path=str(args.out / "phone-search.jpg"), type="jpeg", quality=80)
            phone.tap(".card")
            phone.wait_for_selector("#detail:not([hidden])")
            time.sleep(1.0)
            phone.screenshot(path=str(args.out / "phone-detail.jpg"), type="jpeg", quality=80)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}/words-search.png, words-detail.png, where-search.png, phone-search.jpg, "
          "phone-detail.jpg", file=sys.stderr)


if __name__ == "__main__":
    main()
