"""Only regular files are read: a named pipe, a socket or a device file named like an image is
skipped with a reason (it would block a reader for good, or never end), and Ctrl-C ends the CLI
even while some thread is blocked in a read (issue 25, item 2). Real FIFOs, sockets, devices."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURE_IMAGES, mmembed_cmd, run_cli, shared_path

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")


@pytest.fixture
def specials(tmp_path: Path) -> Path:
    """A folder holding one real JPEG, a named pipe, a socket and a link to /dev/zero, all named *.jpg."""
    folder = tmp_path / "specials"
    folder.mkdir()
    shutil.copy(FIXTURE_IMAGES / "rotated_exif6.jpg", folder / "real.jpg")
    os.mkfifo(folder / "pipe.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.jpg"))
    sock.close()
    (folder / "zero.jpg").symlink_to("/dev/zero")
    return folder


def test_a_named_pipe_given_as_the_path_is_skipped_not_waited_for(specials: Path, tmp_path: Path, tiny_model: str) -> None:
    done = run_cli("ingest", str(specials / "pipe.jpg"), "--db", str(tmp_path / "db"), "--model", tiny_model, "-q",
                   timeout=60)  # before the fix this waited for a writer for good
    assert done.returncode == 0, done.stderr
    assert f"skipped: {specials / 'pipe.jpg'}: not a regular file (named pipe)" in done.stderr


@pytest.mark.parametrize(("name", "kind"), [("sock.jpg", "socket"), ("zero.jpg", "character device")])
def test_a_socket_or_device_given_as_the_path_says_what_it_is(specials: Path, tmp_path: Path, tiny_model: str,
                                                              name: str, kind: str) -> None:
    done = run_cli("ingest", str(specials / name), "--db", str(tmp_path / "db"), "--model", tiny_model, "-q", timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"not a regular file ({kind})" in done.stderr


def test_special_files_in_a_folder_are_reported_and_the_photo_indexed(specials: Path, tmp_path: Path, tiny_model: str) -> None:
    done = run_cli("ingest", str(specials), "--db", str(tmp_path / "db"), "--model", tiny_model, "-q", "--json", timeout=60)
    assert done.returncode == 0, done.stderr
    for name, kind in [("pipe.jpg", "named pipe"), ("sock.jpg", "socket"), ("zero.jpg", "character device")]:
        assert f"skipped: {specials / name}: not a regular file ({kind})" in done.stderr  # was silent
    assert '"added": 1' in done.stdout


@pytest.mark.parametrize(("name", "kind"), [("pipe.jpg", "named pipe"), ("sock.jpg", "socket"),
                                            ("zero.jpg", "character device")])
def test_a_special_file_as_the_query_image_is_one_error_line(specials: Path, tmp_path: Path, tiny_model: str,
                                                             name: str, kind: str) -> None:
    db = str(tmp_path / "db")
    assert run_cli("ingest", str(specials / "real.jpg"), "--db", db, "--model", tiny_model, "-q").returncode == 0
    done = run_cli("search", "--image", str(specials / name), "--db", db, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [f"Error: {specials / name}: the query image is not a regular file ({kind}); give an image file"]


_STUCK_CLI = """
import sys, threading
fifo = sys.argv[1]
# a thread blocked in a read that never returns (as a reader on a hung network disk would be)
threading.Thread(target=lambda: open(fifo, "rb").read(), name="stuck-reader").start()
sys.argv = ["mmembed", *sys.argv[2:]]
from mmembed.cli import main
main()
"""


def test_ctrl_c_ends_ingest_even_while_a_reader_is_blocked(tmp_path: Path, tiny_model: str) -> None:
    dev = shared_path("data/flickr8k/train")  # 6000 photos: ingest runs for some seconds
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)
    db = tmp_path / "db"
    cmd = [sys.executable, "-c", _STUCK_CLI, str(fifo), "ingest", str(dev), "--db", str(db), "--model", tiny_model,
           "--batch-size", "2", "--workers", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        started = time.monotonic()
        for line in proc.stderr:  # plain progress lines (stderr is a pipe)
            if line.startswith("encoding") or time.monotonic() - started > 120:
                break
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        proc.wait(timeout=15)
        took = time.monotonic() - sent
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()  # the fix failed: never leave it behind
            proc.wait(timeout=30)
    assert proc.returncode == 130, err
    assert took < 5, f"took {took:.1f} s to stop after Ctrl-C"
    assert "Interrupted; rerun the same command" in err and "Traceback" not in err
    # nothing kept is lost, and a rerun finishes the job
    done = run_cli("ingest", str(dev), "--db", str(db), "--model", tiny_model, "-q", "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    assert '"rows": 6000' in done.stdout and '"added": 0' not in done.stdout


def test_file_names_reach_the_terminal_escaped_and_programs_exactly(tmp_path: Path, tiny_model: str) -> None:
    """A file name can hold a terminal's commands (OSC 52 writes the clipboard, 8-bit CSI clears
    the screen, backspaces hide text). Human lines show them as escapes; --json escapes them as
    JSON; --paths gives the exact name to a program reading a pipe, and escapes it on a terminal."""
    import json
    import pty

    folder = tmp_path / "names"
    folder.mkdir()
    clip, csi = "clip\x1b]52;c;ZWNobyBoaQ==\x07.jpg", "c1\u009b2Jx.jpg"
    shutil.copy(FIXTURE_IMAGES / "rotated_exif6.jpg", folder / clip)
    shutil.copy(FIXTURE_IMAGES / "rotated_exif6.jpg", folder / csi)
    (folder / "bad\x1b[31mred\b\b.jpg").write_bytes(b"not an image")
    db = str(tmp_path / "db")
    done = run_cli("ingest", str(folder), "--db", db, "--model", tiny_model, "-q", "--no-ocr", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "skipped: " + str(folder / "bad\\x1b[31mred\\x08\\x08.jpg") in done.stderr, done.stderr
    for args in (("search", "a photo"), ("dupes",)):
        done = run_cli(*args, "--db", db, timeout=120)
        assert done.returncode == 0, done.stderr
        shown = done.stdout + done.stderr
        assert not any(ch in shown for ch in "\x1b\x07\x08\u009b"), repr(shown)
        assert "clip\\x1b]52;c;ZWNobyBoaQ==\\x07.jpg" in done.stdout and "c1\\x9b2Jx.jpg" in done.stdout, done.stdout
    done = run_cli("search", "a photo", "--db", db, "--json", timeout=120)
    assert "\u009b" not in done.stdout and "\x1b" not in done.stdout
    assert {json.loads(line)["path"] for line in done.stdout.splitlines()} == {str(folder / clip), str(folder / csi)}
    done = run_cli("search", "a photo", "--db", db, "--paths", timeout=120)  # a pipe: the names as they are
    assert set(done.stdout.splitlines()) == {str(folder / clip), str(folder / csi)}
    main, child = pty.openpty()  # a terminal: escaped
    try:
        proc = subprocess.run([*mmembed_cmd(), "search", "a photo", "--db", db, "--paths"], stdout=child,
                              stderr=subprocess.PIPE, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        os.close(child)
        out = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other end closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(main)
    assert proc.returncode == 0, proc.stderr
    text = out.decode()
    assert "clip\\x1b]52;c;ZWNobyBoaQ==\\x07.jpg" in text and "\x1b" not in text and "\u009b" not in text, repr(text)
