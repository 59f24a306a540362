"""The README is the front door: it must stay true to the CLI and to CI."""

from __future__ import annotations

import re

from conftest import ROOT


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Tests", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()
    ci_lines = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines


def test_every_cli_command_has_a_readme_example() -> None:
    from mmembed.cli import app

    readme = (ROOT / "README.md").read_text()
    names = [info.name or info.callback.__name__ for info in app.registered_commands]
    names += [group.name for group in app.registered_groups]
    assert sorted(names) == ["doctor", "dupes", "embed", "eval", "fusion", "index", "info", "ingest", "mcp", "models", "ocr", "search", "serve", "tag", "watch"]
    for name in names:
        assert f"### `mmembed {name}" in readme, name
        assert re.search(rf"^mmembed {name}\b", readme, re.M), name
