"""``IngestOptions``: what one ingest run looks at and how it writes. The CLI and
``Index.ingest`` both build one; ``run_ingest`` reads it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._options import checked, items
from ..errors import ConfigError
from ..text.choose import TEXT_SOURCES

__all__ = ["IngestOptions", "ENGINES", "WalkOptions", "PruneOptions", "TextChoice", "FusionChange", "EngineChoice"]

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class WalkOptions:
    """What a walk of the paths keeps: ``sources.discovery.walk``'s keywords."""

    include: Sequence[str] = ()  # only files matching a glob
    exclude: Sequence[str] = ()  # skip files and folders matching a glob
    hidden: bool = False  # also hidden files and folders
    follow_symlinks: bool = False  # follow symlinked folders (never in a loop)
    raw_pairs: str = "jpeg"  # a RAW+JPEG pair: index the 'jpeg', or 'keep-both'

    def kwargs(self) -> dict[str, Any]:
        return {"include": self.include, "exclude": self.exclude, "hidden": self.hidden,
                "follow_symlinks": self.follow_symlinks, "raw_pairs": self.raw_pairs}


@dataclass(frozen=True)
class PruneOptions:
    """Which rows go when their files are gone."""

    prune: bool = True  # remove rows whose file is gone from under the paths
    prune_empty: bool = False  # also under a path that holds no files at all


@dataclass(frozen=True)
class TextChoice:
    """Where an item's words come from."""

    captions: Sequence[str | os.PathLike[str]] = ()  # manifests mapping images to text
    text_sources: Sequence[str] = TEXT_SOURCES  # precedence of sidecar, embedded and manifest text
    path_text: bool = False  # add folder and file-name words


@dataclass(frozen=True)
class FusionChange:
    """Fusion settings asked for (None: keep the table's)."""

    strategy: str | None = None  # mean, concat or attention
    weight: float | None = None  # image weight w, 0..1
    text_aggregate: str | None = None  # several captions: 'mean' or 'first'

    def given(self) -> dict[str, Any]:
        """The settings asked for, as ``FusionConfig`` names them."""
        return {k: v for k, v in (("strategy", self.strategy), ("weight", self.weight),
                                  ("text_aggregate", self.text_aggregate)) if v is not None}


@dataclass(frozen=True)
class EngineChoice:
    """Which engine reads, decodes and encodes."""

    engine: str = "local"  # local (threads) or ray
    ray_address: str | None = None  # a running Ray cluster; None starts a local one


@dataclass(frozen=True)
class IngestOptions:
    """Options of one ingest run (the model, device and decode settings live in ``Config``).

    The flat fields are the public keywords (``Index.ingest``, the CLI); the rooms read them
    grouped by concern: ``walk``, ``pruning``, ``text``, ``fusion_change``, ``engine_choice``.

    Example::

        IngestOptions(exclude=["screenshots/*"], captions=["captions.csv"], fusion="concat")
    """

    include: Sequence[str] = ()  # only files matching a glob (path below the root, or the name)
    exclude: Sequence[str] = ()  # skip files and folders matching a glob
    hidden: bool = False  # also index hidden files and folders
    follow_symlinks: bool = False  # follow symlinked folders (never in a loop)
    prune: bool = True  # remove rows whose file is gone from under the paths
    prune_empty: bool = False  # prune under a path that holds no files at all (else its rows are kept: an unmounted disk?)
    reindex: bool = False  # rebuild the table (needed to switch models); searches see the old one until done
    captions: Sequence[str | os.PathLike[str]] = ()  # manifests (.csv .tsv .jsonl .parquet) mapping images to text
    text_sources: Sequence[str] = TEXT_SOURCES  # precedence of sidecar, embedded and manifest text
    path_text: bool = False  # add folder and file-name words to the item text
    fusion: str | None = None  # mean, concat or attention [default: the table's, else mean]
    fusion_weight: float | None = None  # image weight w, 0..1 [default: the table's, else 0.2]
    text_aggregate: str | None = None  # several captions: fuse their 'mean' or the 'first' [default: the table's]
    raw_pairs: str = "jpeg"  # a RAW+JPEG pair: index the 'jpeg' (recording the RAW as its sibling) or 'keep-both'
    retry_failed: bool = False  # also read files that failed to decode before and have not changed since
    tags: bool = False  # zero-shot tag the rows that have no tags yet (the table's last labels, else the built-in set)
    engine: str = "local"  # local (threads in this process) or ray (a Ray Data pipeline; pip install 'mmembed[ray]')
    ray_address: str | None = None  # engine ray: a running cluster (ray://HEAD:10001); None starts a local one
    ocr: bool | None = None  # read the text in the pictures (ingest.ocr_pass); None: when the ocr extra is installed

    def __post_init__(self) -> None:
        for name in ("include", "exclude"):
            object.__setattr__(self, name, items(getattr(self, name), name, ConfigError))
        object.__setattr__(self, "captions", items(self.captions, "captions", ConfigError, (str, os.PathLike)))
        sources = self.text_sources
        if isinstance(sources, str):  # "sidecar,manifest", as the CLI takes it
            sources = [t.strip() for t in sources.split(",") if t.strip()]
        object.__setattr__(self, "text_sources", items(sources, "text_sources", ConfigError))
        for name in ("hidden", "follow_symlinks", "prune", "prune_empty", "reindex", "path_text", "retry_failed", "tags"):
            checked(getattr(self, name), name, ConfigError, (bool,))
        checked(self.fusion, "fusion", ConfigError, (str,), optional=True)
        checked(self.fusion_weight, "fusion_weight", ConfigError, (int, float), optional=True)
        checked(self.text_aggregate, "text_aggregate", ConfigError, (str,), optional=True)
        from ..sources.raw import RAW_PAIRS  # not at import: Index (and so a search) imports this module

        if self.raw_pairs not in RAW_PAIRS:
            raise ConfigError(f"--raw-pairs {self.raw_pairs!r} is not one of {', '.join(RAW_PAIRS)}")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine {self.engine!r} is not known; use one of {', '.join(ENGINES)}")
        checked(self.ray_address, "ray_address", ConfigError, (str,), optional=True)
        checked(self.ocr, "ocr", ConfigError, (bool,), optional=True)
        if self.ray_address is not None and self.engine != "ray":
            raise ConfigError("ray_address is for the Ray engine; add --engine ray")

    @property
    def walk(self) -> WalkOptions:
        return WalkOptions(self.include, self.exclude, self.hidden, self.follow_symlinks, self.raw_pairs)

    @property
    def pruning(self) -> PruneOptions:
        return PruneOptions(self.prune, self.prune_empty)

    @property
    def text(self) -> TextChoice:
        return TextChoice(self.captions, self.text_sources, self.path_text)

    @property
    def fusion_change(self) -> FusionChange:
        return FusionChange(self.fusion, self.fusion_weight, self.text_aggregate)

    @property
    def wants_ocr(self) -> bool:
        """Whether this run reads text: asked for, or (not said) the ocr extra is installed and
        ``MMEMBED_OCR`` is not 0."""
        if self.ocr is not None:
            return self.ocr
        from ..config import ocr_default_on
        from ..models.ocr import ocr_available

        return ocr_default_on() and ocr_available()

    @property
    def engine_choice(self) -> EngineChoice:
        return EngineChoice(self.engine, self.ray_address)
