"""Every word an item has, in one string: the full-text index's column (``words``).

>>> item_words({"texts": ["a red bus"], "ocr_text": "Harbor St Bakery", "place_names": ["Kyoto", "京都"]})
'a red bus\\nHarbor St Bakery\\nKyoto 京都'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["WORD_COLUMNS", "item_words"]

# The row columns whose words join ``words`` (a writer that changes one of them recomposes it).
WORD_COLUMNS = ("texts", "embedded_texts", "manifest_texts", "path_words", "ocr_text", "tags", "place_names",
                "place_city", "place_region", "place_country")


def item_words(row: Mapping[str, Any]) -> str:
    """The item's words from a row (or a dict of the same keys): each source on its own line,
    duplicates dropped, order kept; ``''`` when there are none."""
    seen: set[str] = set()
    lines: list[str] = []
    for column in WORD_COLUMNS:
        for text in _strings(row.get(column)):
            if text not in seen:
                seen.add(text)
                lines.append(text)
    return "\n".join(_join_places(lines, row))


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, Iterable):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    return [str(value)]


def _join_places(lines: list[str], row: Mapping[str, Any]) -> list[str]:
    """Place names sit on one line ("Kyoto 京都"), as a person would write them."""
    names = set(_strings(row.get("place_names"))) | {s for c in ("place_city", "place_region", "place_country")
                                                      for s in _strings(row.get(c))}
    if not names:
        return lines
    kept = [line for line in lines if line not in names]
    return kept + [" ".join(line for line in lines if line in names)]
