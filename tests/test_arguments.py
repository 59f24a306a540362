"""Library arguments: a lone string is one item, wrong types and unknown keywords name the parameter.

Split by feature from test_hardening.py (issue 15's regression tests: each failed on the main
before its fix; the CLI is run as the real entry point, concurrency as real processes).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import mmembed
from mmembed import ConfigError, QueryError

from conftest import N_FIXTURES


# ---------------------------------------------------------------- 6. a lone string is one item

def test_a_single_string_is_one_item(built: str, photos: Path, tmp_path: Path, tiny_model: str) -> None:
    idx = mmembed.Index(built)
    assert idx.embed_text("a cat").shape == (1, 32)
    assert idx.embed_images(str(photos / "red.jpg")).shape == (1, 32)
    one = [h.path for h in idx.search("a red circle", negatives="blurry", limit=5)]
    assert one == [h.path for h in idx.search("a red circle", negatives=["blurry"], limit=5)]
    # exclude and captions as plain strings
    (photos / "sub").mkdir()
    shutil.copy(photos / "red.jpg", photos / "sub" / "red2.jpg")
    manifest = tmp_path / "captions.csv"
    manifest.write_text("image,caption\nphotos/green.png,a green square\n")
    fresh = mmembed.Index(str(tmp_path / "fresh.lancedb"), model=tiny_model)
    report = fresh.ingest(photos, exclude="sub/*", captions=str(manifest))
    assert report.added == N_FIXTURES
    assert {h.text for h in fresh.search("green", target="text", limit=1)} == {"a green square"}


@pytest.mark.parametrize(("call", "error", "names"), [
    (lambda idx: idx.search(123), QueryError, "search text"),
    (lambda idx: idx.search("a cat", where=1), QueryError, "where"),
    (lambda idx: idx.search("a cat", image_weight="0.5"), QueryError, "image_weight"),
    (lambda idx: idx.search("a cat", limit="5"), QueryError, "limit"),
    (lambda idx: idx.search("a cat", negatives=[1]), QueryError, "negatives"),
    (lambda idx: idx.ingest(42), ConfigError, "paths"),
    (lambda idx: idx.ingest(".", exclude=[3]), ConfigError, "exclude"),
    (lambda idx: idx.ingest(".", hidden="yes"), ConfigError, "hidden"),
    (lambda idx: idx.ingest(".", fusion_weight="0.3"), ConfigError, "fusion_weight"),
    (lambda idx: idx.embed_text([1]), ConfigError, "texts"),
])
def test_wrong_types_name_the_parameter(built: str, call, error: type, names: str) -> None:
    with pytest.raises(error, match=names):
        call(mmembed.Index(built))


def test_unknown_keyword_names_the_valid_ones(built: str) -> None:
    with pytest.raises(TypeError, match="unknown argument.*limt.*valid:.*limit"):
        mmembed.Index(built).search("a cat", limt=3)
