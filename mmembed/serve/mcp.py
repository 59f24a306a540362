"""``mmembed mcp``: a read-only Model Context Protocol server over one table, for assistants.

Handed a Library over an Index (the CLI builds both), it offers five tools: ``search``, ``similar``,
``get_item``, ``get_picture`` and ``info``, all through the Index's public methods and the
web app's ``Library`` (rows found by id without holding them: ``store.rowindex``). Nothing here writes, deletes or ingests.
An item is named by its id or by a path that is a row of the table; a file is opened only
through ``sources.indexed.open_indexed`` (still the file that was indexed: no symlink swapped
in, the row's size, mtime and content hash), so no other file is ever read.

Replies are made for a language model's context: compact JSON, each hit a few short fields (its
texts cut to a snippet), and every reply at most ``MAX_REPLY_CHARS`` characters (``MAX_LIMIT`` hits,
pictures at most ``PICTURE_SIZE`` px); what a bound left out is said in the reply's ``cut``. Every
refusal is one bare line: an MmembedError's message, an argument pydantic refused (``limit: ...``),
or an argument the tool does not take (``unknown argument 'n'; did you mean limit? ...``).
"""

from __future__ import annotations

import difflib
import inspect
import json
from typing import Annotated, Any, Literal, Optional

from pydantic import Field

from ..errors import MmembedError, QueryError
from .filters import Filters
from .library import Library, NotFound, flags_as
from .thumbs import THUMB_SIZE, indexed_bytes, indexed_frame, render_jpeg

__all__ = ["create_server", "MAX_LIMIT", "MAX_REPLY_CHARS", "PICTURE_SIZE"]

MAX_LIMIT = 100  # hits per call
PICTURE_SIZE = 1024  # the long side of the largest picture a tool returns
MAX_REPLY_CHARS = 20_000  # a reply's JSON (about 5,000 tokens); hits (or texts) past it are left out, and it says so
_SNIPPET_CHARS = 200  # a hit's caption, and the words read in its picture, are cut here
_TEXT_CHARS = 1000  # each of get_item's texts is cut here
_TEXTS = 20  # get_item shows at most this many texts

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"How many results, 1 to {MAX_LIMIT}.")]
Where = Annotated[Optional[str], Field(description="SQL filter on metadata columns, e.g. \"format = 'JPEG' AND width > 1000\" or \"path LIKE '%/2023/%'\".")]
Tags = Annotated[Optional[list[str]], Field(description="Only items carrying every one of these zero-shot tags, e.g. [\"beach\"] (tags come from `mmembed tag`).")]
Cutoff = Annotated[Literal["none", "auto"], Field(description="auto: drop results that score like the rest of the table (only the relevant ones); none: always `limit` results.")]
ItemId = Annotated[Optional[str], Field(description="An item's id, as search results give it, e.g. \"352935436d744f07b546ba45b6bf98e7\".")]
ItemPath = Annotated[Optional[str], Field(description="The full path of an indexed file, exactly as search results give it, e.g. \"/home/me/photos/beach.jpg\".")]
Mode = Annotated[Optional[Literal["hybrid", "vector", "text"]], Field(description=(
    "How to rank: hybrid (the default where items have words: the cosine and the words' match fused), vector (by "
    "the cosine alone, words ignored) or text (only items whose words hold every query word, by BM25)."))]


def create_server(library: Library) -> Any:
    """An ``mcp`` MCPServer whose tools read ``library`` (the web app's view of an Index; start its
    ``warm_up`` in a thread, as ``mmembed serve`` does); run it with ``.run()`` (stdio) or serve
    ``.streamable_http_app()``. Needs the mcp extra."""
    from mcp.types import ToolAnnotations

    tools = _Tools(library)
    fns = (tools.search, tools.similar, tools.get_item, tools.get_picture, tools.info)
    server = _server_class()("mmembed", instructions=_INSTRUCTIONS, log_level="WARNING")
    server.mmembed_arguments = {fn.__name__: tuple(inspect.signature(fn).parameters) for fn in fns}
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
    for fn in fns:
        server.add_tool(_one_line_errors(fn), name=fn.__name__, description=inspect.cleandoc(fn.__doc__ or ""),
                        annotations=read_only)
    return server


