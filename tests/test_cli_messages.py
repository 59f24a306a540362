"""Messages of the CLI that were wrong or missing (issue 25, item 5), each through the real
console script on real files and a real LanceDB table."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import FIXTURE_IMAGES, mmembed_cmd, one_error_line, run_cli, shared_path


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> str:
    """Fixture photos ingested with the tiny model, zero-shot tagged with two labels."""
    db = str(tmp_path_factory.mktemp("messages") / "db")
    assert run_cli("ingest", str(FIXTURE_IMAGES), "--db", db, "--model", tiny_model, "-q").returncode == 0
    done = run_cli("tag", "--labels", "cat,dog", "--db", db)
    assert done.returncode == 0, done.stderr
    return db


def _help(command: str) -> str:
    done = run_cli(command, "--help", env={"COLUMNS": "100"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cutoff_help_gives_the_z_the_code_uses() -> None:
    from mmembed.retrieval.query import AUTO_CUTOFF_Z

    text = " ".join(_help("search").split())
    assert f"(standardised score under {AUTO_CUTOFF_Z:g})" in text


def test_captions_help_names_tsv() -> None:
    assert ".csv, .tsv, .jsonl or .parquet" in " ".join(_help("ingest").split())


@pytest.mark.parametrize(("command", "starts"), [
    ("search", ["Example: mmembed search", "Pipe: mmembed search", "Gallery: mmembed search", "Only the relevant ones:"]),
    ("dupes", ["Example: mmembed dupes --json", "Review the extras: mmembed dupes"]),
    ("index", ["Example: mmembed index", "Rebuild: mmembed index --refresh"]),
    ("embed", ["Example: mmembed embed", "Images: mmembed embed --image"]),
])
def test_help_examples_keep_their_own_lines(command: str, starts: list[str]) -> None:
    lines = [line.strip() for line in _help(command).splitlines()]
    for start in starts:
        assert any(line.startswith(start) for line in lines), f"{start!r} does not begin a line of {command} --help"


@pytest.mark.parametrize("args", [["ingest", str(FIXTURE_IMAGES / "red.jpg"), "-q"], ["search", "a dog"]])
def test_a_db_that_is_a_file_is_named_so(tmp_path: Path, tiny_model: str, args: list[str]) -> None:
    file = tmp_path / "f"
    file.write_text("not a database")
    done = run_cli(*args, "--db", str(file), "--model", tiny_model)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a file, not a database folder" in lines[0], done.stderr
    assert "note:" not in done.stderr and "permissions" not in done.stderr


def test_a_db_that_is_a_file_is_named_so_in_python_with_no_warning_first(tmp_path: Path, tiny_model: str,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    import mmembed

    file = tmp_path / "captions.csv"
    file.write_text("image,caption\n")
    with pytest.raises(mmembed.StoreError, match="is a file, not a database folder"):
        mmembed.Index(db=str(file), model=tiny_model).search("a dog")
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []  # no "snapshot is damaged"


@pytest.mark.parametrize("command", ["info", "doctor"])
def test_info_and_doctor_on_a_mistyped_db_say_no_database_and_create_nothing(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "typo.lancedb"
    done = run_cli(command, "--db", str(missing))
    assert done.returncode == 1, done.stdout
    assert done.stderr.strip() == (f"Error: no database at {missing}; check --db (or MMEMBED_DB), "
                                   "or make one with `mmembed ingest PATH`")
    assert not missing.exists()


def test_an_unknown_model_is_called_unknown(tmp_path: Path) -> None:
    done = run_cli("ingest", str(FIXTURE_IMAGES / "red.jpg"), "--db", str(tmp_path / "db"), "--model", "NotAModel", "-q")
    assert done.returncode == 1
    assert "unknown model 'NotAModel'" in done.stderr and "open_clip.list_models()" in done.stderr
    assert "--pretrained" not in done.stderr


@pytest.mark.parametrize(("args", "why"), [
    (["--tag", "nosuchtag"], "nothing matched: no row passes --tag nosuchtag"),
    (["--where", "width > 5000"], "nothing matched: no row passes --where 'width > 5000'"),
    (["--min-score", "0.999"], "nothing matched: no result has a cosine of at least --min-score 0.999 or holds the query's words"),
])
def test_a_search_that_finds_nothing_says_why(table: str, args: list[str], why: str) -> None:
    done = run_cli("search", "a photo", "--db", table, *args)
    assert done.returncode == 0 and done.stdout == ""
    assert f"note: {why}" in done.stderr


def test_a_query_cut_at_the_token_limit_gets_a_note(table: str) -> None:
    long = " ".join(["red"] * 90)
    done = run_cli("search", long, "--db", table, "-n", "1")
    assert done.returncode == 0, done.stderr
    assert "note: the query 'red red red" in done.stderr and "is 90 tokens long" in done.stderr
    assert "reads only the first 14, the rest is ignored" in done.stderr  # the tiny model reads 16 tokens
    short = run_cli("search", "red", "--db", table, "-n", "1")
    assert "note:" not in short.stderr


@pytest.mark.shared
def test_the_token_limit_note_counts_the_tables_own_model(tmp_path: Path) -> None:
    """micro-clip reads 32 tokens, not CLIP's 77: a 40-word query is cut, and the note says where."""
    shutil.copy(FIXTURE_IMAGES / "red.jpg", tmp_path / "red.jpg")
    db = str(tmp_path / "db")
    model = "local-dir:" + str(shared_path("models/micro-clip"))
    assert run_cli("ingest", str(tmp_path / "red.jpg"), "--db", db, "--model", model, "-q", "--no-ocr").returncode == 0
    done = run_cli("search", " ".join(["red"] * 40), "--db", db, "-n", "1")
    assert done.returncode == 0, done.stderr
    assert "is 40 tokens long; the text model reads only the first 30, the rest is ignored" in done.stderr, done.stderr
    import mmembed  # the Python API says the same in the hits' notes, and why nothing matched

    index = mmembed.Index(db)
    hits = index.search(" ".join(["red"] * 40), limit=1)
    assert len(hits) == 1 and any("is 40 tokens long; the text model reads only the first 30" in n for n in hits.notes)
    assert index.search("red").notes == []
    none = index.search("red", where="width > 100000", tags=())
    assert list(none) == [] and none.notes == ["nothing matched: no row passes where='width > 100000'"]


