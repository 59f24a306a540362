"""The relevance cutoff: ``--min-score`` and ``--cutoff auto`` on the captioned Flickr8k dev table."""

from __future__ import annotations

import os

import pytest

import mmembed
from conftest import flickr_dev_captions, run_cli

REAL, NONSENSE = "a dog running on grass", "qwzx blorf"


@pytest.fixture
def dev(captioned_dev: dict[str, str]) -> mmembed.Index:
    return mmembed.Index(captioned_dev["db"])


def test_auto_cutoff_keeps_fewer_for_nonsense_than_for_a_real_query(dev: mmembed.Index) -> None:
    real = dev.search(REAL, limit=1000, cutoff="auto")
    nonsense = dev.search(NONSENSE, limit=1000, cutoff="auto")
    assert len(nonsense) < len(real) and 5 <= len(real) < 1000
    captions = flickr_dev_captions()
    dogs = sum(any("dog" in c for c in captions[os.path.basename(h.path)]) for h in real)
    assert dogs / len(real) >= 0.8  # what it keeps is mostly what was asked for
    full = dev.search(REAL, limit=1000)
    assert [h.id for h in real] == [h.id for h in full[: len(real)]]  # a cut of the same ranking


def test_the_full_path_cuts_where_the_snapshot_path_does(dev: mmembed.Index, monkeypatch: pytest.MonkeyPatch) -> None:
    quick = dev.search(REAL, limit=1000, cutoff="auto")
    monkeypatch.setenv("MMEMBED_QUICK", "0")  # LanceDB and a sample of the table for the background
    full = mmembed.Index(dev.config.db).search(REAL, limit=1000, cutoff="auto")
    assert [h.id for h in full] == [h.id for h in quick]


def test_min_score_is_a_floor_on_the_cosine_in_every_mode(dev: mmembed.Index) -> None:
    every = dev.search(REAL, limit=200)  # hybrid: captions hold the query's words
    assert every[0].mode == "hybrid" and any(h.words_score is not None for h in every)
    floor = sorted(h.vector_score for h in every)[100]  # a cosine (a fused rank score is ~0.03)
    kept = dev.search(REAL, limit=200, min_score=floor)
    assert [h.id for h in kept] == [h.id for h in every if h.words_score is not None or h.vector_score >= floor]
    assert len(every) > len(kept) >= 100 and any(h.words_score is None for h in kept)
    vector = dev.search(REAL, limit=200, mode="vector")
    floor = vector[40].score
    kept = dev.search(REAL, limit=200, mode="vector", min_score=floor)
    assert [h.id for h in kept] == [h.id for h in vector if h.score >= floor] and len(kept) >= 41


def test_bad_cutoffs_are_one_line(captioned_dev: dict[str, str]) -> None:
    for args, message in [(["--min-score", "2"], "Error: --min-score 2.0 must be between -1 and 1 (scores are cosines)"),
                          (["--cutoff", "sometimes"], "Error: --cutoff 'sometimes' is not one of none, auto")]:
        done = run_cli("search", REAL, "--db", captioned_dev["db"], *args)
        assert done.returncode == 1 and done.stderr.strip() == message
    done = run_cli("search", NONSENSE, "--db", captioned_dev["db"], "-n", "100", "--cutoff", "auto", "--paths")
    assert done.returncode == 0 and len(done.stdout.splitlines()) < 10


@pytest.mark.shared
def test_a_nonsense_query_keeps_nothing_where_only_some_photos_have_text(tmp_path, micro_clip: str) -> None:
    """Where a few photos carry a caption, a text query sits far closer to their fused vectors than to
    any picture alone: one background for the whole table kept every captioned photo for a nonsense
    query. Each group is measured against its own background now (``query.GroupStats``)."""
    import shutil

    from conftest import shared_path

    photos = tmp_path / "photos"
    photos.mkdir()
    captions = flickr_dev_captions()
    names = sorted(captions)[:80]
    for name in names:
        shutil.copy(shared_path("data/flickr8k/dev") / name, photos / name)
    manifest = tmp_path / "captions.csv"
    manifest.write_text("image,caption\n" + "".join(f"{n},{captions[n][0].replace(',', ' ')}\n" for n in names[:12]))
    index = mmembed.Index(tmp_path / "db", model=micro_clip)
    index.ingest(photos, captions=[manifest], ocr=False)
    for options in ({}, {"mode": "vector"}, {"where": "size > 0"}, {"where": "size > 0", "mode": "vector"}):
        kept = index.search(NONSENSE, limit=80, cutoff="auto", **options)
        assert len(kept) <= 1, (options, [(h.path, h.score, h.text_score is not None) for h in kept])
    assert index.search(REAL, limit=80, cutoff="auto")  # a real query still keeps what stands out
