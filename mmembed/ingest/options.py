"""``IngestOptions``: what one ingest run looks at and how it writes. The CLI and
``Index.ingest`` both build one; ``run_ingest`` reads it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from ..text.choose import TEXT_SOURCES

__all__ = ["IngestOptions"]


@dataclass(frozen=True)
class IngestOptions:
    """Options of one ingest run (the model, device and decode settings live in ``Config``).

    Example::

        IngestOptions(exclude=["screenshots/*"], captions=["captions.csv"], fusion="concat")
    """

    include: Sequence[str] = ()  # only files matching a glob (path below the root, or the name)
    exclude: Sequence[str] = ()  # skip files and folders matching a glob
    hidden: bool = False  # also index hidden files and folders
    follow_symlinks: bool = False  # follow symlinked folders (never in a loop)
    prune: bool = True  # remove rows whose file is gone from under the paths
    reindex: bool = False  # rebuild the table (needed to switch models); searches see the old one until done
    captions: Sequence[str | os.PathLike[str]] = ()  # manifests (.csv .tsv .jsonl .parquet) mapping images to text
    text_sources: Sequence[str] = TEXT_SOURCES  # precedence of sidecar, embedded and manifest text
    path_text: bool = False  # add folder and file-name words to the item text
    fusion: str | None = None  # mean, concat or attention [default: the table's, else mean]
    fusion_weight: float | None = None  # image weight w, 0..1 [default: the table's, else 0.2]
    text_aggregate: str | None = None  # several captions: fuse their 'mean' or the 'first' [default: the table's]
