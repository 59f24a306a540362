"""``mmembed models``: the model families known to work on the fast path, to choose from."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import _print_json, app
from .output import echo


@app.command("models")
def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="One object per family.")] = False,
) -> None:
    """List the model families that run on the fast path (both towers on ONNX Runtime, a cold
    query without torch): size, embedding size, languages, the extra each needs, and this
    machine's measured images/s and cold-query time (benchmarks/families.py).

    \b
    Example: mmembed models
    Then:    mmembed ingest ~/Pictures --model xlm-roberta-base-ViT-B-32 --pretrained laion5b_s13b_b90k
    """
    from mmembed.models.catalog import families, measured

    rows = families()
    if as_json:
        for row in rows:
            _print_json(row)
        return
    echo(f"{'model':26} {'pretrained':18} {'MB':>5} {'dim':>4} {'img/s':>6} {'query s':>7}  {'extra':6} languages")
    for row in rows:
        def show(value: object, width: int) -> str:
            return f"{'-' if value is None else value:>{width}}"

        echo(f"{row['model']:26} {row['pretrained']:18} {show(row['size_mb'], 5)} {show(row['dim'], 4)} "
                   f"{show(row['image_per_s'], 6)} {show(row['cold_text_query_s'], 7)}  {row['extra'] or '-':6} "
                   f"{row['languages']}")
    record = measured()
    if record:
        echo(f"measured by `{record.get('command')}` on {record.get('cpu')}, {record.get('date')} "
                   f"({record.get('tier')} size, random weights: speed does not depend on their values); "
                   "'-': not measured", err=True)
    else:
        echo("no measurements recorded; run python benchmarks/families.py", err=True)
    echo("extra hf: pip install 'mmembed[hf]' (transformers, tokenizers)", err=True)
