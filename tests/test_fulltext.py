"""Words and looks together (issue 22): the ``words`` column, LanceDB's full-text index on it and
hybrid ranking, through the real CLI on real pictures whose words come from real sidecars.

One table is built once for the module (tiny model, 6 pictures) and only read by most tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURE_IMAGES, run_cli
from test_serve import browser, start_server, stop_server  # noqa: F401 - browser is a fixture

TEXTS = {  # picture -> its sidecar caption (the words a screenshot or a sign would carry)
    "minutes.png": ("green.png", "会议室 第三季度会议纪要 2026"),
    "plate.jpg": ("red.jpg", "Parked car, plate KX-482-PD"),
    "apart.webp": ("blue.webp", "KX series, model 482, PD kit; 会议 纪要 要点"),  # the grams, never in one piece
    "bakery.png": ("alpha.png", "Harbor Street Bakery receipt, total 12.40"),
    "cafe.jpg": ("cmyk.jpg", "Café de Flore, Boulevard Saint-Germain"),
    "plain.bmp": ("yellow.bmp", None),
    "evil.ppm": ("orange.ppm", "<b>bold</b> <img src=x onerror=alert(1)> lighthouse KX-999"),
}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("words") / "pics"
    folder.mkdir()
    for name, (source, caption) in TEXTS.items():
        shutil.copy(FIXTURE_IMAGES / source, folder / name)
        if caption:
            (folder / name).with_suffix(".txt").write_text(caption, encoding="utf-8")
    db = str(folder.parent / "db.lancedb")
    done = run_cli("ingest", str(folder), "--db", db, "--model", tiny_model)
    assert done.returncode == 0, done.stderr
    return {"db": db, "folder": str(folder), "model": tiny_model}


def search(db: str, query: str, *args: str) -> list[dict]:
    """``mmembed search QUERY --json ARGS`` in this process (the CLI's own test is below)."""
    import mmembed

    flags = dict(zip(args[::2], args[1::2]))
    options = {k.lstrip("-").replace("-", "_"): v for k, v in flags.items() if k != "--tag"}
    hits = mmembed.Index(db).search(query, tags=[flags["--tag"]] if "--tag" in flags else (), **options)
    return [json.loads(json.dumps(h.to_dict(), default=str)) for h in hits]


def test_cli_search_json_shows_the_score_parts(library: dict) -> None:
    done = run_cli("search", "会议纪要", "--db", library["db"], "--json", "-n", "2")
    assert done.returncode == 0, done.stderr
    hits = [json.loads(line) for line in done.stdout.splitlines()]
    assert Path(hits[0]["path"]).name == "minutes.png" and hits[0]["words_score"] > 0
    assert hits[0]["terms"] == ["会议纪要"] and hits[0]["mode"] == "hybrid" and hits[1]["words_score"] is None
    bad = run_cli("search", "x", "--db", library["db"], "--mode", "words")
    assert bad.returncode == 1 and "--mode 'words' is not one of hybrid, vector, text" in bad.stderr


def names(hits: list[dict]) -> list[str]:
    return [Path(h["path"]).name for h in hits]


def test_chinese_without_spaces_and_code_parts_match_with_no_false_hits(library: dict) -> None:
    zh = search(library["db"], "会议纪要")
    assert names(zh)[0] == "minutes.png" and zh[0]["mode"] == "hybrid"
    assert zh[0]["words_score"] > 0 and zh[0]["terms"] == ["会议纪要"] and "第三季度会议纪要" in zh[0]["words"]
    assert [h for h in zh if h["words_score"] is not None] == zh[:1]  # "会议 纪 要" apart is no hit
    code = search(library["db"], "KX-482")
    assert names(code)[0] == "plate.jpg" and [h["words_score"] is not None for h in code].count(True) == 1
    assert code[0]["score"] == code[0]["fused_score"] > code[1]["score"] and -1 <= code[0]["vector_score"] <= 1
    accent = search(library["db"], "cafe flore", "--mode", "text")  # accents folded, terms anywhere
    assert names(accent) == ["cafe.jpg"]


def test_modes_force_one_ranking(library: dict) -> None:
    vector = search(library["db"], "KX-482", "--mode", "vector")
    assert len(vector) == len(TEXTS) and all(h["mode"] == "vector" and h["words_score"] is None for h in vector)
    assert all(h["score"] == h["vector_score"] for h in vector)
    text = search(library["db"], "harbor receipt", "--mode", "text")
    assert names(text) == ["bakery.png"] and text[0]["score"] == text[0]["words_score"] > 0
    none = search(library["db"], "KX-483", "--mode", "text")
    assert none == []
    # the image vectors asked for: the pixels only, item text out of the ranking, unless a mode is named
    pixels = search(library["db"], "KX-482", "--target", "image")
    assert all(h["mode"] == "vector" and h["words_score"] is None for h in pixels)
    assert names(pixels) == names(search(library["db"], "KX-482", "--target", "image", "--mode", "vector"))
    both = search(library["db"], "KX-482", "--target", "image", "--mode", "hybrid")
    assert names(both)[0] == "plate.jpg" and both[0]["mode"] == "hybrid"
    quick = run_cli("search", "KX-482", "--target", "image", "--db", library["db"], "--json")  # the quick path too
    assert quick.returncode == 0 and {json.loads(x)["mode"] for x in quick.stdout.splitlines()} == {"vector"}
    # a query no item's words hold ranks by looks, as before words existed
    hybrid, vector = search(library["db"], "KX-483"), search(library["db"], "KX-483", "--mode", "vector")
    assert names(hybrid) == names(vector)  # (LanceDB's cosine and the snapshot's agree to float rounding)
    assert [h["score"] for h in hybrid] == pytest.approx([h["score"] for h in vector], abs=1e-5)


def test_where_and_cutoff_hold_in_hybrid(library: dict) -> None:
    assert "plate.jpg" not in names(search(library["db"], "KX-482", "--where", "format = 'JPEG' AND path NOT LIKE '%plate%'"))
    only = search(library["db"], "KX-482", "--where", "path LIKE '%plate%'")
    assert names(only) == ["plate.jpg"] and only[0]["words_score"] is not None
    cut = search(library["db"], "KX-482", "--cutoff", "auto")  # the word match stands out, whatever its cosine
    assert names(cut)[0] == "plate.jpg" and len(cut) < len(TEXTS)


def test_old_table_gains_words_and_index_at_next_ingest_and_tags_join(tmp_path: Path, library: dict) -> None:
    import lancedb

    import mmembed

    db = str(tmp_path / "old.lancedb")
    shutil.copytree(library["db"], db)
    table = lancedb.connect(db).open_table("images")
    for idx in table.list_indices():
        if idx.columns == ["words"]:
            table.drop_index(idx.name)
    table.drop_columns(["words"])  # as a table built before the column
    assert "words" not in table.schema.names
    before = search(db, "会议纪要")
    assert before[0]["mode"] == "vector"  # searches as before
    report = mmembed.Index(db).ingest(library["folder"])
    assert report.unchanged == len(TEXTS) and report.added == report.updated == 0  # nothing encoded again
    table = lancedb.connect(db).open_table("images")
    assert any(idx.columns == ["words"] for idx in table.list_indices())
    assert names(search(db, "会议纪要"))[0] == "minutes.png"
    mmembed.Index(db).tag(["zebracrossing", "lighthouse"])
    tagged = {r["path"].rsplit("/", 1)[-1]: r["tags"] for r in lancedb.connect(db).open_table("images")
              .search().select(["path", "tags"]).limit(None).to_list()}
    for tag in ("lighthouse", "zebracrossing"):  # every row's tags (the model's own scale: one or both) are words
        found = names(search(db, tag, "--mode", "text"))
        assert sorted(found) == sorted(n for n, tags in tagged.items() if tag in tags), tag
    assert all(tagged[n] for n in TEXTS)
    assert names(search(db, "lighthouse", "--tag", "lighthouse"))[0] in TEXTS


def test_a_small_ingest_leaves_the_table_as_it_is_and_its_new_words_are_found(tmp_path: Path, library: dict) -> None:
    """An ingest that adds one file neither rewrites the table (LanceDB's optimize merges every
    fragment under a million rows) nor waits for the FTS index: its words are found at once,
    through the snapshot and through LanceDB (``--where``), and a compaction keeps them."""
    import mmembed
    from mmembed.store import table as table_module
    from mmembed.store.fulltext import fts_index

    folder, db = tmp_path / "pics", str(tmp_path / "db.lancedb")
    shutil.copytree(library["folder"], folder)
    assert mmembed.Index(db, model=library["model"]).ingest(str(folder)).added == len(TEXTS)
    store = mmembed.Index(db).store
    before = store.table.stats()["fragment_stats"]["num_fragments"]
    shutil.copy(FIXTURE_IMAGES / "green.png", folder / "crossing.png")
    (folder / "crossing.txt").write_text("zebra crossing QX-771 at Elm Road", encoding="utf-8")
    assert mmembed.Index(db).ingest(str(folder)).added == 1
    store = mmembed.Index(db).store
    assert store.table.stats()["fragment_stats"]["num_fragments"] == before + 1  # not merged: the table was not rewritten
    assert store.table.index_stats(fts_index(store)).num_unindexed_rows == 1  # the index was not rebuilt for one row
    assert names(search(db, "QX-771 Elm"))[0] == "crossing.png"
    assert names(search(db, "QX-771 Elm", "--where", "path LIKE '%cross%'")) == ["crossing.png"]  # LanceDB's own FTS
    assert store.compact(force=True) and store.table.index_stats(fts_index(store)).num_unindexed_rows == 0
    assert names(search(db, "QX-771 Elm", "--where", "path LIKE '%cross%'")) == ["crossing.png"]
    assert table_module.COMPACT_FRAGMENTS > 1 and not store.needs_compaction()


def test_api_returns_score_parts(library: dict) -> None:
    import mmembed

    hits = mmembed.Index(library["db"]).search("bakery", mode="hybrid", limit=3)
    assert Path(hits[0].path).name == "bakery.png" and hits[0].terms == ["bakery"]
    assert hits[0].to_dict()["words_score"] == hits[0].words_score > 0


def test_web_app_marks_the_matched_words_as_text(library: dict, browser) -> None:  # noqa: F811
    import urllib.parse

    proc, url, errors = start_server("--db", library["db"])
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        tab = context.new_page()
        page_errors: list[str] = []
        tab.on("pageerror", lambda e: page_errors.append(str(e)))
        tab.on("dialog", lambda d: (page_errors.append("dialog " + d.message), d.dismiss()))
        tab.goto(url + "?q=" + urllib.parse.quote("kx-999"))
        tab.wait_for_selector(".card .words mark", timeout=30_000)
        first = tab.eval_on_selector(".card", """c => ({path: c.dataset.path, why: c.querySelector('.why').textContent,
            marks: [...c.querySelectorAll('.words mark')].map(m => m.textContent),
            words: c.querySelector('.words').textContent, tags: c.querySelectorAll('.words b, .words img').length})""")
        assert first["path"].endswith("evil.ppm") and first["marks"] == ["KX-999"]  # the item's own case
        assert "<b>bold</b> <img src=x onerror=alert(1)>" in first["words"] and first["tags"] == 0
        assert "looks " in first["why"] and "words " in first["why"]
        tab.click("#toggle-filters")
        tab.select_option("#mode", "vector")
        tab.wait_for_function("() => new URLSearchParams(location.search).get('mode') === 'vector'", timeout=10_000)
        tab.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=30_000)
        assert tab.eval_on_selector_all(".card .words mark", "ms => ms.length") == 0
        assert page_errors == []
    finally:
        context.close()
        assert stop_server(proc) == 0, "".join(errors)[-2000:]


