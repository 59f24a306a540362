"""The README's quick start (issue 25, item 4): its ingest and its query, run as the README
writes them, give a top 5 that the photos' own captions confirm; and a manifest whose names
match nothing says why in one line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from conftest import ROOT, flickr_dev_captions, run_cli, shared_path


def _demo_line() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    return re.search(r"```bash\n(.*?)\n```", section, re.S).group(1)


def test_the_readme_demo_query_finds_dogs_on_grass(tmp_path: Path, micro_clip: str) -> None:
    steps = [shlex.split(step) for step in _demo_line().split(" && ")]
    env: dict[str, str] = {}
    for step in steps:
        if step[0] == "export":
            env.update(item.split("=", 1) for item in step[1:])
    ingest = next(s for s in steps if s[0].endswith("mmembed") and s[1] == "ingest")
    search = next(s for s in steps if s[0].endswith("mmembed") and s[1] == "search")
    env["MMEMBED_DB"] = str(tmp_path / "demo.lancedb")  # a fresh table, not the user's demo
    assert env["MMEMBED_MODEL"] == "local-dir:../shared/models/micro-clip"
    env["MMEMBED_MODEL"] = micro_clip
    folder = ingest[2]
    assert folder.startswith("../shared/")
    shared_path(folder.removeprefix("../shared/"))  # skips (naming it) without ../shared
    done = run_cli(*ingest[1:], "-q", env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    found = run_cli(*search[1:], "--paths", env=env, cwd=ROOT, timeout=120)
    assert found.returncode == 0, found.stderr
    top = found.stdout.split()
    assert len(top) == 5
    query = search[2]
    assert query == "a dog running on grass"
    captions = flickr_dev_captions()
    for path in top:
        said = " ".join(captions[Path(path).name])
        assert "dog" in said and re.search(r"grass|field|lawn|yard", said), f"{path}: {captions[Path(path).name]}"


def test_a_manifest_that_names_no_image_says_why(tmp_path: Path, micro_clip: str) -> None:
    photos = tmp_path / "photos"
    (photos / "coco").mkdir(parents=True)
    dev = shared_path("data/flickr8k/dev")
    names = sorted(p.name for p in dev.iterdir())[:3]
    for name in names:
        (photos / "coco" / name).write_bytes((dev / name).read_bytes())
    manifest = photos / "captions.csv"
    manifest.write_text("image,caption\n" + "".join(f"{n},a photo\n" for n in names))
    done = run_cli("ingest", str(photos), "--captions", str(manifest), "--db", str(tmp_path / "db"),
                   "--model", micro_clip, "-q", timeout=300)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("warning:") and "captions.csv" in line]
    assert len(notes) == 1, done.stderr
    assert f"none of its 3 rows named an indexed image: names such as {names[0]} are read relative to {photos}" in notes[0]
    assert f"{photos / 'coco' / names[0]} exists" in notes[0]
