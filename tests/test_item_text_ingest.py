"""Item text through real ingest runs: every source reaches the table, text changes re-encode
only text, manifests add filterable columns, and fusion/targets/composite queries work."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmembed
from mmembed.store import Store

from conftest import FIXTURE_IMAGES, run_cli

XMP = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/">
<dc:description><rdf:Alt><rdf:li xml:lang="x-default">a lighthouse at dusk</rdf:li></rdf:Alt></dc:description>
<dc:subject><rdf:Bag><rdf:li>coast</rdf:li><rdf:li>sea</rdf:li></rdf:Bag></dc:subject>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


def rows(db: str) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in Store(db).table.to_arrow().to_pylist()}


@pytest.fixture
def captioned(photos: Path) -> Path:
    """Fixture photos with one caption of every kind written next to or into them."""
    (photos / "red.jpg.txt").write_text("a red ball on a table\n")
    (photos / "green.json").write_text(json.dumps({"caption": ["a green field", "grass in spring"], "tags": ["nature"]}))
    (photos / "blue.xmp").write_text(XMP)
    exif = Image.Exif()
    exif[0x010E] = "a yellow taxi in the rain"
    Image.open(photos / "yellow.bmp").save(photos / "taxi.jpg", exif=exif.tobytes())
    return photos


def test_every_text_source_reaches_the_table(captioned: Path, db: str, tiny_model: str) -> None:
    manifest = captioned.parent / "captions.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "caption", "album", "stars"])
        w.writerow(["photos/purple.tiff", "a purple flower", "garden", "4"])
        w.writerow(["photos/purple.tiff", "violet petals", "garden", "4"])
        w.writerow(["photos/red.jpg", "manifest loses to the sidecar", "kitchen", "2"])
    idx = mmembed.Index(db, model=tiny_model)
    report = idx.ingest(captioned, captions=[manifest])
    assert report.added == 18
    table = rows(db)
    assert (table["red.jpg"]["text"], table["red.jpg"]["text_source"]) == ("a red ball on a table", "sidecar")
    assert table["green.png"]["texts"] == ["a green field", "grass in spring", "nature"]
    assert table["blue.webp"]["texts"][0] == "a lighthouse at dusk" and "coast, sea" in table["blue.webp"]["texts"]
    assert (table["taxi.jpg"]["text"], table["taxi.jpg"]["text_source"]) == ("a yellow taxi in the rain", "embedded")
    assert table["purple.tiff"]["texts"] == ["a purple flower", "violet petals"]
    assert table["purple.tiff"]["text_source"] == "manifest"
    assert table["red.jpg"]["manifest_texts"] == ["manifest loses to the sidecar"]  # kept, not chosen
    assert table["cyan.jp2"]["text"] is None and table["cyan.jp2"]["text_vector"] is None
    # Extra manifest columns are typed, filterable columns.
    assert (table["purple.tiff"]["album"], table["purple.tiff"]["stars"]) == ("garden", 4)
    hits = idx.search("anything", where="album = 'garden' AND stars >= 4", limit=20)
    assert [Path(h.path).name for h in hits] == ["purple.tiff"]
    assert hits[0].extra["album"] == "garden" and hits[0].to_dict()["stars"] == 4
    # The stored text vector is the mean of the caption vectors; the fused one follows the table's config.
    caps = idx.embed_text(["a purple flower", "violet petals"])
    expected = caps.mean(axis=0) / np.linalg.norm(caps.mean(axis=0))
    np.testing.assert_allclose(table["purple.tiff"]["text_vector"], expected, atol=1e-5)
    image = np.asarray(table["purple.tiff"]["image_vector"])
    fused = 0.2 * image + 0.8 * expected
    np.testing.assert_allclose(table["purple.tiff"]["fused_vector"], fused / np.linalg.norm(fused), atol=1e-5)
    np.testing.assert_allclose(table["cyan.jp2"]["fused_vector"], table["cyan.jp2"]["image_vector"], atol=1e-6)


def test_precedence_is_configurable_and_path_words_count(captioned: Path, db: str, tiny_model: str) -> None:
    trip = captioned / "germany" / "2019"
    trip.mkdir(parents=True)
    shutil.copy(FIXTURE_IMAGES / "orange.ppm", trip / "beach_day-03.ppm")
    manifest = captioned.parent / "m.jsonl"
    manifest.write_text(json.dumps({"path": str(captioned / "red.jpg"), "text": "from the manifest"}) + "\n")
    idx = mmembed.Index(db, model=tiny_model)
    idx.ingest(captioned, captions=[manifest], text_sources=["manifest", "sidecar", "embedded"], path_text=True)
    table = rows(db)
    assert table["red.jpg"]["texts"] == ["from the manifest", "red"]
    assert table["red.jpg"]["text_source"] == "manifest+path"
    assert table["beach_day-03.ppm"]["texts"] == ["germany 2019 beach day"]
    assert table["beach_day-03.ppm"]["text_source"] == "path"


def test_changed_caption_updates_text_without_reencoding_the_image(captioned: Path, db: str, index: mmembed.Index) -> None:
    index.ingest(captioned)
    before = rows(db)["red.jpg"]
    target = captioned / "red.jpg"
    st = target.stat()
    # Scramble the image's bytes but keep size and mtime: re-encoding it would change its vector.
    target.write_bytes(os.urandom(st.st_size))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    (captioned / "red.jpg.txt").write_text("a red apple on a plate")
    report = index.ingest(captioned)
    assert report.text_updated == 1 and report.updated == 0 and report.added == 0
    assert report.unchanged == 17 and report.skipped == []
    after = rows(db)["red.jpg"]
    assert after["text"] == "a red apple on a plate" and after["id"] == before["id"]
    assert after["image_vector"] == before["image_vector"]
    assert after["text_vector"] != before["text_vector"]
    new_text = index.embed_text(["a red apple on a plate"])[0]
    np.testing.assert_allclose(after["text_vector"], new_text, atol=1e-5)
    assert after["fused_vector"] != before["fused_vector"]
    # Removing the sidecar removes the text; the fused vector falls back to the image.
    (captioned / "red.jpg.txt").unlink()
    assert index.ingest(captioned).text_updated == 1
    gone = rows(db)["red.jpg"]
    assert gone["text"] is None and gone["text_vector"] is None
    np.testing.assert_allclose(gone["fused_vector"], gone["image_vector"], atol=1e-6)


def test_manifest_captions_survive_a_run_without_the_manifest(photos: Path, db: str, index: mmembed.Index) -> None:
    manifest = photos.parent / "c.csv"
    manifest.write_text("image,caption\nred.jpg,a red circle\n")
    index.ingest(photos, captions=[manifest])
    report = index.ingest(photos)
    assert report.unchanged == 17 and report.text_updated == 0
    assert rows(db)["red.jpg"]["text"] == "a red circle"


def test_search_targets_and_image_to_text(captioned: Path, index: mmembed.Index) -> None:
    index.ingest(captioned)
    fused = index.search("a red ball on a table", limit=3)
    assert fused[0].target == "fused"
    text_hits = index.search(image=captioned / "red.jpg", target="text", limit=10)
    assert all(h.text for h in text_hits) and len(text_hits) == 4  # only the 4 items with text
    assert {h.target for h in text_hits} == {"text"}
    hit = next(h for h in text_hits if Path(h.path).name == "red.jpg")
    q = index.embed_images([captioned / "red.jpg"])[0]
    row = rows(index.config.db)["red.jpg"]
    assert hit.score == pytest.approx(float(q @ np.asarray(row["text_vector"])), abs=1e-4)
    assert hit.text_score == pytest.approx(hit.score, abs=1e-4)
    assert hit.image_score == pytest.approx(float(q @ np.asarray(row["image_vector"])), abs=1e-4)
    image_hits = index.search(image=captioned / "red.jpg", target="image", limit=1)
    assert Path(image_hits[0].path).name == "red.jpg" and image_hits[0].score == pytest.approx(1.0, abs=1e-4)
    # an image alone, no target named: photos that look like it (the image vectors), not the fused ones, where
    # a captioned photo's text half outranks the picture itself; the CLI and the quick path alike
    for hits in (index.search(image=captioned / "green.png", limit=3),
                 index.search(image=captioned / "green.png", limit=3, where="size > 0")):  # the LanceDB path
        assert hits[0].target == "image" and Path(hits[0].path).name == "green.png", [(h.path, h.target) for h in hits]
    done = run_cli("search", "--image", str(captioned / "green.png"), "--db", index.config.db, "--json", "-n", "1")
    assert done.returncode == 0, done.stderr
    top = json.loads(done.stdout.splitlines()[0])
    assert top["target"] == "image" and Path(top["path"]).name == "green.png", top


def test_composite_query_scoring(captioned: Path, index: mmembed.Index) -> None:
    index.ingest(captioned)
    hits = index.search("a red ball + table - rain", image=captioned / "green.png", image_weight=0.4,
                        negatives=["night"], target="image", limit=18)
    t = index.embed_text(["a red ball", "table"]).mean(axis=0)
    t /= np.linalg.norm(t)
    i = index.embed_images([captioned / "green.png"])[0]
    n = index.embed_text(["rain", "night"]).mean(axis=0)
    n /= np.linalg.norm(n)
    q = 0.4 * i + 0.6 * t
    q /= np.linalg.norm(q)
    q = q - 0.5 * n
    q /= np.linalg.norm(q)
    table = rows(index.config.db)
    for hit in hits[:5]:  # the captions hold the query's words: ranked hybrid, the cosine kept apart
        expected = float(q @ np.asarray(table[Path(hit.path).name]["image_vector"]))
        assert hit.vector_score == pytest.approx(expected, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    vector = index.search("a red ball + table - rain", image=captioned / "green.png", image_weight=0.4,
                          negatives=["night"], target="image", limit=18, mode="vector")
    for hit in vector[:5]:  # looks only: the score is that cosine
        assert hit.score == pytest.approx(float(q @ np.asarray(table[Path(hit.path).name]["image_vector"])), abs=1e-4)


def test_fusion_apply_switches_strategy_without_decoding(captioned: Path, db: str, index: mmembed.Index,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    index.ingest(captioned)
    before = rows(db)
    away = captioned.parent / "away"
    captioned.rename(away)  # apply works from stored vectors: the image files need not exist
    try:
        assert index.apply_fusion(strategy="concat", weight=0.3) == 18
    finally:
        away.rename(captioned)
    after = rows(db)
    assert index.fusion.strategy.value == "concat" and index.fusion.weight == 0.3
    red = after["red.jpg"]
    expected = np.concatenate([np.sqrt(0.3) * np.asarray(red["image_vector"]), np.sqrt(0.7) * np.asarray(red["text_vector"])])
    np.testing.assert_allclose(red["fused_vector"], expected, atol=1e-5)
    assert red["image_vector"] == before["red.jpg"]["image_vector"]
    hits = index.search("a red ball on a table", limit=3)
    q = index.embed_text(["a red ball on a table"])[0]
    top = after[Path(hits[0].path).name]
    expected_score = 0.3 * q @ np.asarray(top["image_vector"]) + 0.7 * q @ np.asarray(
        top["text_vector"] if top["text_vector"] is not None else top["image_vector"])
    # to ~1e-3: a plain text query is encoded by the fp32 ONNX text tower, embed_text by the model (bf16 here)
    assert hits[0].vector_score == pytest.approx(float(expected_score), abs=2e-3)  # (score: RRF where words match)
    from mmembed.store.snapshot import Snapshot

    snap = Snapshot.open(db, "images")  # written with the fused vectors' own width (64, not the model's 32)
    assert snap is not None and snap.info["fused"] and snap.vectors("fused").shape == (18, 64)
    quick = [(h.path, round(h.vector_score, 4)) for h in index.search("a red ball on a table", limit=5, mode="vector")]
    with monkeypatch.context() as patch:
        patch.setenv("MMEMBED_QUICK", "0")  # LanceDB's path
        full = [(h.path, round(h.vector_score, 4)) for h in mmembed.Index(db).search("a red ball on a table", limit=5, mode="vector")]
    assert quick == full
    # A later ingest keeps the recorded strategy and adds new rows in the new space.
    shutil.copy(FIXTURE_IMAGES / "red.jpg", captioned / "another.png")
    assert index.ingest(captioned).added == 1
    assert len(rows(db)["another.png"]["fused_vector"]) == 64


def test_fusion_train_through_the_cli(photos: Path, db: str, tiny_model: str) -> None:
    manifest = photos.parent / "two.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "caption"])
        for p in sorted(photos.iterdir()):
            w.writerow([p.name, f"a picture called {p.stem}"])
            w.writerow([p.name, f"{p.suffix[1:]} image number {len(p.stem)}"])
    assert run_cli("ingest", str(photos), "--db", db, "--model", tiny_model, "--captions", str(manifest), "-q").returncode == 0
    done = run_cli("fusion", "train", "--db", db, "--epochs", "3", "--json")
    assert done.returncode == 0, done.stderr
    assert "not writable" not in done.stderr and "Warning" not in done.stderr, done.stderr  # no torch warning leaks
    info = json.loads(done.stdout)
    assert info["items"] == 17 and info["captions"] == 34 and info["rows"] == 17
    idx = mmembed.Index(db)
    assert idx.fusion.strategy.value == "attention" and idx.fusion.attention_id == info["id"]
    assert "epoch 3/3" in done.stderr
    hits = idx.search("a picture called red", limit=3)
    assert hits and hits[0].target == "fused"
    applied = run_cli("fusion", "apply", "--fusion", "mean", "--db", db)
    assert applied.returncode == 0 and "17 rows" in applied.stderr
    # Weights trained for this encoder are refused for another one.
    from mmembed.models.fusion import load_attention

    blob = idx.store.load_blob("attention")[0]
    with pytest.raises(mmembed.ModelMismatchError):
        load_attention(blob, "sha256:someone-else")


def test_fusion_train_needs_multi_caption_items(photos: Path, index: mmembed.Index) -> None:
    index.ingest(photos)
    with pytest.raises(mmembed.ConfigError, match="two or more captions"):
        index.train_fusion()


def test_eval_command_runs(photos: Path, tiny_model: str, tmp_path: Path) -> None:
    manifest = tmp_path / "eval.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "caption"])
        for p in sorted(photos.iterdir()):
            for k in range(3):
                w.writerow([p.name, f"{p.stem} shot {k}"])
    done = run_cli("eval", str(photos), "--captions", str(manifest), "--model", tiny_model,
                   "--train", str(photos), "--train-captions", str(manifest), "--epochs", "2", "--sweep", "0.5")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["images"] == 17 and result["captions"] == 51
    assert set(result["fusion_protocol"]) == {"image_only", "text_only", "mean", "concat", "attention"}
    assert set(result["text_to_image"]) == {"R@1", "R@5", "R@10"}
    assert set(result["weight_sweep"]["0.5"]) == {"mean", "concat"}


def test_interrupted_fusion_apply_is_visible_and_resumable(captioned: Path, db: str, index: mmembed.Index, monkeypatch) -> None:
    index.ingest(captioned)
    import mmembed.ingest.table_fusion as ops

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process died right after the settings were recorded

    monkeypatch.setattr(ops, "refuse_table", crash)
    with pytest.raises(KeyboardInterrupt):
        index.apply_fusion(strategy="concat")
    monkeypatch.undo()
    fresh = mmembed.Index(db)
    assert fresh.meta.fusion_pending
    with pytest.raises(mmembed.QueryError, match="fusion apply"):
        fresh.search("a red ball")
    assert fresh.search("a red ball", target="image", limit=1)
    assert fresh.apply_fusion() == 18
    assert not fresh.meta.fusion_pending and fresh.fusion.strategy.value == "concat"
    assert len(rows(db)["red.jpg"]["fused_vector"]) == 64
    assert fresh.search("a red ball", limit=1)[0].target == "fused"
