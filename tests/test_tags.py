"""Zero-shot tags: ``mmembed tag``, ``search --tag``, ``ingest --tags``, on real photos with micro-clip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import mmembed
from conftest import run_cli, shared_path

LABELS = ["dog", "water", "bicycle", "snow", "child", "ball"]


@pytest.fixture
def tagged(tmp_path: Path, micro_clip: str) -> dict:
    dev = sorted(shared_path("data/flickr8k/dev").glob("*.jpg"))[:12]
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for src in dev:
        shutil.copy(src, folder / src.name)
    db = str(tmp_path / "db")
    idx = mmembed.Index(db, model=micro_clip)
    idx.ingest(folder)
    report = idx.tag(LABELS)
    assert report.rows == 12 and report.labels == len(LABELS)
    return {"db": db, "folder": folder, "idx": idx}


def stored(idx: mmembed.Index) -> dict[str, tuple[list[str], list[float]]]:
    rows = idx.store.read_columns(["path", "tags", "tag_scores"]).to_pylist()
    return {Path(r["path"]).name: (r["tags"], r["tag_scores"]) for r in rows}


def test_top_tag_is_the_zero_shot_argmax(tagged: dict) -> None:
    from mmembed.models.vocabulary import TEMPLATES

    idx = tagged["idx"]
    prompts = idx.embed_text([t.format(label) for label in LABELS for t in TEMPLATES])
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
    label_vecs = prompts.reshape(len(LABELS), len(TEMPLATES), -1).mean(axis=1)
    label_vecs /= np.linalg.norm(label_vecs, axis=1, keepdims=True)
    data = idx.store.read_columns(["path", "image_vector", "tags", "tag_scores"]).to_pylist()
    for row in data:
        vec = np.asarray(row["image_vector"], dtype=np.float32)
        assert row["tags"][0] == LABELS[int(np.argmax(label_vecs @ vec))]
        assert len(row["tags"]) == len(row["tag_scores"]) <= 5
        assert row["tag_scores"] == sorted(row["tag_scores"], reverse=True)
        assert all(s >= 0.1 for s in row["tag_scores"][1:])


def test_tags_survive_reingest_and_moves_and_retagging_replaces_them(tagged: dict) -> None:
    idx, folder = tagged["idx"], tagged["folder"]
    before = stored(idx)
    name = sorted(before)[0]
    (folder / name).rename(folder / "sub" / name)  # a move: the row keeps its vectors and tags
    report = idx.ingest(folder)
    assert report.moved == 1
    after = stored(idx)
    assert after == before
    idx.tag(["cat", "car"])
    retagged = stored(idx)
    assert {t for tags, _ in retagged.values() for t in tags} <= {"cat", "car"}


def test_search_tag_and_where_work_together(tagged: dict) -> None:
    idx = tagged["idx"]
    first = stored(idx)
    label = max(LABELS, key=lambda lab: sum(lab in tags for tags, _ in first.values()))
    carrying = {n for n, (tags, _) in first.items() if label in tags}
    hits = idx.search("a photo", tags=[label], limit=50)
    assert {Path(h.path).name for h in hits} == carrying and hits[0].extra["tags"]
    both = idx.search("a photo", tags=[label], where="width > 10000", limit=50)
    assert both == []
    done = run_cli("search", "a photo", "--db", tagged["db"], "--tag", label, "--where", "format = 'JPEG'", "--paths")
    assert done.returncode == 0 and {Path(p).name for p in done.stdout.splitlines()} == carrying
    also = run_cli("search", "a photo", "--db", tagged["db"], "--where", f"array_has(tags, '{label}')", "--paths")
    assert {Path(p).name for p in also.stdout.splitlines()} == carrying


def test_ingest_tags_tags_new_rows_with_the_tables_labels(tagged: dict) -> None:
    extra = sorted(shared_path("data/flickr8k/dev").glob("*.jpg"))[20:23]
    for src in extra:
        shutil.copy(src, tagged["folder"] / src.name)
    done = run_cli("ingest", str(tagged["folder"]), "--db", tagged["db"], "--tags", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tagged"] == 3
    rows = stored(tagged["idx"])
    assert all(tags and set(tags) <= set(LABELS) for tags, _ in rows.values())


def test_cli_tag_prints_a_summary(tagged: dict, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("# animals and things\ndog\n\nwater  # a comment after a label\n  bicycle  \n  # not a label\n")
    done = run_cli("tag", "--db", tagged["db"], "--labels-file", str(labels), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rows"] == 12 and summary["labels"] == 3 and sum(c for _, c in summary["top"]) >= 12
    assert {label for label, _ in summary["top"]} <= {"dog", "water", "bicycle"}, summary["top"]


@pytest.mark.parametrize("args, message", [
    (["--labels", " , ,"], "Error: the label list is empty; give labels, e.g. --labels \"beach,cat,receipt\" (or none, for the built-in set)"),
    (["--labels", "dog", "--threshold", "1.5"], "Error: --threshold 1.5 must be between 0 and 1 (a probability)"),
])
def test_bad_tag_input_is_one_line(tagged: dict, args: list[str], message: str) -> None:
    done = run_cli("tag", "--db", tagged["db"], *args)
    assert done.returncode == 1 and done.stderr.strip() == message


def test_tag_on_an_empty_index_and_tag_filter_on_an_untagged_one(tmp_path: Path, micro_clip: str) -> None:
    (tmp_path / "none").mkdir()
    done = run_cli("tag", "--db", str(tmp_path / "none"), "--labels", "dog")
    assert done.returncode == 1 and "is empty; run `mmembed ingest PATH` first" in done.stderr
    folder = tmp_path / "p"
    folder.mkdir()
    shutil.copy(sorted(shared_path("data/flickr8k/dev").glob("*.jpg"))[0], folder / "a.jpg")
    mmembed.Index(str(tmp_path / "db"), model=micro_clip).ingest(folder)
    done = run_cli("search", "dog", "--db", str(tmp_path / "db"), "--tag", "dog")
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: no item in this index has tags yet; run `mmembed tag` first"