_INSTRUCTIONS = (
    "Search a local photo library indexed by mmembed (CLIP). Start with `search` (words), follow up with "
    "`similar` (photos that look like one), `get_item` (its dates, size, texts, tags) and `get_picture` (to see it). "
    "Everything is read-only; items are named by the id or path a search returned. Judge a hit by its `cosine`; "
    "`score` only orders the list."
)

# what an assistant may call an argument, and the tools' name for it
_SYNONYMS = {
    "limit": ("n", "k", "top_k", "topk", "top_n", "count", "num", "number", "max", "max_results", "num_results",
              "size", "results"),
    "query": ("q", "text", "prompt", "search", "description", "words"),
    "id": ("item_id", "photo_id", "image_id", "item"),
    "path": ("file", "filename", "file_path", "filepath", "image", "photo"),
    "where": ("filter", "sql", "condition"),
    "tags": ("tag",),
    "negatives": ("negative", "not", "exclude", "without"),
    "min_score": ("min_cosine", "threshold", "min_similarity", "score"),
    "mode": ("search_mode", "ranking", "rank"),
}


def _unknown_arguments(tool: str, given: dict[str, Any], valid: tuple[str, ...]) -> str | None:
    """The one-line refusal of ``given``'s arguments that ``tool`` does not take, or None."""
    unknown = [name for name in given if name not in valid]
    if not unknown:
        return None
    takes = f"{tool} takes {', '.join(valid)}" if valid else f"{tool} takes no arguments"
    names = ", ".join(repr(str(name)[:40]) for name in unknown[:5])
    hint = ""
    if len(unknown) == 1 and valid:
        name = str(unknown[0])
        meant = [v for v in valid if name.lower() in _SYNONYMS.get(v, ())]
        meant = meant or difflib.get_close_matches(name.lower(), valid, n=1, cutoff=0.6)
        hint = f"; did you mean {meant[0]}?" if meant else ""
    return f"unknown argument{'s' if len(unknown) > 1 else ''} {names}{hint} ({takes})"


def _server_class() -> Any:
    """MCPServer whose refusals are one bare line each (pydantic's several lines, the SDK's "Error executing tool
    NAME: " prefix taken off), which refuses an argument its tool does not take, and whose replies are compact JSON."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
    from mcp.types import CallToolResult, TextContent
    from pydantic import ValidationError

    class Server(MCPServer):  # type: ignore[misc]
        mmembed_arguments: dict[str, tuple[str, ...]] = {}

        async def list_tools(self) -> Any:
            listed = await super().list_tools()
            for tool in listed:
                if tool.name in self.mmembed_arguments and isinstance(tool.input_schema, dict):
                    tool.input_schema["additionalProperties"] = False  # as call_tool holds it
            return listed

        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            valid = self.mmembed_arguments.get(name)
            if valid is None:
                raise ToolError(f"unknown tool {name!r}; the tools are {', '.join(self.mmembed_arguments)}")
            refusal = _unknown_arguments(name, arguments or {}, valid)
            if refusal is not None:
                raise ToolError(refusal)
            try:
                result = await super().call_tool(name, arguments, context)
            except UnexpectedToolError:
                raise
            except ToolError as exc:
                cause = exc.__cause__
                if isinstance(cause, ValidationError):
                    reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                                        for e in cause.errors())
                    raise ToolError(" ".join(reasons.split())) from cause
                message = str(exc)
                prefix = f"Error executing tool {name}: "
                raise ToolError(" ".join(message.removeprefix(prefix).split())) from cause
            if isinstance(result, CallToolResult) and result.structured_content is not None and not result.is_error:
                result.content = [TextContent(type="text", text=_json(result.structured_content))]
            return result

    return Server


def _json(data: Any) -> str:
    """Compact JSON (no indent, no spaces after separators; not-ASCII kept as is: fewer tokens)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


