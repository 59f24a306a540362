"""``mmembed ingest``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import (DbOpt, DeviceOpt, ExcludeOpt, FollowSymlinksOpt, HiddenOpt, IncludeOpt, JsonOpt, ModelOpt, PretrainedOpt,
                  PruneEmptyOpt, RawPairsOpt, TableOpt, _errors, _index, _print_json, app)
from .output import echo


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Folders or image files to index, or s3://BUCKET/PREFIX (object storage; pip install 'mmembed[s3]').", show_default=False)],
    db: DbOpt = None,
    table: TableOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    hidden: HiddenOpt = False,
    follow_symlinks: FollowSymlinksOpt = False,
    prune: Annotated[bool, typer.Option("--prune/--no-prune", help="Remove rows whose file is gone from under PATHS.")] = True,
    prune_empty: PruneEmptyOpt = False,
    reindex: Annotated[bool, typer.Option("--reindex", help="Drop the table and build it again (needed to switch models).")] = False,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Images per forward pass [default: 32].", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Decode threads [default: one per core, at most 8].", show_default=False)] = None,
    max_megapixels: Annotated[Optional[float], typer.Option("--max-megapixels", help="Skip images larger than this [default: 100].", show_default=False)] = None,
    captions: Annotated[Optional[list[Path]], typer.Option("--captions", help="Manifest mapping image paths to text: .csv, .tsv, .jsonl or .parquet (repeatable; names relative to its folder or to a PATH). Extra columns become filterable.", show_default=False)] = None,
    text_sources: Annotated[str, typer.Option("--text-sources", help="Where item text comes from, by precedence (comma list of sidecar, embedded, manifest).")] = "sidecar,embedded,manifest",
    path_text: Annotated[bool, typer.Option("--path-text", help="Also use folder and file-name words as item text.")] = False,
    fusion: Annotated[Optional[str], typer.Option("--fusion", help="How image and text vectors combine: mean, concat or attention [default: the table's, else mean].", show_default=False)] = None,
    fusion_weight: Annotated[Optional[float], typer.Option("--fusion-weight", help="Image weight w of the fusion, 0..1 [default: the table's, else 0.2].", show_default=False)] = None,
    text_aggregate: Annotated[Optional[str], typer.Option("--text-aggregate", help="Several captions per item: fuse their 'mean' or the 'first'.", show_default=False)] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="auto, fp32, int8, bf16 or fp16 [env: MMEMBED_PRECISION; default: auto = fp16 on CUDA; on a CPU int8 (ONNX Runtime, checked against fp32), or for a model without exported towers bf16 on CPUs with native bf16, else fp32].", show_default=False)] = None,
    decode: Annotated[Optional[str], typer.Option("--decode", help="fast (JPEGs decoded at the smallest DCT scale that covers the model input) or exact [default: fast].", show_default=False)] = None,
    raw_pairs: RawPairsOpt = "jpeg",
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Also read files that failed to decode before and have not changed since (they are skipped otherwise).")] = False,
    tags: Annotated[bool, typer.Option("--tags", help="Zero-shot tag the new rows (the labels of the last `mmembed tag`, else the built-in set).")] = False,
    engine: Annotated[str, typer.Option("--engine", help="local (threads in this process) or ray (a Ray Data pipeline: decode in CPU tasks, encode in an actor pool, a GPU each when the cluster has them; pip install 'mmembed[ray]').")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="With --engine ray: a running cluster, e.g. ray://HEAD:10001 [default: start a local one].", show_default=False)] = None,
    ocr: Annotated[Optional[bool], typer.Option("--ocr/--no-ocr", help="Read the text in the pictures after encoding them [default: on when the ocr extra is installed: pip install 'mmembed[ocr]'].", show_default=False)] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Index the images under PATHS; unchanged files are skipped, moved ones reuse their vectors.

    Example: mmembed ingest ~/Pictures --exclude 'screenshots/*'
    """
    from mmembed.ingest.options import IngestOptions

    from .progress import IngestBar

    with _errors():
        options = IngestOptions(
            include=include or (), exclude=exclude or (), hidden=hidden, follow_symlinks=follow_symlinks,
            prune=prune, prune_empty=prune_empty, reindex=reindex, captions=captions or (),
            text_sources=text_sources, path_text=path_text,
            fusion=fusion, fusion_weight=fusion_weight, text_aggregate=text_aggregate, raw_pairs=raw_pairs,
            retry_failed=retry_failed, tags=tags, engine=engine, ray_address=ray_address, ocr=ocr,
        )
        idx = _index(db, table, model, pretrained, device, must_exist=False, batch_size=batch_size,
                     workers=workers, max_megapixels=max_megapixels, precision=precision, decode=decode)
        with IngestBar(enabled=not quiet) as bar:
            report = idx.ingest(paths, options=options, progress=bar.update)
        for skipped in report.skipped:
            echo(f"skipped: {skipped.path}: {skipped.reason}", err=True)
        if report.ocr:
            for path, reason in report.ocr["skipped"]:
                echo(f"skipped: {path}: {reason}", err=True)
            for path, reason in report.ocr["failed"]:
                echo(f"note: {path}: no text read ({reason}); the picture stays indexed by its looks", err=True)
        for warning in report.warnings:
            echo(f"warning: {warning}", err=True)
        echo(
            f"added {report.added}, updated {report.updated}, moved {report.moved}, "
            f"unchanged {report.unchanged}, text updated {report.text_updated}, removed {report.removed}, "
            f"skipped {len(report.skipped)}"
            + (f", {report.captions_unmatched} caption rows named no indexed image" if report.captions_unmatched else "")
            + (f", {report.frames} video frames encoded (a row each)" if report.frames else "")
            + (f", text read in {report.ocr['read']} ({report.ocr['with_text']} with text)" if report.ocr else "")
            + f" · {report.rows} rows in {idx.config.db} · {report.seconds:.1f} s",
            err=True,
        )
        if as_json:
            _print_json(report.to_dict())
