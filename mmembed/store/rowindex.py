"""``RowIndex``: a table's rows as the web app finds them, without holding them (issue 27).

Built once per table version in one streaming pass over a few small columns (``Store.scan``:
memory stays at one batch plus what is kept), it keeps about 30 bytes per row (some 30 MB at a
million rows) instead of every row's metadata:

- each row's id hash, by offset (the row's place in the table's order), and the offsets sorted
  by it: an id is found by a binary search, its row read by offset (``Store.take``);
- the offsets newest first (date taken, else the file's date; then path, as the page sorts),
  each video once by its first kept frame: a page of browse is a slice, read by offset;
- what the page's filters list: formats, folders, tags with their counts, rows with item text.

A row read by offset is checked against the id hash recorded for that offset, so a table that
changed since the index was built raises ``StaleRowIndex`` (the caller builds it again) and is
never shown as another row.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StoreError
from .items import item_columns

if TYPE_CHECKING:
    from .table import Store

__all__ = ["RowIndex", "StaleRowIndex"]

_SCAN_COLUMNS = ("id", "path", "format", "text", "taken_ns", "mtime_ns", "media", "frame_time", "tags")


class StaleRowIndex(StoreError):
    """The table changed since the ``RowIndex`` was built: a row read by offset is not the one
    recorded there. Build the index again."""


def id_hash(item_id: str) -> int:
    """The 64-bit key an id is found by (Python's string hash: fixed within one process,
    which is as long as an index lives)."""
    return hash(item_id)


@dataclass
class RowIndex:
    """One table version's row index; read-only once built, so threads share it."""

    version: int | None
    columns: list[str]  # the columns a row is read with (``store.items.item_columns``); [] for no table
    hashes: np.ndarray = field(repr=False)  # int64 id hash of the row at each offset
    by_hash: np.ndarray = field(repr=False)  # offsets sorted by their id hash
    sorted_hashes: np.ndarray = field(repr=False)  # hashes[by_hash]
    order: np.ndarray = field(repr=False)  # every offset, newest first (then path)
    newest: np.ndarray = field(repr=False)  # order with each video once, by its first kept frame
    videos: dict[str, np.ndarray] = field(repr=False)  # a video frame's "offset", "video" (a number per path), "time"
    formats: dict[str, int] = field(default_factory=dict)  # "unknown" for rows without one
    folders: dict[str, int] = field(default_factory=dict)  # each folder holding rows -> the rows under it (any depth)
    tags: dict[str, int] = field(default_factory=dict)
    captioned: int = 0  # rows with item text
    ocr_columns: list[str] = field(default_factory=list)  # the words read in pictures (issue 22): [] before OCR

    @property
    def rows(self) -> int:
        return len(self.hashes)

    # ------------------------------------------------------------ building
    @classmethod
    def empty(cls, version: int | None = None) -> RowIndex:
        none = np.zeros(0, dtype=np.int64)
        return cls(version, [], none, none, none, none, none, _no_videos())

    @classmethod
    def build(cls, store: Store, version: int | None) -> RowIndex:
        """The index of ``store``'s table (recorded as ``version``); empty when there is no table."""
        import pyarrow as pa

        if store.meta() is None:
            return cls.empty(version)
        names = store.table.schema.names
        scan = [c for c in _SCAN_COLUMNS if c in names]
        hashes, dates, paths = [], [], []
        formats: Counter[str] = Counter()
        heads: Counter[str] = Counter()
        tags: Counter[str] = Counter()
        captioned = 0
        frames: list[tuple[int, str, float]] = []  # (offset, path, frame time) of video rows
        at = 0
        for batch in store.scan(scan):
            n = batch.num_rows
            ids = batch.column("id").to_pylist()
            hashes.append(np.fromiter(map(id_hash, ids), dtype=np.int64, count=n))
            dates.append(_dates(batch))
            path = batch.column("path")
            paths.append(path)
            _count(formats, _values(batch, "format"), empty="unknown")
            _count(heads, _folder_heads(path))
            if "text" in batch.schema.names:
                captioned += _non_empty(batch.column("text"))
            if "tags" in batch.schema.names:
                import pyarrow.compute as pc

                _count(tags, pc.list_flatten(batch.column("tags")))
            if "media" in batch.schema.names:
                frames += _video_rows(batch, at)
            at += n
        all_hashes = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.int64)
        offset = np.int32 if at < 2**31 else np.int64
        by_hash = np.argsort(all_hashes, kind="stable").astype(offset)
        order = _newest_first(np.concatenate(dates) if dates else np.zeros(0, dtype=np.int64),
                              pa.chunked_array(paths, pa.string()) if paths else pa.chunked_array([], pa.string()))
        order = order.astype(offset)
        videos = _videos(frames)
        newest = order[_first_frames(at, videos, None)[order]]
        return cls(version, item_columns(store), all_hashes, by_hash, all_hashes[by_hash], order, newest, videos,
                   formats=dict(formats), folders=_folders(heads), tags=dict(tags), captioned=captioned,
                   ocr_columns=["ocr_text", "ocr_lines"] if {"ocr_text", "ocr_lines"} <= set(names) else [])

    # ------------------------------------------------------------ finding
    def offsets_of(self, item_id: str) -> np.ndarray:
        """The offsets whose id hashes like ``item_id`` (one, or none; the row read says whether it is the one)."""
        key = id_hash(item_id)
        lo = np.searchsorted(self.sorted_hashes, key, side="left")
        hi = np.searchsorted(self.sorted_hashes, key, side="right")
        return self.by_hash[lo:hi]

    def matching(self, ids: Any) -> np.ndarray:
        """A mask over offsets: the rows whose ids (an iterable of pyarrow string arrays) are among ``ids``."""
        mask = np.zeros(self.rows, dtype=bool)
        for chunk in ids:  # each id found by a binary search in the sorted hashes (a few per row)
            wanted = np.fromiter(map(id_hash, chunk.to_pylist()), dtype=np.int64, count=len(chunk))
            at = np.searchsorted(self.sorted_hashes, wanted)
            known = at < self.rows
            known[known] = self.sorted_hashes[at[known]] == wanted[known]
            mask[self.by_hash[at[known]]] = True
        return mask

    def newest_of(self, mask: np.ndarray | None) -> np.ndarray:
        """The offsets newest first, each video once by its first kept frame among ``mask`` (all rows: None)."""
        if mask is None:
            return self.newest
        return self.order[_first_frames(self.rows, self.videos, mask)[self.order]]

    def read(self, store: Store, offsets: Sequence[int], columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The rows at ``offsets`` (``Store.take``), checked to be the rows this index recorded
        there; ``StaleRowIndex`` when the table changed since."""
        rows = store.take(offsets, columns or self.columns)
        if len(rows) != len(offsets) or any(id_hash(row["id"]) != int(self.hashes[at]) for at, row in zip(offsets, rows)):
            raise StaleRowIndex(f"table '{store.table_name}' changed since its rows were indexed")
        return rows


# ---------------------------------------------------------------- one batch at a time
def _values(batch: Any, name: str) -> Any:
    import pyarrow as pa

    return batch.column(name) if name in batch.schema.names else pa.nulls(batch.num_rows, pa.string())


def _count(counter: Counter[str], values: Any, empty: str | None = None) -> None:
    """Add the value counts of an arrow array to ``counter``; null and "" count as ``empty``
    (left out when None)."""
    import pyarrow.compute as pc

    for entry in pc.value_counts(values).to_pylist():
        key = entry["values"] or empty
        if key is not None:
            counter[key] += entry["counts"]


def _non_empty(text: Any) -> int:
    import pyarrow.compute as pc

    kept = text.drop_null()
    return int(pc.sum(pc.greater(pc.binary_length(kept), 0)).as_py() or 0) if len(kept) else 0


def _dates(batch: Any) -> np.ndarray:
    """Each row's date as the page sorts it: date taken, else the file's date (0 when neither)."""
    def column(name: str) -> np.ndarray:
        if name not in batch.schema.names:
            return np.zeros(batch.num_rows, dtype=np.int64)
        return batch.column(name).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)

    taken, mtime = column("taken_ns"), column("mtime_ns")
    return np.where(taken != 0, taken, mtime)


def _folder_heads(path: Any) -> Any:
    """Each path up to its last slash (``os.path.dirname`` of a few distinct ones is taken later)."""
    import pyarrow.compute as pc

    return pc.replace_substring_regex(path, pattern="[^/]*$", replacement="", max_replacements=1)


def _folders(heads: Counter[str]) -> dict[str, int]:
    """Each folder that holds items, with the items under it at any depth (what its filter keeps)."""
    direct: Counter[str] = Counter()
    for head, count in heads.items():
        direct[os.path.dirname(head + "x")] += count  # the dirname of any name in that folder
    folders = dict(direct)
    for folder, count in direct.items():
        above, parent = folder, os.path.dirname(folder)
        while parent != above:  # up to the root ("/" is its own dirname)
            if parent in folders:
                folders[parent] += count
            above, parent = parent, os.path.dirname(parent)
    return folders


def _video_rows(batch: Any, at: int) -> list[tuple[int, str, float]]:
    import pyarrow.compute as pc

    media = batch.column("media")
    where = np.flatnonzero(pc.fill_null(pc.equal(media, "video"), False).to_numpy(zero_copy_only=False))
    if not len(where):
        return []
    paths = batch.column("path").take(where).to_pylist()
    times = (batch.column("frame_time").take(where).to_pylist() if "frame_time" in batch.schema.names
             else [None] * len(where))
    return [(at + int(i), p, float(t or 0.0)) for i, p, t in zip(where, paths, times)]


# ---------------------------------------------------------------- ordering
def _newest_first(dates: np.ndarray, paths: Any) -> np.ndarray:
    """Offsets by date, newest first, then by path (code point order, as Python sorts strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(dates):
        return np.zeros(0, dtype=np.int64)
    table = pa.table({"date": pa.array(dates, pa.int64()), "path": paths})
    return pc.sort_indices(table, sort_keys=[("date", "descending"), ("path", "ascending")]).to_numpy()


def _no_videos() -> dict[str, np.ndarray]:
    return {"offset": np.zeros(0, dtype=np.int64), "video": np.zeros(0, dtype=np.int64),
            "time": np.zeros(0, dtype=np.float64)}


def _videos(frames: list[tuple[int, str, float]]) -> dict[str, np.ndarray]:
    if not frames:
        return _no_videos()
    number: dict[str, int] = {}
    return {"offset": np.array([f[0] for f in frames], dtype=np.int64),
            "video": np.array([number.setdefault(f[1], len(number)) for f in frames], dtype=np.int64),
            "time": np.array([f[2] for f in frames], dtype=np.float64)}


def _first_frames(rows: int, videos: dict[str, np.ndarray], mask: np.ndarray | None) -> np.ndarray:
    """A mask over offsets: the rows kept (``mask``; all when None) less every video frame but
    each video's first kept one (the earliest frame time; the first in the table on a tie)."""
    keep = np.ones(rows, dtype=bool) if mask is None else mask.copy()
    offsets = videos["offset"]
    if not len(offsets):
        return keep
    kept = keep[offsets]
    keep[offsets] = False
    frames = np.flatnonzero(kept)
    if len(frames):
        # by video, then time, then offset: the first of each video is the one it shows
        pick = frames[np.lexsort((offsets[frames], videos["time"][frames], videos["video"][frames]))]
        group = videos["video"][pick]
        first = pick[np.concatenate([[True], group[1:] != group[:-1]])]
        keep[offsets[first]] = True
    return keep