_TOOL_NAMES = {"where": "where", "tag": "tags", "cutoff": "cutoff", "mode": "mode", "min-score": "min_score",
               "not": "negatives", "target": "target", "limit": "limit"}  # CLI flag -> the tools' argument


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
               mode: Mode = None,
               negatives: Annotated[Optional[list[str]], Field(description="Push results away from these texts, e.g. [\"blurry\"].")] = None,
               min_score: Annotated[Optional[float], Field(ge=-1, le=1, description="A floor on each hit's `cosine` (-1..1, not on `score`): drop hits below it, except those whose words hold the query's words (so in text mode it drops none).")] = None,
               ) -> dict[str, Any]:
        """Find photos (and video frames) by a description in words, best first.

        Returns {"ranked_by", "hits": [{"id", "path", "score", "cosine", "text", "ocr", "place", "width", "height",
        "size", "format"}]}; a field without a value is left out. Judge a hit by `cosine`: the cosine similarity of
        the query with the photo's vectors (-1..1, higher is closer). `score` is what the list is ordered by, on the
        scale `ranked_by` names: "fusion" (hybrid mode where items' words hold the query: a reciprocal-rank fusion of
        the cosine and the word match, about 0.01 to 0.033; only its order means anything), "cosine" (score is the
        cosine), "words" (text mode: the BM25 of the query's words) or "date" (newest first; a place/date-only
        query lists the photos that match: score 0 and no cosine). `min_score` compares against `cosine`. `text` is the
        caption and `ocr` the words read in the picture, each cut to 200 characters (get_item has them whole).
        Place and time words ("in Kyoto", "December 2021", "2019年7月") become filters; then "parsed" says which.
        A reply holds at most 20,000 characters: "cut" says what was left out. Example: {"query": "red car at night",
        "limit": 5, "where": "format = 'JPEG'"}; by the pixels alone: {"query": "red car", "mode": "vector", "target": "image"}."""
        if not query.strip():
            raise QueryError("query is empty; describe what to look for in words")
        page = self.library.search(query, limit=limit, target=target, mode=mode, negatives=tuple(negatives or ()),
                                   min_score=min_score, cutoff=cutoff, filters=_filters(where, tags), tag_param="tags")
        if not page.hits:
            self._require_rows()  # an empty library says so, whatever the query (a place's filter finds nothing too)
        reply: dict[str, Any] = {}
        if page.hits:
            reply["ranked_by"] = _ranked_by(page.hits, page.parsed)
        reply["hits"] = [_hit(h) for h in page.hits[:MAX_LIMIT]]
        if page.note:
            reply["note"] = page.note  # why nothing was found
        if page.parsed:
            reply["parsed"] = _parsed(page.parsed)  # place/time words read as filters
        return _bounded(reply)

    def similar(self, id: ItemId = None, path: ItemPath = None, limit: Limit = 10, where: Where = None,
                tags: Tags = None, cutoff: Cutoff = "none") -> dict[str, Any]:
        """Find photos that look like an indexed one (image to image), best first; the item itself is left out.

        Name the item by `id` or by `path` (one of them), as a search returned it. Hits are as search gives them;
        here `score` is the `cosine` of the two pictures. Example: {"id": "352935436d744f07b546ba45b6bf98e7", "limit": 5}."""
        row = self._row(id, path)
        picture = self._picture(row, PICTURE_SIZE)  # the checked file's pixels, never the path re-read
        page = self.library.search(None, image=picture, limit=min(limit + 1, MAX_LIMIT), target="image",
                                   cutoff=cutoff, filters=_filters(where, tags))
        return _bounded({"item": {"id": row["id"], "path": row["path"]},
                         "hits": [_hit(h) for h in page.hits if h.id != row["id"]][:limit]})

    def get_item(self, id: ItemId = None, path: ItemPath = None) -> dict[str, Any]:
        """One indexed item's record: id, path, size (bytes), width, height, format, taken (date taken, from EXIF),
        modified, texts (captions, with where they came from), ocr_text (words read in the picture), place and GPS,
        tags and, for a video frame, frame_time/duration.

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
        data["max_limit"], data["max_picture_size"], data["max_reply_chars"] = MAX_LIMIT, PICTURE_SIZE, MAX_REPLY_CHARS
        return _bounded({k: v for k, v in data.items() if v is not None})

    # ------------------------------------------------------------ helpers
    def _row(self, item_id: str | None, path: str | None) -> dict[str, Any]:
        """The row named by its id or by its path; QueryError/NotFound otherwise (IndexEmptyError without rows)."""
        if (item_id is None) == (path is None):
            raise QueryError("name the item by id or by path (one of them)")
        try:
            if item_id is not None:
                return self.library.item(item_id.strip())
            return self.library.item_by_path(path)
        except NotFound:
            self._require_rows()
            raise

    def _require_rows(self) -> None:
        """IndexEmptyError, in the words a search for words gets, when the table is missing or holds no rows."""
        from ..retrieval.exact import empty_table_error

        store = self.index.store
        if store.meta() is not None and store.count():
            return
        raise empty_table_error(store)

    def _picture(self, row: dict[str, Any], size: int) -> bytes:
        """An upright JPEG of the row's file (a video: its frame), long side at most ``size``, read only
        through ``open_indexed`` while the file is the indexed one; FileChangedError/ImageDecodeError."""
        if row.get("media") == "video":
            return indexed_frame(row, size)
        return render_jpeg(indexed_bytes(row), size, max_megapixels=self.index.config.max_megapixels, quality=85,
                           name=row["path"])


def _filters(where: str | None, tags: list[str] | None) -> Filters:
    return Filters(where=where, tags=tuple(tags or ()))


def _ranked_by(hits: list[Any], parsed: dict[str, Any] | None) -> str:
    """What the hits' ``score`` is: fusion, cosine, words (BM25) or date (a listing by place/date, or sorted by date)."""
    first = hits[0]
    if first.target == "filter" or (parsed or {}).get("sort") == "date":
        return "date"
    if first.mode == "text":
        return "words"
    if first.mode == "hybrid" and any(h.fused_score is not None for h in hits):
        return "fusion"
    return "cosine"