def test_search_json_carries_raw_siblings(tmp_path: Path, tiny_model: str) -> None:
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    shutil.copy(FIXTURE_IMAGES / "red.jpg", shoot / "IMG_1.JPG")
    (shoot / "IMG_1.CR2").write_bytes(b"a RAW file, paired by name and never read")
    db = str(tmp_path / "db")
    assert run_cli("ingest", str(shoot), "--db", db, "--model", tiny_model, "-q").returncode == 0
    for extra in ([], ["--where", "width > 0"]):  # the quick path and LanceDB's
        done = run_cli("search", "red", "--db", db, "--json", *extra)
        assert done.returncode == 0, done.stderr
        hit = json.loads(done.stdout.splitlines()[0])
        assert hit["raw_siblings"] == ["IMG_1.CR2"]


def test_ingest_summary_says_which_rows_are_video_frames(tmp_path: Path, tiny_model: str) -> None:
    pytest.importorskip("av", reason="videos need PyAV: pip install -e '.[test]'")
    from make_video import make_slideshow

    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(FIXTURE_IMAGES / "red.jpg", folder / "red.jpg")
    make_slideshow(folder / "clip.mp4", [FIXTURE_IMAGES / "red.jpg", FIXTURE_IMAGES / "green.png",
                                         FIXTURE_IMAGES / "blue.webp"], seconds_each=3.0)
    done = run_cli("ingest", str(folder), "--db", str(tmp_path / "db"), "--model", tiny_model, "-q", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["added"] == 2 and report["frames"] >= 2
    summary = done.stderr.strip().splitlines()[-1]
    assert f"{report['frames']} video frames encoded (a row each)" in summary
    assert f"{report['rows']} rows" in summary


def test_watch_prints_no_batch_line_when_only_warnings_came(tmp_path: Path, tiny_model: str) -> None:
    pytest.importorskip("watchdog", reason="watch needs watchdog: pip install -e '.[watch]'")
    photos = (tmp_path / "photos").resolve()
    (photos / "trip").mkdir(parents=True)
    shutil.copy(FIXTURE_IMAGES / "red.jpg", photos / "keep.jpg")
    for name in ("green.png", "blue.webp", "yellow.bmp"):
        shutil.copy(FIXTURE_IMAGES / name, photos / "trip" / name)
    db = str(tmp_path / "db")
    assert run_cli("ingest", str(photos), "--db", db, "--model", tiny_model, "-q").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    proc = subprocess.Popen([*mmembed_cmd(), "watch", str(photos), "--db", db, "--debounce", "0.3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True),
               threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("watching" in line for line in err) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        for name in ("green.png", "blue.webp", "yellow.bmp"):
            (photos / "trip" / name).unlink()  # an emptied folder that held several: rows kept, with a warning
        while not any(line.startswith("warning:") for line in err) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=10)
    assert any(line.startswith("warning:") for line in err), "".join(err)
    empty = [line for line in out if re.search(r"ingest: 0 added, 0 updated, 0 moved, 0 removed", line)]
    assert not empty, out


def test_version_is_printed_without_loading_anything() -> None:
    from mmembed import __version__

    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"mmembed {__version__}", done


def test_a_mistyped_table_is_named_with_the_tables_there(table: str) -> None:
    done = run_cli("search", "a photo", "--db", table, "--table", "imgaes")
    assert done.returncode == 1
    assert done.stderr.strip() == f"Error: no table 'imgaes' in {table}; its tables: images (pass --table NAME)", done.stderr


def test_a_failed_first_ingest_leaves_no_database_folder(tmp_path: Path) -> None:
    db = tmp_path / "new.lancedb"
    done = run_cli("ingest", str(FIXTURE_IMAGES), "--db", str(db), "--model", f"local-dir:{tmp_path / 'no-model'}")
    assert "model folder" in one_error_line(done)
    assert not db.exists(), sorted(p.name for p in db.iterdir())  # not a folder holding only a lock file
    kept = tmp_path / "kept.lancedb"
    kept.mkdir()  # a folder the user made is left where it is
    run_cli("ingest", str(FIXTURE_IMAGES), "--db", str(kept), "--model", f"local-dir:{tmp_path / 'no-model'}")
    assert kept.is_dir()


def test_a_deleted_data_file_is_named_with_its_path_and_the_doctor(tmp_path: Path, tiny_model: str) -> None:
    db = tmp_path / "db.lancedb"
    assert run_cli("ingest", str(FIXTURE_IMAGES), "--db", str(db), "--model", tiny_model, "--no-ocr", "-q").returncode == 0
    victim = next((db / "images.lance" / "data").iterdir())
    victim.unlink()  # a careless cleanup
    shutil.rmtree(db / "images.mmembed")  # so the search reads the table itself
    line = one_error_line(run_cli("search", "red", "--db", str(db)))
    assert f"a file of the table is missing ({victim})" in line and "mmembed doctor" in line, line
