"""``mmembed mcp``: a read-only Model Context Protocol server over one table, for assistants.

Handed a Library over an Index (the CLI builds both), it offers five tools: ``search``, ``similar``,
``get_item``, ``get_picture`` and ``info``, all through the Index's public methods and the
web app's ``Library`` (rows found by id without holding them: ``store.rowindex``). Nothing here writes, deletes or ingests.
An item is named by its id or by a path that is a row of the table; a file is opened only
through ``sources.indexed.open_indexed`` (still the file that was indexed: no symlink swapped
in, the row's size, mtime and content hash), so no other file is ever read. Results are
bounded (``MAX_LIMIT`` hits, pictures at most ``PICTURE_SIZE`` px) and every refusal is one
line (a tool error carrying the MmembedError's message).
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal, Optional

from pydantic import Field

from ..errors import MmembedError, QueryError
from .filters import Filters
from .library import Library, flags_as
from .thumbs import THUMB_SIZE, indexed_bytes, indexed_frame, render_jpeg

__all__ = ["create_server", "MAX_LIMIT", "PICTURE_SIZE"]

MAX_LIMIT = 100  # hits per call
PICTURE_SIZE = 1024  # the long side of the largest picture a tool returns
_TEXT_CHARS = 2000  # an item's texts are cut here

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"How many results, 1 to {MAX_LIMIT}.")]
Where = Annotated[Optional[str], Field(description="SQL filter on metadata columns, e.g. \"format = 'JPEG' AND width > 1000\" or \"path LIKE '%/2023/%'\".")]
Tags = Annotated[Optional[list[str]], Field(description="Only items carrying every one of these zero-shot tags, e.g. [\"beach\"] (tags come from `mmembed tag`).")]
Cutoff = Annotated[Literal["none", "auto"], Field(description="auto: drop results that score like the rest of the table (only the relevant ones); none: always `limit` results.")]
ItemId = Annotated[Optional[str], Field(description="An item's id, as search results give it, e.g. \"352935436d744f07b546ba45b6bf98e7\".")]
ItemPath = Annotated[Optional[str], Field(description="The full path of an indexed file, exactly as search results give it, e.g. \"/home/me/photos/beach.jpg\".")]


def create_server(library: Library) -> Any:
    """An ``mcp`` MCPServer whose tools read ``library`` (the web app's view of an Index; start its
    ``warm_up`` in a thread, as ``mmembed serve`` does); run it with ``.run()`` (stdio) or serve
    ``.streamable_http_app()``. Needs the mcp extra."""
    from mcp.types import ToolAnnotations

    tools = _Tools(library)
    server = _server_class()("mmembed", instructions=_INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
    for fn in (tools.search, tools.similar, tools.get_item, tools.get_picture, tools.info):
        server.add_tool(_one_line_errors(fn), name=fn.__name__, description=inspect.cleandoc(fn.__doc__ or ""), annotations=read_only)
    return server


_INSTRUCTIONS = (
    "Search a local photo library indexed by mmembed (CLIP). Start with `search` (words), follow up with "
    "`similar` (photos that look like one), `get_item` (its dates, size, texts, tags) and `get_picture` (to see it). "
    "Everything is read-only; items are named by the id or path a search returned."
)


def _server_class() -> Any:
    """MCPServer whose refusals of arguments (pydantic's several lines) are one line each."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
    from pydantic import ValidationError

    class Server(MCPServer):  # type: ignore[misc]
        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            try:
                return await super().call_tool(name, arguments, context)
            except UnexpectedToolError:
                raise
            except ToolError as exc:
                cause = exc.__cause__
                if isinstance(cause, ValidationError):
                    reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                                        for e in cause.errors())
                    raise ToolError(f"{name}: {reasons}") from cause
                raise ToolError(" ".join(str(exc).split())) from cause

    return Server


_TOOL_NAMES = {"where": "where", "tag": "tags", "cutoff": "cutoff"}  # CLI flag -> the tools' argument


def _one_line_errors(fn: Any) -> Any:
    """``fn`` with every MmembedError raised as a ToolError of one line (the model reads it)."""
    import functools

    from mcp.server.mcpserver.exceptions import ToolError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MmembedError as exc:
            from ..sources.remote import scrub

            raise ToolError(" ".join(flags_as(scrub(str(exc)), _TOOL_NAMES).split())) from None

    return wrapper


