"""The web app's rows at any size (issue 27): ``store.rowindex`` finds a row by id and pages by
date without holding the table. Checked on a real LanceDB table on disk, written in several
commits with deletions between them (so offsets cross fragments and skip deleted rows), with
ties of dates, missing dates, videos of several frames, tags, formats and folders: browse
pages, item lookups and the filters' counts must equal what reading every row gives (the web
app before issue 27), in-process and through a real ``mmembed serve``, and a change of the
table must be followed."""

from __future__ import annotations

import json
import os
import random
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from test_serve import get_json, search_api, start_server, stop_server

DIM = 32  # the tiny model's, so a search runs too
FOLDERS = ["/photos/a", "/photos/a/b", "/photos/c d", "/photos/ünï", "/other"]
TIMES = [None, 0, 1_600_000_000_000_000_000, 1_600_000_000_000_000_000, 1_700_000_000_000_000_000]


def make_rows(rng: random.Random, start: int, count: int) -> list[dict[str, Any]]:
    """Rows with ties of dates, missing dates, videos of several frames (one tie of frame times)."""
    rows = []
    i = start
    while len(rows) < count:
        folder = rng.choice(FOLDERS)
        if rng.random() < 0.08:  # a video: 2-4 frames, frame times out of order
            path, times = f"{folder}/clip{i:04d}.mp4", rng.sample([0.0, 1.5, 3.0, 4.5], rng.randint(2, 4))
            if rng.random() < 0.3:
                times.append(times[-1])  # a tie: the first in the table is shown
            mtime = rng.choice(TIMES[2:])
            for t in times:
                rows.append(_row(i, path, mtime, None, "MP4", None, "video", t, rng))
                i += 1
            continue
        name = rng.choice(["x", "y", "é", "Z", "a b"]) + f"{i % 7}.jpg"  # same dates: order by path
        path = f"{folder}/{name}" if rng.random() < 0.8 else f"{folder}/{i}/{name}"
        rows.append(_row(i, path, rng.choice(TIMES[2:]) + rng.choice([0, 5]), rng.choice(TIMES),
                         rng.choice(["JPEG", "PNG", None, ""]), rng.choice([None, "", "a caption"]),
                         rng.choice([None, "image"]), None, rng))
        i += 1
    return rows


def _row(i: int, path: str, mtime: int, taken: int | None, fmt: str | None, text: str | None,
         media: str | None, frame_time: float | None, rng: random.Random) -> dict[str, Any]:
    return {"id": f"{i:032x}", "path": path, "size": 1000 + i, "mtime_ns": mtime, "content_hash": f"{i:032x}",
            "taken_ns": taken, "format": fmt, "text": text, "media": media, "frame_time": frame_time,
            "tags": rng.choice([None, [], ["beach"], ["beach", "dog"], ["dog"]]),
            "ocr_text": "EXIT" if i % 11 == 0 else None,
            "ocr_lines": json.dumps([{"text": "EXIT", "box": [[0, 0], [1, 0], [1, 1], [0, 1]], "confidence": 0.9}])
            if i % 11 == 0 else None}


