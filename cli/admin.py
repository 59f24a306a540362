"""``mmembed index``, ``info`` and ``embed``: look after a table and inspect vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .app import DbOpt, DeviceOpt, JsonOpt, ModelOpt, PretrainedOpt, TableOpt, _errors, _index, _print_json, app
from .output import echo


@app.command("index")
def index_command(
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Vector column to index: image, text or fused [default: what searches use].", show_default=False)] = None,
    drop: Annotated[bool, typer.Option("--drop", help="Remove the vector indices instead (searches become exact).")] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="Instead, write the search snapshot and text tower again (and the ANN index past MMEMBED_ANN_ROWS).")] = False,
    db: DbOpt = None,
    table: TableOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build an approximate-nearest-neighbour index (quantised vectors, exact re-ranking) for big tables.

    Ingest builds one by itself once a table passes MMEMBED_ANN_ROWS rows (default 200000).

    \b
    Example: mmembed index
    Rebuild: mmembed index --refresh
    """
    with _errors():
        idx = _index(db, table, None, None, None)
        if refresh:
            idx.refresh()
            result: dict[str, Any] = {"refreshed": True, "vector_indices": sorted(idx.store.vector_indices())}
        else:
            result = {"dropped": idx.drop_vector_index()} if drop else idx.build_vector_index(target)
    if as_json:
        _print_json(result)
    elif refresh:
        echo("search snapshot, full-text index and exported model brought up to date" if idx.store.is_local
             else f"full-text index brought up to date; a table at {idx.store.uri} keeps no local snapshot or "
                  "exported model (searches read it directly)", err=True)
    elif drop:
        echo(f"dropped {result['dropped']} vector index(es); searches are exact", err=True)
    else:
        echo(f"built {result['type']} ({result['bits']}-bit) on {result['column']} over "
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
        ("ocr", f"{data['ocr_read']} of {data['rows']} read, {data['ocr_with_text']} with text"),
    ):
        echo(f"{label:7}{'' if value is None else value}")


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

    Uses the index's model when a table exists, else --model.

    \b
    Example: mmembed embed "a cat"
    Images: mmembed embed --image a.jpg --image b.jpg
    """
    texts, images = texts or [], image or []
    if not texts and not images:
        raise typer.BadParameter("give TEXT arguments or --image PATH", param_hint="TEXTS")
    if any(not t.strip() for t in texts):
        raise typer.BadParameter("an empty text has nothing to embed; give words, e.g. mmembed embed \"a cat\"", param_hint="TEXTS")
    with _errors():
        idx = _index(db, table, model, pretrained, device, must_exist=False)  # embed needs no table
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



@app.command()
def doctor(
    repair: Annotated[bool, typer.Option("--repair", help="Also bring a damaged table back to its last good version (drops what the damaged versions wrote) and finish an interrupted fusion apply.")] = False,
    db: DbOpt = None,
    table: TableOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per check: check, status, detail.")] = False,
) -> None:
    """Check the table and its derived data (snapshot, text tower); rebuild what is derived.

    Exits 1 while a problem remains. Example: mmembed doctor --repair
    """
    with _errors():
        findings = _index(db, table, None, None, None).doctor(repair=repair)
    for finding in findings:
        if as_json:
            _print_json(finding.to_dict())
        else:
            echo(f"{finding.status:9}{finding.check}: {finding.detail}")
    if any(f.status == "problem" for f in findings):
        raise typer.Exit(1)
