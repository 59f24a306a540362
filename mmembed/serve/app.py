"""The web app: one page (``static/``) and the JSON API it uses, over a :class:`Library`.

Routes (all read-only; there are no write endpoints)::

    GET  /                  the page
    GET  /api/info          the table: rows, model, formats, folders, columns, any problem
    GET  /api/search        ?q=&n=&offset=&target=&not=&image_weight=&like=ID&where=&min_score=&cutoff=auto&mode=
                            &near=PLACE|LAT,LON&radius=KM&taken_after=&taken_before=&sort=date&literal=1
                            &folder=&format=&date_from=&date_to=&date_field=&col.NAME=VALUE&tag=T
    POST /api/search        the same, with an image file as the request body (at most 20 MB)
    GET  /api/items         browse: every photo (or the filtered ones), newest first; ?n=&offset=&folder=...
    GET  /api/duplicates    ?mode=near|exact|similar: groups of duplicates with the suggested keepers;
                            202 {"state": "running", "percent"} while they are searched in the background
    GET  /api/items/{id}    one item's metadata
    GET  /api/places        the places of the photos with counts; /api/timeline: photos per month
    GET  /thumbs/{id}       a 320 px JPEG thumbnail (EXIF orientation applied; ETag)
    GET  /media/{id}        a 2048 px JPEG of the photo (for the detail view)
    GET  /files/{id}        the original file, only while it is the file indexed (sources.indexed)
    GET  /api/openapi.json  this API as an OpenAPI 3.1 document (openapi.py); /api/docs shows it as a page

Every error answers ``{"error": "one line"}``; a page address that is not there, opened in a
browser, gets a small HTML page instead. A query parameter an endpoint does not read is refused
by name (400), and so is one given twice (but ``tag`` and ``not``): ``check_params``; the page
itself (``/``) takes any, as its address holds its own state. With a token (a server off the
loopback), nothing but a login page answers without it (token.py).

Files are found by row id only: no path from a request is ever opened, so only indexed files
can be read. Responses carry a Content-Security-Policy that allows no inline script, and the
page writes every caption, path and EXIF string as text, never as HTML.
"""

from __future__ import annotations

import html
import inspect
import json
import mimetypes
import os
import urllib.parse
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ConfigError, FileChangedError, ImageDecodeError, IndexEmptyError, MmembedError, QueryError
from ..sources.indexed import open_indexed
from ..store.memory import give_back_memory
from .filters import Filters
from .library import Library, NotFound, flags_as
from .openapi import openapi
from .thumbs import LARGE_SIZE, THUMB_SIZE
from .token import TokenGate
from .uploads import Slots, looks_like_image
from .where import where_api, where_when_args

__all__ = ["create_app", "MAX_UPLOAD_BYTES", "LOOPBACK_HOSTS"]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PARALLEL_UPLOADS = 4  # image queries read at once; more answer 503 (each may hold 20 MB)
_NOT_IMAGE_TYPES = frozenset({"text", "audio", "video", "font", "model", "multipart", "application/json",
                              "application/pdf", "application/zip", "application/gzip", "application/x-tar"})
_SNIFF = 16  # bytes of an upload that name its format
NOT_AN_IMAGE = "the query image: not a readable image (unknown format or corrupt header)"
# a browser keeps a photo's bytes but asks again each time (304 once it is checked): a photo deleted or
# replaced since it was indexed is not shown from the browser's cache either
_REVALIDATE = "private, no-cache"
FILES_HASH_LIMIT = 256 * 1024 * 1024  # /files checks the content hash of files up to this size (once per inode)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STATIC = os.path.join(os.path.dirname(__file__), "static")
_CSP = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
_FORMAT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
                 "AVIF": "image/avif", "HEIF": "image/heif", "TIFF": "image/tiff", "BMP": "image/bmp",
                 "MP4": "video/mp4", "M4V": "video/mp4", "MOV": "video/quicktime", "WEBM": "video/webm",
                 "MKV": "video/x-matroska", "AVI": "video/x-msvideo"}