def test_a_subtracted_term_keeps_its_items_out_of_the_word_ranking(library: dict) -> None:
    """"harbor - bakery": the vectors turn from "bakery", and an item whose words say "bakery" is no word
    match (its words lifted it to the top before). The same on the quick path and LanceDB's (a filter)."""
    for extra in ((), ("--where", "size > 0")):
        assert names(search(library["db"], "harbor receipt", "--mode", "text", *extra)) == ["bakery.png"]
        assert search(library["db"], "harbor receipt - bakery", "--mode", "text", *extra) == []
        hits = search(library["db"], "KX-482 - plate", *extra)
        assert all(h["words_score"] is None for h in hits), [(h["path"], h["words_score"]) for h in hits]
        kept = search(library["db"], "KX-482 - zebra", *extra)  # a term its words do not hold: still a match
        assert names(kept)[0] == "plate.jpg" and kept[0]["words_score"] is not None


def test_terms_match_as_the_index_compares_them() -> None:
    from mmembed.store.fulltext import contains_terms
    from mmembed.text.words import item_words, query_terms

    assert query_terms("Wi-Fi password?  Café") == ["wi-fi", "password", "cafe"]
    assert contains_terms("a scar on the door", ["car"]) is False and contains_terms("two cars", ["car"])
    # a word as a whole word or with a plural ending: "car" is not lifted by "cargo" or "Carol"
    assert not contains_terms("cargo ship, photo by Carol", ["car"]) and contains_terms("two buses", ["bus"])
    assert not contains_terms("as and at", ["a"]) and contains_terms("Harbor Street Bakery", ["bakery"])
    assert not contains_terms("Harbor Street Bakery", ["bak"])
    assert contains_terms("Pharmacy exitDL-101-LL", query_terms("DL-101"))  # OCR ran a code into a word
    assert contains_terms("第三季度会议纪要", ["会议纪要"]) and not contains_terms("会议 纪要", ["会议纪要"])
    words = item_words({"ocr_text": "Schedule AK-\n451-HJ", "path": "/home/u/trips/oslo/boarding_pass.png"})
    assert words == "Schedule AK-451-HJ\noslo boarding pass"  # a code wrapped at its hyphen, the name's words


