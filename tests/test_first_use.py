"""First-use polish (issue 10, part 6): what a new user reads in --help and sees while eval runs."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FIXTURE_IMAGES, run_cli


def test_help_keeps_the_env_and_default_notes() -> None:
    done = run_cli("ingest", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # help is wrapped to the terminal
    assert "[env: MMEMBED_DB;" in text and "[default: 32]" in text, text
    assert "on a CPU int8" in text and "bf16 on CPUs with native bf16" in text and "fp32 on CPU]" not in text
    train = " ".join(run_cli("fusion", "train", "--help").stdout.split())
    assert "[default: 160]" in train, train


def test_eval_with_training_shows_progress(tmp_path: Path, tiny_model: str) -> None:
    names = sorted(p.name for p in FIXTURE_IMAGES.iterdir())
    captions = tmp_path / "caps.csv"
    captions.write_text("image,caption\n" + "".join(f"{n},a picture of {n}\n{n},the file {n}\n" for n in names))
    done = run_cli("eval", str(FIXTURE_IMAGES), "--captions", str(captions), "--model", tiny_model,
                   "--db", str(tmp_path / "db"), "--train", str(FIXTURE_IMAGES), "--train-captions", str(captions),
                   "--epochs", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert f"encoding {len(names)} images and {2 * len(names)} captions of {FIXTURE_IMAGES}" in lines
    assert any(line.startswith("attention training: epoch 2/2  loss ") for line in lines), done.stderr
    assert json.loads(done.stdout)["attention_training"]["epochs"] == 2
