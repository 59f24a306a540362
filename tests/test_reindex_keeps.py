"""``ingest --reindex`` keeps what stays valid of the table it rebuilds (manifest captions and
columns, the text read from the pictures, tags and their labels, fusion settings), makes again
what the new model changes, and says what it had to drop: through the real CLI, on real photos,
real OCR models and a real LanceDB table, switching from the tiny random model to micro-clip."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import mmembed
from conftest import run_cli, shared_path
from mmembed.ingest.table_tags import stored_settings

LABELS = ["room", "food", "animal", "person", "vehicle"]
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def _library(folder: Path, count: int = 8) -> Path:
    """``count`` COCO photos in ``folder`` and a manifest giving each two or more captions and a
    rating (an extra column); returns the manifest."""
    coco = shared_path("data/photos/coco")
    names = sorted(p.name for p in coco.glob("*.jpg"))[:count]
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(coco / name, folder / name)
    with open(shared_path("data/photos/coco_captions.csv"), newline="") as f:
        captions = [r for r in csv.DictReader(f) if r["image"] in names]
    manifest = folder.parent / "captions.csv"
    with open(manifest, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["image", "caption", "rating"])
        for i, row in enumerate(captions):
            out.writerow([row["image"], row["caption"], names.index(row["image"]) + 1 if i % 2 == 0 else ""])
    return manifest


def _sign(folder: Path) -> None:
    """A picture of a shop sign: words rendered in the pixels, for the OCR pass to read."""
    if not FONT.exists():
        pytest.skip(f"{FONT} is missing (a font to draw the sign with)")
    sign = Image.new("RGB", (520, 140), "white")
    ImageDraw.Draw(sign).text((24, 40), "HARBOR STREET BAKERY", fill="black", font=ImageFont.truetype(str(FONT), 34))
    sign.save(folder / "sign.png")


def _reindex(db: str, folder: Path, *args: str) -> list[str]:
    """``mmembed ingest FOLDER --reindex`` without OCR, as the user trial ran it; its warning lines."""
    done = run_cli("ingest", str(folder), "--db", db, "--reindex", "--no-ocr", "-q", *args)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stderr.splitlines() if line.startswith("warning:")]


def _rows(idx: mmembed.Index) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in idx.store.table.to_arrow().to_pylist()}


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory, tiny_model: str, micro_clip: str) -> dict:
    """A table made with the tiny model, captions from a manifest, OCR on, tags and mean fusion at
    w=0.35, then rebuilt with micro-clip; and, for comparison, the same photos ingested afresh
    with micro-clip and the same captions, weight and labels."""
    base = tmp_path_factory.mktemp("reindex-keeps")
    folder = base / "photos"
    manifest = _library(folder)
    _sign(folder)
    db = str(base / "db")
    old = mmembed.Index(db, model=tiny_model)
    old.ingest(folder, captions=[manifest], fusion_weight=0.35, ocr=True)
    old.tag(LABELS)
    before = _rows(old)
    assert "HARBOR" in (before["sign.png"]["ocr_text"] or "").upper()  # the OCR pass read the sign
    warnings = _reindex(db, folder, "--model", micro_clip)
    fresh = mmembed.Index(str(base / "fresh"), model=micro_clip)
    fresh.ingest(folder, captions=[manifest], fusion_weight=0.35, ocr=False)
    fresh.tag(LABELS)
    return {"db": db, "folder": folder, "before": before, "warnings": warnings, "idx": mmembed.Index(db),
            "fresh": _rows(fresh)}


def test_manifest_captions_and_columns_survive_a_reindex(rebuilt: dict) -> None:
    idx, before = rebuilt["idx"], rebuilt["before"]
    after = _rows(idx)
    photos = [name for name in before if name != "sign.png"]
    assert idx.info().model.endswith("micro-clip")
    for name in photos:
        assert after[name]["manifest_texts"] == before[name]["manifest_texts"] and after[name]["manifest_texts"], name
        assert after[name]["texts"] == before[name]["texts"] and after[name]["text_source"] == "manifest", name
        assert after[name]["rating"] == before[name]["rating"], name
    assert any(after[name]["rating"] is not None for name in photos)
    assert rebuilt["warnings"] == []  # nothing dropped: no warning


def test_text_and_fused_vectors_are_made_again_as_a_fresh_ingest_with_captions_makes_them(rebuilt: dict) -> None:
    after, fresh = _rows(rebuilt["idx"]), rebuilt["fresh"]
    assert rebuilt["idx"].info().dim == len(fresh["sign.png"]["image_vector"])  # micro-clip's vectors now
    for name, row in fresh.items():
        for column in ("image_vector", "text_vector", "fused_vector"):
            if row[column] is None:
                assert after[name][column] is None, (name, column)
            else:
                np.testing.assert_allclose(after[name][column], row[column], atol=1e-5, err_msg=f"{name} {column}")
    assert sum(row["text_vector"] is not None for row in after.values()) == len(after) - 1  # all but the sign


def test_text_read_from_the_pictures_survives_a_reindex(rebuilt: dict) -> None:
    after, before = _rows(rebuilt["idx"]), rebuilt["before"]
    for name, row in before.items():
        for column in ("ocr_text", "ocr_lines", "ocr_engine"):
            assert after[name][column] == row[column], (name, column)
    assert "HARBOR" in after["sign.png"]["words"].upper()  # the full-text column has it again
    done = run_cli("info", "--db", rebuilt["db"])
    assert done.returncode == 0, done.stderr
    assert f"ocr    {len(before)} of {len(before)} read" in done.stdout


def test_tags_are_made_again_with_the_new_model_and_the_same_labels(rebuilt: dict) -> None:
    idx, fresh = rebuilt["idx"], rebuilt["fresh"]
    after = _rows(idx)
    assert stored_settings(idx.store).labels == tuple(LABELS)  # so `ingest --tags` tags new photos alike
    for name, row in fresh.items():
        assert after[name]["tags"] == row["tags"], name
        assert after[name]["tags"], name
    top = after[sorted(after)[0]]["tags"][0]
    done = run_cli("search", "a photo", "--db", rebuilt["db"], "--tag", top, "-n", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_mean_fusion_and_its_weight_survive_a_reindex(rebuilt: dict) -> None:
    fusion = rebuilt["idx"].fusion
    assert (fusion.strategy.value, fusion.weight) == ("mean", 0.35)


def _trained(tmp_path: Path, model: str) -> tuple[str, Path, mmembed.Index]:
    folder = tmp_path / "photos"
    manifest = _library(folder)
    db = str(tmp_path / "db")
    idx = mmembed.Index(db, model=model)
    idx.ingest(folder, captions=[manifest], fusion_weight=0.3, ocr=False)
    idx.train_fusion(epochs=2)
    assert idx.fusion.strategy.value == "attention"
    return db, folder, idx


def test_attention_trained_for_the_old_model_falls_back_to_mean_with_a_warning(
        tmp_path: Path, tiny_model: str, micro_clip: str) -> None:
    db, folder, _ = _trained(tmp_path, tiny_model)
    warnings = _reindex(db, folder, "--model", micro_clip)
    assert len(warnings) == 1, warnings
    assert "attention fusion" in warnings[0] and "`mmembed fusion train`" in warnings[0]
    idx = mmembed.Index(db)
    assert (idx.fusion.strategy.value, idx.fusion.weight) == ("mean", 0.3)
    assert all(row["text_vector"] is not None for row in _rows(idx).values())  # captions kept: fusion can be trained
    idx.train_fusion(epochs=2)  # as the warning says
    assert idx.fusion.strategy.value == "attention"


def test_attention_stays_when_the_model_stays(tmp_path: Path, micro_clip: str) -> None:
    db, folder, idx = _trained(tmp_path, micro_clip)
    trained = idx.fusion.attention_id
    assert _reindex(db, folder) == []
    after = mmembed.Index(db)
    assert (after.fusion.strategy.value, after.fusion.attention_id, after.fusion.weight) == ("attention", trained, 0.3)
    hits = after.search("a table in a room", limit=3)  # the weights are there to encode with
    assert len(hits) == 3


def test_tags_whose_labels_were_not_kept_are_dropped_with_a_warning(tmp_path: Path, micro_clip: str) -> None:
    folder = tmp_path / "photos"
    _library(folder, count=4)
    db = str(tmp_path / "db")
    idx = mmembed.Index(db, model=micro_clip)
    idx.ingest(folder, ocr=False)
    idx.tag(LABELS)
    idx.store.drop_blobs()  # the labels gone (a table rebuilt before they were kept across a reindex)
    warnings = _reindex(db, folder)
    assert len(warnings) == 1 and "4 items lost their tags" in warnings[0] and "`mmembed tag`" in warnings[0], warnings
    assert all(row.get("tags") is None for row in _rows(mmembed.Index(db)).values())
