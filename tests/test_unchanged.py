"""The no-op fast path (issue 10): an ingest that would change nothing answers from a stamp and a
walk, without lancedb; it must give the normal path's report and see every kind of change."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mmembed
from mmembed.ingest.options import IngestOptions
from mmembed.ingest.unchanged import stamp_path, unchanged_report

from conftest import FIXTURE_IMAGES


def fast(db: str, root: Path, model: str | None = None, **options) -> mmembed.IngestReport | None:
    """What the fast path answers for an ingest of ``root`` (None: the normal path must run)."""
    config = mmembed.Index(db, model=model).config
    return unchanged_report(config, IngestOptions(**options), [os.path.realpath(root)])


def slow(index: mmembed.Index, root: Path, monkeypatch: pytest.MonkeyPatch, **options) -> mmembed.IngestReport:
    with monkeypatch.context() as m:
        m.setenv("MMEMBED_FAST_NOOP", "0")
        return index.ingest(root, **options)


def same(a: mmembed.IngestReport, b: mmembed.IngestReport) -> bool:
    x, y = a.to_dict(), b.to_dict()
    x.pop("seconds"), y.pop("seconds")
    return x == y


def test_after_a_write_the_next_ingest_answers_without_the_table(index, photos: Path, db: str, tiny_model: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    first = index.ingest(photos)
    assert first.added > 0 and Path(stamp_path(db, "images")).is_file()
    predicted = fast(db, photos, tiny_model)
    assert predicted is not None
    assert same(predicted, slow(index, photos, monkeypatch))  # a real no-op says the same
    assert fast(db, photos, tiny_model) is not None  # and the real no-op wrote its own stamp


def test_remembered_failures_and_captions_give_the_same_report(index, photos: Path, db: str, tmp_path: Path,
                                                               tiny_model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photos / "red.jpg.txt").write_text("a red square on white")
    captions = tmp_path / "captions.csv"
    captions.write_text("image,caption\ngreen.png,a green thing\nnot-here.jpg,nobody\n")
    first = index.ingest(photos, captions=[captions])
    assert first.skipped and first.captions_unmatched == 1
    assert fast(db, photos, tiny_model, captions=[captions]) is None  # skips in a writing run: not predicted
    noop = slow(index, photos, monkeypatch, captions=[captions])
    predicted = fast(db, photos, tiny_model, captions=[captions])
    assert predicted is not None and same(predicted, noop)
    assert predicted.skipped and "unchanged since it failed" in predicted.skipped[0].reason
    assert predicted.captions_unmatched == 1


@pytest.mark.parametrize("change", ["touch", "sidecar", "new file", "deleted file", "manifest", "options",
                                    "other writer", "snapshot gone", "retry", "data file cut short"])
def test_every_kind_of_change_takes_the_normal_path(change: str, index, photos: Path, db: str, tmp_path: Path,
                                                    tiny_model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    captions = tmp_path / "captions.csv"
    captions.write_text("image,caption\ngreen.png,a green thing\n")
    (photos / "red.jpg.txt").write_text("a red square")
    index.ingest(photos, captions=[captions])
    options: dict = {"captions": [captions]}
    assert fast(db, photos, tiny_model, **options) is not None
    later = time.time() + 5
    if change == "touch":
        os.utime(photos / "green.png", (later, later))
    elif change == "sidecar":
        (photos / "red.jpg.txt").write_text("a blue square")
        os.utime(photos / "red.jpg.txt", (later, later))
    elif change == "new file":
        (photos / "extra.png").write_bytes((FIXTURE_IMAGES / "green.png").read_bytes())
    elif change == "deleted file":
        (photos / "cmyk.jpg").unlink()
    elif change == "manifest":
        captions.write_text("image,caption\ngreen.png,a GREEN thing\n")
        os.utime(captions, (later, later))
    elif change == "options":
        options["exclude"] = ["*.png"]
    elif change == "other writer":
        mmembed.Index(db).store.delete_ids([next(index.store.read_state())["id"]])
    elif change == "snapshot gone":
        os.remove(os.path.join(db, "images.mmembed", "snapshot.json"))
    elif change == "retry":
        options["retry_failed"] = True
    elif change == "data file cut short":  # a disk error or a careless cleanup: the table no longer reads
        data = Path(db) / "images.lance" / "data"
        victim = max(data.iterdir(), key=lambda f: f.stat().st_size)
        victim.write_bytes(victim.read_bytes()[:100])
    assert fast(db, photos, tiny_model, **options) is None
    if change == "data file cut short":  # the normal path says so: no "unchanged" report over a broken table
        with pytest.raises(mmembed.MmembedError):
            index.ingest(photos, **options)
        return
    report = index.ingest(photos, **options)  # the normal path sees the change (and writes a new stamp)
    if change in ("touch", "sidecar", "new file", "deleted file", "manifest", "other writer"):
        assert report.added + report.updated + report.removed + report.text_updated + report.unchanged > 0
    if change == "new file":
        assert report.added == 1
    if change == "sidecar":
        assert report.text_updated == 1
    if change == "deleted file":
        assert report.removed == 1
    if change == "other writer":
        assert report.added == 1  # the row deleted behind its back comes back


def _python(script: str) -> list[str]:
    """The words ``script`` prints, run in a fresh interpreter without MMEMBED_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _ingest_elsewhere(db: str, photos: Path, model: str | None) -> tuple[int, int, bool, bool]:
    """(added, unchanged, lancedb imported, onnxruntime imported) of an ingest in a fresh process."""
    added, unchanged, lancedb_loaded, onnx_loaded = _python(
        "import sys, mmembed\n"
        f"report = mmembed.Index({db!r}, model={model!r}).ingest({str(photos)!r})\n"
        "print(report.added, report.unchanged, 'lancedb' in sys.modules, 'onnxruntime' in sys.modules)\n"
    )
    return int(added), int(unchanged), lancedb_loaded == "True", onnx_loaded == "True"


