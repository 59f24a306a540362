"""Caption manifests: a .csv/.tsv/.jsonl/.parquet file that maps image paths to captions
(several rows per image allowed) and to extra columns that become filterable table columns."""

from __future__ import annotations

import csv
import json
import os
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .clean import _clean, _strings
from .paths import _is_under

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Manifest", "RESERVED_COLUMNS"]

# Table columns mmembed writes itself; a manifest column may not take one of these names.
RESERVED_COLUMNS = frozenset({
    "id", "path", "size", "mtime_ns", "content_hash", "width", "height", "format",
    "ingested_at", "image_vector", "text", "texts", "text_source", "text_hash", "embedded_texts",
    "manifest_texts", "text_vector", "fused_vector", "score", "image_score", "text_score", "taken_ns",
    "tags", "tag_scores", "target", "media", "frame_time", "duration", "raw_siblings", "etag",
})  # fmt: skip

_IMAGE_COLUMNS = ("image", "path", "file", "filename", "filepath")
_TEXT_COLUMNS = ("caption", "text", "description")
_INT64_RE = re.compile(r"[+-]?\d+")


@dataclass
class _RawTable:
    """A manifest as read: original column names, rows aligned with them, where each row came from."""

    columns: list[str]
    rows: list[list[object]]
    where: list[str]  # 'line 3' or 'row 3', for error messages
    kind: str  # 'csv', 'json' or 'parquet': decides how extra columns are typed
    arrow_types: dict[str, Any] | None = None


