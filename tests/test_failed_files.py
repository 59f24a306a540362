"""Files that always fail: not read again until they change, and the CLI says so.

Split by feature from test_hardening.py (issue 15's regression tests: each failed on the main
before its fix; the CLI is run as the real entry point, concurrency as real processes).
"""

from __future__ import annotations

from pathlib import Path

import mmembed

from conftest import N_FIXTURES, run_cli


# ---------------------------------------------------------------- 9. files that always fail

def test_a_file_that_failed_is_not_read_again_until_it_changes(photos: Path, db: str, tiny_model: str) -> None:
    broken = photos / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    first = mmembed.Index(db, model=tiny_model).ingest(photos)
    assert [s.path for s in first.skipped] == [str(broken)]
    second_idx = mmembed.Index(db)
    second = second_idx.ingest(photos)
    assert [(s.path, "unchanged since it failed" in s.reason) for s in second.skipped] == [(str(broken), True)]
    assert second.unchanged == N_FIXTURES
    assert second_idx._model.loaded is None or second_idx._model.loaded._model is None  # no model was loaded
    retried = mmembed.Index(db).ingest(photos, retry_failed=True)
    assert "unchanged since it failed" not in retried.skipped[0].reason
    broken.write_bytes((photos / "red.jpg").read_bytes())  # fixed: it changes, so it is read
    fixed = mmembed.Index(db).ingest(photos)
    assert fixed.skipped == [] and fixed.added == 1


def test_cli_reports_skips_as_unchanged_since_they_failed(photos: Path, db: str, tiny_model: str) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert run_cli("ingest", str(photos), "--db", db, "--model", tiny_model, "-q").returncode == 0
    done = run_cli("ingest", str(photos), "--db", db, "-q")
    assert done.returncode == 0
    assert "broken.jpg: truncated or corrupt image data" in done.stderr
    assert "(unchanged since it failed; --retry-failed tries it again)" in done.stderr
    again = run_cli("ingest", str(photos), "--db", db, "-q", "--retry-failed")
    assert "unchanged since it failed" not in again.stderr and "broken.jpg" in again.stderr
