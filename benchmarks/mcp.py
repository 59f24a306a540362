"""``mmembed mcp``'s cost: start-up to ``initialize``, warm ``search`` calls at 100k rows, and one exchange.

    python benchmarks/datasets.py vectors --rows 100000     # once: a 100k-row table (random ViT-B-32 vectors)
    python benchmarks/mcp.py [--starts 5] [--queries 20] [--example docs/mcp-example.md]

Everything goes through the MCP SDK's own stdio client (``mcp.client.stdio``) driving a real
``mmembed mcp --db DB --table T`` subprocess, as an assistant would. Prints one JSON object:

- ``start``: process start (the client spawns the console script) until ``initialize`` is
  answered, one fresh process each time, on the 100k-row table and on a 30-photo micro-clip table;
  median and max of ``--starts``.
- ``search_100k``: ``search`` tool calls (``limit`` 10) with ``--queries`` different text
  queries on one server, after 2 warm-up calls and a ``--settle`` pause (5 s: ``mmembed mcp``
  starts a warm-up thread that reads every row's metadata; calls made while it runs share the
  GIL and two cores with it; ``first_call_ms`` is the first call after ``initialize``): ``call_ms`` = the client's round trip
  (JSON-RPC over the pipes, argument validation, the search, the result's JSON) p50/p95.
  The tool result carries no timing, so ``server_ms`` is a proxy: the same queries through the
  same ``Library.search`` the tool calls, in this process on the same table (its ``Page.seconds``:
  text encoding on the ONNX tower, the scan of 100k vectors, the hits).
- ``--example FILE``: writes one assistant-style exchange (Markdown) on a real table: the first
  30 Flickr8k dev photos (sorted by name) ingested with micro-clip; ``search`` "a dog running on
  grass" (limit 3), ``get_item`` of the first hit, ``get_picture`` of it (its size, not its bytes).
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import platform
import shutil
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# this file is named like the SDK's package: take its folder off the path so `import mcp` finds the SDK
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import DEFAULT_OUT, DEV, DEV_CAPTIONS, MICRO  # noqa: E402
from benchmarks.search import _pct, _queries  # noqa: E402
from benchmarks.throughput import _cpu_name  # noqa: E402

MMEMBED = str(Path(sys.executable).parent / "mmembed")
EXAMPLE_QUERY = "a dog running on grass"


def _params(db: str, table: str) -> Any:
    from mcp import StdioServerParameters

    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    env["HF_HUB_OFFLINE"] = "1"
    return StdioServerParameters(command=MMEMBED, args=["mcp", "--db", db, "--table", table], env=env)


def _run(db: str, table: str, check: Any) -> tuple[float, Any]:
    """(ms from spawning ``mmembed mcp`` until ``initialize`` is answered, what ``check(session)`` returns)."""
    import anyio
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    async def main() -> tuple[float, Any]:
        with anyio.fail_after(300):
            started = time.perf_counter()
            async with stdio_client(_params(db, table)) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                ready = (time.perf_counter() - started) * 1000
                return ready, (await check(session) if check else None)

    return anyio.run(main)


def starts(db: str, table: str, n: int) -> dict[str, float]:
    times = [_run(db, table, None)[0] for _ in range(n)]
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
            "all_ms": [round(t) for t in times]}


def search_calls(db: str, table: str, n: int, settle: float) -> dict[str, Any]:
    queries = _queries(n + 2)

    async def check(session: Any) -> list[float]:
        import anyio

        times = []
        for i, q in enumerate(queries):
            if i == 2:
                await anyio.sleep(settle)  # the server's warm-up thread (its row index, the text tower) ends
            t = time.perf_counter()
            result = await session.call_tool("search", {"query": q, "limit": 10})
            times.append((time.perf_counter() - t) * 1000)
            if result.is_error or len(result.structured_content["hits"]) != 10:
                raise SystemExit(f"search {q!r} failed: {result}")
        return times

    _, times = _run(db, table, check)
    call = times[2:]
    return {"rows": _rows(db, table), "queries": n, "limit": 10, "settle_s": settle,
            "first_call_ms": round(times[0], 1),
            "call_ms": {"p50": round(_pct(call, 0.5), 1), "p95": round(_pct(call, 0.95), 1)},
            "server_ms": _in_process(db, table, queries)}


def _in_process(db: str, table: str, queries: list[str]) -> dict[str, float]:
    """The tool's own work, Library.search (Page.seconds), in this process: the server-time proxy."""
    from mmembed import Index
    from mmembed.serve.library import Library

    library = Library(Index(db, table=table))
    library.warm_up()
    seconds = [library.search(q, limit=10).seconds * 1000 for q in queries]
    return {"p50": round(_pct(seconds[2:], 0.5), 1), "p95": round(_pct(seconds[2:], 0.95), 1)}


def _rows(db: str, table: str) -> int:
    from mmembed import Index

    return Index(db, table=table).info().rows


