"""Search through the Python API on a real table: kinds of query, filters, and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mmembed
from mmembed import IndexEmptyError, QueryError



@pytest.fixture
def built(photos: Path, index: mmembed.Index) -> mmembed.Index:
    index.ingest(photos)
    return index


def test_text_search_returns_ranked_hits(built: mmembed.Index) -> None:
    hits = built.search("a red circle", limit=5)
    assert len(hits) == 5
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0001 for s in scores)
    assert all(Path(h.path).is_absolute() for h in hits)
    # Scores are cosines: they equal the dot product of stored and query vectors (to ~1e-3:
    # the query may come from the fp32 ONNX text tower, the vectors from bf16 weights).
    q = built.embed_text(["a red circle"])[0]
    top = built.embed_images([hits[0].path])[0]
    assert hits[0].score == pytest.approx(float(q @ top), abs=2e-3)


def test_image_query_finds_itself_first(built: mmembed.Index, photos: Path) -> None:
    for name in ("rotated_exif6.jpg", "phone.heic", "cmyk.jpg", "alpha.png"):
        hits = built.search(image=photos / name, limit=3)
        assert hits[0].path == str(photos / name)
        # Decoded exactly as ingest decoded it, so the vector is the same one.
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_text_plus_image_query_is_normalised_sum(built: mmembed.Index, photos: Path) -> None:
    hits = built.search("a dog", image=photos / "red.jpg", limit=17)
    t = built.embed_text(["a dog"])[0]
    i = built.embed_images([photos / "red.jpg"])[0]
    q = (t + i) / np.linalg.norm(t + i)
    v = built.embed_images([hits[0].path])[0]
    assert hits[0].score == pytest.approx(float(q @ v), abs=1e-4)


def test_where_filters_on_metadata(built: mmembed.Index) -> None:
    hits = built.search("anything", limit=20, where="format = 'PNG'")
    assert {h.format for h in hits} == {"PNG"}
    assert len(hits) == 5  # green, alpha, palette_transparent, gray16, lying_png
    tall = built.search("anything", limit=20, where="height > width")
    assert [Path(h.path).name for h in tall] == ["rotated_exif6.jpg"]


def test_limit_larger_than_table(built: mmembed.Index) -> None:
    assert len(built.search("x", limit=1000)) == 17


def test_bad_where_is_a_query_error(built: mmembed.Index) -> None:
    with pytest.raises(QueryError, match="not a valid filter"):
        built.search("x", where="no_such_column = 3")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": ""}, "empty query"),
        ({"text": "   "}, "empty query"),
        ({"text": "x", "limit": 0}, "limit must be at least 1"),
        ({"image": "/nowhere/q.jpg"}, "query image not found"),
    ],
)
def test_refusals(built: mmembed.Index, kwargs: dict, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        built.search(**kwargs)


def test_undecodable_query_image(built: mmembed.Index, tmp_path: Path) -> None:
    bad = tmp_path / "q.jpg"
    bad.write_text("nope")
    with pytest.raises(QueryError, match="q.jpg: not a readable image"):
        built.search(image=bad)


@pytest.mark.parametrize("query", ["x", "photos in Lisbon", "photos from December 2021"])
def test_empty_index(db: str, tiny_model: str, query: str) -> None:
    with pytest.raises(IndexEmptyError, match="mmembed ingest"):  # a place or date alone too (no "no photo in Lisbon")
        mmembed.Index(db, model=tiny_model).search(query)


def test_module_level_search_delegates(built: mmembed.Index) -> None:
    hits = mmembed.search("a red circle", db=built.config.db, limit=3)
    assert [h.path for h in hits] == [h.path for h in built.search("a red circle", limit=3)]


def test_info(built: mmembed.Index, tiny_model: str) -> None:
    info = built.info()
    assert info.rows == 17 and info.dim == 32 and info.model == tiny_model
    assert info.bytes and info.bytes > 17 * 32 * 4
    assert info.table == "images" and info.db == built.config.db


def test_a_where_with_a_second_statement_is_refused() -> None:
    from mmembed.errors import QueryError
    from mmembed.retrieval.query import SearchOptions

    with pytest.raises(QueryError, match="holds a ';': give one SQL condition"):
        SearchOptions(where="media = 'video'; DROP TABLE images")
    assert SearchOptions(where="path LIKE '%a;b%'").where == "path LIKE '%a;b%'"  # inside a literal it is text


def test_a_table_being_created_reads_as_no_index_yet(photos: Path, db: str, tiny_model: str) -> None:
    """The first ingest makes the table's folder before its first version; a reader
    that comes in between (or after a kill there) is told there is no index yet,
    and the next ingest creates the table over the empty folder."""
    import shutil

    import lancedb
    import pyarrow as pa

    lancedb.connect(db).create_table("images", schema=pa.schema([("a", pa.int64())]))
    shutil.rmtree(Path(db) / "images.lance" / "_versions")  # the folder, no version yet
    with pytest.raises(IndexEmptyError, match="mmembed ingest"):
        mmembed.Index(db, model=tiny_model).search("x")
    index = mmembed.Index(db, model=tiny_model)
    index.ingest(photos)
    assert index.info().rows == 17
    shutil.rmtree(Path(db) / "images.lance" / "_versions")  # data but no version: damage, not a table being made
    shutil.rmtree(Path(db) / "images.mmembed")
    with pytest.raises(mmembed.StoreError, match="cannot open table 'images'.*mmembed doctor"):
        mmembed.Index(db, model=tiny_model).search("x")


def test_items_with_a_bad_filter_raise_a_query_error(built: mmembed.Index) -> None:
    with pytest.raises(QueryError, match="no column named nope"):
        built.items(where="nope = 1")
    assert [Path(i["path"]).suffix for i in built.items(where="format = 'PNG'")].count(".png") >= 1
