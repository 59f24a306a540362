"""The web app and the MCP server at 10k, 100k and 1M rows (issue 27): start-up, browse, an item,
search, and the server process's peak memory, for this checkout and optionally another one.

    python benchmarks/datasets.py vectors --rows 10000 100000 1000000   # once: the tables
    python benchmarks/serve_scale.py [--rows 10000 100000 1000000] [--before /work/main] [--queries 30]
    python benchmarks/serve_scale.py --tables clustered_1000000_512 --what serve   # benchmarks/million.py clustered

Each measurement runs a real server process on 127.0.0.1 with ``PYTHONPATH`` set to the code's
checkout (this one: "after"; ``--before``: another checkout, e.g. main, run the same way),
``HF_HUB_OFFLINE=1`` and no ``MMEMBED_*`` settings. Prints one JSON object per (code, rows)
and, with ``--out``, writes them all as a JSON list.

``serve`` (``python -m mmembed serve --db DB --table T --port 0``):

- ``url_s``: process start until it prints its URL; ``info_s``: until ``/api/info`` first
  answers (it waits for the table's rows: the catalog before, the row index after);
- ``browse_first_ms``: the first ``/api/items?n=50`` right after (wall; ``took_ms``: the
  server's own time); ``browse_deep_ms``: ``offset=1950``; ``browse_filtered_ms``: with a
  column filter (``col.bucket=7``), first and again (``_again``);
- ``item_ms``: ``/api/items/{id}`` for 20 ids of the first pages, p50 / max (wall);
- ``search``: ``/api/search?q=...&n=50`` for ``--queries`` text queries after one warm-up:
  ``server_ms`` (``took_ms``) and ``wall_ms``, p50 / p95;
- ``vmhwm_mb``: the process's peak resident memory (``VmHWM`` in ``/proc/PID/status``) at the
  end, with ``rss_anon_mb`` / ``rss_file_mb`` then (file pages are memory-mapped snapshot
  files the kernel may drop); ``vmhwm_after_info_mb``: the peak when ``/api/info`` first answered.

``mcp`` (``python -m mmembed mcp --db DB --table T`` over the MCP SDK's stdio client):
``initialize_s``; a ``--settle`` pause (the warm-up thread); ``search`` (limit 10) calls p50;
``get_item`` of the first hit and ``info`` (wall); ``vmhwm_mb`` of the server process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/mcp.py is named like the SDK's package: take this folder off the path so `import mcp` finds the SDK
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import DEFAULT_OUT  # noqa: E402
from benchmarks.search import _pct, _queries  # noqa: E402

START_LIMIT = 600.0  # seconds a server may take to answer /api/info (the old catalog at 1M is slow)


def _env(code: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    env.update(PYTHONPATH=str(code), HF_HUB_OFFLINE="1")
    return env


def _status(pid: int) -> dict[str, float]:
    """VmHWM, VmRSS, RssAnon, RssFile of ``pid`` in MB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def _get(url: str, timeout: float = 600) -> tuple[float, int, Any]:
    """(wall ms, status, JSON body) of a GET."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    return (time.perf_counter() - started) * 1000, status, json.loads(body)


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50": round(_pct(values, 0.5), 1), "p95": round(_pct(values, 0.95), 1), "max": round(max(values), 1)}


def serve(code: Path, db: str, table: str, queries: int) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mmembed", "serve", "--db", db, "--table", table, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(code), cwd=str(code))
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True).start()
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(120)
    url = line[0].strip() if line else ""
    try:
        if not url.startswith("http://127.0.0.1:"):
            raise SystemExit(f"serve printed no URL: {url!r}; {''.join(errors)[-1000:]}")
        out: dict[str, Any] = {"url_s": round(time.perf_counter() - started, 2)}
        deadline = time.monotonic() + START_LIMIT
        while True:  # bounded: START_LIMIT
            try:
                _, status, info = _get(url + "api/info")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{url} did not answer in {START_LIMIT} s") from None
                time.sleep(0.05)
        out["info_s"] = round(time.perf_counter() - started, 2)
        out["rows"] = info["rows"]
        out["vmhwm_after_info_mb"] = _status(proc.pid)["VmHWM"]
        ms, status, page = _get(url + "api/items?n=50")
        assert status == 200 and len(page["items"]) == 50, page
        out["browse_first_ms"], out["browse_first_took_ms"] = round(ms, 1), page["took_ms"]
        ms, status, deep = _get(url + "api/items?n=50&offset=1950")
        assert status == 200, deep
        out["browse_deep_ms"] = round(ms, 1)
        for key in ("browse_filtered_ms", "browse_filtered_again_ms"):  # datasets.py's tables have a bucket column
            ms, status, filtered = _get(url + "api/items?n=50&col.bucket=7")
            if status != 200 and "no column 'bucket'" in str(filtered.get("error", "")):
                break  # a table without it (million.py clustered)
            assert status == 200, filtered
            out[key] = round(ms, 1)
            out["browse_filtered_total"] = filtered["total"]
        ids = [item["id"] for item in page["items"][:10] + deep["items"][:10]]
        times = []
        for item_id in ids:
            ms, status, item = _get(url + f"api/items/{item_id}")
            assert status == 200 and item["id"] == item_id, item
            times.append(ms)
        out["item_ms"] = {"p50": round(statistics.median(times), 1), "max": round(max(times), 1)}
        _get(url + "api/search?q=warm+up&n=50")
        server, wall = [], []
        for q in _queries(queries):
            ms, status, data = _get(url + "api/search?" + urllib.parse.urlencode({"q": q, "n": 50}))
            assert status == 200 and len(data["hits"]) == 50, data
            server.append(data["took_ms"])
            wall.append(ms)
        out["search"] = {"queries": queries, "server_ms": _ms(server), "wall_ms": _ms(wall)}
        memory = _status(proc.pid)
        out.update(vmhwm_mb=memory["VmHWM"], rss_anon_mb=memory["RssAnon"], rss_file_mb=memory["RssFile"])
        return out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _child_pid(marker: str) -> int:
    """The pid of this process's child whose command line holds ``marker`` (the stdio server)."""
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me and marker in cmd:
            return int(name)
    raise SystemExit(f"no child process running {marker!r}")


