"""What an ingest run reports: the summary (``IngestReport``), each file not indexed
(``SkippedFile``), and the events handed to a progress callback (``IngestProgress``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["IngestReport", "SkippedFile", "IngestProgress"]


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not indexed, and why."""

    path: str
    reason: str


@dataclass
class IngestReport:
    """What one ingest run did. ``to_dict()`` is the CLI's ``--json`` output.

    Each file walked counts once: added, updated, moved, unchanged, text_updated or skipped
    (a video too, however many frame rows it has).
    """

    added: int = 0  # new files encoded (or copied from an identical file already indexed)
    updated: int = 0  # files whose content changed, re-encoded
    moved: int = 0  # files found under a new path by content hash; vector reused
    unchanged: int = 0  # same size and mtime (not read), or same content after a touch
    text_updated: int = 0  # image unchanged, item text changed: text and fused vectors redone
    removed: int = 0  # rows pruned because their file is gone (or now unreadable as an image)
    skipped: list[SkippedFile] = field(default_factory=list)  # not indexed, with the reason
    rows: int = 0  # rows in the table after the run
    captions_unmatched: int = 0  # rows of --captions manifests whose image was not among the files walked
    tagged: int = 0  # rows given zero-shot tags (ingest --tags)
    frames: int = 0  # video frames encoded and kept (one row each; videos count once above)
    ocr: dict[str, Any] | None = None  # the OCR pass after the write (ingest.ocr_pass.OcrReport), None when off
    located: int = 0  # rows indexed before place names that were given their GPS position and place (once)
    warnings: list[str] = field(default_factory=list)  # what a person should know, e.g. rows kept under an empty folder
    seconds: float = 0.0  # wall time of the run, model load included

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass(frozen=True)
class IngestProgress:
    """Handed to the progress callback: ``phase`` is 'scan', 'encode', 'prune' or 'compact'."""

    phase: str
    done: int
    total: int | None