def create_app(library: Library, *, allowed_hosts: list[str] | None = None, token: str | None = None) -> Starlette:
    """The Starlette app over ``library``. ``allowed_hosts`` (default: the loopback names) are
    the Host headers answered; others get 400, which stops DNS-rebinding pages reading it.
    With ``token``, nothing but a login page answers a request without it (``token.TokenGate``)."""
    api = _Api(library)

    def reading(path: str, endpoint: Any, methods: list[str], params: frozenset[str] = frozenset(),
                columns: bool = False) -> Route:  # a route that refuses any other parameter by name
        return Route(path, _reads(path, params, endpoint, columns=columns), methods=methods)

    routes = [
        Route("/", api.page, methods=["GET"]),  # the page's address holds the page's own state (q, view, item...)
        reading("/api/info", api.info, ["GET"]),
        reading("/api/search", api.search, ["GET", "POST"], SEARCH_PARAMS, columns=True),
        reading("/api/items", api.items, ["GET"], BROWSE_PARAMS, columns=True),
        reading("/api/duplicates", api.duplicates, ["GET"], frozenset({"mode"})),
        reading("/api/items/{item_id}", api.item, ["GET"]),
        reading("/api/places", lambda request: where_api(library, "places"), ["GET"]),
        reading("/api/timeline", lambda request: where_api(library, "timeline"), ["GET"]),
        reading("/thumbs/{item_id}", api.thumb, ["GET"]),
        reading("/media/{item_id}", api.large, ["GET"]),
        reading("/files/{item_id}", api.original, ["GET"]),
        reading("/api/openapi.json", lambda request: _Json(openapi()), ["GET"]),
        reading("/api/docs", lambda request: FileResponse(os.path.join(STATIC, "docs.html")), ["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    own = allowed_hosts is None  # on the loopback: its names, and the address it is bound to (127.0.0.2, say)
    hosts = allowed_hosts if allowed_hosts is not None else [*LOOPBACK_HOSTS, "[::1]"]
    middleware = [Middleware(_HostCheck, allowed_hosts=hosts, own_address=own), Middleware(_SecurityHeaders)]
    if token is not None:
        middleware.append(Middleware(TokenGate, token=token))
    app = Starlette(routes=routes, middleware=middleware)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _server_error)
    return app


class _HostCheck:
    """Only requests whose Host header is one of ``allowed_hosts`` ("*" for any; "*.example.org"
    for its subdomains) are answered: a DNS-rebinding page gets 400, in the API's one error
    shape (Starlette's TrustedHostMiddleware answered in plain text). With ``own_address``, the
    loopback address the request came in on is answered too (``--host 127.0.0.2``): a Host header
    that is that address itself names no other site, so no rebinding page can send it."""

    def __init__(self, app: Any, allowed_hosts: list[str], own_address: bool = False) -> None:
        self.app, self.allowed, self.own = app, [h.lower() for h in allowed_hosts], own_address

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and "*" not in self.allowed:
            host = _host_name(Headers(scope=scope).get("host", ""))
            if not any(host == p or (p.startswith("*") and host.endswith(p[1:])) for p in self.allowed) \
                    and not (self.own and host == _own_address(scope)):
                refused = _error("this server does not answer for that Host header; open it at the address "
                                 "`mmembed serve` printed (or start it with --host)", 400)
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _own_address(scope: Any) -> str | None:
    """The loopback address the server answers this request on, as a Host header names it
    ('127.0.0.2', '[::1]'); None off the loopback (or when the server does not say)."""
    import ipaddress

    server = scope.get("server")
    if not server or not server[0]:
        return None
    try:
        address = ipaddress.ip_address(str(server[0]).split("%")[0])
    except ValueError:
        return None
    if not address.is_loopback:
        return None
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def _host_name(header: str) -> str:
    """The host of a Host header, without its port ('[::1]:8080' -> '[::1]')."""
    host = header.strip().lower()
    if host.startswith("["):  # an IPv6 literal: what follows its "]" must be a port or nothing
        end = host.find("]") + 1
        return host[:end] if end and (end == len(host) or host[end] == ":") else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class _SecurityHeaders:
    """Adds the CSP and friends to every response (pure ASGI: no buffering of file bodies)."""

    _HEADERS = [(b"content-security-policy", _CSP.encode()), (b"x-content-type-options", b"nosniff"),
                (b"referrer-policy", b"no-referrer"), (b"cross-origin-resource-policy", b"same-origin")]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *self._HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own errors (404, 405) in the API's one error shape; a mistyped address opened
    in a browser (its Accept prefers HTML) gets a small page with a link back to the photos."""
    if exc.status_code == 405:
        message = f"{request.method} is not allowed here: the API is read-only (GET; POST only for /api/search)"
    else:
        message = "not found" if exc.status_code == 404 else str(exc.detail).splitlines()[0]
    if exc.status_code == 404 and _prefers_html(request.headers.get("accept", "")):
        return _not_found_page(request.url.path)
    return _error(message, exc.status_code, dict(exc.headers or {}))


_NOT_FOUND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mmembed: not found</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/login.css"></head>
<body><main>
<h1>Not found</h1>
<p>This server has no page at <code>{path}</code>.</p>
<p><a href="/">Back to the photos</a></p>
</main></body></html>
"""


def _not_found_page(path: str) -> Response:
    return HTMLResponse(_NOT_FOUND_PAGE.format(path=html.escape(path, quote=True)), status_code=404,
                        headers={"Cache-Control": "no-store"})


def _prefers_html(accept: str) -> bool:
    """Whether an Accept header asks for HTML before JSON (a browser's address bar: "text/html,...,*/*;q=0.8";
    fetch() and curl send "*/*", which keeps the JSON)."""
    weights: dict[str, float] = {}
    for part in accept.lower().split(","):
        kind, *options = (p.strip() for p in part.split(";"))
        weight = 1.0
        for option in options:
            key, _, value = option.partition("=")
            if key.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if kind:
            weights[kind] = max(weight, weights.get(kind, 0.0))
    html_weight = max(weights.get("text/html", 0.0), weights.get("application/xhtml+xml", 0.0))
    json_weight = max(weights.get("application/json", 0.0), weights.get("application/*", 0.0), weights.get("*/*", 0.0))
    if html_weight != json_weight:
        return html_weight > json_weight
    return html_weight > 0 and "application/json" not in weights  # a tie: JSON when it was named


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error(f"the server failed ({type(exc).__name__}); its log says more", 500)


def _error(message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": web_words(message)}, status_code=status, headers=headers)


_WEB_WORDS = (("--where ", "the SQL filter "), ("give search text, or --image PATH", "type words, or drop an image here"),
              ("--image-weight ", "the image weight "), ("--min-score ", "min_score "), ("--cutoff ", "cutoff "),
              ("--target image", "Search in: images"))


_API_NAMES = {flag: flag.replace("-", "_") for flag in ("mode", "target", "sort", "near", "radius", "taken-after",
                                                         "taken-before", "tag", "not", "literal", "where", "min-score")}


def web_words(message: str) -> str:
    """A library message (written for the CLI) in the page's own terms: no CLI flags (the others in
    the API's names: ``--taken-after`` is ``taken_after``)."""
    for flag, words in _WEB_WORDS:
        message = message.replace(flag, words)
    return flags_as(message, _API_NAMES)


def _status(exc: MmembedError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, FileChangedError):  # "more like" a photo changed or gone since it was indexed
        return 410
    if isinstance(exc, (QueryError, ConfigError, ImageDecodeError)):
        return 400
    if isinstance(exc, IndexEmptyError):
        return 409
    return 500


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, default=str, allow_nan=False).encode("utf-8")


class _Api:
    def __init__(self, library: Library) -> None:
        self.library = library

    def page(self, request: Request) -> Response:
        return FileResponse(os.path.join(STATIC, "index.html"), headers={"Cache-Control": "no-cache"})

    def info(self, request: Request) -> Response:
        return _Json(self.library.info())

    async def search(self, request: Request) -> Response:
        if request.method != "POST":
            return await self._search(request, None)
        refused = _refuse_upload(request)
        if refused is not None:
            return refused
        with _UPLOADS:  # held until the search is done: at most MAX_PARALLEL_UPLOADS images in memory
            image = await _read_upload(request)
            if isinstance(image, Response):
                return image
            try:
                return await self._search(request, image)
            finally:
                del image
                give_back_memory()

    async def _search(self, request: Request, image: bytes | None) -> Response:
        from starlette.concurrency import run_in_threadpool

        try:
            args = _search_args(request)
            page = await run_in_threadpool(lambda: self.library.search(image=image, **args))
        except MmembedError as exc:
            return _error(str(exc), _status(exc))
        return _Json({
            "hits": [h.to_dict() for h in page.hits], "offset": page.offset, "more": page.more,
            "where": page.where, "target": page.target, "took_ms": round(page.seconds * 1000, 1),
            "parsed": page.parsed, **({"note": page.note} if page.note else {}),
        })

    def items(self, request: Request) -> Response:
        """Browse: every photo (or the filtered ones), newest first, a page at a time."""
        try:
            args = _search_args(request)
            page = self.library.browse(limit=args["limit"], offset=args["offset"], filters=args["filters"],
                                       where_when=args["where_when"])
        except MmembedError as exc:
            return _error(str(exc), _status(exc))
        return _Json({"items": page.hits, "offset": page.offset, "more": page.more, "total": page.total,
                      "where": page.where, "took_ms": round(page.seconds * 1000, 1)})

    async def duplicates(self, request: Request) -> Response:
        """Groups of duplicates (``mmembed dupes``), with the suggested keepers: searched in the
        background; 202 with the progress until they are found (the page asks again)."""
        from starlette.concurrency import run_in_threadpool

        mode = request.query_params.get("mode") or "near"
        try:  # a short wait answers a small library at once
            answer = await run_in_threadpool(lambda: self.library.duplicates(mode, wait=0.5))
        except MmembedError as exc:
            return _error(str(exc), _status(exc))
        return _Json(answer, status_code=200 if answer["state"] == "done" else 202,
                     headers={"Cache-Control": "no-store"})

    def item(self, request: Request) -> Response:
        try:
            row = self.library.item(request.path_params["item_id"])
        except MmembedError as exc:
            return _error(str(exc), _status(exc))
        return _Json(row)

    def thumb(self, request: Request) -> Response:
        return self._rendition(request, THUMB_SIZE)

    def large(self, request: Request) -> Response:
        return self._rendition(request, LARGE_SIZE)

    def _rendition(self, request: Request, size: int) -> Response:
        try:
            row = self.library.row(request.path_params["item_id"])
            at = row.get("frame_time") if row.get("media") == "video" else None
            etag = f'"{self.library.thumbs.key(row["content_hash"], size, at)}"'
            # checked first, even for a browser's own copy: a photo deleted or replaced is not shown again
            rendition = self.library.thumbs.get(row["path"], row["content_hash"], size, at, row.get("size"),
                                                row.get("mtime_ns"))
            if request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers={"ETag": etag, "Cache-Control": _REVALIDATE})
            with open(rendition.path, "rb") as f:
                body = f.read()
        except NotFound:
            return _error("not found", 404)
        except ImageDecodeError as exc:
            return _error(f"{exc.path}: {exc.reason}", 410)
        except OSError as exc:
            return _error(f"the thumbnail cannot be read ({exc.strerror or exc})", 500)
        return Response(body, media_type="image/jpeg",
                        headers={"ETag": etag, "Cache-Control": _REVALIDATE})

    def original(self, request: Request) -> Response:
        try:
            row = self.library.row(request.path_params["item_id"])
        except MmembedError:
            return _error("not found", 404)
        path = row["path"]
        kind = _FORMAT_TYPES.get(str(row.get("format") or "").upper()) or mimetypes.guess_type(path)[0]
        if path.startswith("s3://"):  # an object in object storage: read through sources.remote
            return _object_response(path, kind)
        try:  # checked against its row, then served from the descriptor that was checked
            opened = open_indexed(path, size=row.get("size"), mtime_ns=row.get("mtime_ns"),
                                  content_hash=row.get("content_hash"), hash_limit=FILES_HASH_LIMIT)
        except FileChangedError as exc:
            return _error(str(exc), 410)
        same = f"/proc/self/fd/{opened.fileno()}"
        headers = {"Cache-Control": _REVALIDATE}
        if os.path.exists(same):  # Linux: FileResponse (ranges for video seeking) on that same open file
            return FileResponse(same, media_type=kind or "application/octet-stream", headers=headers,
                                content_disposition_type="inline", filename=os.path.basename(path),
                                background=BackgroundTask(opened.close))
        return _stream(opened, kind, os.path.basename(path), headers)


def _stream(opened: Any, kind: str | None, name: str, headers: dict[str, str]) -> Response:
    """The whole file from an open file object (no /proc/self/fd: no ranges), closed at the end."""
    size = os.fstat(opened.fileno()).st_size

    def chunks() -> Any:
        with opened:
            while chunk := opened.read(256 * 1024):
                yield chunk

    return StreamingResponse(chunks(), media_type=kind or "application/octet-stream", headers={
        **headers, "Content-Length": str(size),
        "Content-Disposition": f"inline; filename*=utf-8''{urllib.parse.quote(name)}"})


def _object_response(path: str, kind: str | None) -> Response:
    from ..sources.remote import read_bytes

    try:
        body = read_bytes(path)
    except FileNotFoundError:
        return _error(f"{path}: the object is gone since it was indexed", 410)
    except OSError as exc:
        return _error(f"{path}: cannot read the object ({exc.strerror or exc})", 502)
    except MmembedError as exc:  # boto3 missing
        return _error(str(exc), 500)
    name = path.rpartition("/")[2]
    return Response(body, media_type=kind or "application/octet-stream",
                    headers={"Cache-Control": _REVALIDATE,
                             "Content-Disposition": f"inline; filename*=utf-8''{urllib.parse.quote(name)}"})


def _refuse_upload(request: Request) -> Response | None:
    """The answer to an upload refused by its headers alone, before a byte is read: 413 past
    ``MAX_UPLOAD_BYTES`` by its Content-Length, 415 for a Content-Type that is no image, 503
    while ``MAX_PARALLEL_UPLOADS`` images are being read or searched with; None otherwise."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        return _error(f"the image is {int(declared) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB", 413)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind.split("/")[0] in _NOT_IMAGE_TYPES or kind in _NOT_IMAGE_TYPES:  # curl's form type passes: the bytes decide
        return _error(f"the upload is {kind}, not an image; drop an image file (JPEG, PNG, HEIC, ...)", 415)
    if _UPLOADS.busy():
        return _error("too many images are being searched with at once; try again in a moment", 503,
                      {"Retry-After": "2"})
    return None


async def _read_upload(request: Request) -> bytes | Response:
    """The request body, never written to disk, refused as soon as it can be: 413 past
    ``MAX_UPLOAD_BYTES``, 400 when its first bytes are no image format's (``looks_like_image``)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UPLOAD_BYTES:
            return _error(f"the image is over the limit of {MAX_UPLOAD_BYTES // 2**20} MB", 413)
        if len(body) >= _SNIFF and len(body) - len(chunk) < _SNIFF and not looks_like_image(body):
            return _error(NOT_AN_IMAGE, 400)
    if not body:
        return _error("the request holds no image; send an image file as the body", 400)
    if len(body) < _SNIFF and not looks_like_image(body):
        return _error(NOT_AN_IMAGE, 400)
    return bytes(body)


_UPLOADS = Slots(MAX_PARALLEL_UPLOADS)


def _search_args(request: Request) -> dict[str, Any]:
    """The search's arguments from the query string (its names checked by ``_reads``); QueryError
    names a bad value."""
    params = request.query_params
    text = params.get("q") or None
    like = params.get("like") or None
    columns = {name: v for k, v in params.items() if (name := _column_param(k))}
    filters = Filters(folder=params.get("folder") or None, format=params.get("format") or None,
                      date_from=params.get("date_from") or None, date_to=params.get("date_to") or None,
                      date_field=params.get("date_field") or "taken", columns=columns,
                      where=params.get("where") or None, tags=tuple(t for t in params.getlist("tag") if t))
    negatives = tuple(n for value in params.getlist("not") for n in value.split(",") if n.strip())
    literal = params.get("literal")
    if literal not in (None, "", "1"):  # "0" or "no" must not read as yes, nor "maybe" as anything
        raise QueryError(f"literal={literal!r} is not 1; give literal=1 to search the words as typed, or leave it out")
    if params.get("radius") and not params.get("near"):
        raise QueryError("radius needs near: give near=PLACE or near=LAT,LON with it, or leave radius out")
    return {"text": text, "like": like, "limit": _number(params.get("n"), "n", int, 50),
            "offset": _number(params.get("offset"), "offset", int, 0), "target": params.get("target") or None,
            "negatives": negatives, "image_weight": _number(params.get("image_weight"), "image_weight", float, None),
            "min_score": _number(params.get("min_score"), "min_score", float, None),
            "cutoff": params.get("cutoff") or "none", "filters": filters, "mode": params.get("mode") or None,
            "where_when": where_when_args(params)}


# The query parameters each endpoint reads; any other is refused by name (``_reads``), and so is one
# given twice, but for the repeatable ones. ``token`` is TokenGate's (``?token=`` logs in; it
# never gets here off the loopback, and a loopback server asks for none).
_TOKEN = "token"
_REPEATABLE = frozenset({"tag", "not"})
_WHERE_WHEN = frozenset({"near", "radius", "taken_after", "taken_before", "sort", "literal"})
BROWSE_PARAMS = frozenset({"n", "offset", "folder", "format", "date_from", "date_to", "date_field", "where", "tag",
                           # the place and time of the page's address: it sends them to a browse too
                           *_WHERE_WHEN})
SEARCH_PARAMS = frozenset({*BROWSE_PARAMS, "q", "like", "target", "not", "image_weight", "min_score", "cutoff", "mode"})
_ALIASES = {"limit": "n", "k": "n", "top_k": "n", "query": "q", "text": "q", "page": "offset", "tags": "tag"}


def _column_param(key: str) -> str | None:
    """The manifest column a ``col.NAME`` (or OpenAPI's deepObject ``col[NAME]``) parameter names."""
    if key.startswith("col.") and len(key) > 4:
        return key[4:]
    if key.startswith("col[") and key.endswith("]") and len(key) > 5:
        return key[4:-1]
    return None


def _reads(path: str, params: frozenset[str], endpoint: Any, *, columns: bool = False) -> Any:
    """``endpoint`` behind ``check_params``: a request with a parameter it does not read gets 400
    before it runs. Sync endpoints stay sync (Starlette runs them in its thread pool)."""
    if inspect.iscoroutinefunction(endpoint):
        async def checked_async(request: Request) -> Response:
            refused = _refused_params(request, path, params, columns)
            return refused if refused is not None else await endpoint(request)

        return checked_async

    def checked(request: Request) -> Response:
        refused = _refused_params(request, path, params, columns)
        return refused if refused is not None else endpoint(request)

    return checked


def _refused_params(request: Request, path: str, params: frozenset[str], columns: bool) -> Response | None:
    try:
        check_params(request.query_params.multi_items(), params, columns=columns, path=path)
    except QueryError as exc:
        return _error(str(exc), 400)
    return None


def check_params(items: Any, reads: frozenset[str], *, columns: bool = False, path: str = "this endpoint") -> None:
    """QueryError for a parameter ``path`` does not read (``limit=3`` is not silently ignored) and for
    one given twice (``q=dog&q=cat``: not the last one silently), but ``tag`` and ``not``.
    ``items``: the query's (name, value) pairs; ``columns``: ``col.NAME`` parameters are read."""
    import difflib

    seen: dict[str, int] = {}
    for name, _ in items:
        seen[name] = seen.get(name, 0) + 1
    for name, count in seen.items():
        if name == _TOKEN:
            continue
        if name in reads or (columns and _column_param(name)):
            if count > 1 and name not in _REPEATABLE:
                raise QueryError(f"parameter {name!r} is given {count} times; give it once")
            continue
        if not reads:
            raise QueryError(f"unknown parameter {name!r}; {path} takes no parameters")
        if name in SEARCH_PARAMS and reads == BROWSE_PARAMS:  # /api/items: a search's own parameter
            raise QueryError(f"unknown parameter {name!r}; {path} lists the photos and reads no query: "
                             f"send {name} to /api/search")
        alias = _ALIASES.get(name)
        guess = alias if alias in reads else next(iter(difflib.get_close_matches(name, sorted(reads), 1, 0.75)), None)
        hint = f"; did you mean {guess}?" if guess else "; see /api/docs"
        raise QueryError(f"unknown parameter {name!r}{hint}")


def _number(raw: str | None, name: str, kind: type, default: Any) -> Any:
    """``raw`` as ``kind`` (int or float), ``default`` when absent; QueryError names a bad one."""
    if raw in (None, ""):
        return default
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise QueryError(f"{name}={raw!r} is not {what}") from None
