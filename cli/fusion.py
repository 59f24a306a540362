"""``mmembed fusion train|apply`` and ``mmembed eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import DbOpt, DeviceOpt, ModelOpt, PretrainedOpt, TableOpt, _errors, _index, _print_json, app
from .output import echo, json_line

fusion_app = typer.Typer(help="Train and apply item-level fusion of image and text vectors.", no_args_is_help=True,
                         rich_markup_mode=None)
app.add_typer(fusion_app, name="fusion")


@fusion_app.command("train")
def fusion_train(
    db: DbOpt = None,
    table: TableOpt = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Passes over the captioned items, 1024 a step [default: 160].", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    apply: Annotated[bool, typer.Option("--apply/--no-apply", help="Switch the table to attention fusion afterwards.")] = True,
    device: DeviceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the training figures as JSON.")] = False,
) -> None:
    """Train attention fusion on the table's items that have two or more captions.

    The weights are stored in the database with the encoder's fingerprint.
    Example: mmembed fusion train
    """
    with _errors():
        idx = _index(db, table, None, None, device)

        def show(epoch: int, total: int, loss: float) -> None:
            if epoch == total or epoch % max(1, total // 10) == 0:  # about ten lines per run
                echo(f"epoch {epoch}/{total}  loss {loss:.4f}", err=True)

        info = idx.train_fusion(epochs=epochs, seed=seed, apply=apply, progress=show)
    echo(f"trained on {info['items']} items ({info['captions']} captions) in {info['seconds']} s", err=True)
    if as_json:
        _print_json(info)


@fusion_app.command("apply")
def fusion_apply(
    fusion: Annotated[Optional[str], typer.Option("--fusion", help="mean, concat or attention [default: keep].", show_default=False)] = None,
    weight: Annotated[Optional[float], typer.Option("--weight", help="Image weight w, 0..1 [default: keep].", show_default=False)] = None,
    text_aggregate: Annotated[Optional[str], typer.Option("--text-aggregate", help="'mean' or 'first' of several captions [default: keep].", show_default=False)] = None,
    db: DbOpt = None,
    table: TableOpt = None,
    device: DeviceOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
) -> None:
    """Recompute every fused vector from stored vectors (no image is decoded).

    Example: mmembed fusion apply --fusion concat --weight 0.3
    """
    from .progress import IngestBar

    with _errors():
        idx = _index(db, table, None, None, device)
        with IngestBar(enabled=not quiet) as bar:
            rows = idx.apply_fusion(strategy=fusion, weight=weight, text_aggregate=text_aggregate, progress=bar.update)
        echo(f"fused vectors recomputed for {rows} rows: {idx.fusion.to_dict()}", err=True)


@app.command("eval")
def evaluate(
    folder: Annotated[Path, typer.Argument(help="Folder of images.", show_default=False)],
    captions: Annotated[Path, typer.Option("--captions", help="CSV with image,caption rows (several per image).", show_default=False)],
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = None,
    db: DbOpt = None,
    table: TableOpt = None,
    weight: Annotated[Optional[float], typer.Option("--weight", help="Fusion image weight w [default: 0.2].", show_default=False)] = None,
    train: Annotated[Optional[Path], typer.Option("--train", help="Train attention fusion on this image folder first.", show_default=False)] = None,
    train_captions: Annotated[Optional[Path], typer.Option("--train-captions", help="Captions CSV for --train.", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Attention training epochs [default: 160].", show_default=False)] = None,
    sweep: Annotated[Optional[list[float]], typer.Option("--sweep", help="Also report mean/concat R@1 at this weight (repeatable).", show_default=False)] = None,
) -> None:
    """Measure retrieval (text->image, image->text R@1/5/10) and the fusion protocol; prints JSON.

    Fusion protocol: item = image + caption #1, queries = captions #2..#5.
    Example: mmembed eval ./dev --captions dev_captions.csv --train ./train --train-captions train_captions.csv
    """
    from mmembed.retrieval.evaluation import evaluate as run_eval

    with _errors():
        idx = _index(db, table, model, pretrained, device, must_exist=False)  # eval needs no table
        result = run_eval(idx.encoder, folder, captions, weight=weight, train_folder=train,
                          train_captions=train_captions, epochs=epochs, sweep=sweep or (),
                          progress=lambda line: echo(line, err=True))
    json_line(result, indent=2)