class _Tools:
    """The tools; their docstrings are the descriptions the model reads."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.index = library.index

    def search(self, query: Annotated[str, Field(description="What to look for, in words, e.g. \"a dog running on a beach\"; 'a + b - c' adds and subtracts terms.")],
               limit: Limit = 10, where: Where = None, tags: Tags = None, cutoff: Cutoff = "none",
               target: Annotated[Optional[Literal["image", "text", "fused"]], Field(description="Vectors to search: image (the pixels), text (captions) or fused (both; the default when items have text).")] = None,
               negatives: Annotated[Optional[list[str]], Field(description="Push results away from these texts, e.g. [\"blurry\"].")] = None,
               min_score: Annotated[Optional[float], Field(ge=-1, le=1, description="Drop results whose cosine (-1..1) is below this; a result that holds the query's words is kept.")] = None,
               ) -> dict[str, Any]:
        """Find photos (and video frames) by a description in words, best first.

        Returns {"hits": [{"id", "path", "score", "text", "width", "height", "format", ...}]}; score is a cosine
        similarity (higher is closer). Place and time words ("in Kyoto", "December 2021", "2019年7月") become
        filters; then "parsed" says which (place, dates, notes). Example: {"query": "red car at night", "limit": 5, "where": "format = 'JPEG'"}."""
        if not query.strip():
            raise QueryError("query is empty; describe what to look for in words")
        page = self.library.search(query, limit=limit, target=target, negatives=tuple(negatives or ()),
                                   min_score=min_score, cutoff=cutoff, filters=_filters(where, tags), tag_param="tags")
        hits: dict[str, Any] = {"hits": [_hit(h) for h in page.hits[:MAX_LIMIT]]}
        if page.note:
            hits["note"] = page.note  # why nothing was found
        return {**hits, "parsed": page.parsed} if page.parsed else hits  # place/time words read as filters

    def similar(self, id: ItemId = None, path: ItemPath = None, limit: Limit = 10, where: Where = None,
                tags: Tags = None, cutoff: Cutoff = "none") -> dict[str, Any]:
        """Find photos that look like an indexed one (image to image), best first; the item itself is left out.

        Name the item by `id` or by `path` (one of them), as a search returned it. Example: {"id": "352935436d744f07b546ba45b6bf98e7", "limit": 5}."""
        row = self._row(id, path)
        picture = self._picture(row, PICTURE_SIZE)  # the checked file's pixels, never the path re-read
        page = self.library.search(None, image=picture, limit=min(limit + 1, MAX_LIMIT), target="image",
                                   cutoff=cutoff, filters=_filters(where, tags))
        return {"item": {"id": row["id"], "path": row["path"]},
                "hits": [_hit(h) for h in page.hits if h.id != row["id"]][:limit]}

    def get_item(self, id: ItemId = None, path: ItemPath = None) -> dict[str, Any]:
        """One indexed item's record: id, path, size (bytes), width, height, format, taken (date taken, from EXIF),
        modified, texts (captions, with where they came from), tags and, for a video frame, frame_time/duration.

        Name it by `id` or by `path` (one of them). Example: {"path": "/home/me/photos/beach.jpg"}."""
        return _record(self._row(id, path))

    def get_picture(self, id: ItemId = None, path: ItemPath = None,
                    size: Annotated[int, Field(ge=64, le=PICTURE_SIZE, description=f"Long side in pixels, 64 to {PICTURE_SIZE}; {THUMB_SIZE} is a thumbnail.")] = 512,
                    ) -> Any:
        """See an indexed photo (or a video's frame): an upright JPEG at most `size` pixels on its long side.

        Shown only while the file is still the one that was indexed (same size, date and content). Name it by `id` or
        `path` (one of them). Example: {"id": "352935436d744f07b546ba45b6bf98e7", "size": 320}."""
        from mcp.server.mcpserver import Image

        return Image(data=self._picture(self._row(id, path), size), format="jpeg")

    def info(self) -> dict[str, Any]:
        """What this server searches: database folder, table, number of items, items with text, the CLIP model and
        how image and text vectors are fused; plus the most common tags (for search's `tags`) and the limits.

        Takes no arguments. Example: {}."""
        data = self.index.info().to_dict()
        data.pop("bytes", None)
        data.pop("schema_version", None)
        about = self.library.info()
        data["tags"] = about.get("tags", [])
        data["columns"] = about.get("columns", [])  # manifest columns a `where` may name
        data["max_limit"], data["max_picture_size"] = MAX_LIMIT, PICTURE_SIZE
        return data

    # ------------------------------------------------------------ helpers
    def _row(self, item_id: str | None, path: str | None) -> dict[str, Any]:
        """The row named by its id or by its path; QueryError/NotFound otherwise."""
        if (item_id is None) == (path is None):
            raise QueryError("name the item by id or by path (one of them)")
        if item_id is not None:
            return self.library.item(item_id.strip())
        return self.library.item_by_path(path)

    def _picture(self, row: dict[str, Any], size: int) -> bytes:
        """An upright JPEG of the row's file (a video: its frame), long side at most ``size``, read only
        through ``open_indexed`` while the file is the indexed one; FileChangedError/ImageDecodeError."""
        if row.get("media") == "video":
            return indexed_frame(row, size)
        return render_jpeg(indexed_bytes(row), size, max_megapixels=self.index.config.max_megapixels, quality=85,
                           name=row["path"])


def _filters(where: str | None, tags: list[str] | None) -> Filters:
    return Filters(where=where, tags=tuple(tags or ()))


def _hit(hit: Any) -> dict[str, Any]:
    data = {k: v for k, v in hit.to_dict().items() if v not in (None, [], {})}
    data["score"] = round(float(hit.score), 4)
    for key in ("image_score", "text_score"):
        if key in data:
            data[key] = round(float(data[key]), 4)
    if isinstance(data.get("text"), str):
        data["text"] = data["text"][:_TEXT_CHARS]
    return data


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """What get_item shows of a row: JSON-ready, dates as ISO 8601 (UTC), long texts cut."""
    from datetime import datetime, timezone

    def iso(ns: Any) -> str | None:
        return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat(timespec="seconds") if ns else None

    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("mtime_ns", "taken_ns", "content_hash"):
            continue
        if key == "texts" and isinstance(value, list):
            value = [str(t)[:_TEXT_CHARS] for t in value[:20]]
        elif isinstance(value, str):
            value = value[:_TEXT_CHARS]
        elif isinstance(value, bytes):
            continue
        if value not in (None, [], {}):
            out[key] = value
    out["modified"] = iso(row.get("mtime_ns"))
    if row.get("taken_ns"):
        out["taken"] = iso(row["taken_ns"])
    return out


def run_http(server: Any, sock: Any, *, on_started: Any = None) -> None:
    """Serve ``server`` as streamable HTTP at ``/mcp`` on ``sock`` (``server.bind``: 127.0.0.1) until
    Ctrl-C or SIGTERM; the app's lifespan runs (it starts the MCP session manager)."""
    from .server import run

    app = server.streamable_http_app(host=sock.getsockname()[0])
    run(app, sock, on_started=on_started, lifespan="on")
