"""Shared fixtures: a tiny random-init model (loaded through local-dir:, like real weights),
real image files in tmp_path, real LanceDB on disk, and access to ../shared."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Nothing in the test run may touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
FIXTURE_IMAGES = FIXTURES / "images"
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(FIXTURES))


def shared_path(relative: str) -> Path:
    """A path under ../shared; fails under CI=true when missing, skips (naming it) elsewhere."""
    path = SHARED / relative
    if not path.exists():
        message = f"{path} is missing (the shared models and data live in ../shared)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path.resolve()  # ingest stores real paths; ../shared may be reached through a link


def flickr_photos(folder: Path, count: int) -> Path:
    """``folder`` made, holding copies of the first ``count`` Flickr8k dev photos (dates kept)."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for src in sorted(shared_path("data/flickr8k/dev").glob("*.jpg"))[:count]:
        shutil.copy2(src, folder / src.name)
    return folder


def noise_jpegs(folder: Path, count: int, *, seed: int = 0, name: str = "img{i:04d}.jpg",
                per_folder: int | None = None, quality: int = 80) -> Path:
    """``count`` small, distinct real JPEGs in ``folder`` (random 24x32 pixels scaled to 64x48),
    named by ``name``; with ``per_folder``, that many to a subfolder ``roll{n}``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        sub = folder / f"roll{i // per_folder}" if per_folder else folder
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((64, 48)).save(sub / name.format(i=i), quality=quality)
    return folder


def flickr_dev_captions() -> dict[str, list[str]]:
    """Flickr8k dev's captions by image file name, lower-cased."""
    import csv
    from collections import defaultdict

    out: dict[str, list[str]] = defaultdict(list)
    with open(shared_path("data/flickr8k/dev_captions.csv"), newline="") as f:
        for row in csv.DictReader(f):
            out[row["image"]].append(row["caption"].lower())
    return out


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One user cache for the whole run: text towers are exported once per model, as for a user."""
    return tmp_path_factory.mktemp("cache")


def _isolate(patch: pytest.MonkeyPatch, home: Path, cache: Path) -> None:
    """No MMEMBED_* settings from the developer's shell; the default db lands in ``home``; one
    user cache for the run. OCR at ingest (on by default with the ocr extra) costs every ingest
    test time; tests/test_ocr_ingest.py turns it on."""
    for name in list(os.environ):
        if name.startswith("MMEMBED_"):
            patch.delenv(name)
    patch.setenv("XDG_DATA_HOME", str(home / "data"))
    patch.setenv("XDG_CACHE_HOME", str(cache))
    patch.setenv("HF_HOME", str(home / "hf"))
    patch.setenv("MMEMBED_OCR", "0")


@pytest.fixture(scope="session", autouse=True)
def _session_env(tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> Iterator[None]:
    """The same isolation for the whole session, so that module- and session-scoped fixtures (which
    run before any test's ``_isolated_env``) ingest with the test run's cache and settings, not the
    developer's: a table ingested with towers in ~/.cache and searched with the session's cache
    encoded its query on another path."""
    with pytest.MonkeyPatch.context() as patch:
        _isolate(patch, tmp_path_factory.mktemp("session-home"), session_cache)
        yield


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> None:
    """Each test on its own: a fresh temp home (``_isolate``)."""
    _isolate(monkeypatch, tmp_path_factory.mktemp("home"), session_cache)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """'local-dir:PATH' of the tiny random-init model, made once per session from a fixed seed."""
    from make_tiny_model import make_tiny_model

    return "local-dir:" + str(make_tiny_model(tmp_path_factory.mktemp("tiny-clip"), seed=0))


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Same architecture, different weights: a different model as far as a table is concerned."""
    from make_tiny_model import make_tiny_model

    return "local-dir:" + str(make_tiny_model(tmp_path_factory.mktemp("tiny-clip-b"), seed=1))


@pytest.fixture(scope="session")
def micro_clip() -> str:
    return "local-dir:" + str(shared_path("models/micro-clip"))


EVIL_CAPTION = "<script>alert(1)</script> <img src=x onerror=alert(2)>"


@pytest.fixture(scope="session")
def captioned_dev(tmp_path_factory: pytest.TempPathFactory, micro_clip: str, session_cache: Path) -> dict[str, str]:
    """A table of Flickr8k dev with its captions (micro-clip), plus a folder ``extra`` holding an
    EXIF-rotated JPEG whose sidecar caption is an XSS attempt, and a HEIC. Read-only for tests."""
    import mmembed

    dev = shared_path("data/flickr8k/dev")
    extra = tmp_path_factory.mktemp("extra")
    shutil.copy(FIXTURE_IMAGES / "rotated_exif6.jpg", extra / "evil.jpg")
    (extra / "evil.txt").write_text(EVIL_CAPTION)
    shutil.copy(FIXTURE_IMAGES / "phone.heic", extra / "phone.heic")
    db = str(tmp_path_factory.mktemp("captioned") / "db.lancedb")
    with pytest.MonkeyPatch.context() as env:  # the user cache the tests' own runs see
        env.setenv("XDG_CACHE_HOME", str(session_cache))
        for name in [n for n in os.environ if n.startswith("MMEMBED_")]:
            env.delenv(name)
        report = mmembed.Index(db, model=micro_clip, batch_size=64).ingest(
            [dev, extra], captions=[shared_path("data/flickr8k/dev_captions.csv")], ocr=False)  # 1002 photos: no OCR pass
    assert report.added == 1002 and not report.skipped
    return {"db": db, "extra": str(extra.resolve())}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A writable copy of fixtures/images (17 small real files, every format and mode)."""
    dest = tmp_path / "photos"
    shutil.copytree(FIXTURE_IMAGES, dest)
    return dest


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "index.lancedb")


@pytest.fixture
def index(db: str, tiny_model: str):
    import mmembed

    return mmembed.Index(db, model=tiny_model, workers=2)


def mmembed_cmd() -> list[str]:
    """The real installed console script."""
    exe = shutil.which("mmembed", path=str(Path(sys.executable).parent)) or shutil.which("mmembed")
    assert exe, "the mmembed console script is not installed; run pip install -e '.[test]'"
    return [exe]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run the real ``mmembed`` entry point in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_") or k == "MMEMBED_OCR"}
    full_env.update(env or {})
    return subprocess.run(
        [*mmembed_cmd(), *args], capture_output=True, text=True, env=full_env, timeout=timeout, **kwargs
    )


# What several test files share (they were one file, test_hardening.py, before issue 21)
N_FIXTURES = len(list(FIXTURE_IMAGES.iterdir()))  # the images in fixtures/images
LOCKED = "another mmembed ingest or writer"  # how a refusal for the write lock begins


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The CLI's failure: exit 1 and exactly one stderr line, 'Error: ...', no traceback."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


@pytest.fixture
def built(photos: Path, db: str, tiny_model: str) -> str:
    """``db`` with ``photos`` ingested by the tiny model."""
    import mmembed

    mmembed.Index(db, model=tiny_model).ingest(photos)
    return db
