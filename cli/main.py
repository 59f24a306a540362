"""Typer app. Each command builds an Index, calls one method, prints the result.

Results go to stdout; progress, skipped files and errors go to stderr. Heavy imports
(mmembed's pipeline, torch, open_clip, lancedb) happen inside the commands, so
``mmembed --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from mmembed import Index

app = typer.Typer(
    name="mmembed",
    help="Index photos with CLIP into LanceDB and search them by text or image.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Options shared by every command. None means: MMEMBED_* env var, then the table's record, then default.
DbOpt = Annotated[Optional[str], typer.Option("--db", help="LanceDB directory or URI [env: MMEMBED_DB; default: per-user data dir].", show_default=False)]
TableOpt = Annotated[Optional[str], typer.Option("--table", help="Table name [env: MMEMBED_TABLE; default: images].", show_default=False)]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="open_clip model, hf-hub:ORG/REPO or local-dir:PATH [env: MMEMBED_MODEL; default: the table's model, else ViT-B-32].", show_default=False)]
PretrainedOpt = Annotated[Optional[str], typer.Option("--pretrained", help="open_clip pretrained tag [env: MMEMBED_PRETRAINED; default for ViT-B-32: laion2b_s34b_b79k].", show_default=False)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda or mps [env: MMEMBED_DEVICE; default: auto].", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _index(db: str | None, table: str | None, model: str | None, pretrained: str | None,
           device: str | None, **extra: Any) -> Index:
    from mmembed import Index

    return Index(db, table=table, model=model, pretrained=pretrained, device=device, **extra)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn library errors into one stderr line and exit 1; Ctrl-C into exit 130."""
    from mmembed import MmembedError

    try:
        yield
    except MmembedError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("Interrupted; rerun the same command to continue where it stopped.", err=True)
        raise typer.Exit(130) from None


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Folders or image files to index.", show_default=False)],
    db: DbOpt = None,
    table: TableOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = None,
    include: Annotated[Optional[list[str]], typer.Option("--include", help="Only files matching this glob (repeatable), e.g. '*.jpg' or 'trips/*'.")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option("--exclude", help="Skip files and folders matching this glob (repeatable).")] = None,
    hidden: Annotated[bool, typer.Option("--hidden", help="Also index hidden files and folders.")] = False,
    follow_symlinks: Annotated[bool, typer.Option("--follow-symlinks", help="Follow symlinked folders (never in a loop).")] = False,
    prune: Annotated[bool, typer.Option("--prune/--no-prune", help="Remove rows whose file is gone from under PATHS.")] = True,
    reindex: Annotated[bool, typer.Option("--reindex", help="Drop the table and build it again (needed to switch models).")] = False,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Images per forward pass [default: 32].", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Decode threads [default: one per core, at most 8].", show_default=False)] = None,
    max_megapixels: Annotated[Optional[float], typer.Option("--max-megapixels", help="Skip images larger than this [default: 100].", show_default=False)] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Index the images under PATHS; unchanged files are skipped, moved ones reuse their vectors.

    Example: mmembed ingest ~/Pictures --exclude 'screenshots/*'
    """
    from .progress import IngestBar

    with _errors():
        idx = _index(db, table, model, pretrained, device, batch_size=batch_size,
                     workers=workers, max_megapixels=max_megapixels)
        with IngestBar(enabled=not quiet) as bar:
            report = idx.ingest(
                paths, include=include or (), exclude=exclude or (), hidden=hidden,
                follow_symlinks=follow_symlinks, prune=prune, reindex=reindex, progress=bar.update,
            )
        for skipped in report.skipped:
            typer.echo(f"skipped: {skipped.path}: {skipped.reason}", err=True)
        typer.echo(
            f"added {report.added}, updated {report.updated}, moved {report.moved}, "
            f"unchanged {report.unchanged}, removed {report.removed}, skipped {len(report.skipped)}"
            f" · {report.rows} rows in {idx.config.db} · {report.seconds:.1f} s",
            err=True,
        )
        if as_json:
            _print_json(report.to_dict())


@app.command()
def search(
    query: Annotated[Optional[str], typer.Argument(help="What to look for, in words.", show_default=False)] = None,
    image: Annotated[Optional[Path], typer.Option("--image", "-i", help="Find images like this one (with QUERY: both count equally).", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many results.")] = 10,
    where: Annotated[Optional[str], typer.Option("--where", help="SQL filter on metadata columns, e.g. \"format = 'PNG' AND width > 1000\".", show_default=False)] = None,
    db: DbOpt = None,
    table: TableOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line: path, score (cosine), metadata.")] = False,
    paths_only: Annotated[bool, typer.Option("--paths", help="Print paths only, one per line (for xargs).")] = False,
) -> None:
    """Search indexed images by text (text->image) or by an example image (image->image).

    Example: mmembed search "cat on sofa" -n 5
    """
    with _errors():
        hits = _index(db, table, model, pretrained, device).search(query, image=image, limit=limit, where=where)
    for hit in hits:
        if as_json:
            _print_json(hit.to_dict())
        elif paths_only:
            typer.echo(hit.path)
        else:
            typer.echo(f"{hit.score:7.4f}  {hit.path}")


@app.command()
def info(
    db: DbOpt = None,
    table: TableOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print db, table, rows, model, dim, bytes as JSON.")] = False,
) -> None:
    """Show where the index is, how many images it holds, and which model built it.

    Example: mmembed info --json
    """
    with _errors():
        data = _index(db, table, None, None, None).info().to_dict()
    if as_json:
        _print_json(data)
        return
    model = data["model"] or "(none yet)"
    if data["pretrained"]:
        model += f" ({data['pretrained']})"
    for label, value in (
        ("db", data["db"]), ("table", data["table"]), ("rows", data["rows"]), ("model", model),
        ("dim", data["dim"]), ("bytes", data["bytes"]), ("schema", data["schema_version"]),
    ):
        typer.echo(f"{label:7}{'' if value is None else value}")


@app.command()
def embed(
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to embed.", show_default=False)] = None,
    image: Annotated[Optional[list[Path]], typer.Option("--image", "-i", help="Image files to embed (repeatable).", show_default=False)] = None,
    db: DbOpt = None,
    table: TableOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One object per input: input, kind, model, dim, vector.")] = False,
) -> None:
    """Print the unit vector of each text or image as a JSON array, one per line.

    Uses the index's model when a table exists, else --model. Example: mmembed embed "a cat"
    """
    texts, images = texts or [], image or []
    if not texts and not images:
        raise typer.BadParameter("give TEXT arguments or --image PATH", param_hint="TEXTS")
    with _errors():
        idx = _index(db, table, model, pretrained, device)
        rows = []
        if texts:
            rows += [("text", t, v) for t, v in zip(texts, idx.embed_text(texts))]
        if images:
            rows += [("image", str(p), v) for p, v in zip(images, idx.embed_images([str(p) for p in images]))]
        label = idx.encoder.spec.label
    for kind, source, vector in rows:
        values = [round(float(x), 7) for x in vector]
        if as_json:
            _print_json({"input": source, "kind": kind, "model": label, "dim": len(values), "vector": values})
        else:
            _print_json(values)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