def example_table(out: Path, count: int = 30) -> str:
    """The first ``count`` Flickr8k dev photos in a micro-clip table (made once)."""
    from mmembed import Index

    photos, db = out / "mcp-example" / "photos", out / "mcp-example" / "db"
    if not db.exists():
        photos.mkdir(parents=True, exist_ok=True)
        for src in sorted(DEV.glob("*.jpg"))[:count]:
            shutil.copy2(src, photos / src.name)
        Index(str(db), model=f"local-dir:{MICRO}").ingest(str(photos))
    return str(db)


def captioned_table(out: Path) -> str:
    """``example_table``'s photos with their Flickr8k captions in the table (made once)."""
    from mmembed import Index

    photos, db = out / "mcp-example" / "photos", out / "mcp-example" / "captioned-db"
    if not db.exists():
        Index(str(db), model=f"local-dir:{MICRO}").ingest(str(photos), captions=str(DEV_CAPTIONS))
    return str(db)


def exchange(db: str, captioned: str) -> str:
    """One assistant-style exchange, as Markdown: the replies whole (indented here; compact on the wire)."""
    from PIL import Image

    async def check(session: Any) -> tuple[Any, Any, Any, Any]:
        found = await session.call_tool("search", {"query": EXAMPLE_QUERY, "limit": 3})
        first = found.structured_content["hits"][0]["id"]
        item = await session.call_tool("get_item", {"id": first})
        picture = await session.call_tool("get_picture", {"id": first})
        wrong = await session.call_tool("search", {"query": EXAMPLE_QUERY, "n": 3})
        return found, item, picture, wrong

    async def words(session: Any) -> Any:
        return await session.call_tool("search", {"query": "a dog on grass", "limit": 3})

    _, (found, item, picture, wrong) = _run(db, "images", check)
    _, hybrid = _run(captioned, "images", words)
    captions: dict[str, list[str]] = {}
    with open(DEV_CAPTIONS, newline="") as f:
        for row in csv.DictReader(f):
            captions.setdefault(row["image"], []).append(row["caption"])
    hits = found.structured_content["hits"]
    image = picture.content[0]
    data = base64.b64decode(image.data)
    size = Image.open(io.BytesIO(data)).size

    def shown(data: Any) -> str:
        return json.dumps(data, indent=2, ensure_ascii=False)

    lines = [
        f'**search** `{{"query": "{EXAMPLE_QUERY}", "limit": 3}}` → ({len(found.content[0].text):,} characters of '
        "compact JSON, shown here indented)",
        "```json", shown(found.structured_content), "```",
        "The Flickr8k captions of these photos (not in the table; the search read pixels only):", "",
        *[f"- `{Path(h['path']).name}`: {captions.get(Path(h['path']).name, ['?'])[0]}" for h in hits],
        "", f'**get_item** `{{"id": "{hits[0]["id"]}"}}` →',
        "```json", shown(item.structured_content), "```",
        f'**get_picture** `{{"id": "{hits[0]["id"]}"}}` → one `{image.type}` content block, '
        f"`{image.mime_type}`, {size[0]}x{size[1]} px, {len(data):,} bytes (base64 in the reply; the default "
        "`size` 512 is the long side)",
        "", "The same photos with their Flickr8k captions in the table (`mmembed ingest PHOTOS --captions "
        "dev_captions.csv`): the default hybrid mode ranks by looks and words fused, so `score` is a rank-fusion "
        "score and `cosine` is what to judge a photo by; each caption comes back cut to 200 characters.", "",
        '**search** `{"query": "a dog on grass", "limit": 3}` →',
        "```json", shown(hybrid.structured_content), "```",
        "", f'A misnamed argument, **search** `{{"query": "{EXAMPLE_QUERY}", "n": 3}}` → an error result '
        "(`isError`), one line:",
        "```text", wrong.content[0].text, "```",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--table", default="rows_100000")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds to wait after the warm-up calls (the server's warm-up thread)")
    parser.add_argument("--example", type=Path, help="write the exchange (Markdown) here")
    args = parser.parse_args()
    db = str(args.out / "db")
    small = example_table(args.out)
    result: dict[str, Any] = {"date": str(date.today()), "cpu": _cpu_name(), "cores": os.cpu_count(),
                              "python": platform.python_version()}
    for folder, table in ((db, args.table), (small, "images")):  # once, unmeasured: the text tower's ONNX export is cached
        _run(folder, table, lambda session: session.call_tool("search", {"query": "photo", "limit": 1}))
    result["start"] = {"100k": starts(db, args.table, args.starts), "micro_30": starts(small, "images", args.starts)}
    result["search_100k"] = search_calls(db, args.table, args.queries, args.settle)
    if args.example:
        args.example.write_text(exchange(small, captioned_table(args.out)))
        result["example"] = str(args.example)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
