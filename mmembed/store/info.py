"""``IndexInfo``: what ``mmembed info`` shows of a table (no model is loaded to say it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .table import Store

__all__ = ["IndexInfo", "table_info"]


@dataclass(frozen=True)
class IndexInfo:
    """What ``mmembed info`` shows."""

    db: str
    table: str
    rows: int
    model: str | None
    pretrained: str | None
    dim: int | None
    bytes: int | None
    schema_version: int | None
    fusion: dict[str, Any] | None = None
    captioned: int = 0  # rows with item text
    ocr_read: int = 0  # rows whose pictures were read for text (ingest.ocr_pass)
    ocr_with_text: int = 0  # of those, rows in which text was found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def table_info(store: Store, db: str, table: str) -> IndexInfo:
    """Location, size, model and fusion of the table in ``store``."""
    meta = store.meta()
    if meta is None:
        return IndexInfo(db, table, 0, None, None, None, 0, None)
    return IndexInfo(db=db, table=table, rows=store.count(), model=meta.model, pretrained=meta.pretrained,
                     dim=meta.dim, bytes=store.bytes_on_disk(), schema_version=meta.schema_version,
                     fusion=meta.fusion, captioned=store.count_where("text_vector IS NOT NULL"), **_ocr_counts(store))


def _ocr_counts(store: Store) -> dict[str, int]:
    """How many rows were read for text, and hold some (0 and 0 in a table from before OCR)."""
    if "ocr_engine" not in store.table.schema.names:
        return {}
    return {"ocr_read": store.count_where("ocr_engine IS NOT NULL"),
            "ocr_with_text": store.count_where("ocr_text IS NOT NULL AND ocr_text != ''")}
