"""The Typer app, the options every command shares, and how errors reach the user.

Each command (``ingest.py``, ``search.py``, ``admin.py``, ``fusion.py``) builds an Index,
calls one method, prints the result.

Results go to stdout; progress, skipped files and errors go to stderr. Heavy imports
(mmembed's pipeline, torch, open_clip, lancedb) happen inside the commands, so
``mmembed --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from .output import echo, json_line

if TYPE_CHECKING:
    from mmembed import Index

app = typer.Typer(
    name="mmembed",
    help="Index photos with CLIP into LanceDB and search them by text or image.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold "[env: ...; default: ...]": square brackets, not markup
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _show_version(value: bool) -> None:
    if value:
        from mmembed._version import __version__

        echo(f"mmembed {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", callback=_show_version,
                                                is_eager=True)] = False) -> None:
    """Index photos with CLIP into LanceDB and search them by text or image."""


# Options shared by every command. None means: MMEMBED_* env var, then the table's record, then default.
DbOpt = Annotated[Optional[str], typer.Option("--db", help="LanceDB directory or URI [env: MMEMBED_DB; default: per-user data dir].", show_default=False)]
TableOpt = Annotated[Optional[str], typer.Option("--table", help="Table name [env: MMEMBED_TABLE; default: images].", show_default=False)]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="open_clip model, hf-hub:ORG/REPO or local-dir:PATH [env: MMEMBED_MODEL; default: the table's model, else ViT-B-32].", show_default=False)]
PretrainedOpt = Annotated[Optional[str], typer.Option("--pretrained", help="open_clip pretrained tag [env: MMEMBED_PRETRAINED; default for ViT-B-32: laion2b_s34b_b79k].", show_default=False)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda or mps [env: MMEMBED_DEVICE; default: auto].", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
# What a walk of PATHS keeps (ingest and watch)
IncludeOpt = Annotated[Optional[list[str]], typer.Option("--include", help="Only files matching this glob (repeatable), e.g. '*.jpg' or 'trips/*'.")]
ExcludeOpt = Annotated[Optional[list[str]], typer.Option("--exclude", help="Skip files and folders matching this glob (repeatable).")]
HiddenOpt = Annotated[bool, typer.Option("--hidden", help="Also index hidden files and folders.")]
FollowSymlinksOpt = Annotated[bool, typer.Option("--follow-symlinks", help="Follow symlinked folders (never in a loop).")]
PruneEmptyOpt = Annotated[bool, typer.Option("--prune-empty", help="Prune even under a PATH that holds no files at all (by default its rows are kept: an unmounted disk looks like an empty folder).")]
RawPairsOpt = Annotated[str, typer.Option("--raw-pairs", help="A RAW beside a JPEG/HEIC of the same name (IMG_1.CR2 + IMG_1.JPG): index the 'jpeg' and record the RAW as its sibling, or 'keep-both'.")]


def _index(db: str | None, table: str | None, model: str | None, pretrained: str | None,
           device: str | None, *, must_exist: bool = True, **extra: Any) -> Index:
    """The Index for these options; with ``must_exist`` (the default), only over a database that
    is there: a command on a mistyped --db must neither report an empty one nor make it. Only the
    commands that make a database (ingest, watch) or need none (embed, eval, serve's page) pass False."""
    from mmembed import Index

    idx = Index(db, table=table, model=model, pretrained=pretrained, device=device, **extra)
    check_db(idx.config.db, must_exist=must_exist)
    return idx


def check_db(uri: str, *, must_exist: bool = False) -> None:
    """A local --db that is a file, or (``must_exist``) that is not there, as one ConfigError."""
    import os

    from mmembed.errors import ConfigError

    if "://" in uri:  # object storage and other URIs: the store says what is wrong
        return
    if os.path.exists(uri) and not os.path.isdir(uri):
        raise ConfigError(f"--db {uri} is a file, not a database folder; pass a folder path")
    if must_exist and not os.path.exists(uri):
        raise ConfigError(f"no database at {uri}; check --db (or MMEMBED_DB), or make one with `mmembed ingest PATH`")


@contextmanager
def _errors(interrupted: str = "Interrupted; rerun the same command to continue where it stopped.") -> Iterator[None]:
    """Turn library errors into one stderr line and exit 1; Ctrl-C into exit 130 and the line
    ``interrupted`` (what rerunning does)."""
    from mmembed import MmembedError
    from mmembed.sources.remote import scrub

    try:
        yield
    except MmembedError as exc:
        echo(f"Error: {scrub(str(exc))}", err=True)  # no AWS secret ever reaches the terminal
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        echo(interrupted, err=True)
        _exit_if_threads_hang(130)
        raise typer.Exit(130) from None


def _exit_if_threads_hang(code: int, wait: float = 1.0) -> None:
    """Exit now with ``code`` when a worker thread is still busy ``wait`` seconds from now (a reader
    blocked on a slow disk, say): Python would otherwise wait for it at exit, for good. What the
    library had to keep is kept by then (its ``finally`` blocks ran as the interrupt came up)."""
    import os
    import threading
    import time

    deadline = time.monotonic() + wait
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.current_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _print_json(obj: Any) -> None:
    json_line(obj)


def main() -> None:
    """Console-script entry point."""
    import warnings

    # Pillow warns about odd EXIF and huge images; mmembed reports such files itself.
    warnings.filterwarnings("ignore", module=r"PIL\..*")
    _notes_to_stderr()
    if _command(sys.argv[1:]) not in READ_ONLY:
        _steady_malloc()
    app()


READ_ONLY = {"search"}  # commands that keep glibc's own mmap threshold (``_steady_malloc``)


def _command(args: list[str]) -> str | None:
    """The command a command line runs (its first word that is not an option)."""
    return next((a for a in args if not a.startswith("-")), None)


MMAP_THRESHOLD = 1 << 20  # bytes: blocks this big are mapped and unmapped on their own, not kept in the heap


def _steady_malloc() -> None:
    """Blocks of 1 MB and up get their own mapping (glibc's ``M_MMAP_THRESHOLD``), so the memory
    they held goes back to the system when they are freed. glibc raises that threshold as large
    blocks are freed, and LanceDB's reads then left the heap fragmented: snapshotting a 100k-row
    table peaked 140 MB above a 10k one's; with the fixed threshold both peak alike (BENCHMARKS.md,
    issue 27). The CLI's process only: the library changes no process setting. Not for a search
    (``READ_ONLY``), which writes nothing: with the fixed threshold each block LanceDB reads was
    mapped afresh, and a cold search of a 1M-row table through LanceDB took ~2 s longer (its
    memory ~140 MB lower; the snapshot path ~20 MB; BENCHMARKS.md)."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return  # (a threshold the user set is kept)
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _notes_to_stderr() -> None:
    """The library logs what a user should know but need not act on now (a damaged snapshot
    it worked around, say) to the ``mmembed`` logger: print those as ``note:`` lines."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("note: %(message)s"))
    logger = logging.getLogger("mmembed")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


if __name__ == "__main__":
    main()
