"""Words in the pixels, written into the table: the OCR pass (``Index.ocr``, ``mmembed ocr``,
``ingest --ocr``).

The pass reads the rows that have not been read (``ocr_engine`` null) or were read by another
engine, without touching any vector: the image vectors, text vectors and fused vectors stay as the
encode wrote them. Each file is decoded again (as ingest decodes it: EXIF orientation applied, a JPEG
at a reduced DCT scale), gated (``TextReader.has_text``: most photos hold no text) and read. Results
go to ``ocr_text`` ('' when there is none), ``ocr_lines`` (JSON: text, box, confidence),
``ocr_engine`` (``engine_name``) and the row's ``words`` are composed again (``text.words``).

A row whose file changed (or went) since it was indexed is left for the next ingest (a ``skipped``
entry); a file OCR fails on keeps its row, its looks and its vectors, with ``ocr_engine`` set and
``ocr_text`` null (a ``failed`` entry); ``--redo`` tries it again. Committed in small batches, so an
interrupted pass resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import MmembedError, OcrUnavailableError
from ..models.ocr import ocr_available
from ..store.table import ADDED_COLUMNS, Store
from ..text.words import WORD_COLUMNS, item_words

__all__ = ["OcrReport", "ocr_table", "ocr_available", "engine_name", "pending_where", "OCR_COLUMNS", "DECODE_MIN_SIDE"]

OCR_COLUMNS = ("ocr_text", "ocr_lines", "ocr_engine")
DECODE_MIN_SIDE = 1024  # a 12 MP JPEG (4000x3000) decodes at half size, 2000x1500: the 960 px read sees what it would
# see at full size, the decode and the gate's copy cost a quarter (1536 decoded 4:3 12 MP photos whole: 1500 < 1536)
_BATCH_ROWS = 256  # rows read per commit (each commit is a table version)
_BATCH_SECONDS = 10.0  # or this long: an interrupted pass loses at most this much reading
_INSTALL = "pip install 'mmembed[ocr]'"


@dataclass
class OcrReport:
    """What one OCR pass did: rows ``read`` (``with_text`` of them hold text), rows the gate let
    through to the recognizer (``recognized``), ``skipped`` files (changed or gone since they were
    indexed: ``[path, reason]``), ``failed`` files (OCR could not read them: ``[path, reason]``)."""

    read: int = 0
    with_text: int = 0
    recognized: int = 0
    pending: int = 0  # rows this pass was asked to read
    skipped: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    engine: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def engine_name(reader: Any) -> str:
    """What reads the text, with versions: a row read by another engine is read again."""
    return reader.engine


def pending_where(engine: str, redo: bool, *, unread_only: bool = False) -> str | None:
    """The rows a pass reads: images not read, or read by another engine (``redo``: every image;
    ``unread_only``: only those never read, as an ingest asks)."""
    images = "(media IS NULL OR media = 'image')"
    if redo:
        return images
    if unread_only:
        return f"{images} AND ocr_engine IS NULL"
    quoted = engine.replace("'", "''")
    return f"{images} AND (ocr_engine IS NULL OR ocr_engine != '{quoted}')"


def ocr_table(store: Store, reader: Any, *, redo: bool = False, unread_only: bool = False, ids: list[str] | None = None,
              under: list[str] | None = None, max_megapixels: float = 100.0, workers: int = 2,
              progress: Callable[[int, int], None] | None = None) -> OcrReport:
    """Read the text of the rows pending in ``store`` (see ``pending_where``; ``ids``: only these
    rows; ``under``: only rows whose path is one of these or inside one, as an ingest reads only
    what lies under its own paths) with ``reader`` (a ``models.ocr.TextReader``) and write it; the
    caller holds the write lock.
    ``unread_only``: rows read by an older engine are left for ``mmembed ocr`` (an ingest after an
    upgrade does not read the whole library again).
    ``progress(done, total)`` after each row."""
    started = time.perf_counter()
    engine = engine_name(reader)
    report = OcrReport(engine=engine)
    store.ensure_columns(ADDED_COLUMNS)  # a table made before the OCR columns gets them
    columns = ["id", "path", "size", "mtime_ns", "width", *[c for c in WORD_COLUMNS if c in store.table.schema.names]]
    where = pending_where(engine, redo, unread_only=unread_only)
    if under is not None:  # in the filter: a large table's other unread rows are not read at all
        where = f"{where} AND ({_under_sql(under) or 'false'})"
    rows = store.read_columns(columns, where).to_pylist()
    if ids is not None:
        wanted = set(ids)
        rows = [r for r in rows if r["id"] in wanted]
    report.pending = len(rows)
    if rows:
        store.ensure_id_index()  # each commit merges on id: a lookup, not a join of the whole table
    batch: list[dict[str, Any]] = []
    last = time.monotonic()
    try:
        for done, (row, outcome) in enumerate(_read_all(rows, reader, max_megapixels, workers), 1):
            kind, value = outcome
            if kind == "skipped":
                report.skipped.append([row["path"], value])
            else:
                if kind == "failed":
                    report.failed.append([row["path"], value])
                    text, lines = None, None
                else:
                    report.recognized += value.recognized
                    text, lines = value.text, value.lines
                    report.with_text += bool(text)
                report.read += 1
                batch.append(_written(row, text, lines, engine))
            if progress:
                progress(done, len(rows))
            if batch and (len(batch) >= _BATCH_ROWS or time.monotonic() - last > _BATCH_SECONDS):
                _commit(store, batch)
                batch, last = [], time.monotonic()
    finally:
        _commit(store, batch)  # an interrupted pass keeps what it read
    report.seconds = time.perf_counter() - started
    return report


def _under_sql(roots: list[str]) -> str:
    """A filter for the rows whose path is one of ``roots`` or lies inside one."""
    def quoted(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    return " OR ".join(f"path = {quoted(root)} OR starts_with(path, {quoted(root.rstrip('/') + '/')})" for root in roots)


@dataclass(frozen=True)
class _Read:
    text: str
    lines: list[dict[str, Any]]
    recognized: int  # 1 when the gate passed and the recognizer ran


def _read_all(rows: list[dict[str, Any]], reader: Any, max_megapixels: float,
              workers: int) -> Iterator[tuple[dict[str, Any], tuple[str, Any]]]:
    """Each row with ("read", _Read) | ("skipped", reason) | ("failed", reason), in order: decoding
    runs ahead in ``workers`` threads (Pillow lets go of the GIL), the models run here."""
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="mmembed-ocr-decode") as pool:
        ahead: list[tuple[dict[str, Any], Future[Any]]] = []
        queue = iter(rows)
        for row in queue:
            ahead.append((row, pool.submit(_decode, row, max_megapixels)))
            if len(ahead) > 2 * max(1, workers):
                break
        while ahead:
            row, future = ahead.pop(0)
            nxt = next(queue, None)
            if nxt is not None:
                ahead.append((nxt, pool.submit(_decode, nxt, max_megapixels)))
            kind, value = future.result()
            if kind != "image":
                yield row, (kind, value)
                continue
            yield row, _recognize(reader, value, row.get("width"))


def _decode(row: dict[str, Any], max_megapixels: float) -> tuple[str, Any]:
    """The row's file decoded upright, or why not: a changed or missing file is skipped (the next
    ingest indexes it again), one that does not decode fails."""
    from ..sources.decode import load_image

    path = row["path"]
    try:
        st = os.stat(path)
    except OSError:
        return "skipped", "gone since it was indexed; run `mmembed ingest` to update the table"
    if st.st_size != row["size"] or st.st_mtime_ns != row["mtime_ns"]:
        return "skipped", "changed since it was indexed; run `mmembed ingest` first"
    try:
        return "image", load_image(path, max_megapixels=max_megapixels, min_side=DECODE_MIN_SIDE).image
    except MmembedError as exc:
        return "failed", getattr(exc, "reason", None) or str(exc)
    except Exception as exc:  # noqa: BLE001  # a decoder plugin's own error on one odd file
        return "failed", f"cannot decode it ({type(exc).__name__})"


def _recognize(reader: Any, image: Any, full_width: int | None) -> tuple[str, Any]:
    """Gate and read one decoded image; boxes in the full-size upright picture's pixels (the
    decode may be at a reduced scale)."""
    try:
        result = reader.read_text(image, gate=True)
    except OcrUnavailableError:
        raise  # the extra is missing: nothing can be read, say so once
    except MmembedError as exc:
        return "failed", getattr(exc, "reason", None) or str(exc)
    except Exception as exc:  # noqa: BLE001  # OpenCV's or ONNX Runtime's own error on one odd image
        return "failed", f"OCR failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"
    k = full_width / image.width if full_width and image.width else 1.0
    lines = [{"text": line.text, "box": [[round(x * k, 1), round(y * k, 1)] for x, y in line.box],
              "confidence": line.confidence} for line in result.lines]
    return "read", _Read(result.text, lines, int(bool(result.gate_passed)))


def _written(row: dict[str, Any], text: str | None, lines: list[dict[str, Any]] | None, engine: str) -> dict[str, Any]:
    words_row = {k: v for k, v in row.items() if k in WORD_COLUMNS or k == "path"}  # path: its words too
    words_row["ocr_text"] = text
    words = item_words(words_row)
    return {"id": row["id"], "ocr_text": text, "ocr_lines": json.dumps(lines, ensure_ascii=False) if lines else None,
            "ocr_engine": engine, "words": words or None}


def _commit(store: Store, batch: list[dict[str, Any]]) -> None:
    if batch:
        store.update_columns({name: [r[name] for r in batch] for name in ("id", *OCR_COLUMNS, "words")})


def missing_extra_message() -> str:
    """The one line a user who asked for OCR without the extra reads."""
    return f"reading text in images needs the ocr extra: {_INSTALL}"


def require_ocr() -> None:
    """Raise ``OcrUnavailableError`` (one line naming the extra) when it is missing."""
    if not ocr_available():
        raise OcrUnavailableError(missing_extra_message())
