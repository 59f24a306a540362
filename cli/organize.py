"""``mmembed dupes`` and ``mmembed tag``: organising a library from its stored vectors."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .app import DbOpt, TableOpt, _errors, _index, _print_json, app
from .output import echo, one_format, path_line


@app.command()
def dupes(
    db: DbOpt = None,
    table: TableOpt = None,
    mode: Annotated[str, typer.Option("--mode", help="exact: the same bytes; near: the same photo re-encoded, resized, rotated, lightly cropped or edited; similar: burst shots and the same scene.")] = "near",
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="near: the lowest image-vector cosine of a pair that is checked (by local features) [default: 0.5]; similar: the cosine that links two photos [default: 0.90]. 0..1.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per group: kind, score, files (id, path, size, width, height, date_ns, keep).")] = False,
    paths_only: Annotated[bool, typer.Option("--paths", help="Print only the photos that are not the suggested keeper, one path per line.")] = False,
    null: Annotated[bool, typer.Option("-0", "--null", help="As --paths, each path ended by a NUL byte (for xargs -0: safe for any file name).")] = False,
    html_file: Annotated[Optional[Path], typer.Option("--html", help="Also write the groups as a self-contained HTML gallery.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
) -> None:
    """Find duplicate photos. Never deletes or moves a file.

    Each group marks a suggested keeper: the photo with the most pixels, then the oldest (EXIF
    date taken, else the file's date), then the shortest path. For near-duplicates the stored
    image vectors propose each photo's nearest photos; a pair is linked only when their
    keypoints match under one resize/crop/turn and the aligned pixels agree, so a 50 % crop
    counts and a similar photo does not. A file changed since it was indexed is left out.

    \b
    Example: mmembed dupes --json | jq -r '.files[] | select(.keep | not) | .path'
    Review the extras: mmembed dupes --paths | xargs -d '\\n' mv -t ~/dupes-review/
    """
    from .progress import IngestBar

    one_format(as_json, paths_only, null)
    with _errors():
        idx = _index(db, table, None, None, None)
        with IngestBar(enabled=not quiet and mode != "exact") as bar:
            from mmembed.ingest.report import IngestProgress

            groups = idx.duplicates(mode=mode, threshold=threshold,
                                    progress=lambda done, total: bar.update(IngestProgress("compare", done, total)),
                                    notes=lambda line: echo(line, err=True))
        if html_file is not None:
            from mmembed.serve.gallery import write_gallery

            sections = [(f"{g.kind} · {len(g.files)} photos · cosine ≥ {g.score:.3f}",
                         [{"id": f.id, "path": f.path, "text": " · ".join((["keep"] if f.keep else []) + _parts(f))}
                          for f in g.files])
                        for g in groups]
            write_gallery([], html_file, title=f"mmembed: {mode} duplicates", sections=sections, index=idx)  # as indexed
    for n, group in enumerate(groups, 1):
        if as_json:
            _print_json({"group": n, **group.to_dict()})
        elif null or paths_only:
            for f in group.files:
                if not f.keep:
                    path_line(f.path, null=null)
        else:
            echo(f"{group.kind} · {len(group.files)} photos · cosine ≥ {group.score:.3f}")
            for f in group.files:
                echo(f"  {'keep' if f.keep else '    '}  {_describe(f)}  {f.path}")
    extra = sum(len(g.files) - 1 for g in groups)
    extra_bytes = sum(f.size or 0 for g in groups for f in g.files if not f.keep)
    echo(f"{len(groups)} group{'s' * (len(groups) != 1)}; {extra} photo{'s' * (extra != 1)} besides the keepers "
               f"({extra_bytes / 1e6:.1f} MB). Nothing was changed.",
               err=True)
    if html_file is not None:
        echo(f"wrote {html_file}", err=True)
    sys.stdout.flush()


def _parts(f: Any) -> list[str]:
    """Resolution, size and date of a group's file."""
    n = f.size or 0
    return [f"{f.width}×{f.height}" if f.width and f.height else "?",
            f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB",
            datetime.fromtimestamp(f.date_ns / 1e9, timezone.utc).strftime("%Y-%m-%d") if f.date_ns else "no date"]


def _describe(f: Any) -> str:
    size, mb, day = _parts(f)
    return f"{size:>11}  {mb:>8}  {day}"


@app.command()
def tag(
    labels: Annotated[Optional[str], typer.Option("--labels", help="Comma-separated labels, e.g. \"beach,cat,receipt\" [default: a built-in set of 345 everyday photo concepts].", show_default=False)] = None,
    labels_file: Annotated[Optional[Path], typer.Option("--labels-file", help="A text file with one label per line (# starts a comment).", show_default=False)] = None,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="Keep further labels whose probability is at least this, 0..1 [default: 0.1]; the best label is always kept.", show_default=False)] = None,
    db: DbOpt = None,
    table: TableOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Zero-shot tag every photo from its stored image vector (no image is decoded).

    Each label is scored through CLIP's prompt templates ("a photo of a {}." and six more,
    averaged); a photo keeps its best label and any other above --threshold, at most 5, in the
    `tags` column, which tagging again replaces. Filter with `search --tag beach` or
    --where "array_has(tags, 'beach')"; `ingest --tags` tags new photos with the same labels.

    Example: mmembed tag --labels "beach,mountain,city,receipt,screenshot,cat,dog"
    """
    with _errors():
        chosen: object = labels
        if labels_file is not None:
            from mmembed.errors import ConfigError

            if labels is not None:
                raise ConfigError("give --labels or --labels-file, not both")
            try:
                lines = (line.split("#", 1)[0].strip() for line in labels_file.read_text(encoding="utf-8").splitlines())
                chosen = [line for line in lines if line]  # '#' starts a comment, on a line of its own or after a label
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{labels_file}: cannot read the labels file ({getattr(exc, 'strerror', None) or exc})") from None
        report = _index(db, table, None, None, None).tag(chosen, threshold=threshold)
    if as_json:
        _print_json({"rows": report.rows, "labels": report.labels, "top": report.top, "seconds": round(report.seconds, 2)})
    else:
        top = ", ".join(f"{name} {count}" for name, count in report.top)
        echo(f"tagged {report.rows} photos with {report.labels} labels in {report.seconds:.1f} s; most often: {top}")