@dataclass(frozen=True)
class Manifest:
    """Captions and extra columns for images, read from a .csv/.tsv/.jsonl/.parquet file.

    Example::

        m = Manifest.load("captions.csv")  # columns image,caption,rating; two rows for x.jpg
        key = m.lookup("/photos/x.jpg", roots=["/photos"])  # 'x.jpg'
        m.texts[key]   # ['a dog on a beach', 'a brown dog running']
        m.extras[key]  # {'rating': 4}; m.extra_columns == {'rating': pa.int64()}
    """

    path: str  # absolute path of the manifest file
    texts: dict[str, list[str]]  # key -> captions in file order ([] when its rows had none)
    extras: dict[str, dict[str, object]]  # key -> {column: first non-null value}
    extra_columns: dict[str, pa.DataType]  # sanitised column name -> arrow type
    rows: dict[str, int] = field(default_factory=dict)  # key -> how many rows name it

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read a manifest; raises ConfigError with a one-line, actionable message when it is unusable.

        Image column: the first of image/path/file/filename/filepath (case-insensitive); text
        column: the first of caption/text/description. Other columns become extras, named in
        lowercase ``[a-z0-9_]``. Keys are normalised: absolute paths by ``os.path.normpath``,
        relative ones with ``/`` separators and no leading ``./``.
        """
        path = os.path.abspath(os.fspath(path))
        ext = os.path.splitext(path)[1].lower()
        reader = _MANIFEST_READERS.get(ext)
        if reader is None:
            raise ConfigError(
                f"{path}: unknown manifest format {ext or '(no extension)'!r}; use .csv, .tsv, .jsonl or .parquet"
            )
        if not os.path.isfile(path):
            raise ConfigError(f"{path}: manifest not found; check the path")
        return _build(path, reader(path))

    def lookup(self, image_path: str, roots: Sequence[str]) -> str | None:
        """The manifest key for an image path, or None.

        Tries the absolute path, then the path relative to the manifest's folder, then relative
        to each root the image lies under (a manifest of bare names for a folder elsewhere).
        """
        path = os.path.normpath(os.path.abspath(image_path))
        if path in self.texts:
            return path
        key = _posix(os.path.relpath(path, os.path.dirname(self.path)))
        if key in self.texts:
            return key
        for root in roots:
            root = os.path.normpath(os.path.abspath(root))
            if path != root and _is_under(path, root):
                key = _posix(os.path.relpath(path, root))
                if key in self.texts:
                    return key
        return None


    def why_unmatched(self, roots: Sequence[str]) -> str:
        """Why no row of this manifest named a walked image, in one line (see ``lookup``)."""
        key = next(iter(self.rows))
        total = sum(self.rows.values())
        head = f"{self.path}: none of its {total} rows named an indexed image"
        if os.path.isabs(key):
            return f"{head}; its first, {key}, is not among the files ingested"
        folder = os.path.dirname(self.path)
        bases = dict.fromkeys([folder, *(os.path.normpath(os.path.abspath(r)) for r in roots)])
        where = " or ".join(bases)
        found = _below(folder, key)
        seen = f"; {found} exists, so write names relative to {os.path.dirname(found)} or ingest that folder" if found else ""
        return f"{head}: names such as {key} are read relative to {where}{seen}"


def _below(folder: str, key: str) -> str | None:
    """``folder/SUB/key`` for the first subfolder SUB (one level down) that holds ``key``."""
    try:
        subs = sorted(e.path for e in os.scandir(folder) if e.is_dir())
    except OSError:
        return None
    return next((os.path.join(s, key) for s in subs if os.path.isfile(os.path.join(s, key))), None)


def _posix(relative: str) -> str:
    return relative.replace(os.sep, "/")


def _normalise_key(value: str) -> str:
    if os.path.isabs(value):
        return os.path.normpath(value)
    return posixpath.normpath(value.replace("\\", "/"))


def _pick(table: _RawTable, path: str, names: tuple[str, ...], what: str) -> int:
    lowered = [c.strip().lower() for c in table.columns]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    found = ", ".join(table.columns) or "none"
    raise ConfigError(
        f"{path}: no {what} column; name one of {', '.join(names)} (columns found: {found})"
    )


def _build(path: str, table: _RawTable) -> Manifest:
    image_at = _pick(table, path, _IMAGE_COLUMNS, "image")
    text_at = _pick(table, path, _TEXT_COLUMNS, "text")
    extra_at = _extra_names(path, table.columns, {image_at, text_at})
    typed = {name: _column_type(table, at) for at, name in extra_at.items()}
    texts: dict[str, list[str]] = {}
    extras: dict[str, dict[str, object]] = {}
    rows: dict[str, int] = {}
    for row, where in zip(table.rows, table.where):
        image = row[image_at]
        if image is None or not str(image).strip():
            column = table.columns[image_at]
            raise ConfigError(f"{path}: {where} has an empty {column!r} value; fill it in or delete the row")
        key = _normalise_key(str(image).strip())
        texts.setdefault(key, []).extend(t for t in (_clean(s) for s in _strings(row[text_at])) if t)
        rows[key] = rows.get(key, 0) + 1
        values = extras.setdefault(key, {})
        for at, name in extra_at.items():
            if name not in values and row[at] is not None:
                values[name] = typed[name][1](row[at])
    return Manifest(path, texts, extras, {name: t[0] for name, t in typed.items()}, rows)


def _extra_names(path: str, columns: list[str], taken: set[int]) -> dict[int, str]:
    """Column index -> sanitised name for every extra column; ConfigError on a bad or clashing name."""
    out: dict[int, str] = {}
    for at, column in enumerate(columns):
        if at in taken:
            continue
        name = re.sub(r"[^a-z0-9_]", "_", column.strip().lower())
        if not name.strip("_"):
            raise ConfigError(f"{path}: column {column!r} has no usable name; name it or delete it")
        if name in RESERVED_COLUMNS:
            raise ConfigError(
                f"{path}: column {column!r} clashes with mmembed's own column {name!r}; rename it in the manifest"
            )
        if name in out.values():
            raise ConfigError(f"{path}: two columns are both named {name!r} once cleaned; rename one of them")
        out[at] = name
    return out


def _column_type(table: _RawTable, at: int) -> tuple[pa.DataType, Callable[[object], object]]:
    """The arrow type of an extra column and the function that converts its values."""
    import pyarrow as pa

    values = [row[at] for row in table.rows if row[at] is not None]
    if table.kind == "csv":
        if values and all(_INT64_RE.fullmatch(str(v)) and _fits_int64(int(str(v))) for v in values):
            return pa.int64(), lambda v: int(str(v))
        if values and all(_is_float(str(v)) for v in values):
            return pa.float64(), lambda v: float(str(v))
        return pa.string(), str
    if table.kind == "parquet" and table.arrow_types is not None:
        kind = _arrow_kind(table.arrow_types[table.columns[at]])
    else:
        kind = _python_kind(values)
    if kind == "bool":
        return pa.bool_(), bool
    if kind == "int" and all(_fits_int64(v) for v in values):  # type: ignore[arg-type]
        return pa.int64(), int  # type: ignore[return-value]
    if kind in ("int", "float"):
        return pa.float64(), float  # type: ignore[return-value]
    return pa.string(), _as_string


def _fits_int64(value: int) -> bool:
    return -(2**63) <= value < 2**63


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _python_kind(values: list[object]) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "bool"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    return "string"


def _arrow_kind(dtype: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype):
        return "int"
    if pa.types.is_floating(dtype):
        return "float"
    return "string"


def _as_string(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _read_delimited(path: str, delimiter: str) -> _RawTable:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            columns = next(reader, [])
            rows, where = [], []
            for cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue  # a blank line
                if len(cells) > len(columns):
                    raise ConfigError(
                        f"{path}: line {reader.line_num} has {len(cells)} fields but the header has "
                        f"{len(columns)}; quote values that contain {'tabs' if delimiter == chr(9) else 'commas'}"
                    )
                cells += [""] * (len(columns) - len(cells))
                rows.append([cell.strip() or None for cell in cells])
                where.append(f"line {reader.line_num}")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the manifest as UTF-8") from None
    except (OSError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read the manifest ({exc}); check the file") from None
    return _RawTable(columns, rows, where, "csv")


def _read_csv(path: str) -> _RawTable:
    return _read_delimited(path, ",")


def _read_tsv(path: str) -> _RawTable:
    return _read_delimited(path, "\t")


def _read_jsonl(path: str) -> _RawTable:
    records, where = [], []
    try:
        with open(path, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    records.append(_json_record(path, number, line))
                    where.append(f"line {number}")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the manifest as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the manifest ({exc.strerror or exc}); check the file") from None
    columns = list(dict.fromkeys(k for record in records for k in record))
    rows = [[record.get(c) for c in columns] for record in records]
    return _RawTable(columns, rows, where, "json")


def _json_record(path: str, number: int, line: str) -> dict[str, object]:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: line {number} is not valid JSON ({exc}); write one JSON object per line") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{path}: line {number} is not a JSON object; write one object per line")
    return {str(k): v for k, v in record.items()}


def _read_parquet(path: str) -> _RawTable:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{path}: not a readable Parquet file ({exc}); check the file") from None
    columns = table.column_names
    data = [table.column(i).to_pylist() for i in range(len(columns))]
    rows = [list(values) for values in zip(*data)] if data else []
    where = [f"row {i + 1}" for i in range(len(rows))]
    types = {name: field.type for name, field in zip(columns, table.schema)}
    return _RawTable(columns, rows, where, "parquet", types)


_MANIFEST_READERS: dict[str, Callable[[str], _RawTable]] = {
    ".csv": _read_csv,
    ".tsv": _read_tsv,
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".parquet": _read_parquet,
}
