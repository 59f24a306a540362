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
# every endpoint refuses a parameter it does not read, or one given twice (but tag and not), by name
_PARAMETER = {**_ERROR, "description": "a parameter it does not read, or one given twice, named; or a bad value"}
_TOKEN = {"description": "only a server off the loopback (or given --token): its token is missing or wrong; "
                         "outside /api/ (and at /api/docs) the answer is a login page",
          "content": {**_ERROR["content"], "text/html": {"schema": {"type": "string"}}}}
_EMPTY = {**_ERROR, "description": "no database or an empty table yet (index a folder first)"}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _maybe(kind: str | list[str], **extra: Any) -> dict[str, Any]:
    """A property that may be null."""
    kinds = [kind] if isinstance(kind, str) else kind
    return {"type": [*kinds, "null"], **extra}


_COUNTED = {"type": "array", "items": {"type": "object", "required": ["count"],
                                       "properties": {"name": {"type": "string"}, "path": {"type": "string"},
                                                      "count": {"type": "integer"}}}}
# What a hit and an item share: the table's own columns (manifest columns come as more properties)
_ROW = {
    "id": {"type": "string", "description": "the row id (/api/items/{id}, /thumbs/{id}, like=)"},
    "path": {"type": "string", "description": "the file's absolute path (or s3:// address)"},
    "size": {"type": "integer", "description": "bytes"},
    "width": _maybe("integer", description="pixels, upright"), "height": _maybe("integer"),
    "format": _maybe("string", description="JPEG, PNG, HEIF, ... (Pillow's name)"),
    "text": _maybe("string", description="the caption (the item's first text)"),
    "text_source": _maybe("string", description="sidecar, embedded, manifest or path"),
    "media": _maybe("string", enum=["image", "video", None], description="null in rows written before videos: an image"),
    "frame_time": _maybe("number", description="a video's frame, seconds from its start"),
    "duration": _maybe("number", description="a video's length in seconds"),
    "raw_siblings": _maybe("array", items={"type": "string"}, description="the RAW files of the same shot"),
    "ocr_text": _maybe("string", description="the words read in the picture; null: not read yet"),
}
_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "additionalProperties": False,
              "properties": {"error": {"type": "string", "description": "one line"}}},
    "Hit": {"type": "object", "required": ["id", "path", "score", "target", "mode"], "additionalProperties": True,
            "description": "one result, as a line of `mmembed search --json` (and the manifest columns)",
            "properties": {
                **_ROW, "score": {"type": "number", "description": "what it is ranked by (the cosine; hybrid: fused)"},
                "image_score": _maybe("number"), "text_score": _maybe("number"),
                "vector_score": _maybe("number"), "words_score": _maybe("number", description="BM25; null: no word match"),
                "fused_score": _maybe("number"),
                "terms": {"type": "array", "items": {"type": "string"}, "description": "the query's words it holds"},
                "target": {"type": "string", "enum": ["image", "text", "fused"]},
                "mode": {"type": "string", "enum": ["hybrid", "vector", "text"]}}},
    "SearchPage": {"type": "object", "required": ["hits", "offset", "more", "where", "target", "took_ms", "parsed"],
                   "properties": {
                       "hits": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}},
                       "offset": {"type": "integer"}, "more": {"type": "boolean", "description": "a next page may hold more"},
                       "where": _maybe("string", description="the SQL filter applied"),
                       "target": _maybe("string", description="what was searched"),
                       "took_ms": {"type": "number"},
                       "parsed": _maybe("object", description="the place and time read from q (text, place, near, "
                                                              "taken_after, taken_before, notes, sort); null: none"),
                       "note": {"type": "string", "description": "only when nothing was found: why"}}},
    "Item": {"type": "object", "required": ["id", "path", "size", "mtime_ns", "content_hash"], "additionalProperties": True,
             "description": "a row of the table (and the manifest columns); one item (/api/items/{id}) adds "
                            "ocr_text and ocr_lines where the table has them",
             "properties": {
                 **_ROW, "mtime_ns": {"type": "integer", "description": "the file's modification time, ns"},
                 "content_hash": {"type": "string"},
                 "taken_ns": _maybe("integer", description="EXIF date taken (camera time as UTC), ns"),
                 "texts": _maybe("array", items={"type": "string"}, description="every text of the item"),
                 "tags": _maybe("array", items={"type": "string"}), "tag_scores": _maybe("array"),
                 "ocr_lines": {"type": "array", "items": {"type": "object"},
                               "description": "the lines read: text, box (4 corners, upright pixels), confidence"}}},
    "ItemsPage": {"type": "object", "required": ["items", "offset", "more", "total", "where", "took_ms"],
                  "properties": {
                      "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                      "offset": {"type": "integer"}, "more": {"type": "boolean"},
                      "total": {"type": "integer", "description": "how many photos the filters keep"},
                      "where": _maybe("string"), "took_ms": {"type": "number"}}},
    "Info": {"type": "object", "required": ["db", "table", "rows", "formats", "folders", "columns", "tags", "problem"],
             "properties": {
                 "db": {"type": "string"}, "table": {"type": "string"}, "rows": {"type": "integer"},
                 "captioned": {"type": "integer", "description": "rows with a caption"},
                 "model": _maybe("string"), "pretrained": _maybe("string"), "fusion": _maybe("object"),
                 "formats": {**_COUNTED, "description": "{name, count} per format"},
                 "folders": {**_COUNTED, "description": "{path, count} per folder (the first 400)"},
                 "columns": {"type": "array", "items": {"type": "string"}, "description": "the manifest columns"},
                 "has_taken": {"type": "boolean"},
                 "tags": {**_COUNTED, "description": "{name, count}: the most frequent tags"},
                 "problem": _maybe("string", description="why there is nothing to show; null when all is well"),
                 "home": _maybe("string", description="the paths under it are shown as ~/...")}},
    "Duplicates": {"type": "object", "required": ["state"],
                   "properties": {"state": {"type": "string", "enum": ["done", "running"]},
                                  "percent": {"type": "number", "description": "running: how far"},
                                  "mode": {"type": "string"}, "took_ms": {"type": "number"},
                                  "groups": {"type": "array", "items": {"type": "object"},
                                             "description": "done: {kind, score, files} with the keepers marked"}}},
    "Places": {"type": "object", "required": ["places"],
               "properties": {"places": {"type": "array", "items": {"type": "object", "required": ["count"]}}}},
    "Timeline": {"type": "object", "required": ["months"],
                 "properties": {"months": {"type": "array", "items": {
                     "type": "object", "required": ["month", "count"],
                     "properties": {"month": {"type": "string", "description": "YYYY-MM"}, "count": {"type": "integer"}}}}}},
}


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
_PLACE_AND_TIME = [
    _q("near", "only photos taken near a place name or LAT,LON"), _q("radius", "the radius of near, km", "number"),
    _q("taken_after", "only photos taken on or after this ISO date (camera time)", format="date"),
    _q("taken_before", "only photos taken before this ISO date", format="date"),
]
_BROWSE = [*_FILTERS, *_PLACE_AND_TIME, _q("sort", "accepted; a list is newest first", enum=["score", "date"]),
           _q("literal", "accepted; a list has no words", enum=["1"]),
           _q("offset", "skip this many", "integer", minimum=0, default=0)]
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
    *_PLACE_AND_TIME, _q("sort", "score: best first; date: newest first", enum=["score", "date"]),
    _q("literal", "1: the words as typed (no place or time phrase becomes a filter)", enum=["1"]), *_FILTERS,
    _q("offset", "skip this many (a search's pages stop at 2,000)", "integer", minimum=0, maximum=1999, default=0),
]
_ID = [{"name": "item_id", "in": "path", "required": True, "description": "a row id from a hit or an item",
        "schema": {"type": "string"}}]
