"""``mmembed ocr``: read the text in the pictures of a table indexed before (no image re-encoded)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .app import DbOpt, JsonOpt, TableOpt, _errors, _index, _print_json, app
from .output import echo


@app.command()
def ocr(
    redo: Annotated[bool, typer.Option("--redo", help="Read every picture again, not only those not read yet (or read by an older engine).")] = False,
    db: DbOpt = None,
    table: TableOpt = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Read the words in the pictures (PP-OCRv5: English, Chinese and more) into the table.

    Only rows not read yet are read (a pass cut short resumes); the vectors are kept as they are.
    A file changed since it was indexed is skipped (run `mmembed ingest` first). `mmembed ingest`
    does the same for new files when the ocr extra is installed (pip install 'mmembed[ocr]').

    Example: mmembed ocr && mmembed search "boarding pass oslo"
    """
    from .progress import IngestBar

    again = ("Interrupted; the text read so far is kept. --redo reads every picture again from the first"
             if redo else "Interrupted; rerun the same command to continue where it stopped.")
    with _errors(again):
        idx = _index(db, table, None, None, None)
        with IngestBar(enabled=not quiet) as bar:
            report = idx.ocr(redo=redo, progress=lambda done, total: bar.update(_event(done, total)))
    print_report(report.to_dict(), as_json)


def print_report(data: dict[str, Any], as_json: bool) -> None:
    """The pass's summary on stderr (skipped and failed files one line each); ``--json`` on stdout."""
    for path, reason in data["skipped"]:
        echo(f"skipped: {path}: {reason}", err=True)
    for path, reason in data["failed"]:
        echo(f"note: {path}: no text read ({reason}); the picture stays indexed by its looks", err=True)
    echo(f"read text in {data['read']} pictures ({data['with_text']} with text, {data['recognized']} past the gate), "
               f"skipped {len(data['skipped'])}, failed {len(data['failed'])} · {data['seconds']:.1f} s", err=True)
    if as_json:
        _print_json(data)


def _event(done: int, total: int) -> Any:
    from mmembed.ingest.report import IngestProgress

    return IngestProgress("ocr", done, total)
