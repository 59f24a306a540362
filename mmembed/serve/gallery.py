"""A self-contained HTML gallery of search results (``mmembed search --html FILE``).

Thumbnails are inlined as JPEG data URIs and the style sheet is in the file, so it opens in
any browser with no server, and can be mailed. Every caption and path is escaped.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigError, ImageDecodeError
from ..sources.video import clock
from .thumbs import frame_jpeg, indexed_bytes, indexed_frame, render_jpeg

__all__ = ["write_gallery", "GALLERY_THUMB"]

GALLERY_THUMB = 240  # px on the long side: about 10 kB a photo

_STYLE = """
body{margin:0;background:#111214;color:#e8e8ea;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{padding:16px 20px;border-bottom:1px solid #2e3035}h1{font-size:18px;margin:0 0 4px}
header p{margin:0;color:#9a9ca3}h2{font-size:15px;margin:18px 20px 0;color:#c8c9cc}main{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px;padding:16px 20px}
figure{margin:0;background:#202226;border-radius:10px;overflow:hidden}
img,.missing{display:block;width:100%;aspect-ratio:4/3;object-fit:cover;background:#2a2c31}
.missing{display:grid;place-items:center;color:#9a9ca3;font-size:12px;padding:8px;box-sizing:border-box}
figcaption{padding:7px 9px 9px}.score{color:#6ea8fe;font-size:12px;float:right}.why{color:#9a9ca3;font-size:12px}
.path{color:#9a9ca3;font-size:11px;overflow-wrap:anywhere;margin-top:4px}
"""


def write_gallery(
    hits: Sequence[Any],
    path: str | os.PathLike[str],
    *,
    title: str = "mmembed results",
    thumb_size: int = GALLERY_THUMB,
    max_megapixels: float = 100.0,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    sections: Sequence[tuple[str, Sequence[Any]]] | None = None,
    indexed: Mapping[str, Mapping[str, Any]] | None = None,
    index: Any = None,
) -> int:
    """Write ``hits`` (``Hit`` objects or dicts with path, score, text, ...) as one HTML file;
    or, with ``sections``, one titled grid per (title, hits) pair (duplicate groups, say).
    ``index`` (the ``Index`` the hits came from; or ``indexed``: id -> the table's row, ``Index.items(ids)``)
    has each file opened only while it is the one indexed (``sources.indexed.open_indexed``: its size,
    mtime and content hash; no symlink swapped in), so a gallery that is mailed holds only what was
    indexed: a hit with an id and no row to check it against is not inlined. Rows without an id (your
    own dicts) are read from their path.
    Returns how many thumbnails were inlined (a file that cannot be read shows its reason)."""
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise ConfigError(f"{target}: the folder {folder} does not exist; create it or pick another --html path")
    parts = [(None, hits)] if sections is None else list(sections)
    titles = [title_ for title_, _ in parts]
    grouped = [[h.to_dict() if hasattr(h, "to_dict") else dict(h) for h in part] for _, part in parts]
    rows = [row for part in grouped for row in part]
    if index is not None and indexed is None:
        ids = [row["id"] for row in rows if row.get("id")]
        indexed = {r["id"]: r for r in index.items(ids)} if ids else {}

    def thumb(row: dict[str, Any]) -> str:
        checked = (indexed or {}).get(row.get("id") or "")
        if checked is None and row.get("id"):  # an indexed item is inlined only as checked against its row
            why = "no longer in the index" if indexed is not None else \
                "not checked against the index; pass index= to write_gallery"
            return f'<div class="missing">{html.escape(why)}</div>'
        try:
            data = _thumbnail(row, checked, thumb_size, max_megapixels)
        except ImageDecodeError as exc:
            return f'<div class="missing">{html.escape(exc.reason)}</div>'
        alt = html.escape(row.get("text") or os.path.basename(row["path"]))
        return f'<img alt="{alt}" src="data:image/jpeg;base64,{base64.b64encode(data).decode()}">'

    images: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, tag in enumerate(pool.map(thumb, rows), 1):
            images.append(tag)
            if progress is not None:
                progress(done, len(rows))
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tags = iter(images)
    blocks = []
    for heading, part in zip(titles, grouped):
        cards = "\n".join(_card(row, next(tags)) for row in part)
        head = f"<h2>{html.escape(heading)}</h2>" if heading else ""
        blocks.append(f"{head}<main>\n{cards}\n</main>")
    page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<header><h1>{html.escape(title)}</h1><p>{len(rows)} photos · made by mmembed on {made}</p></header>"
            + "\n".join(blocks) + "</body></html>\n")
    tmp = f"{target}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, target)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write the gallery ({exc.strerror or exc})") from None
    return sum(1 for tag in images if tag.startswith("<img"))


def _thumbnail(hit: Mapping[str, Any], row: Mapping[str, Any] | None, size: int, max_megapixels: float) -> bytes:
    """The hit's JPEG thumbnail; from the file as checked against its ``row`` when there is one
    (``thumbs.indexed_bytes``/``indexed_frame``), else (your own dict) from its path."""
    path, video = hit["path"], hit.get("media") == "video"
    if row is None:
        if video:
            return frame_jpeg(path, float(hit.get("frame_time") or 0.0), size, quality=72)
        return render_jpeg(path, size, max_megapixels=max_megapixels, quality=72)
    if video:
        return indexed_frame({**row, "frame_time": hit.get("frame_time")}, size, quality=72)
    return render_jpeg(indexed_bytes(dict(row)), size, max_megapixels=max_megapixels, quality=72, name=path)


def _card(row: dict[str, Any], image: str) -> str:
    why = []
    for name, key in (("image", "image_score"), ("text", "text_score")):
        if isinstance(row.get(key), (int, float)):
            why.append(f"{name} {row[key]:.3f}")
    score = f'<span class="score">{row["score"]:.3f}</span>' if isinstance(row.get("score"), (int, float)) else ""
    caption = html.escape(row.get("text") or os.path.basename(row["path"]))
    if row.get("media") == "video":  # which moment of the video matched
        caption = f"▶ {clock(float(row.get('frame_time') or 0.0))} · {caption}"
    why_html = f'<div class="why">{html.escape(" · ".join(why))}</div>' if why else ""
    return (f"<figure>{image}<figcaption>{score}{caption}{why_html}"
            f'<div class="path">{html.escape(row["path"])}</div></figcaption></figure>')
