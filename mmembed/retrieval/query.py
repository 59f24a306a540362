"""Query checking and scoring shared by every search path (no pyarrow, lancedb or torch here).

See ``mmembed.retrieve`` for how composite queries are scored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._options import checked, items
from ..errors import ImageDecodeError, QueryError
from ..models.fusion import FusionStrategy
from ..sources.files import not_regular

__all__ = ["Hit", "Query", "SearchOptions", "why_nothing", "apply_cutoff", "score_stats", "CUTOFFS", "AUTO_CUTOFF_Z", "parse_terms",
           "check_query", "query_vectors", "query_plan", "make_hit", "TARGETS", "nearest_items", "one_per_video", "MODES"]

TARGETS = ("image", "text", "fused")
CUTOFFS = ("none", "auto")
# How a text query ranks (``retrieval.hybrid``): by vectors and words at once (hybrid: the
# default where the table has words), by vectors only, or by words only.
MODES = ("hybrid", "vector", "text")
# --cutoff auto keeps hits whose score stands at least this many robust standard deviations
# (1.4826 x the median absolute deviation) above the median score of the query over the table
# (its "background"); the median and MAD ignore the relevant few. Chosen on Flickr8k dev
# (EVALUATION.md, benchmarks/cutoff.py).
AUTO_CUTOFF_Z = 2.0
_TERM_SPLIT = re.compile(r"\s+([+-])\s+")
_CORE = {"id", "path", "size", "mtime_ns", "content_hash", "width", "height", "format", "ingested_at",
         "taken_ns", "image_vector", "text", "texts", "text_source", "text_hash", "embedded_texts", "manifest_texts",
         "text_vector", "score", "media", "frame_time", "duration", "raw_siblings", "etag",
         # built-in columns a hit does not carry as extras (where, place and words are: the snapshot's rows hold them)
         "ocr_text", "ocr_lines", "ocr_engine", "place_id"}
# Without --frames a video is one hit (its best frame); rows are fetched in growing rounds
# until ``limit`` distinct items are found, at most this many rows.
MAX_FRAME_FETCH = 20_000


@dataclass(frozen=True)
class Hit:
    """One search result. ``score`` is what the list is ranked by (higher is better): the cosine in
    vector mode, the fused score in a hybrid list with word matches, BM25 in text mode, 0 in a
    list by place or date alone; ``vector_score`` is always the cosine where there is one."""

    path: str
    score: float
    id: str
    width: int | None = None
    height: int | None = None
    format: str | None = None
    size: int | None = None
    text: str | None = None  # the item's caption (first text)
    text_source: str | None = None  # where the caption came from
    image_score: float | None = None  # cosine of the query with the image vector
    text_score: float | None = None  # cosine of the query with the text vector; None without text
    target: str = "image"  # the vector column that was searched
    media: str = "image"  # image or video
    frame_time: float | None = None  # a video's best-matching frame, seconds from its start
    duration: float | None = None  # a video's length in seconds
    raw_siblings: list[str] = field(default_factory=list)  # a JPEG's RAW files of the same shot
    ocr_text: str | None = None  # the words read in the picture (lines joined by newlines); None: not read yet
    taken_ns: int | None = None  # when it was taken (camera local time read as UTC), ns since 1970; None: unknown
    extra: dict[str, Any] = field(default_factory=dict)  # manifest columns
    # Ranked by words too (``retrieval.hybrid``): ``score`` is then the fused score; these say why.
    vector_score: float | None = None  # cosine of the query with the searched vector column
    words_score: float | None = None  # BM25 of the query over the item's words; None: no word match
    fused_score: float | None = None  # hybrid with a word match: the reciprocal-rank fusion score (= score)
    terms: list[str] = field(default_factory=list)  # the query's terms found in the item's words
    mode: str = "vector"  # how it was ranked: hybrid, vector or text

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**data, **{k: v for k, v in extra.items() if k not in data}}


def parse_terms(text: str | None) -> tuple[list[str], list[str]]:
    """Split ``"a + b - c"`` into positives [a, b] and negatives [c] (signs need spaces around them)."""
    if not text or not text.strip():
        return [], []
    parts = _TERM_SPLIT.split(" " + text.strip())
    positives, negatives = [], []
    sign = "+"
    for part in parts:
        if part in ("+", "-"):
            sign = part
            continue
        if part.strip():
            (positives if sign == "+" else negatives).append(part.strip())
    return positives, negatives


@dataclass(frozen=True)
class SearchOptions:
    """How to search, besides the query itself. The CLI and ``Index.search`` both build one.

    Example::

        SearchOptions(limit=20, where="format = 'PNG'", negatives=["blurry"])
    """

    limit: int = 10  # how many hits
    where: str | None = None  # SQL filter on metadata columns, e.g. "format = 'PNG' AND width > 1000"
    target: str | None = None  # image, text or fused [default: fused when items have text, else image; image for an image without words]
    image_weight: float | None = None  # weight of the query image against the text, 0..1 [default: 0.5]
    negatives: Sequence[str] = ()  # push results away from these texts
    negative_weight: float = 0.5  # how hard, 0..1
    tags: Sequence[str] = ()  # only items carrying every one of these zero-shot tags (``Index.tag``)
    min_score: float | None = None  # drop hits whose score (cosine) is below this, -1..1
    cutoff: str = "none"  # auto: drop hits that score like the table's background for this query
    frames: bool = False  # every matching frame of a video, not only its best one
    mode: str | None = None  # hybrid, vector or text [default: hybrid for text when items have words]
    # Where and when (``retrieval.located``): the box's place/time words become filters unless ``literal``.
    literal: bool = False  # search the words as given: no place or time phrase is turned into a filter
    near: str | None = None  # only items taken within ``radius_km`` of a place name or "LAT,LON"
    radius_km: float = 10.0  # the radius of ``near``, km
    taken_after: Any = None  # only items taken on or after this ISO date/datetime (or date), camera local time
    taken_before: Any = None  # only items taken before this ISO date/datetime (or date)
    sort: str = "score"  # score: best first; date: the hits (after any cutoff) newest first

    def __post_init__(self) -> None:
        checked(self.limit, "limit", QueryError, (int,))
        if self.limit < 1:
            raise QueryError(f"limit must be at least 1, got {self.limit!r}")
        check_where(checked(self.where, "where", QueryError, (str,), optional=True))
        if checked(self.target, "target", QueryError, (str,), optional=True) not in (None, *TARGETS):
            raise QueryError(f"target {self.target!r} is not one of {', '.join(TARGETS)}")
        weight = checked(self.image_weight, "image_weight", QueryError, (int, float), optional=True)
        if weight is not None and not 0.0 <= weight <= 1.0:
            raise QueryError(f"--image-weight {weight} must be between 0 and 1")
        if not 0.0 <= checked(self.negative_weight, "negative_weight", QueryError, (int, float)) <= 1.0:
            raise QueryError(f"negative weight {self.negative_weight} must be between 0 and 1")
        object.__setattr__(self, "negatives", items(self.negatives, "negatives", QueryError))
        object.__setattr__(self, "tags", tuple(t.strip() for t in items(self.tags, "tags", QueryError) if t.strip()))
        floor = checked(self.min_score, "min_score", QueryError, (int, float), optional=True)
        if floor is not None and not -1.0 <= floor <= 1.0:
            raise QueryError(f"--min-score {floor} must be between -1 and 1 (scores are cosines)")
        if checked(self.cutoff, "cutoff", QueryError, (str,)) not in CUTOFFS:
            raise QueryError(f"--cutoff {self.cutoff!r} is not one of {', '.join(CUTOFFS)}")
        if checked(self.mode, "mode", QueryError, (str,), optional=True) not in (None, *MODES):
            raise QueryError(f"--mode {self.mode!r} is not one of {', '.join(MODES)}")
        from .flags import check_located

        check_located(self)


    def filter_sql(self) -> str | None:
        """``where`` and the ``tags`` filter as one SQL filter, or None."""
        parts = tag_filters(self.tags)
        if self.where:
            parts.append(f"({self.where})" if parts else self.where)
        return " AND ".join(parts) or None


NO_TAGS = "no item in this index has tags yet; run `mmembed tag` first"


def check_where(where: str | None, name: str = "--where") -> str | None:
    """``where`` when it is one SQL condition; QueryError (naming it as ``name``) when it is blank or
    holds a second statement. The one check of a user's filter: CLI, search API, browse API."""
    if where is None:
        return None
    if not where.strip():
        raise QueryError(f"{name} is empty; give a SQL filter such as \"format = 'JPEG'\"")
    if ";" in _outside_quotes(where):
        raise QueryError(f"{name} {where!r} holds a ';': give one SQL condition (join several with AND)")
    return where