def mcp(code: Path, db: str, table: str, queries: int, settle: float) -> dict[str, Any]:
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "mmembed", "mcp", "--db", db, "--table", table],
                                   env=_env(code), cwd=str(code))

    async def main() -> dict[str, Any]:
        with anyio.fail_after(START_LIMIT):
            started = time.perf_counter()
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                out: dict[str, Any] = {"initialize_s": round(time.perf_counter() - started, 2)}
                pid = _child_pid(" mcp --db ")
                await anyio.sleep(settle)
                times, first = [], None
                for q in _queries(queries):
                    t = time.perf_counter()
                    result = await session.call_tool("search", {"query": q, "limit": 10})
                    times.append((time.perf_counter() - t) * 1000)
                    if result.is_error:
                        raise SystemExit(f"search {q!r} failed: {result}")
                    first = first or result.structured_content["hits"][0]["id"]
                out["search_ms"] = _ms(times)
                for name, args in (("get_item", {"id": first}), ("info", {})):
                    t = time.perf_counter()
                    result = await session.call_tool(name, args)
                    out[f"{name}_ms"] = round((time.perf_counter() - t) * 1000, 1)
                    if result.is_error:
                        raise SystemExit(f"{name} failed: {result}")
                memory = _status(pid)
                out.update(vmhwm_mb=memory["VmHWM"], rss_anon_mb=memory["RssAnon"], rss_file_mb=memory["RssFile"])
                return out

    return anyio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="where datasets.py made the tables")
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--tables", nargs="+", help="other tables of that db instead (e.g. clustered_1000000_512)")
    parser.add_argument("--before", type=Path, help="another checkout to measure the same way (e.g. main)")
    parser.add_argument("--what", nargs="+", choices=["serve", "mcp"], default=["serve", "mcp"])
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after mcp's initialize (its warm-up)")
    parser.add_argument("--out", type=Path, help="write every result here as a JSON list")
    args = parser.parse_args()
    db = str(args.out_dir / "db")
    codes = [("after", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
    results = []
    for rows in (args.tables or args.rows):
        name = rows if isinstance(rows, str) else f"rows_{rows}"
        for label, code in codes:  # side by side: before and after on the same table, one after the other
            for what in args.what:
                load = os.getloadavg()[0]
                t = time.perf_counter()
                if what == "serve":
                    measured = serve(code, db, name, args.queries)
                else:
                    measured = mcp(code, db, name, args.queries, args.settle)
                result = {"what": what, "code": label, "rows": rows, **measured,
                          "load_before": round(load, 2), "seconds": round(time.perf_counter() - t, 1)}
                print(json.dumps(result), flush=True)
                results.append(result)
    if args.out:
        args.out.write_text(json.dumps({"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(),
                                        "results": results}, indent=1))


def _cpu() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    main()