def test_a_noop_ingest_imports_neither_lancedb_nor_onnxruntime(index, photos: Path, db: str, tiny_model: str) -> None:
    index.ingest(photos)
    added, unchanged, lancedb_loaded, onnx_loaded = _ingest_elsewhere(db, photos, tiny_model)
    assert (added, lancedb_loaded, onnx_loaded) == (0, False, False)
    assert unchanged > 10


def test_a_changed_model_folder_is_not_hidden_by_the_stamp(photos: Path, db: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from make_tiny_model import make_tiny_model

    folder = make_tiny_model(tmp_path / "model", seed=3)
    mmembed.Index(db, model=f"local-dir:{folder}").ingest(photos)
    mmembed.Index(db).ingest(photos)  # no model named: the table's
    assert fast(db, photos) is not None
    make_tiny_model(folder, seed=4)  # new weights in the same folder
    assert fast(db, photos) is None
    with pytest.raises(mmembed.ModelMismatchError):
        mmembed.Index(db).ingest(photos)


@pytest.mark.parametrize("first, second", [("named", "not named"), ("not named", "named")])
def test_the_stamp_holds_whether_or_not_the_tables_own_model_is_named(first: str, second: str, photos: Path,
                                                                      db: str, tiny_model: str) -> None:
    """Issue 21: the stamp is keyed on the model the table records, not on the option's text."""
    mmembed.Index(db, model=tiny_model).ingest(photos)  # builds the table
    mmembed.Index(db, model=tiny_model if first == "named" else None).ingest(photos)  # writes the stamp
    added, unchanged, lancedb_loaded, _ = _ingest_elsewhere(db, photos, tiny_model if second == "named" else None)
    assert (added, unchanged, lancedb_loaded) == (0, len(list(FIXTURE_IMAGES.iterdir())), False)


def test_a_named_model_of_other_weights_is_not_hidden_by_the_stamp(photos: Path, db: str, tiny_model: str,
                                                                   other_tiny_model: str) -> None:
    mmembed.Index(db, model=tiny_model).ingest(photos)
    mmembed.Index(db).ingest(photos)
    assert fast(db, photos) is not None
    assert fast(db, photos, other_tiny_model) is None
    with pytest.raises(mmembed.ModelMismatchError):
        mmembed.Index(db, model=other_tiny_model).ingest(photos)


def test_an_ingest_of_one_new_file_after_a_noop_walks_the_folder_once(index, photos: Path, db: str,
                                                                      tiny_model: str) -> None:
    """Issue 21: the walk made to check the stamp is the walk the planner reads (counted by
    Python's own audit events for os.scandir, in a fresh process)."""
    index.ingest(photos)
    index.ingest(photos)  # a no-op: the stamp is current
    (photos / "extra.png").write_bytes((FIXTURE_IMAGES / "green.png").read_bytes())
    root = os.path.realpath(photos)
    scans = _python(
        "import os, sys, mmembed\n"
        "scans = []\n"
        "def count(event, args):\n"
        "    if event == 'os.scandir' and args and isinstance(args[0], (str, bytes, os.PathLike)) \\\n"
        f"            and os.path.realpath(os.fsdecode(args[0])) == {root!r}:\n"
        "        scans.append(args[0])\n"
        "sys.addaudithook(count)\n"
        f"report = mmembed.Index({db!r}, model={tiny_model!r}).ingest({str(photos)!r})\n"
        "print(report.added, len(scans))\n"
    )
    assert scans == ["1", "1"]  # one file added, one scan of the folder
