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
    captions: Annotated[Optional[list[Path]], typer.Option("--captions", help="Manifest mapping image paths to text: .csv, .jsonl or .parquet (repeatable). Extra columns become filterable.", show_default=False)] = None,
    text_sources: Annotated[str, typer.Option("--text-sources", help="Where item text comes from, by precedence (comma list of sidecar, embedded, manifest).")] = "sidecar,embedded,manifest",
    path_text: Annotated[bool, typer.Option("--path-text", help="Also use folder and file-name words as item text.")] = False,
    fusion: Annotated[Optional[str], typer.Option("--fusion", help="How image and text vectors combine: mean, concat or attention [default: the table's, else mean].", show_default=False)] = None,
    fusion_weight: Annotated[Optional[float], typer.Option("--fusion-weight", help="Image weight w of the fusion, 0..1 [default: the table's, else 0.2].", show_default=False)] = None,
    text_aggregate: Annotated[Optional[str], typer.Option("--text-aggregate", help="Several captions per item: fuse their 'mean' or the 'first'.", show_default=False)] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="auto, fp32, bf16 or fp16 [env: MMEMBED_PRECISION; default: auto = fp16 on CUDA, fp32 on CPU].", show_default=False)] = None,
    decode: Annotated[Optional[str], typer.Option("--decode", help="fast (JPEGs decoded at the smallest DCT scale that covers the model input) or exact [default: fast].", show_default=False)] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Index the images under PATHS; unchanged files are skipped, moved ones reuse their vectors.

    Example: mmembed ingest ~/Pictures --exclude 'screenshots/*'
    """
    from .progress import IngestBar

    with _errors():
        idx = _index(db, table, model, pretrained, device, batch_size=batch_size,
                     workers=workers, max_megapixels=max_megapixels, precision=precision, decode=decode)
        with IngestBar(enabled=not quiet) as bar:
            report = idx.ingest(
                paths, include=include or (), exclude=exclude or (), hidden=hidden,
                follow_symlinks=follow_symlinks, prune=prune, reindex=reindex, captions=captions or (),
                text_sources=[t.strip() for t in text_sources.split(",") if t.strip()], path_text=path_text,
                fusion=fusion, fusion_weight=fusion_weight, text_aggregate=text_aggregate, progress=bar.update,
            )
        for skipped in report.skipped:
            typer.echo(f"skipped: {skipped.path}: {skipped.reason}", err=True)
        typer.echo(
            f"added {report.added}, updated {report.updated}, moved {report.moved}, "
            f"unchanged {report.unchanged}, text updated {report.text_updated}, removed {report.removed}, "
            f"skipped {len(report.skipped)}"
            f" · {report.rows} rows in {idx.config.db} · {report.seconds:.1f} s",
            err=True,
        )
        if as_json:
            _print_json(report.to_dict())


@app.command()
def search(
    query: Annotated[Optional[str], typer.Argument(help="What to look for, in words; 'a + b - c' adds and subtracts terms.", show_default=False)] = None,
    image: Annotated[Optional[Path], typer.Option("--image", "-i", help="Find items like this image (with QUERY: a composite query).", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many results.")] = 10,
    where: Annotated[Optional[str], typer.Option("--where", help="SQL filter on metadata columns, e.g. \"format = 'PNG' AND width > 1000\".", show_default=False)] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Vectors to search: image, text or fused [default: fused when items have text, else image].", show_default=False)] = None,
    image_weight: Annotated[Optional[float], typer.Option("--image-weight", help="Weight of --image against QUERY, 0..1 [default: 0.5; concat: the table's w].", show_default=False)] = None,
    negatives: Annotated[Optional[list[str]], typer.Option("--not", help="Push results away from this text (repeatable).", show_default=False)] = None,
    db: DbOpt = None,
    table: TableOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line: path, score (cosine), caption, image_score, text_score, metadata.")] = False,
    paths_only: Annotated[bool, typer.Option("--paths", help="Print paths only, one per line (for xargs).")] = False,
) -> None:
    """Search by text (text->image), by image (image->image), both, or image->text (--target text).

    Example: mmembed search "red car" --image ref.jpg --image-weight 0.4 --not blurry
    """
    with _errors():
        hits = None
        if image is None and where is None:  # text only: try the path without lancedb and torch
            from mmembed.config import Config
            from mmembed.quick import quick_search

            config = Config.resolve(db=db, table=table, model=model, pretrained=pretrained, device=device)
            hits = quick_search(config, query, limit=limit, target=target, negatives=negatives or ())
        if hits is None:
            hits = _index(db, table, model, pretrained, device).search(
                query, image=image, limit=limit, where=where, target=target, image_weight=image_weight,
                negatives=negatives or (),
            )
    for hit in hits:
        if as_json:
            _print_json(hit.to_dict())
        elif paths_only:
            typer.echo(hit.path)
        else:
            caption = f"  {_short(hit.text)}" if hit.text else ""
            typer.echo(f"{hit.score:7.4f}  {hit.path}{caption}")


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command("index")
def index_command(
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Vector column to index: image, text or fused [default: what searches use].", show_default=False)] = None,
    drop: Annotated[bool, typer.Option("--drop", help="Remove the vector indices instead (searches become exact).")] = False,
    db: DbOpt = None,
    table: TableOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build an approximate-nearest-neighbour index (quantised vectors, exact re-ranking) for big tables.

    Ingest builds one by itself once a table passes MMEMBED_ANN_ROWS rows (default 200000).
    Example: mmembed index
    """
    with _errors():
        idx = _index(db, table, None, None, None)
        result: dict[str, Any] = {"dropped": idx.drop_vector_index()} if drop else idx.build_vector_index(target)
    if as_json:
        _print_json(result)
    elif drop:
        typer.echo(f"dropped {result['dropped']} vector index(es); searches are exact", err=True)
    else:
        typer.echo(f"built {result['type']} ({result['bits']}-bit) on {result['column']} over "
                   f"{result['rows']} rows", err=True)


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
    fusion = data["fusion"] or {}
    fusion_text = f"{fusion['strategy']} (w={fusion['weight']}, texts: {fusion['text_aggregate']})" if fusion else None
    for label, value in (
        ("db", data["db"]), ("table", data["table"]), ("rows", data["rows"]), ("text", data["captioned"]),
        ("model", model), ("dim", data["dim"]), ("fusion", fusion_text), ("bytes", data["bytes"]),
        ("schema", data["schema_version"]),
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
    import warnings

    # Pillow warns about odd EXIF and huge images; mmembed reports such files itself.
    warnings.filterwarnings("ignore", module=r"PIL\..*")
    app()


if __name__ == "__main__":
    main()
