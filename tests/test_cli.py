"""Every command through the real installed ``mmembed`` entry point, plus exit codes and output contracts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> tuple[str, Path]:
    """An index built once through `mmembed ingest` for the read-only CLI tests."""
    import shutil

    from conftest import FIXTURE_IMAGES

    base = tmp_path_factory.mktemp("cli")
    photos = base / "photos"
    shutil.copytree(FIXTURE_IMAGES, photos)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    db = str(base / "cli.lancedb")
    done = run_cli("ingest", str(photos), "--db", db, "--model", tiny_model, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"added", "updated", "moved", "unchanged", "text_updated", "removed", "skipped", "rows", "seconds",
                           "captions_unmatched", "tagged", "frames", "warnings", "ocr", "located"}
    assert report["added"] == 17 and report["rows"] == 17
    assert report["skipped"] == [{"path": str(photos / "broken.jpg"), "reason": report["skipped"][0]["reason"]}]
    assert report["skipped"][0]["reason"].startswith("truncated or corrupt image data")
    # Progress and the summary go to stderr, never stdout.
    assert f"skipped: {photos / 'broken.jpg'}:" in done.stderr
    assert "added 17, updated 0, moved 0, unchanged 0, text updated 0, removed 0, skipped 1" in done.stderr
    assert done.stdout.count("\n") == 1
    return db, photos


def test_help_is_fast_and_imports_no_torch() -> None:
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from mmembed.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'open_clip', 'lancedb', 'torchvision') if m in sys.modules]\n"
        "print(repr(heavy), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]"
    real = run_cli("--help")
    assert real.returncode == 0
    for command in ("ingest", "search", "info", "embed"):
        assert command in real.stdout


def test_every_command_has_help_text() -> None:
    from mmembed.cli import app

    for info in app.registered_commands:
        assert info.callback.__doc__ and info.callback.__doc__.strip(), info.callback.__name__


def test_search_outputs(cli_index: tuple[str, Path]) -> None:
    db, photos = cli_index
    plain = run_cli("search", "a red circle", "--db", db, "-n", "3")
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.strip().splitlines()
    assert len(lines) == 3
    score, path = lines[0].split(maxsplit=1)
    assert -1 <= float(score) <= 1.0001 and Path(path).exists()

    as_json = run_cli("search", "a red circle", "--db", db, "-n", "3", "--json")
    hits = [json.loads(line) for line in as_json.stdout.strip().splitlines()]
    assert [h["path"] for h in hits] == [line.split(maxsplit=1)[1] for line in lines]
    assert all({"path", "score", "id", "width", "height", "format"} <= set(h) for h in hits)

    paths = run_cli("search", "--image", str(photos / "phone.heic"), "--db", db, "-n", "2", "--paths")
    assert paths.stdout.strip().splitlines()[0] == str(photos / "phone.heic")

    filtered = run_cli("search", "x", "--db", db, "--where", "format = 'HEIF'", "--json")
    assert [json.loads(l)["format"] for l in filtered.stdout.strip().splitlines()] == ["HEIF"]


def test_info_outputs(cli_index: tuple[str, Path], tiny_model: str) -> None:
    db, _ = cli_index
    done = run_cli("info", "--db", db, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {"db", "table", "rows", "model", "dim", "bytes"} <= set(data)
    assert (data["db"], data["table"], data["rows"], data["model"], data["dim"]) == (db, "images", 17, tiny_model, 32)
    plain = run_cli("info", "--db", db)
    assert "rows   17" in plain.stdout


def test_embed_outputs(cli_index: tuple[str, Path]) -> None:
    db, photos = cli_index
    done = run_cli("embed", "a cat", "a dog", "--db", db)
    assert done.returncode == 0, done.stderr
    vectors = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert len(vectors) == 2 and all(len(v) == 32 for v in vectors)
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)
    image = run_cli("embed", "--image", str(photos / "red.jpg"), "--db", db, "--json")
    obj = json.loads(image.stdout)
    assert obj["kind"] == "image" and obj["dim"] == 32 and obj["input"] == str(photos / "red.jpg")
    # The same vector the index stored for that file.
    hit = json.loads(run_cli("search", "--image", str(photos / "red.jpg"), "--db", db, "-n", "1", "--json").stdout)
    assert hit["score"] == pytest.approx(1.0, abs=1e-4)
    blank = run_cli("embed", "a cat", " ", "--db", db)  # an empty text is a usage error, not a vector
    assert blank.returncode == 2 and blank.stdout == "" and "an empty text has nothing to embed" in blank.stderr


def test_pretrained_with_a_model_folder_is_refused(tmp_path: Path) -> None:
    done = run_cli("embed", "a cat", "--db", str(tmp_path / "db"), "--model", "local-dir:/nowhere/model", "--pretrained", "x")
    assert done.returncode == 1 and done.stderr.strip() == (
        "Error: --pretrained x names weights of an open_clip model; local-dir: models bring their own weights: drop --pretrained")


def test_two_output_formats_at_once_are_a_usage_error(cli_index: tuple[str, Path]) -> None:
    db, _ = cli_index
    done = run_cli("search", "a red circle", "--db", db, "--paths", "--json")
    assert done.returncode == 2 and done.stdout == ""
    assert "--json and --paths each choose what is printed; give one of them" in done.stderr


def test_reingest_reports_unchanged_via_env_db(cli_index: tuple[str, Path]) -> None:
    db, photos = cli_index
    done = run_cli("ingest", str(photos), "--json", "-q", env={"MMEMBED_DB": db})
    report = json.loads(done.stdout)
    assert report["unchanged"] == 17 and report["added"] == 0 and report["rows"] == 17


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["search", "x", "--limit", "0"], "limit must be at least 1"),
        (["search", ""], "empty query"),
        (["search", "--image", "/nowhere/q.jpg"], "/nowhere/q.jpg: query image not found"),
        (["search", "x", "--where", "nope = 1"], "is not a valid filter"),
        (["search", "x", "--where", "widht > 100"], "no column named widht; did you mean width? columns: id, path, "),
        (["ingest", "/nowhere/photos"], "/nowhere/photos: no such file or folder"),
        (["eval", "/nowhere/photos", "--captions", str(Path(__file__))], "/nowhere/photos: no such folder; give the folder"),
    ],
)
def test_errors_are_one_line_exit_1(cli_index: tuple[str, Path], args: list[str], fragment: str) -> None:
    db, _ = cli_index
    done = run_cli(*args, "--db", db)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and fragment in lines[-1], done.stderr
    assert "Traceback" not in done.stderr


def test_empty_index_is_an_error(tmp_path: Path) -> None:
    done = run_cli("search", "a cat", "--db", str(tmp_path / "none.lancedb"))
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1
    assert "none.lancedb" in done.stderr and "mmembed ingest" in done.stderr
    assert "Traceback" not in done.stderr


def test_model_mismatch_via_cli(cli_index: tuple[str, Path], other_tiny_model: str) -> None:
    db, photos = cli_index
    done = run_cli("ingest", str(photos), "--db", db, "--model", other_tiny_model, "-q")
    assert done.returncode == 1 and "--reindex" in done.stderr and "Traceback" not in done.stderr


def test_usage_errors_exit_2(cli_index: tuple[str, Path]) -> None:
    db, _ = cli_index
    assert run_cli("search", "x", "--limit", "many", "--db", db).returncode == 2
    assert run_cli("embed", "--db", db).returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_writing_commands_fix_the_mmap_threshold_and_search_keeps_glibcs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_steady_malloc`` holds an ingest's memory flat, and made a search's LanceDB reads map
    fresh pages for every block (a cold search at 1M rows without a snapshot: 2 s of it)."""
    import importlib

    cli_app = importlib.import_module("mmembed.cli.app")  # the module (the package's ``app`` is the Typer app)
    calls: list[bool] = []
    monkeypatch.setattr(cli_app, "_steady_malloc", lambda: calls.append(True))
    monkeypatch.setattr(cli_app, "_notes_to_stderr", lambda: None)
    monkeypatch.setattr(cli_app, "app", lambda: None)
    for argv, fixed in ((["search", "a dog", "--json"], False), (["ingest", "photos"], True), (["watch", "photos"], True),
                        (["dupes"], True), (["--help"], True), ([], True)):
        calls.clear()
        monkeypatch.setattr(sys, "argv", ["mmembed", *argv])
        cli_app.main()
        assert calls == ([True] if fixed else []), argv
