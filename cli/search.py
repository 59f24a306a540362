"""``mmembed search``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .app import DbOpt, DeviceOpt, ModelOpt, PretrainedOpt, TableOpt, _errors, _index, _print_json, app
from .output import echo, one_format, path_line


@app.command()
def search(
    query: Annotated[Optional[str], typer.Argument(help="What to look for, in words; 'a + b - c' adds and subtracts terms.", show_default=False)] = None,
    image: Annotated[Optional[Path], typer.Option("--image", "-i", help="Find items like this image (with QUERY: a composite query).", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many results.")] = 10,
    where: Annotated[Optional[str], typer.Option("--where", help="SQL filter on metadata columns, e.g. \"format = 'PNG' AND width > 1000\".", show_default=False)] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Vectors to search: image, text or fused [default: fused when items have text, else image; image for --image without words].", show_default=False)] = None,
    image_weight: Annotated[Optional[float], typer.Option("--image-weight", help="Weight of --image against QUERY, 0..1 [default: 0.5; concat: the table's w].", show_default=False)] = None,
    negatives: Annotated[Optional[list[str]], typer.Option("--not", help="Push results away from this text (repeatable).", show_default=False)] = None,
    tags: Annotated[Optional[list[str]], typer.Option("--tag", help="Only items carrying this zero-shot tag (repeatable: all of them; see `mmembed tag`).", show_default=False)] = None,
    min_score: Annotated[Optional[float], typer.Option("--min-score", help="Drop results whose cosine is below this, -1..1 (a hit that holds the query's words is kept).", show_default=False)] = None,
    cutoff: Annotated[str, typer.Option("--cutoff", help="auto: drop results that score like the rest of the table for this query (standardised score under 2); none: keep --limit results.")] = "none",
    frames: Annotated[bool, typer.Option("--frames", help="Every matching frame of a video, not only its best one.")] = False,
    mode: Annotated[Optional[str], typer.Option("--mode", help="Rank by hybrid (looks and words at once), vector (looks) or text (words only) [default: hybrid for text when items have words].", show_default=False)] = None,
    literal: Annotated[bool, typer.Option("--literal", help="Search the words as given: place and time words (\"in Kyoto\", \"December 2021\") are not turned into filters.")] = False,
    near: Annotated[Optional[str], typer.Option("--near", help="Only photos taken within --radius of a place or LAT,LON, e.g. --near Kyoto or --near 35.01,135.77.", show_default=False)] = None,
    radius: Annotated[float, typer.Option("--radius", help="Radius of --near, km.")] = 10.0,
    taken_after: Annotated[Optional[str], typer.Option("--taken-after", help="Only photos taken on or after this ISO date (camera local time), e.g. 2021-12-01.", show_default=False)] = None,
    taken_before: Annotated[Optional[str], typer.Option("--taken-before", help="Only photos taken before this ISO date, e.g. 2022-01-01.", show_default=False)] = None,
    sort: Annotated[str, typer.Option("--sort", help="score: best first; date: the results (after --cutoff) newest first.")] = "score",
    db: DbOpt = None,
    table: TableOpt = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    device: DeviceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line: path, id, score (what ranks: the cosine, or in a hybrid list the fused score), mode, target, vector_score (cosine), words_score (BM25), terms (matched words), text and text_source (the item text), ocr_text, taken_ns (date taken), image_score, text_score, and the row's columns (width, height, format, size, place_*, gps_*, ...).")] = False,
    paths_only: Annotated[bool, typer.Option("--paths", help="Print paths only, one per line (for xargs).")] = False,
    null: Annotated[bool, typer.Option("--null", "-0", help="Print paths only, each ended by a NUL byte (for xargs -0): safe for any file name.")] = False,
    html_file: Annotated[Optional[Path], typer.Option("--html", help="Also write the results as a self-contained HTML gallery (thumbnails inlined; opens with no server).", show_default=False)] = None,
) -> None:
    """Search by text (text->image), by image (image->image), both, or image->text (--target text).

    \b
    Example: mmembed search "red car" --image ref.jpg --image-weight 0.4 --not blurry
    Pipe: mmembed search "beach" -0 | xargs -0 cp -t ~/beach
    Gallery: mmembed search "beach" -n 100 --html beach.html
    Only the relevant ones: mmembed search "receipt" -n 500 --cutoff auto
    Videos: a video is one result at its best frame ("path @ 0:06"); --frames lists every frame.
    Where and when: mmembed search "a dog in Kyoto in December 2021" (place and time become filters; --literal: not)
    Explicit: mmembed search "temple" --near 35.01,135.77 --radius 5 --taken-after 2021-01-01 --sort date
    """
    from mmembed.retrieval.query import SearchOptions
    from mmembed.sources.video import clock

    one_format(as_json, paths_only, null)
    with _errors():
        options = SearchOptions(limit=limit, where=where, target=target, image_weight=image_weight,
                                negatives=negatives or (), tags=tags or (), min_score=min_score, cutoff=cutoff, frames=frames,
                                mode=mode, literal=literal, near=near, radius_km=radius, taken_after=taken_after,
                                taken_before=taken_before, sort=sort)
        index = _index(db, table, model, pretrained, device, one_query=True)  # the library picks the path
        hits = index.search(query, image=image, options=options)
        _note_cut_terms([query or "", *(negatives or [])], index.config.db, index.config.table)
        if html_file is not None:
            from mmembed.serve.gallery import write_gallery

            title = " · ".join(x for x in (query, image.name if image else None) if x) or "mmembed results"
            indexed = _index(db, table, model, pretrained, device)  # only files still as indexed are inlined
            inlined = write_gallery(hits, html_file, title=f"mmembed: {title}", index=indexed)
            echo(f"wrote {html_file} ({len(hits)} results, {inlined} thumbnails inlined)", err=True)
    located = getattr(hits, "located", None)
    for line in (located.notes if located is not None else []):
        echo(f"note: {line}", err=True)  # what the box understood: the filters applied
    parsed = located.as_dict() if located is not None and (located.parsed or located.near or taken_after or taken_before) else None
    if not hits:
        echo(f"note: {_why_empty(options, bool(parsed))}", err=True)
    for hit in hits:
        if as_json:
            _print_json({**hit.to_dict(), "parsed": parsed} if parsed else hit.to_dict())
        elif null or paths_only:
            path_line(hit.path, null=null)
        else:
            caption = f"  {_short(hit.text)}" if hit.text else ""
            at = f" @ {clock(hit.frame_time, tenths=True)}" if hit.frame_time is not None else ""
            score = "      –" if hit.target == "filter" else f"{hit.score:7.4f}"  # a filter-only query: no score
            echo(f"{score}  {hit.path}{at}{caption}")


def _note_cut_terms(texts: list[str], db: str, table: str) -> None:
    """A note for each query term longer than the table's text tower reads (CLIP's tokenizer: 77
    tokens, micro-clip's 32): the words past it are silently dropped by the tokenizer."""
    if all(len(t.encode("utf-8")) <= 14 for t in texts):  # a token covers at least one byte; no tower reads < 16
        return
    from mmembed.models.text_tower import cut_term_notes
    from mmembed.store.snapshot import table_context_length
    from mmembed.retrieval.query import parse_terms

    terms = [term for text in texts for part in parse_terms(text) for term in part]
    for note in cut_term_notes(terms, table_context_length(db, table)):
        echo(f"note: {note}", err=True)


def _why_empty(options: Any, located: bool = False) -> str:
    """Why a search found nothing, as far as its options tell (``located``: place/time filters applied)."""
    from mmembed.retrieval.query import why_nothing

    filters = [f"--tag {t}" for t in options.tags] + ([f"--where {options.where!r}"] if options.where else [])
    filters += ["the place and time filters noted above"] if located else []
    return why_nothing(filters, min_score=options.min_score, mode=options.mode, cutoff=options.cutoff,
                       tags=bool(options.tags))


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