def test_hybrid_queries_stay_on_the_quick_path_with_the_full_paths_hits(library: dict) -> None:
    """The snapshot carries each row's words (folded, ``words.bin``): a hybrid query is ranked by
    words and vectors without opening LanceDB, with the same hits, scores and BM25 as the full
    path (LanceDB's index finding the candidates); one whose terms no item holds by its vectors alone."""
    import subprocess
    import sys

    code = ("import json, sys\nimport mmembed\n"
            "hits = mmembed.Index(sys.argv[1]).search(sys.argv[2], limit=4)\n"
            "print(json.dumps([[h.path, round(h.score, 5), h.mode, h.words_score] for h in hits]))\n"
            "print('lancedb' in sys.modules, file=sys.stderr)\n")

    def cold(query: str, **env: str) -> tuple[list, bool]:
        import os

        done = subprocess.run([sys.executable, "-c", code, library["db"], query], capture_output=True, text=True,
                              timeout=120, env={**os.environ, **env})
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout), done.stderr.strip().splitlines()[-1] == "True"

    cold("warm up")  # the first search of a table exports its text tower
    quick, opened = cold("a zebra grazing in tall grass")
    assert not opened and [h[2] for h in quick] == ["hybrid"] * 4 and all(h[3] is None for h in quick)
    full, _ = cold("a zebra grazing in tall grass", MMEMBED_QUICK="0")
    assert quick == full
    for query in ("bakery receipt", "会议纪要", "KX-482"):
        matched, opened = cold(query)
        assert not opened and matched[0][3] > 0, query
        assert matched == cold(query, MMEMBED_QUICK="0")[0], query
    assert Path(cold("bakery receipt")[0][0][0]).name == "bakery.png"
    assert cold("grazing", MMEMBED_QUICK="1")[0][0][3] is None