def _cosine(hit: Any) -> float | None:
    """The hit's cosine with the query (``vector_score``); None for a row listed by a filter alone."""
    if hit.target == "filter":
        return None
    if hit.vector_score is not None:
        return float(hit.vector_score)
    return float(hit.score) if hit.mode == "vector" else None


def _snippet(text: Any, chars: int = _SNIPPET_CHARS) -> str:
    """``text`` on one line, cut to ``chars`` (an ellipsis says it was cut); "" for none."""
    if not isinstance(text, str):
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= chars else flat[: chars - 1].rstrip() + "…"


# a hit's fields that _hit gives (or leaves out) itself; other extras are manifest columns, kept when short
_HIT_OWN = {"id", "path", "score", "width", "height", "format", "size", "text", "text_source", "image_score",
            "text_score", "target", "media", "frame_time", "duration", "raw_siblings", "ocr_text", "vector_score",
            "words_score", "fused_score", "terms", "mode", "tags", "tag_scores", "words", "folded_words", "taken_ns"}
_BUILT_IN_PREFIXES = ("gps_", "place_", "ocr_", "text_", "embedded_", "manifest_")


def _place(data: dict[str, Any]) -> str:
    parts: list[str] = []
    for key in ("place_city", "place_region", "place_country"):
        value = data.get(key)
        if isinstance(value, str) and value.strip() and value not in parts:
            parts.append(value.strip())
    return ", ".join(parts)


def _hit(hit: Any) -> dict[str, Any]:
    """A hit as a language model needs it: few short fields, none empty."""
    data = hit.to_dict()
    out: dict[str, Any] = {"id": hit.id, "path": hit.path, "score": round(float(hit.score), 4)}
    cosine = _cosine(hit)
    if cosine is not None:
        out["cosine"] = round(cosine, 4)
    text = _snippet(hit.text)
    ocr = _snippet(hit.ocr_text)
    if text:
        out["text"] = text
    if ocr and " ".join(str(hit.ocr_text).split()).casefold() not in " ".join(str(hit.text or "").split()).casefold():
        out["ocr"] = ocr
    place = _place(data)
    if place:
        out["place"] = place
    if hit.taken_ns:  # the camera's local time, as get_item gives it
        out["taken"] = _iso(hit.taken_ns)
    for key in ("width", "height", "size", "format"):
        if data.get(key) is not None:
            out[key] = data[key]
    if hit.media == "video":
        out["media"] = "video"
        for key in ("frame_time", "duration"):
            if data.get(key) is not None:
                out[key] = round(float(data[key]), 2)
    tags = data.get("tags")
    if isinstance(tags, list) and tags:
        out["tags"] = [str(t) for t in tags[:10]]
    for key, value in data.items():  # the manifest's own columns, short
        if key in _HIT_OWN or key in out or key.startswith(_BUILT_IN_PREFIXES):
            continue
        if isinstance(value, str) and value.strip():
            out[key] = _snippet(value)
        elif isinstance(value, (bool, int, float)):
            out[key] = round(value, 4) if isinstance(value, float) else value
    return out