def _outside_quotes(sql: str) -> str:
    """``sql`` without its '...' and "..." literals (a doubled quote inside one stays inside)."""
    return re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", "", sql)


def sql_string(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def tag_filters(tags: Sequence[str]) -> list[str]:
    """One SQL condition per zero-shot tag an item must carry."""
    return [f"array_has(tags, {sql_string(tag)})" for tag in tags]


@dataclass
class Query:
    """A checked query: its terms, image, and weights."""

    positives: list[str]
    negatives: list[str]
    image: str | bytes | None  # a path, or an image file's bytes
    image_weight: float | None
    negative_weight: float


def check_query(text: str | None, image: str | os.PathLike[str] | bytes | None, options: SearchOptions) -> Query:
    """Reject an empty query, a missing query image or a bad weight before any model is loaded
    (the options were checked when they were made)."""
    negatives, image_weight, negative_weight = options.negatives, options.image_weight, options.negative_weight
    checked(text, "the search text", QueryError, (str,), optional=True)
    checked(image, "image", QueryError, (str, os.PathLike, bytes), optional=True)
    positives, minus = parse_terms(text)
    if not positives and image is None:
        raise QueryError("empty query; give search text, or --image PATH")
    if isinstance(image, bytes):  # an image file's bytes (an upload): decoded from memory
        if not image:
            raise QueryError("the query image is empty (0 bytes); give an image file")
    elif image is not None and os.path.isdir(os.fspath(image)):
        raise QueryError(f"{os.fspath(image)}: the query image is a folder; give an image file")
    elif image is not None and not os.path.exists(os.fspath(image)):
        raise QueryError(f"{os.fspath(image)}: query image not found; check the path")
    elif image is not None and not_regular(os.stat(os.fspath(image)).st_mode):
        reason = not_regular(os.stat(os.fspath(image)).st_mode)
        raise QueryError(f"{os.fspath(image)}: the query image is {reason}; give an image file")
    negatives = [*minus, *(n.strip() for n in negatives if n and n.strip())]
    source = image if image is None or isinstance(image, bytes) else os.fspath(image)
    return Query(positives, negatives, source, image_weight, negative_weight)


def default_target(target: str | None, query: Query, captioned: bool) -> str:
    """The column searched when none was asked for: an image alone (no words) asks for photos that
    look like it, so the image vectors; words search the fused vectors where items have text (a
    fused vector's text half would otherwise rank every captioned photo first for any picture)."""
    if target:
        return target
    if query.image is not None and not query.positives:
        return "image"
    return "fused" if captioned else "image"


def query_vectors(encoder: Any, query: Query, max_megapixels: float = 100.0,
                  decode: str = "fast") -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(image vector, text vector, negative vector), each unit length or None. ``decode``: how
    ingest decodes (``Config.decode``); the query image is decoded the same way."""
    texts = query.positives + query.negatives
    vecs = encoder.encode_text(texts) if texts else np.zeros((0, 0), np.float32)
    pos = _unit(vecs[: len(query.positives)].mean(axis=0)) if query.positives else None
    neg = _unit(vecs[len(query.positives):].mean(axis=0)) if query.negatives else None
    img = None
    if query.image is not None:
        from ..sources.decode import load_image

        try:
            # decoded as ingest decodes (``fast``, the default: a JPEG at the smallest DCT scale that
            # covers the model's input), so that an indexed photo finds itself at cosine 1
            min_side = encoder.image_size if decode == "fast" else None
            decoded = load_image(query.image, max_megapixels=max_megapixels, min_side=min_side)
        except ImageDecodeError as exc:
            where = "the query image" if isinstance(query.image, bytes) else f"query image {exc.path}"
            raise QueryError(f"{where}: {exc.reason}") from None
        img = encoder.encode_images([decoded.image])[0]
    return img, pos, neg


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def query_plan(
    img: np.ndarray | None, txt: np.ndarray | None, neg: np.ndarray | None, query: Query, target: str,
    strategy: FusionStrategy, fusion_weight: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vector to search with, query vector for image scores, query vector for text scores)."""
    lam = query.negative_weight

    def minus_neg(v: np.ndarray) -> np.ndarray:
        return _unit(v - lam * neg) if neg is not None else v

    if img is not None and txt is not None:
        a = 0.5 if query.image_weight is None else query.image_weight
        q = minus_neg(_unit(a * img + (1 - a) * txt))
    else:
        q = minus_neg(img if img is not None else txt)  # type: ignore[arg-type]
    if target == "fused" and strategy is FusionStrategy.CONCAT:
        q_img = minus_neg(img if img is not None else txt)  # type: ignore[arg-type]
        q_txt = minus_neg(txt if txt is not None else img)  # type: ignore[arg-type]
        a = fusion_weight if query.image_weight is None else query.image_weight
        return np.concatenate([np.sqrt(a) * q_img, np.sqrt(1 - a) * q_txt]).astype(np.float32), q_img, q_txt
    return q, q, q


def make_hit(row: dict[str, Any], target: str, q_img: np.ndarray, q_txt: np.ndarray) -> Hit:
    image_vec = row.get("image_vector")
    text_vec = row.get("text_vector")
    return Hit(
        path=row["path"], score=row["score"], vector_score=row["score"], id=row["id"], width=row.get("width"),
        height=row.get("height"), format=row.get("format"), size=row.get("size"), text=row.get("text"),
        text_source=row.get("text_source"),
        image_score=float(np.dot(q_img, image_vec)) if image_vec is not None else None,
        text_score=float(np.dot(q_txt, text_vec)) if text_vec is not None else None,
        target=target,
        media=row.get("media") or "image",
        frame_time=row.get("frame_time"),
        duration=row.get("duration"),
        raw_siblings=list(row.get("raw_siblings") or []),
        ocr_text=row.get("ocr_text"),
        taken_ns=row.get("taken_ns"),
        extra={k: v for k, v in row.items() if k not in _CORE and not k.startswith("_")},
    )


def nearest_items(fetch: Callable[[int], list[dict[str, Any]]], limit: int, frames: bool = False) -> list[dict[str, Any]]:
    """The ``limit`` best rows from ``fetch(n)`` (the n nearest rows, best first), a video
    counted once at its best frame unless ``frames``: more rows are fetched while frames of
    videos already found fill the list."""
    n = limit
    while True:
        rows = fetch(n)
        if frames:
            return rows
        items = one_per_video(rows)
        if len(items) >= limit or len(rows) < n or n >= MAX_FRAME_FETCH:
            return items[:limit]
        n = min(MAX_FRAME_FETCH, n * 4)


def one_per_video(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (best first) with each video's frames after its first dropped."""
    seen: set[str] = set()
    out = []
    for row in rows:
        if row.get("media") == "video":
            if row["path"] in seen:
                continue
            seen.add(row["path"])
        out.append(row)
    return out


@dataclass(frozen=True)
class GroupStats:
    """``score_stats`` apart for the rows with text and those without, in a fused search of a
    table where only some photos have text: a text query sits far closer to a fused vector that
    holds a text than to a picture alone, so one background for both kept every photo with text
    for a nonsense query (``benchmarks/partial_captions.py``). Each hit is measured against its own
    group (``Hit.text_score`` is None without text)."""

    with_text: tuple[float, float]
    without_text: tuple[float, float]

    def of(self, hit: Hit) -> tuple[float, float]:
        return self.with_text if hit.text_score is not None else self.without_text


Background = tuple[float, float] | GroupStats
MIN_GROUP = 10  # rows of the background in each group, else one background (a median of 2 rows says nothing)


def cutoff_floor(background: Background, hit: Hit) -> float:
    """The score ``hit`` must reach under ``--cutoff auto``: its background's median plus
    ``AUTO_CUTOFF_Z`` spreads."""
    median, spread = background.of(hit) if isinstance(background, GroupStats) else background
    return median + AUTO_CUTOFF_Z * spread


def apply_cutoff(hits: list[Hit], options: SearchOptions, background: Background | None) -> list[Hit]:
    """``hits`` without those under ``min_score`` and, with ``cutoff='auto'``, without those
    under ``median + AUTO_CUTOFF_Z * spread`` of ``background`` (``score_stats`` of this
    query over the table, or over the hit's group: ``GroupStats``)."""
    if options.min_score is not None:
        hits = [h for h in hits if h.score >= options.min_score]
    if options.cutoff == "auto" and background is not None:
        hits = [h for h in hits if h.score >= cutoff_floor(background, h)]
    return hits


def score_stats(matrix: np.ndarray, vector: np.ndarray, has_text: np.ndarray | None = None) -> Background:
    """Median and robust spread (1.4826 x median absolute deviation) of ``matrix @ vector``:
    where a query's scores over the table's rows sit, and how widely, unmoved by the few
    rows that really match. With ``has_text`` (a mask of the rows that have text, for a fused
    search) and ``MIN_GROUP`` rows or more on each side of it, the two groups' apart (``GroupStats``)."""
    scores = np.asarray(matrix, dtype=np.float32) @ np.asarray(vector, dtype=np.float32)
    if scores.size == 0:
        return 1.0, 0.0
    if has_text is not None:
        mask = np.asarray(has_text, dtype=bool)
        if mask.shape == scores.shape and MIN_GROUP <= int(mask.sum()) <= mask.size - MIN_GROUP:
            return GroupStats(_median_spread(scores[mask]), _median_spread(scores[~mask]))
    return _median_spread(scores)


def _median_spread(scores: np.ndarray) -> tuple[float, float]:
    median = float(np.median(scores))
    return median, float(1.4826 * np.median(np.abs(scores - median)))


def _cli_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def why_nothing(filters: list[str], *, min_score: float | None = None, mode: str | None = None,
                cutoff: str = "none", tags: bool = False, name: Callable[[str], str] = _cli_name) -> str:
    """Why a search found nothing, as far as its options tell: ``filters`` describe the filters it
    applied ("--tag beach", "where='width > 9000'"); ``tags``: one of them is a tag; ``name`` spells
    an option as the caller's users know it (the CLI's ``--min-score``, the API's ``min_score``)."""
    passing = f"no row passes {' and '.join(filters)}" if filters else ""
    if min_score is not None:
        below = f"no result has a cosine of at least {name('min_score')} {min_score:g} or holds the query's words"
        return f"nothing matched: {passing + ' with a cosine that high' if passing else below}"
    if mode == "text" and not passing:
        return ("nothing matched: no item's words (captions, sidecars, metadata, OCR text, path) hold every word "
                f"of the query; try {name('mode')} hybrid")
    if cutoff == "auto":
        return (f"nothing matched: no result stood out from the rest of the table ({name('cutoff')} auto); "
                f"try {name('cutoff')} none")
    if passing:
        hint = " (tags come from `mmembed tag`)" if tags else ""
        return f"nothing matched: {passing}{hint}"
    return "nothing matched"