def test_the_snapshot_word_check_agrees_with_the_term_rule(library: dict, tmp_path: Path) -> None:
    """``Snapshot.has_word_match`` against ``contains_terms`` row by row, on the library's own words:
    a whole word ("bakery"), not its start ("bak") or middle ("akery"); a code's part; Chinese inside
    a run; accents folded."""
    import lancedb

    from mmembed.store.snapshot import Snapshot
    from mmembed.text.words import contains_terms, query_terms

    snap = Snapshot.open(library["db"], "images")
    assert snap is not None and snap.info["words_bin"]
    rows = lancedb.connect(library["db"]).open_table("images").search().select(["words"]).limit(None).to_list()
    for query in ("bak", "bakery", "akery", "KX-482", "482-PD", "会议纪要", "纪要要点", "cafe flore", "café", "saint-germain",
                  "harbor bakery total", "harbor zebra", "lighthouse", "ighthouse", "12.40"):
        terms = query_terms(query)
        want = any(contains_terms(r["words"], terms) for r in rows)
        assert snap.has_word_match(terms) is want, query


@pytest.mark.parametrize("few", [20_000, 3])  # matches read one by one, or past 3 the numpy scan
def test_the_snapshot_word_scan_counts_as_the_term_rule(few: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``store.wordscan`` (numpy over ``words.bin``) against ``contains_terms``/``term_counts``
    row by row on made-up words: word starts after ASCII and non-ASCII characters, codes and
    Chinese inside runs, overlapping matches, accents; and the BM25 ranking against ``word_scores``
    (the LanceDB path's scoring of its candidates)."""
    import random

    import numpy as np

    from mmembed.store import wordscan
    from mmembed.store.fulltext import word_scores
    from mmembed.store.wordscan import best, rank_rows, term_rows

    monkeypatch.setattr(wordscan, "_FEW", few)
    from mmembed.text.words import contains_terms, fold, query_terms, term_counts

    rng = random.Random(7)
    vocab = ["car", "scar", "cars", "KX-482-PD", "plate", "会议纪要", "第三季度会议纪要", "café", "Über", "aa", "aaaa",
             "wi-fi", "_car", "車car", "（car）", "pass", "boarding_pass", "2023", "x2023y", "ŝcar", "the", "a",
             "cargo", "buses", "bus", "car車", "cares", "caré", "as", "carŝ"]
    texts = [" ".join(rng.choice(vocab) + rng.choice(["", ",", "\n"]) for _ in range(rng.randint(1, 8)))
             if rng.random() > 0.1 else None for _ in range(2000)]
    folded = [fold(t) if t else "" for t in texts]
    blob = np.frombuffer(b"".join(f.encode() + b"\n" if f else b"" for f in folded), np.uint8)
    bounds = np.concatenate([[0], np.cumsum([len(f.encode()) + 1 if f else 0 for f in folded])]).astype(np.int64)
    for term in ("car", "cars", "kx-482", "482", "会议纪要", "纪要", "cafe", "uber", "aa", "wi-fi", "2023", "the", "a",
                 "car）", "bus", "care"):
        rows, counts = term_rows(blob, bounds, term)
        want = {i: term_counts(f, term) for i, f in enumerate(folded) if f and term_counts(f, term)}
        assert dict(zip(rows.tolist(), counts.tolist())) == want, term
    items = sum(1 for f in folded if f)
    for query in ("car plate", "会议纪要 car", "aa pass", "the a", "cafe 2023", "zebra"):
        terms = query_terms(query)
        rows, scores = best(*rank_rows(blob, bounds, terms, items))
        held = [i for i, t in enumerate(texts) if contains_terms(t, terms)]
        assert sorted(rows.tolist()) == held, query
        stats = ({t: len(term_rows(blob, bounds, t)[0]) for t in terms}, items, float(bounds[-1]) / items)
        want = word_scores([texts[i] for i in rows], terms, stats)
        assert np.allclose(scores, want) and list(scores) == sorted(scores, reverse=True), query


def test_the_gram_index_finds_what_the_scan_finds() -> None:
    """``wordscan.indexed_term_rows`` (candidates from the 3-byte gram index, then the same
    exact count on their words) against the whole scan and ``term_counts``: rare and common
    terms, Chinese, codes' parts, terms under 3 bytes, terms no row holds."""
    import random

    import numpy as np

    from mmembed.store.wordscan import GramIndex, build_grams, indexed_term_rows, term_rows
    from mmembed.text.words import fold, term_counts

    rng = random.Random(3)
    vocab = ["car", "scar", "KX-482-PD", "会议纪要", "第三季度会议纪要", "café", "aa", "aaaa", "_car", "車car", "（car）",
             "boarding_pass", "x2023y", "the", "a", *[f"w{i}x" for i in range(300)]]
    folded = [fold(" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 8)))) if rng.random() > 0.1 else ""
              for _ in range(3000)]
    blob = np.frombuffer(b"".join(f.encode() + b"\n" if f else b"" for f in folded), np.uint8)
    bounds = np.concatenate([[0], np.cumsum([len(f.encode()) + 1 if f else 0 for f in folded])]).astype(np.int64)
    grams = GramIndex(*build_grams(blob, bounds))
    assert grams.candidates(b"w17x") is not None and len(grams.candidates(b"w17x")) < 100  # the index narrows
    for term in ("car", "kx-482", "482", "会议纪要", "纪要", "cafe", "aa", "2023", "the", "a", "car）", "w17x", "w1",
                 "w299x", "zzz", "会议纪要要"):
        want = {i: term_counts(f, term) for i, f in enumerate(folded) if f and term_counts(f, term)}
        for rows, counts in (indexed_term_rows(blob, bounds, term, grams), term_rows(blob, bounds, term)):
            assert dict(zip(rows.tolist(), counts.tolist())) == want, term
