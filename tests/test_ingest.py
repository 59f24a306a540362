"""Ingest on real files into real LanceDB: bad input, incremental runs, moves, pruning, model records."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mmembed
from mmembed import IngestLockedError, ModelMismatchError
from mmembed.store import Store

from conftest import FIXTURE_IMAGES, run_cli

N_FIXTURES = len(list(FIXTURE_IMAGES.iterdir()))


def rows(db: str) -> dict[str, dict]:
    """path -> row (vectors included) straight from the table."""
    table = Store(db).table
    return {r["path"]: r for r in table.to_arrow().to_pylist()}


def add_bad_files(folder: Path) -> dict[str, str]:
    """Write one file of each bad kind; returns name -> expected reason fragment."""
    data = (FIXTURE_IMAGES / "red.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "zero.png").touch()
    (folder / "words.jpg").write_text("not an image at all\n" * 50)
    from PIL import Image

    Image.new("RGB", (3000, 2000)).save(folder / "huge.png")
    return {
        "truncated.jpg": "truncated or corrupt",
        "zero.png": "empty file",
        "words.jpg": "not a readable image",
        "huge.png": "--max-megapixels",
    }


def test_first_ingest_adds_every_good_file_and_skips_each_bad_one(photos: Path, db: str, tiny_model: str) -> None:
    bad = add_bad_files(photos)
    (photos / "README.txt").write_text("not a candidate: no image extension")
    idx = mmembed.Index(db, model=tiny_model, max_megapixels=5)
    report = idx.ingest(photos)
    assert report.added == N_FIXTURES and report.rows == N_FIXTURES
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == set(bad)
    for name, fragment in bad.items():
        assert fragment in skipped[name], (name, skipped[name])
    table = rows(db)
    assert set(table) == {str(p) for p in photos.iterdir() if p.name not in bad and p.suffix != ".txt"}
    row = table[str(photos / "rotated_exif6.jpg")]
    assert (row["width"], row["height"], row["format"]) == (48, 64, "JPEG")
    assert table[str(photos / "phone.heic")]["format"] == "HEIF"
    vec = np.asarray(row["image_vector"], dtype=np.float32)
    assert vec.shape == (32,) and abs(np.linalg.norm(vec) - 1) < 1e-5
    # No garbage vectors: every stored vector equals a fresh encode of that file.
    fresh = idx.encoder.encode_images([str(photos / "red.jpg"), str(photos / "cmyk.jpg")])
    np.testing.assert_allclose(table[str(photos / "red.jpg")]["image_vector"], fresh[0], atol=1e-5)
    np.testing.assert_allclose(table[str(photos / "cmyk.jpg")]["image_vector"], fresh[1], atol=1e-5)
    meta = idx.meta
    assert meta.model == tiny_model and meta.dim == 32 and meta.schema_version == 2
    assert meta.fingerprint.startswith("sha256:")


def test_rerun_skips_unchanged_files_without_reading_them(photos: Path, index: mmembed.Index) -> None:
    index.ingest(photos)
    target = photos / "red.jpg"
    st = target.stat()
    # Same size and mtime but different bytes: a run that read the file would notice.
    target.write_bytes(os.urandom(st.st_size))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    report = index.ingest(photos)
    assert (report.added, report.updated, report.moved, report.removed) == (0, 0, 0, 0)
    assert report.unchanged == N_FIXTURES and report.skipped == []


def test_modified_file_is_reencoded_and_keeps_its_id(photos: Path, db: str, index: mmembed.Index) -> None:
    index.ingest(photos)
    before = rows(db)[str(photos / "green.png")]
    shutil.copy(photos / "blue.webp", photos / "green.png")  # new content under the old name
    os.utime(photos / "green.png", ns=(0, before["mtime_ns"] + 10**9))
    report = index.ingest(photos)
    assert report.updated == 1 and report.unchanged == N_FIXTURES - 1 and report.added == 0
    after = rows(db)[str(photos / "green.png")]
    assert after["id"] == before["id"]
    assert after["format"] == "WEBP" and after["content_hash"] != before["content_hash"]
    np.testing.assert_allclose(after["image_vector"], rows(db)[str(photos / "blue.webp")]["image_vector"], atol=1e-6)
    assert len(rows(db)) == N_FIXTURES


def test_touched_file_is_not_reencoded(photos: Path, db: str, index: mmembed.Index) -> None:
    index.ingest(photos)
    before = rows(db)[str(photos / "red.jpg")]
    os.utime(photos / "red.jpg", ns=(0, before["mtime_ns"] + 5 * 10**9))
    report = index.ingest(photos)
    assert report.unchanged == N_FIXTURES and report.updated == 0
    after = rows(db)[str(photos / "red.jpg")]
    assert after["mtime_ns"] == before["mtime_ns"] + 5 * 10**9
    assert after["image_vector"] == before["image_vector"] and after["id"] == before["id"]
    # Recorded now, so the next run does not even read it.
    assert index.ingest(photos).unchanged == N_FIXTURES


def test_renamed_and_moved_files_reuse_their_vectors(photos: Path, db: str, index: mmembed.Index) -> None:
    sub = photos / "trip"
    sub.mkdir()
    for name in ("red.jpg", "green.png", "phone.heic"):
        shutil.move(photos / name, sub / name)
    index.ingest(photos)
    before = rows(db)
    shutil.move(sub, photos / "trip-2019")  # move a whole subfolder
    (photos / "cyan.jp2").rename(photos / "renamed.jp2")
    report = index.ingest(photos)
    assert report.moved == 4 and report.added == 0 and report.removed == 0 and report.updated == 0
    after = rows(db)
    assert len(after) == N_FIXTURES
    for old, new in [(sub / "red.jpg", photos / "trip-2019" / "red.jpg"), (photos / "cyan.jp2", photos / "renamed.jp2")]:
        assert str(old) not in after
        assert after[str(new)]["id"] == before[str(old)]["id"]
        assert after[str(new)]["image_vector"] == before[str(old)]["image_vector"]


def test_deleted_files_are_pruned_unless_no_prune(photos: Path, db: str, index: mmembed.Index) -> None:
    index.ingest(photos)
    (photos / "red.jpg").unlink()
    (photos / "green.png").unlink()
    kept = index.ingest(photos, prune=False)
    assert kept.removed == 0 and kept.rows == N_FIXTURES
    report = index.ingest(photos)
    assert report.removed == 2 and report.rows == N_FIXTURES - 2
    assert str(photos / "red.jpg") not in rows(db)


def test_an_empty_root_keeps_its_rows_unless_prune_empty(tmp_path: Path, photos: Path, db: str, index: mmembed.Index) -> None:
    """An unmounted disk leaves an empty mount point: that must not read as 'every photo deleted'."""
    disk = tmp_path / "mnt" / "camera"
    shutil.copytree(photos, disk)
    index.ingest([disk, photos])
    hidden = tmp_path / "unmounted"
    disk.rename(hidden)
    disk.mkdir()  # the mount point, empty
    (photos / "red.jpg").unlink()
    report = index.ingest([disk, photos])
    assert report.removed == 1 and report.rows == 2 * N_FIXTURES - 1  # the other root still prunes
    (warning,) = report.warnings
    assert warning.startswith(f"{disk}: the folder is empty, so the {N_FIXTURES} indexed items under it are kept")
    assert "--prune-empty" in warning
    done = run_cli("ingest", str(disk), "--db", db, "--json")
    assert done.returncode == 0 and f"warning: {disk}: the folder is empty" in done.stderr
    assert json.loads(done.stdout)["removed"] == 0
    disk.rmdir()
    hidden.rename(disk)  # mounted again: nothing to redo
    back = index.ingest(disk)
    assert (back.unchanged, back.added, back.removed) == (N_FIXTURES, 0, 0)
    shutil.rmtree(disk)
    disk.mkdir()
    emptied = index.ingest(disk, prune_empty=True)
    assert emptied.removed == N_FIXTURES and emptied.warnings == []


def test_an_empty_mount_point_below_the_path_keeps_its_rows(tmp_path: Path, photos: Path, db: str,
                                                            index: mmembed.Index) -> None:
    """`ingest ~` with a disk mounted at ~/camera: unmounted, ~/camera is an empty folder."""
    home = tmp_path / "home"
    shutil.copytree(photos, home / "camera" / "2024")
    shutil.copy(FIXTURE_IMAGES / "red.jpg", home / "note.jpg")
    index.ingest(home)
    shutil.move(str(home / "camera"), str(tmp_path / "unmounted"))
    (home / "camera").mkdir()
    report = index.ingest(home)
    assert report.removed == 0 and report.rows == N_FIXTURES + 1
    (warning,) = report.warnings
    assert warning.startswith(f"{home / 'camera'}: the folder is empty, so the {N_FIXTURES} indexed items under it are kept")
    shutil.rmtree(home / "camera")  # a folder deleted on purpose: its parent holds other things
    assert index.ingest(home).removed == N_FIXTURES


def test_rows_outside_the_ingested_root_are_kept(tmp_path: Path, photos: Path, db: str, index: mmembed.Index) -> None:
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(FIXTURE_IMAGES / "red.jpg", other / "elsewhere.jpg")
    index.ingest([photos, other])
    (photos / "green.png").unlink()
    report = index.ingest(photos)  # only this root is walked: other/ must survive
    assert report.removed == 1
    assert str(other / "elsewhere.jpg") in rows(db)


def test_duplicate_content_is_added_without_encoding(photos: Path, db: str, index: mmembed.Index) -> None:
    index.ingest(photos)
    shutil.copy(photos / "red.jpg", photos / "red copy.jpg")
    report = index.ingest(photos)
    assert report.added == 1
    table = rows(db)
    assert table[str(photos / "red copy.jpg")]["id"] != table[str(photos / "red.jpg")]["id"]
    assert table[str(photos / "red copy.jpg")]["image_vector"] == table[str(photos / "red.jpg")]["image_vector"]


def test_include_exclude_hidden(photos: Path, db: str, tiny_model: str) -> None:
    (photos / ".cache").mkdir()
    shutil.copy(photos / "red.jpg", photos / ".cache" / "thumb.jpg")
    idx = mmembed.Index(db, model=tiny_model)
    report = idx.ingest(photos, include=["*.jpg", "*.png"], exclude=["cmyk*"])
    names = sorted(Path(p).name for p in rows(db))
    assert names == sorted(["red.jpg", "UPPER.JPG", "green.png", "alpha.png", "palette_transparent.png",
                            "gray16.png", "rotated_exif6.jpg", "lying_png.jpg"])
    assert report.added == len(names)


def test_model_mismatch_is_refused_and_reindex_switches(photos: Path, db: str, tiny_model: str, other_tiny_model: str) -> None:
    mmembed.Index(db, model=tiny_model).ingest(photos)
    with pytest.raises(ModelMismatchError, match="--reindex"):
        mmembed.Index(db, model=other_tiny_model).ingest(photos)
    assert len(rows(db)) == N_FIXTURES  # nothing lost by the refusal
    report = mmembed.Index(db, model=other_tiny_model).ingest(photos, reindex=True)
    assert report.added == N_FIXTURES
    assert mmembed.Index(db).meta.model == other_tiny_model


def test_table_model_is_used_without_naming_it(photos: Path, db: str, tiny_model: str) -> None:
    mmembed.Index(db, model=tiny_model).ingest(photos)
    idx = mmembed.Index(db)  # no model: the table's record decides
    assert idx.encoder.spec.name == tiny_model
    assert idx.ingest(photos).unchanged == N_FIXTURES


def test_second_writer_is_locked_out(photos: Path, db: str, index: mmembed.Index) -> None:
    index.ingest(photos)
    with index.store.write_lock():
        with pytest.raises(IngestLockedError, match="another mmembed ingest"):
            mmembed.Index(db).ingest(photos)


def test_unreadable_file_is_skipped_with_reason(photos: Path, db: str, tiny_model: str) -> None:
    """Permission denied, for real: as root, the CLI runs without the capability that bypasses modes."""
    locked = photos / "locked.jpg"
    shutil.copy(photos / "red.jpg", locked)
    locked.chmod(0)
    cmd = [sys.executable, "-m", "mmembed", "ingest", str(photos), "--db", db, "--model", tiny_model, "--json", "-q"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root needs util-linux setpriv to drop CAP_DAC_OVERRIDE for this test"
        cmd = [setpriv, "--bounding-set=-dac_override,-dac_read_search",
               "--inh-caps=-dac_override,-dac_read_search", "--", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads(done.stdout)
    assert report["added"] == N_FIXTURES
    assert report["skipped"] == [{"path": str(locked), "reason": "permission denied; check the file's permissions"}]
    assert f"skipped: {locked}: permission denied" in done.stderr


def test_swapped_contents_get_their_own_vectors(photos: Path, db: str, index: mmembed.Index) -> None:
    index.ingest(photos)
    a, z = photos / "red.jpg", photos / "UPPER.JPG"
    da, dz = a.read_bytes(), z.read_bytes()
    a.write_bytes(dz)
    z.write_bytes(da)
    for p in (a, z):
        os.utime(p, ns=(0, p.stat().st_mtime_ns + 10**9))
    report = index.ingest(photos)
    assert report.updated == 2
    table = rows(db)
    fresh = index.encoder.encode_images([str(a), str(z)])
    np.testing.assert_allclose(table[str(a)]["image_vector"], fresh[0], atol=1e-5)
    np.testing.assert_allclose(table[str(z)]["image_vector"], fresh[1], atol=1e-5)


def test_reindex_with_a_mistyped_path_keeps_the_index(photos: Path, db: str, index: mmembed.Index) -> None:
    index.ingest(photos)
    with pytest.raises(mmembed.ConfigError, match="no such file or folder"):
        index.ingest(photos / "typo", reindex=True)
    assert len(rows(db)) == N_FIXTURES


def test_non_utf8_file_name_is_skipped_not_fatal(photos: Path, db: str, index: mmembed.Index) -> None:
    odd = os.path.join(os.fsencode(photos), b"caf\xe9.jpg")
    shutil.copy(photos / "red.jpg", odd)
    report = index.ingest(photos)
    assert report.added == N_FIXTURES
    assert [s.reason for s in report.skipped] == ["file name is not valid UTF-8; rename the file to index it"]
    assert report.skipped[0].path.endswith("caf\ufffd.jpg")


def test_file_that_became_corrupt_loses_its_row(photos: Path, db: str, index: mmembed.Index) -> None:
    index.ingest(photos)
    target = photos / "red.jpg"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    report = index.ingest(photos)
    assert [Path(s.path).name for s in report.skipped] == ["red.jpg"]
    assert report.removed == 1 and str(target) not in rows(db)


def test_symlinked_root_is_not_indexed_twice(tmp_path: Path, photos: Path, db: str, index: mmembed.Index) -> None:
    link = tmp_path / "link"
    link.symlink_to(photos, target_is_directory=True)
    index.ingest(link)
    report = index.ingest(photos)
    assert report.unchanged == N_FIXTURES and report.added == 0
    assert len(rows(db)) == N_FIXTURES


def test_unreadable_folder_is_not_pruned(photos: Path, db: str, tiny_model: str) -> None:
    sub = photos / "private"
    sub.mkdir()
    shutil.copy(photos / "red.jpg", sub / "secret.jpg")
    mmembed.Index(db, model=tiny_model).ingest(photos)
    sub.chmod(0)
    try:
        cmd = [sys.executable, "-m", "mmembed", "ingest", str(photos), "--db", db, "--json", "-q"]
        if os.geteuid() == 0:
            cmd = [shutil.which("setpriv"), "--bounding-set=-dac_override,-dac_read_search",
                   "--inh-caps=-dac_override,-dac_read_search", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        sub.chmod(0o755)
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads(done.stdout)
    assert report["removed"] == 0 and report["rows"] == N_FIXTURES + 1
    assert any("folder not readable" in s["reason"] for s in report["skipped"])
