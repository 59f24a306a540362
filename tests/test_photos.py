"""Real camera and phone photos from ../shared/data/photos with micro-clip: formats, EXIF
orientation, broken files, and incremental runs on a real folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import mmembed
from mmembed.sources import walk

from conftest import shared_path


@pytest.fixture(scope="module")
def photos_index(tmp_path_factory: pytest.TempPathFactory, micro_clip: str):
    root = shared_path("data/photos")
    idx = mmembed.Index(str(tmp_path_factory.mktemp("photos") / "p.lancedb"), model=micro_clip)
    return idx, root, idx.ingest(root)


def test_every_candidate_is_indexed_or_skipped_with_a_reason(photos_index) -> None:
    idx, root, report = photos_index
    candidates = {f.path for f in walk([root])}
    skipped = {s.path: s.reason for s in report.skipped}
    table = set(idx.store.read_columns(["path"]).column("path").to_pylist())
    assert table | set(skipped) == candidates and not (table & set(skipped))
    assert report.added == len(table) == report.rows
    import importlib.util

    for path, reason in skipped.items():
        assert reason and path in candidates
        if path.endswith(".jxl") and importlib.util.find_spec("pillow_jxl") is None:
            assert "pillow-jxl-plugin" in reason
    # HEIC/HEIF/AVIF from phones all decode.
    heif_like = {p for p in candidates if p.lower().endswith((".heic", ".heif", ".avif"))}
    assert heif_like and heif_like <= table


def test_exif_orientation_on_real_photos(photos_index) -> None:
    idx, root, _ = photos_index
    rows = idx.store.table.search().where("path LIKE '%/photos/orientation/%'").select(
        ["path", "width", "height"]).limit(None).to_list()
    assert len(rows) == len(list((root / "orientation").glob("*.jpg")))
    for row in rows:
        name = Path(row["path"]).name.lower()
        if name.startswith("landscape"):
            assert row["width"] > row["height"], row
        else:
            assert row["height"] > row["width"], row


def test_second_run_is_all_unchanged(photos_index) -> None:
    idx, root, first = photos_index
    again = idx.ingest(root)
    assert again.unchanged == first.rows
    assert (again.added, again.updated, again.moved, again.removed) == (0, 0, 0, 0)
    assert len(again.skipped) == len(first.skipped)


def test_moving_a_subfolder_and_deleting_files(tmp_path: Path, micro_clip: str) -> None:
    src = shared_path("data/photos/phone_formats")
    root = tmp_path / "phone"
    shutil.copytree(src, root)
    idx = mmembed.Index(str(tmp_path / "m.lancedb"), model=micro_clip)
    first = idx.ingest(root)
    nature = sorted((root / "albums" / "nature").iterdir())
    shutil.move(root / "albums" / "nature", root / "nature-2024")
    (root / "webp" / "denali.webp").unlink()
    report = idx.ingest(root)
    assert report.moved == len(nature) and report.added == 0 and report.updated == 0
    assert report.removed == 1
    assert report.rows == first.rows - 1
