"""The web app's where and when: the search's place/time parameters, and the places and timeline
endpoints (``/api/places``, ``/api/timeline``) that the page's ``static/where.js`` lists."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from ..errors import IndexEmptyError, MmembedError, QueryError

__all__ = ["where_when_args", "where_api"]

_TRUE = ("1",)  # literal=1 (app.py refuses any other value)


def where_when_args(params: Any) -> dict[str, Any]:
    """``literal``, ``near``, ``radius``, ``taken_after``, ``taken_before``, ``sort`` from a query
    string, as ``SearchOptions`` fields (checked there); absent ones are left out."""
    out: dict[str, Any] = {}
    if (params.get("literal") or "").lower() in _TRUE:
        out["literal"] = True
    for name, field in (("near", "near"), ("taken_after", "taken_after"), ("taken_before", "taken_before"),
                        ("sort", "sort")):
        if params.get(name):
            out[field] = params.get(name)
    if params.get("radius"):
        try:
            out["radius_km"] = float(params.get("radius"))
        except ValueError:
            raise QueryError(f"radius={params.get('radius')!r} is not a number (km)") from None
    return out


def where_api(library: Any, what: str) -> JSONResponse:
    """``{"places": [...]}`` or ``{"months": [...]}``; a problem is ``{"error": ...}`` with its status."""
    try:
        if what == "places":
            return JSONResponse({"places": library.places()})
        return JSONResponse({"months": library.timeline()})
    except IndexEmptyError as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    except MmembedError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400 if isinstance(exc, QueryError) else 500)
