"""``mmembed dupes``: real variants of real photos, ingested with micro-clip, grouped."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path

import pytest

import mmembed
from mmembed.retrieval import dupes
from conftest import ROOT, run_cli, shared_path

sys.path.insert(0, str(ROOT))
from benchmarks.dupes import KINDS, MIRROR, make_variant  # noqa: E402  (the benchmark's own variant maker)

# different photos that the image-vector cosine alone grouped (issue 25): a skate park and a night
# street (0.973), two football plays (0.984), children on a lawn and a woman on a cliff (0.89, it
# passed the old pixel check); a highway with wind turbines and kites by a lake (0.889), an
# airplane and a kite in the sky (0.975)
LOOKALIKES = [("data/flickr8k/dev/3234890865_bb3c316968.jpg", "data/flickr8k/dev/3243094580_ccd01679f5.jpg"),
              ("data/flickr8k/dev/241346923_18bd84bea4.jpg", "data/flickr8k/dev/241347300_7c84ecf764.jpg"),
              ("data/flickr8k/dev/2121140070_a09644550b.jpg", "data/flickr8k/dev/3053813297_7ce5f87710.jpg"),
              ("data/flickr8k/dev/3053813297_7ce5f87710.jpg", "data/flickr8k/dev/3457604528_302396c08c.jpg"),
              ("data/flickr8k/dev/3435015880_eda46ff50f.jpg", "data/flickr8k/dev/3676460610_8c52e8a355.jpg"),
              ("data/photos/camera_exif/tests/30-type_error.jpg", "data/photos/coco/000000405279.jpg"),
              ("data/photos/coco/000000101787.jpg", "data/photos/coco/000000419474.jpg")]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, micro_clip: str, session_cache: Path) -> dict:
    """Photo A with one variant of every kind and a mirror, photo B with a byte copy, 8 unrelated
    photos, and the pairs of different photos that the vectors alone grouped."""
    dev = sorted(shared_path("data/flickr8k/dev").glob("*.jpg"))
    folder = tmp_path_factory.mktemp("dupes") / "photos"
    folder.mkdir()
    a, b, others = dev[0], dev[1], dev[2:10]
    shutil.copy(a, folder / "a.jpg")
    os.utime(folder / "a.jpg", (1_000_000_000, 1_000_000_000))  # the oldest: the keeper among equals
    rng = random.Random(0)
    variants = [make_variant(a, kind, rng, folder / f"a_{kind}").name for kind in KINDS]
    make_variant(a, MIRROR, rng, folder / "a_mirror")
    shutil.copy(b, folder / "b.jpg")
    shutil.copy(b, folder / "b copy.jpg")
    for src in others:
        shutil.copy(src, folder / src.name)
    lookalikes = sorted({name for pair in LOOKALIKES for name in pair})
    for name in lookalikes:
        shutil.copy(shared_path(name), folder / Path(name).name)
    db = str(tmp_path_factory.mktemp("dupes-db") / "db.lancedb")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CACHE_HOME", str(session_cache))
        mmembed.Index(db, model=micro_clip).ingest(folder)
    return {"db": db, "folder": folder, "variants": variants, "others": [p.name for p in others],
            "lookalikes": [Path(name).name for name in lookalikes]}


def names(group) -> list[str]:
    return sorted(Path(f.path).name for f in group.files)


def test_near_groups_the_photo_with_every_variant_and_the_copy(library: dict) -> None:
    groups = mmembed.Index(library["db"]).duplicates()
    by_size = {len(g.files): g for g in groups}
    assert sorted(by_size) == [2, 1 + len(KINDS)] and len(groups) == 2  # the unrelated photos stay alone
    family = by_size[1 + len(KINDS)]
    assert names(family) == sorted(["a.jpg", *library["variants"]]) and family.kind == "near"
    assert [Path(f.path).name for f in family.files if f.keep] == ["a.jpg"]  # most pixels, then oldest
    copies = by_size[2]
    assert names(copies) == ["b copy.jpg", "b.jpg"] and copies.kind == "exact" and copies.score == 1.0
    assert sum(f.keep for f in copies.files) == 1


def test_different_photos_that_look_alike_are_not_grouped(library: dict) -> None:
    grouped = {Path(f.path).name for g in mmembed.Index(library["db"]).duplicates() for f in g.files}
    assert not grouped & set(library["lookalikes"])
    assert "a_mirror.jpg" not in grouped  # a mirror image is an edit, not a copy (README, "mmembed dupes")


def test_the_decision_does_not_depend_on_the_cosine(library: dict) -> None:
    """--threshold in near mode only widens or narrows which pairs are checked: checking every
    pair of the library (cosine >= 0.01) groups the same photos, and no lookalike."""
    everything = mmembed.Index(library["db"]).duplicates(threshold=0.01)
    assert sorted(names(g) for g in everything) == sorted(names(g) for g in mmembed.Index(library["db"]).duplicates())


def test_a_photo_changed_since_indexing_is_left_out_with_a_note(tmp_path: Path, micro_clip: str,
                                                                 session_cache: Path) -> None:
    dev = sorted(shared_path("data/flickr8k/dev").glob("*.jpg"))
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(dev[0], folder / "a.jpg")
    make_variant(dev[0], "resize", random.Random(0), folder / "a_small")
    shutil.copy(dev[5], folder / "other.jpg")
    db = str(tmp_path / "db.lancedb")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CACHE_HOME", str(session_cache))
        mmembed.Index(db, model=micro_clip).ingest(folder)
    assert [names(g) for g in mmembed.Index(db).duplicates()] == [["a.jpg", "a_small.jpg"]]
    shutil.copy(dev[5], folder / "a_small.jpg")  # now another photo, not yet indexed
    done = run_cli("dupes", "--db", db, "--json", "-q")
    assert done.returncode == 0 and done.stdout == ""
    assert f"skipped: {folder / 'a_small.jpg'} changed since it was indexed" in done.stderr
    # a library that moved leaves every file out: the first NAMED are named, the rest counted in one line
    for name in ("a.jpg", "other.jpg"):
        os.utime(folder / name, ns=(1, 1))
    notes: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dupes, "NAMED", 1)
        assert mmembed.Index(db).duplicates(threshold=0.01, notes=notes.append) == []
    assert len(notes) == 2 and notes[0].startswith("skipped: ") and "changed since it was indexed" in notes[0]
    assert notes[1].startswith("skipped: 2 more files changed since they were indexed or are gone"), notes


def test_exact_mode_finds_only_byte_copies_and_nothing_is_touched(library: dict) -> None:
    before = sorted(p.name for p in library["folder"].iterdir())
    groups = mmembed.Index(library["db"]).duplicates(mode="exact")
    assert [names(g) for g in groups] == [["b copy.jpg", "b.jpg"]]
    assert sorted(p.name for p in library["folder"].iterdir()) == before


def test_cli_json_one_group_per_line_and_paths_of_the_extras(library: dict) -> None:
    done = run_cli("dupes", "--db", library["db"], "--json", "-q")
    assert done.returncode == 0, done.stderr
    groups = [json.loads(line) for line in done.stdout.splitlines()]
    assert [g["group"] for g in groups] == [1, 2]
    assert all(sum(f["keep"] for f in g["files"]) == 1 for g in groups)
    assert {"id", "path", "size", "width", "height", "date_ns", "keep"} == set(groups[0]["files"][0])
    assert "Nothing was changed." in done.stderr
    extras = run_cli("dupes", "--db", library["db"], "--paths", "-q")
    lines = extras.stdout.splitlines()
    assert len(lines) == len(KINDS) + 1 and all(os.path.isabs(p) for p in lines)
    assert not any(p.endswith("/a.jpg") for p in lines)
    nul = run_cli("dupes", "--db", library["db"], "-0", "-q")  # for xargs -0: the same paths, NUL-ended
    assert nul.returncode == 0 and nul.stdout.endswith("\0") and nul.stdout.split("\0")[:-1] == lines
    both = run_cli("dupes", "--db", library["db"], "-0", "--paths")
    assert both.returncode == 2 and "each choose what is printed" in both.stderr


def test_cli_html_gallery_of_the_groups(library: dict, tmp_path: Path) -> None:
    out = tmp_path / "dupes.html"
    done = run_cli("dupes", "--db", library["db"], "--html", str(out), "-q")
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert page.count("<h2>") == 2 and page.count('src="data:image/jpeg;base64,') == len(KINDS) + 3


@pytest.mark.parametrize("args, message", [
    (["--threshold", "1.5"], "Error: --threshold 1.5 must be above 0 and at most 1 (a cosine)"),
    (["--mode", "fuzzy"], "Error: --mode 'fuzzy' is not one of exact, near, similar"),
])
def test_bad_options_are_one_line(library: dict, args: list[str], message: str) -> None:
    done = run_cli("dupes", "--db", library["db"], *args)
    assert done.returncode == 1 and done.stderr.strip() == message


def test_dupes_on_an_empty_index_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "none.lancedb").mkdir()
    done = run_cli("dupes", "--db", str(tmp_path / "none.lancedb"))
    assert done.returncode == 1
    assert done.stderr.strip() == (f"Error: the index in {tmp_path / 'none.lancedb'} (table 'images') is empty; "
                                   "run `mmembed ingest PATH` first")
    for command in (["dupes"], ["search", "dog"], ["tag", "--labels", "dog"], ["index"], ["fusion", "apply"]):
        done = run_cli(*command, "--db", str(tmp_path / "typo.lancedb"))  # a mistyped --db is not an empty one
        assert done.returncode == 1 and done.stderr.strip() == (
            f"Error: no database at {tmp_path / 'typo.lancedb'}; check --db (or MMEMBED_DB), or make one with `mmembed ingest PATH`"), command
    assert not (tmp_path / "typo.lancedb").exists()
