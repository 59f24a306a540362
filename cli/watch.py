"""``mmembed watch``."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Optional

import typer

from .app import (DbOpt, DeviceOpt, ExcludeOpt, FollowSymlinksOpt, HiddenOpt, IncludeOpt, JsonOpt, ModelOpt, PretrainedOpt,
                  PruneEmptyOpt, RawPairsOpt, TableOpt, _errors, _index, app)
from .output import echo, json_line


@app.command()
def watch(
    paths: Annotated[list[str], typer.Argument(help="Folders (or image files) to keep indexed.", show_default=False)],
    db: DbOpt = None,
    table: TableOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    hidden: HiddenOpt = False,
    follow_symlinks: FollowSymlinksOpt = False,
    prune_empty: PruneEmptyOpt = False,
    raw_pairs: RawPairsOpt = "jpeg",
    debounce: Annotated[float, typer.Option("--debounce", help="Seconds without a change before a batch is ingested.")] = 1.0,
    max_wait: Annotated[float, typer.Option("--max-wait", help="Ingest at the latest this many seconds after a batch's first change, even while changes go on.")] = 30.0,
    ocr: Annotated[Optional[bool], typer.Option("--ocr/--no-ocr", help="Read the text in new pictures [default: on when the ocr extra is installed: pip install 'mmembed[ocr]'].", show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Keep the table in step with PATHS: one ingest now, then one per burst of changes, until Ctrl-C.

    Prints one line per batch. A folder that is unmounted keeps its rows; it is caught up
    with when it is back. Needs the watch extra: pip install 'mmembed[watch]'.

    Example: mmembed watch ~/Pictures --exclude 'screenshots/*'
    """
    from mmembed.ingest.watch import require_watchdog

    with _errors():
        require_watchdog()
        idx = _index(db, table, model, pretrained, device, must_exist=False)  # makes it
        stop = threading.Event()
        with _stop_on_signals(stop):
            idx.watch(paths, include=include or (), exclude=exclude or (), hidden=hidden,
                      follow_symlinks=follow_symlinks, prune_empty=prune_empty, raw_pairs=raw_pairs,
                      ocr=ocr, debounce=debounce, max_wait=max_wait,
                      on_event=_json_line if as_json else _line, stop=stop)
        echo("Stopped.", err=True)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C or SIGTERM asks the watch to stop at a safe point; a second one interrupts it."""

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _json_line(event: Any) -> None:
    json_line(event.to_dict())
    sys.stdout.flush()


def _line(event: Any) -> None:
    """One line per event: batches on stdout, their skipped files and errors on stderr."""
    at = time.strftime("%H:%M:%S", time.localtime(event.time))
    report = event.report
    if report is not None and event.kind == "batch" and not _changed(report):
        return  # e.g. a temporary file that came and went: nothing to say
    if report is not None:
        for skipped in report.skipped:
            echo(f"skipped: {skipped.path}: {skipped.reason}", err=True)
        for warning in report.warnings:
            echo(f"warning: {warning}", err=True)
        if event.kind == "batch" and not _counted(report):
            return  # only warnings (deletions kept under an empty folder, say): they said it
        label = "catch-up" if event.kind == "catch-up" else "ingest"
        echo(f"{at} {label}: {report.added} added, {report.updated} updated, {report.moved} moved, "
                   f"{report.removed} removed" + (f", {len(report.skipped)} skipped" if report.skipped else "")
                   + f" ({report.seconds:.1f} s); {report.rows:,} row{'s' * (report.rows != 1)}")
    elif event.kind == "start":
        echo(f"{at} watching {', '.join(event.roots)}; Ctrl-C to stop", err=True)
    elif event.kind == "waiting":
        echo(f"{at} waiting for {event.roots[0]} (gone or unmounted; its rows are kept)")
    elif event.kind == "resumed":
        echo(f"{at} {event.roots[0]} is back; catching up")
    elif event.kind == "error":
        echo(f"{at} note: {event.message}", err=True)


def _counted(report: Any) -> bool:
    """Whether the batch line would say anything: a row added, updated, moved or removed."""
    return bool(report.added or report.updated or report.moved or report.removed or report.text_updated)


def _changed(report: Any) -> bool:
    return bool(report.added or report.updated or report.moved or report.removed or report.text_updated
                or report.skipped or report.warnings)