def _parsed(parsed: dict[str, Any]) -> dict[str, Any]:
    """What the search read as place and time filters, without empty fields or internal ids."""
    out: dict[str, Any] = {}
    for key, value in parsed.items():
        if key == "place" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "place_ids" and v not in (None, False, [], "")}
        if key == "sort" and value == "score":
            continue
        if value not in (None, [], {}, ""):
            out[key] = value
    return out


def _bounded(reply: dict[str, Any]) -> dict[str, Any]:
    """``reply`` with as many of its hits as fit in ``MAX_REPLY_CHARS`` of JSON; "cut" says how many
    were left out and why."""
    items = reply.get("hits")
    if len(_json(reply)) <= MAX_REPLY_CHARS or not isinstance(items, list):
        return reply
    total = len(items)
    note = (f"{{n}} of {total} hits left out: a reply is at most {MAX_REPLY_CHARS:,} characters; ask for fewer "
            "(limit) or narrow the search (where, tags, cutoff auto)")
    kept = list(items)
    while kept:
        kept.pop()
        trial = {**reply, "hits": kept, "cut": note.format(n=total - len(kept))}
        if len(_json(trial)) <= MAX_REPLY_CHARS:
            return trial
    return {**reply, "hits": [], "cut": note.format(n=total)}


def _iso(ns: Any) -> str | None:
    """ns since 1970 (UTC, or a camera's local time read as UTC) as ISO 8601; None for none."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat(timespec="seconds") if ns else None


_RECORD_DROPPED = {"mtime_ns", "taken_ns", "content_hash", "ocr_lines", "text_hash", "words", "folded_words",
                   "place_id", "place_names"}


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """What get_item shows of a row: JSON-ready, dates as ISO 8601 (UTC), long texts cut, the words read in the
    picture as text (not its per-line boxes), at most ``MAX_REPLY_CHARS`` in all."""
    out: dict[str, Any] = {}
    cut: list[str] = []
    for key, value in row.items():
        if key in _RECORD_DROPPED or isinstance(value, bytes):
            continue
        if key == "texts" and isinstance(value, list):
            if len(value) > _TEXTS:
                cut.append(f"texts: {_TEXTS} of {len(value)} shown")
            value = [_clip(str(t), _TEXT_CHARS, cut, "texts") for t in value[:_TEXTS]]
        elif key == "text" and isinstance(value, str) and value in (row.get("texts") or []):
            continue  # the first of texts
        elif isinstance(value, str):
            value = _clip(value, _TEXT_CHARS * 2 if key == "ocr_text" else _TEXT_CHARS, cut, key)
        elif isinstance(value, float):
            value = round(value, 6)
        if value not in (None, [], {}, ""):
            out[key] = value
    out["modified"] = _iso(row.get("mtime_ns"))
    if row.get("taken_ns"):
        out["taken"] = _iso(row["taken_ns"])
    if isinstance(row.get("ocr_lines"), list) and row["ocr_lines"] and not out.get("ocr_text"):
        out["ocr_text"] = _clip("\n".join(str(line.get("text", "")) for line in row["ocr_lines"] if isinstance(line, dict)),
                                _TEXT_CHARS * 2, cut, "ocr_text")
    while len(_json(out)) > MAX_REPLY_CHARS and out.get("texts"):
        out["texts"].pop()
        if not any(c.startswith("texts: ") and "left out" in c for c in cut):
            cut.append("texts: the last left out to keep the reply short")
    if cut:
        out["cut"] = "; ".join(dict.fromkeys(cut)) + " (get_item cuts long texts)"
    return out


def _clip(text: str, chars: int, cut: list[str], name: str) -> str:
    if len(text) <= chars:
        return text
    cut.append(f"{name}: cut to {chars:,} characters")
    return text[: chars - 1] + "…"


def run_http(server: Any, sock: Any, *, on_started: Any = None) -> None:
    """Serve ``server`` as streamable HTTP at ``/mcp`` on ``sock`` (``server.bind``: 127.0.0.1) until
    Ctrl-C or SIGTERM; the app's lifespan runs (it starts the MCP session manager)."""
    from .server import run

    app = server.streamable_http_app(host=sock.getsockname()[0])
    run(app, sock, on_started=on_started, lifespan="on")
