"""The web app's HTTP API described as an OpenAPI 3.1 document (``GET /api/openapi.json``;
``/api/docs`` renders it). Hand-written: tests/test_serve_token.py checks it names every
route the app has and no other."""

from __future__ import annotations

from typing import Any

from .._version import __version__

__all__ = ["openapi"]

_ERROR = {"description": "an error: one line that says what is wrong and what to do",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_JSON = {"application/json": {"schema": {"type": "object"}}}


def _q(name: str, description: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": kind, **extra}}


_FILTERS = [
    _q("folder", "only photos under this folder"), _q("format", "only this format (JPEG, PNG, HEIF, ...)"),
    _q("date_from", "from this day (YYYY-MM-DD, UTC)", format="date"),
    _q("date_to", "up to this day (YYYY-MM-DD, UTC)", format="date"),
    _q("date_field", "which date the range is on", enum=["taken", "file"]),
    {"name": "tag", "in": "query", "required": False, "style": "form", "explode": True,
     "description": "only photos carrying this tag (repeatable: all of them)",
     "schema": {"type": "array", "items": {"type": "string"}}},
    _q("where", "an SQL filter on the table's columns (as `search --where`)"),
    {"name": "col", "in": "query", "style": "deepObject", "explode": True, "required": False,
     "description": "col[NAME]=VALUE (or col.NAME=VALUE): a manifest column equals VALUE",
     "schema": {"type": "object", "additionalProperties": {"type": "string"}}},
    _q("n", "how many (at most 200)", "integer", minimum=1, maximum=200, default=50),
]
_BROWSE = [*_FILTERS, _q("offset", "skip this many", "integer", minimum=0, default=0)]
_SEARCH = [
    _q("q", "the words to search for"), _q("like", "search with this indexed photo's id"),
    _q("target", "what is searched", enum=["image", "text", "fused"]),
    {"name": "not", "in": "query", "required": False, "style": "form", "explode": True,
     "description": "words the results should not match (repeatable, or comma-separated)",
     "schema": {"type": "array", "items": {"type": "string"}}},
    _q("image_weight", "the image's weight in a composite query (0 to 1)", "number"),
    _q("min_score", "drop hits whose cosine is below this (-1..1); a hit that holds the query's words is kept", "number"),
    _q("cutoff", "'auto': only the hits that stand out", enum=["none", "auto"]),
    _q("mode", "rank by looks and words at once (hybrid, the default where items have words), looks only "
       "(vector) or words only (text)", enum=["hybrid", "vector", "text"]),
    _q("near", "only photos taken near a place name or LAT,LON"), _q("radius", "the radius of near, km", "number"),
    _q("taken_after", "only photos taken on or after this ISO date (camera time)", format="date"),
    _q("taken_before", "only photos taken before this ISO date", format="date"),
    _q("sort", "score: best first; date: newest first", enum=["score", "date"]),
    _q("literal", "1: the words as typed (no place or time phrase becomes a filter)", enum=["1"]), *_FILTERS,
    _q("offset", "skip this many (a search's pages stop at 2,000)", "integer", minimum=0, maximum=1999, default=0),
]
_ID = [{"name": "item_id", "in": "path", "required": True, "description": "a row id from a hit or an item",
        "schema": {"type": "string"}}]
_FILE_ERRORS = {"404": _ERROR, "410": _ERROR}


def _op(summary: str, responses: dict[str, Any], parameters: list[dict[str, Any]] | None = None,
        **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "parameters": parameters or [], "responses": responses, **extra}


def _paths() -> dict[str, Any]:
    ok = {"200": {"description": "OK", "content": _JSON}}
    search_ok = {"200": {"description": "hits as in `mmembed search --json` (each with its id and, ranked by "
                                        "words too, vector_score, words_score, terms), plus more, where, target, "
                                        "parsed (the place and time read from q), took_ms", "content": _JSON},
                 "400": _ERROR, "404": {**_ERROR, "description": "like: no item has this id"},
                 "409": _ERROR, "410": {**_ERROR, "description": "like: the item's file changed or went since it was indexed"}}
    image = {"required": True, "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
             "description": "the query image (at most 20 MB)"}
    picture = {"200": {"description": "a JPEG", "content": {"image/jpeg": {}}}, **_FILE_ERRORS}
    return {
        "/api/info": {"get": _op("the table: rows, model, formats, folders, columns, frequent tags, any problem", ok)},
        "/api/search": {
            "get": _op("search by words, by an indexed photo (like), or both", search_ok, _SEARCH),
            "post": _op("search with an image as the request body (and any words)",
                        {**search_ok, "413": _ERROR, "415": _ERROR, "503": _ERROR}, _SEARCH, requestBody=image)},
        "/api/items": {"get": _op("browse every photo (or the filtered ones), newest first, with the total",
                                  {**ok, "400": _ERROR, "409": _ERROR}, _BROWSE)},
        "/api/items/{item_id}": {"get": _op("one item: path, size, width, height, format, dates, texts, columns",
                                            {**ok, "404": _ERROR}, _ID)},
        "/api/duplicates": {"get": _op(
            "groups of duplicates, keepers marked (as `mmembed dupes --json`)",
            {**ok, "202": {"description": "still searching: {state: running, percent}; ask again", "content": _JSON},
             "400": _ERROR}, [_q("mode", "how alike", enum=["near", "exact", "similar"], default="near")])},
        "/api/places": {"get": _op("the places of the photos (named from their GPS) with counts", ok)},
        "/api/timeline": {"get": _op("photos per month (date taken)", ok)},
        "/api/openapi.json": {"get": _op("this document", ok)},
        "/api/docs": {"get": _op("this document as a page", {"200": {"description": "HTML",
                                                                      "content": {"text/html": {}}}})},
        "/thumbs/{item_id}": {"get": _op("a 320 px JPEG thumbnail, upright (ETag)", picture, _ID)},
        "/media/{item_id}": {"get": _op("a 2,048 px JPEG of the photo", picture, _ID)},
        "/files/{item_id}": {"get": _op("the original file, only while it is the file indexed (ranges)",
                                        {"200": {"description": "the file"}, **_FILE_ERRORS}, _ID)},
    }


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the web app's API."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "mmembed serve", "version": __version__,
                 "description": "The read-only JSON API of `mmembed serve`. Every error answers "
                                "{\"error\": \"one line\"}. A server off the loopback asks for its token: "
                                "send `Authorization: Bearer TOKEN` (else 401)."},
        "paths": _paths(),
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["error"], "additionalProperties": False,
                                  "properties": {"error": {"type": "string", "description": "one line"}}}},
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                          "description": "only asked by a server off the loopback"}},
        },
        "security": [{}, {"token": []}],
    }