_FILE_ERRORS = {"404": _ERROR, "410": _ERROR}


def _op(summary: str, responses: dict[str, Any], parameters: list[dict[str, Any]] | None = None,
        **extra: Any) -> dict[str, Any]:
    """An operation; every one may answer 400 (a parameter it does not read) and 401 (the token)."""
    return {"summary": summary, "parameters": parameters or [],
            "responses": {"400": _PARAMETER, **responses, "401": _TOKEN}, **extra}


def _paths() -> dict[str, Any]:
    ok = {"200": {"description": "OK", "content": _JSON}}
    search_ok = {"200": {"description": "hits as in `mmembed search --json` (each with its id and, ranked by "
                                        "words too, vector_score, words_score, terms), plus more, where, target, "
                                        "parsed (the place and time read from q), took_ms", "content": _json("SearchPage")},
                 "400": _ERROR, "404": {**_ERROR, "description": "like: no item has this id"},
                 "409": _EMPTY, "410": {**_ERROR, "description": "like: the item's file changed or went since it was indexed"}}
    image = {"required": True, "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
             "description": "the query image (at most 20 MB)"}
    revalidated = {"304": {"description": "If-None-Match: the browser's copy (its ETag) is still the one"}}
    picture = {"200": {"description": "a JPEG (ETag)", "content": {"image/jpeg": {}}}, **revalidated, **_FILE_ERRORS}
    return {
        "/api/info": {"get": _op("the table: rows, model, formats, folders, columns, frequent tags, any problem",
                                 {"200": {"description": "OK", "content": _json("Info")}})},
        "/api/search": {
            "get": _op("search by words, by an indexed photo (like), or both", search_ok, _SEARCH),
            "post": _op("search with an image as the request body (and any words)",
                        {**search_ok, "413": _ERROR, "415": _ERROR, "503": _ERROR}, _SEARCH, requestBody=image)},
        "/api/items": {"get": _op("browse every photo (or the filtered ones), newest first, with the total",
                                  {"200": {"description": "OK", "content": _json("ItemsPage")}, "400": _ERROR,
                                   "409": _EMPTY}, _BROWSE)},
        "/api/items/{item_id}": {"get": _op("one item: path, size, width, height, format, dates, texts, columns",
                                            {"200": {"description": "OK", "content": _json("Item")}, "404": _ERROR}, _ID)},
        "/api/duplicates": {"get": _op(
            "groups of duplicates, keepers marked (as `mmembed dupes --json`)",
            {"200": {"description": "found: {state: done, mode, groups, took_ms}", "content": _json("Duplicates")},
             "202": {"description": "still searching: {state: running, percent}; ask again", "content": _json("Duplicates")},
             "400": _ERROR, "409": _EMPTY}, [_q("mode", "how alike", enum=["near", "exact", "similar"], default="near")])},
        "/api/places": {"get": _op("the places of the photos (named from their GPS) with counts",
                                   {"200": {"description": "OK", "content": _json("Places")}, "409": _EMPTY})},
        "/api/timeline": {"get": _op("photos per month (date taken)",
                                     {"200": {"description": "OK", "content": _json("Timeline")}, "409": _EMPTY})},
        "/api/openapi.json": {"get": _op("this document", ok)},
        "/api/docs": {"get": _op("this document as a page", {"200": {"description": "HTML",
                                                                      "content": {"text/html": {}}}})},
        "/thumbs/{item_id}": {"get": _op("a 320 px JPEG thumbnail, upright (ETag)", picture, _ID)},
        "/media/{item_id}": {"get": _op("a 2,048 px JPEG of the photo (ETag)", picture, _ID)},
        "/files/{item_id}": {"get": _op("the original file, only while it is the file indexed (ranges)",
                                        {"200": {"description": "the file"},
                                         "206": {"description": "Range: that part of the file"},
                                         "416": {"description": "Range: not within the file"},
                                         **_FILE_ERRORS, "502": {**_ERROR, "description": "an object in object "
                                                                                          "storage cannot be read"}},
                                        _ID)},
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
            "schemas": _SCHEMAS,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                          "description": "only asked by a server off the loopback"}},
        },
        "security": [{}, {"token": []}],
    }
