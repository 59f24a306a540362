"""An item's words: caption sidecars, metadata inside the file, manifests, path words, which source wins, and where it was taken (GPS, place names)."""

from __future__ import annotations

from .._lazy import lazy_getattr

_EXPORTS = {
    "TextOptions": "choose", "ItemText": "choose", "resolve_texts": "choose",
    "TEXT_SOURCES": "choose", "Manifest": "manifest", "RESERVED_COLUMNS": "manifest",
    "find_sidecars": "sidecars", "read_sidecars": "sidecars", "SIDECAR_KINDS": "sidecars",
    "embedded_texts": "embedded", "path_text": "paths",
    "GpsPosition": "gps", "gps_position": "gps", "Place": "places", "Gazetteer": "places", "gazetteer": "places",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