def add_rows(store: Any, rows: list[dict[str, Any]]) -> None:
    schema = store.table.schema
    vectors = np.random.default_rng(len(rows)).standard_normal((len(rows), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM)
    data = {f.name: [r.get(f.name) for r in rows] for f in schema if f.name in rows[0]}
    data["image_vector"] = data["fused_vector"] = flat
    columns = {f.name: data[f.name] if f.name in data else pa.nulls(len(rows), f.type) for f in schema}
    store.add(pa.Table.from_pydict(columns, schema=schema))


@pytest.fixture
def table(tmp_path: Path, tiny_model: str) -> dict[str, Any]:
    """A table written in three commits with deletions between them."""
    from mmembed.models.encoder import LOCAL_PREFIX, local_fingerprint
    from mmembed.models.fusion import FusionConfig
    from mmembed.store import Store, TableMeta

    folder = Path(tiny_model.removeprefix("local-dir:"))
    db = str(tmp_path / "db")
    store = Store(db, "images")
    meta = TableMeta(LOCAL_PREFIX + str(folder), None, local_fingerprint(folder), DIM, FusionConfig().to_dict())
    store.create(meta, DIM)
    store.ensure_columns({"tags": pa.list_(pa.string()), "tag_scores": pa.list_(pa.float32())})
    rng = random.Random(27)
    rows = []
    for part in range(3):
        new = make_rows(rng, len(rows) + 10_000 * part, 120)
        add_rows(store, new)
        rows += new
        gone = [r["id"] for r in rng.sample(rows, 9)]
        store.delete_ids(gone)
        rows = [r for r in rows if r["id"] not in gone]
    return {"db": db, "store": store, "rng": rng}


def reference(index: Any, where: str | None = None) -> list[str]:
    """The web app's order before issue 27: every row read, each video once by its first kept
    frame, sorted newest first, then by path."""
    rows = index.items(where=where)
    first: dict[str, dict[str, Any]] = {}
    out = []
    for row in rows:
        if row.get("media") != "video":
            out.append(row)
        elif row["path"] not in first or (row.get("frame_time") or 0) < (first[row["path"]].get("frame_time") or 0):
            first[row["path"]] = row
    out += first.values()
    out.sort(key=lambda r: (-(r.get("taken_ns") or r.get("mtime_ns") or 0), r["path"]))
    return [r["id"] for r in out]


def all_pages(browse: Any, size: int) -> list[str]:
    ids, offset = [], 0
    while True:
        page = browse(offset, size)
        ids += [r["id"] for r in page["items"]]
        if not page["more"]:
            return ids
        offset += size


def library_of(db: str) -> Any:
    from mmembed import Index
    from mmembed.serve.library import Library

    library = Library(Index(db, table="images"))
    library._ready.set()  # no warm-up thread: the first request builds the index
    return library


def test_browse_item_and_counts_equal_reading_every_row(table: dict[str, Any]) -> None:
    from mmembed.serve.filters import Filters
    from mmembed.serve.library import NotFound

    library = library_of(table["db"])
    index = library.index
    everything = index.items()
    assert sum(r.get("media") == "video" for r in everything) > 10
    for filters, where in [(Filters(), None), (Filters(folder="/photos/a"), "starts_with(path, '/photos/a/')"),
                           (Filters(format="PNG"), "format = 'PNG'"), (Filters(tags=("dog",)), None),
                           (Filters(where="frame_time > 0 OR frame_time IS NULL"), "frame_time > 0 OR frame_time IS NULL")]:
        def browse(offset: int, size: int, filters: Filters = filters) -> dict[str, Any]:
            page = library.browse(limit=size, offset=offset, filters=filters)
            return {"items": page.hits, "more": page.more, "total": page.total}

        want = reference(index, where or filters.where_sql(library.row_index().columns))
        assert all_pages(browse, 37) == want, filters
        assert library.browse(limit=5, filters=filters).total == len(want)
    # the last filter drops each video's frame at 0 s: the next kept frame stands for it
    assert any(r["media"] == "video" for r in library.browse(limit=200, filters=Filters(where="frame_time > 0")).hits)

    for row in random.Random(1).sample(everything, 40):
        got = library.item(row["id"])
        assert {k: got[k] for k in row} == row
        if row["id"] in {r["id"] for r in everything if r.get("ocr_text")}:
            assert got["ocr_lines"][0]["text"] == "EXIT"
    with pytest.raises(NotFound):
        library.item("f" * 32)
    video = next(r for r in everything if r.get("media") == "video")
    frames = [r for r in everything if r["path"] == video["path"]]
    assert library.item_by_path(video["path"])["frame_time"] == min(r["frame_time"] for r in frames)

    info = library.info()
    assert info["rows"] == len(everything)
    assert info["formats"] == [{"name": k, "count": v} for k, v in
                               sorted(Counter(r.get("format") or "unknown" for r in everything).items())]
    held = {os.path.dirname(r["path"]) for r in everything}  # each folder holding items, with all under it (its filter)
    assert info["folders"] == [{"path": k, "count": sum(r["path"].startswith(k + "/") for r in everything)}
                               for k in sorted(held)]
    assert info["captioned"] == sum(1 for r in everything if r.get("text"))
    tags = Counter(t for r in everything for t in (r.get("tags") or []))
    assert info["tags"] == [{"name": k, "count": v} for k, v in tags.most_common(40)]
    assert info["columns"] == [] and info["has_taken"]


def test_a_change_of_the_table_is_followed(table: dict[str, Any]) -> None:
    library = library_of(table["db"])
    store = table["store"]
    before = library.row_index()
    rows = library.index.items()
    # offsets shift under the index in hand (within its one-second version check): the row
    # read is checked against the id recorded there, and the index is built again
    late = max(rows, key=lambda r: int(r["id"], 16))
    store.delete_ids([r["id"] for r in rows[:30]])
    assert library.item(late["id"])["path"] == late["path"]
    assert library.row_index() is not before and library.row_index().rows == len(rows) - 30

    new = make_rows(table["rng"], 90_000, 12)
    add_rows(store, new)
    time.sleep(1.1)  # the version is checked at most once a second
    assert library.item(new[0]["id"])["path"] == new[0]["path"]
    assert library.browse(limit=1).total == len(reference(library.index))
    assert all_pages(lambda o, n: {"items": (p := library.browse(limit=n, offset=o)).hits, "more": p.more}, 50) \
        == reference(library.index)


def test_the_served_table_pages_finds_and_follows_changes(table: dict[str, Any]) -> None:
    """The same through a real ``mmembed serve``: every page, items by id, the counts, a change."""
    from mmembed import Index

    index = Index(table["db"], table="images")
    proc, url, errors = start_server("--db", table["db"])
    try:
        def browse(offset: int, size: int, **params: str) -> dict[str, Any]:
            query = urllib.parse.urlencode({"n": size, "offset": offset, **params})
            status, data = get_json(f"{url}api/items?{query}")
            assert status == 200, data
            return data

        assert all_pages(browse, 50) == reference(index)
        assert all_pages(lambda o, n: browse(o, n, folder="/photos/c d"), 20) == \
            reference(index, "starts_with(path, '/photos/c d/')")
        status, info = get_json(url + "api/info")
        assert status == 200 and info["rows"] == len(index.items()) and info["problem"] is None
        row = index.items()[-1]
        status, item = get_json(f"{url}api/items/{row['id']}")
        assert status == 200 and item["path"] == row["path"] and "ocr_lines" in item
        assert get_json(f"{url}api/items/{'0' * 31}z")[0] == 404

        new = make_rows(table["rng"], 95_000, 5)
        add_rows(table["store"], new)
        deadline = time.monotonic() + 20
        while get_json(f"{url}api/items/{new[0]['id']}")[0] != 200:
            assert time.monotonic() < deadline, "the new rows never showed"
            time.sleep(0.2)
        assert browse(0, 1)["total"] == len(reference(index))
        table["store"].delete_ids([new[0]["id"]])
        deadline = time.monotonic() + 20
        while get_json(f"{url}api/items/{new[0]['id']}")[0] != 404:
            assert time.monotonic() < deadline, "a deleted row is still shown"
            time.sleep(0.2)
        hits = search_api(url, q="photo", n=5)["hits"]  # after the warm-up's search (one at a time)
        assert len(hits) == 5 and all(get_json(f"{url}api/items/{h['id']}")[0] == 200 for h in hits)
    finally:
        assert stop_server(proc) == 0, "".join(errors)[-2000:]
