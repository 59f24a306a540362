"""An item's words: which source gives them, in order of precedence.

Sources, default precedence ``sidecar, embedded, manifest``:

- ``sidecar``: ``IMG_1.jpg.txt``/``IMG_1.txt``, ``IMG_1.json``, ``IMG_1.xmp`` next to the image;
- ``embedded``: EXIF/IPTC/XMP captions inside the file (kept in the row, refreshed whenever
  the file is read);
- ``manifest``: captions from ``--captions`` files (kept in the row, so a later ingest
  without the manifest keeps them);

the first source with any text wins; ``path_text`` optionally adds folder and file-name
words. (The text hash and the text and fused vectors are made in ``models/vectorizer.py``.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # IngestOptions (and so Index) import this module: a search needs none of them
    from .manifest import Manifest

__all__ = ["TextOptions", "ItemText", "resolve_texts", "TEXT_SOURCES"]

TEXT_SOURCES = ("sidecar", "embedded", "manifest")


@dataclass(frozen=True)
class TextOptions:
    """Where ingest looks for an item's text."""

    sources: tuple[str, ...] = TEXT_SOURCES  # precedence, first with text wins
    manifests: tuple[Manifest, ...] = ()  # --captions files given to this run
    path_text: bool = False  # add folder and file-name words

    def __post_init__(self) -> None:
        bad = [s for s in self.sources if s not in TEXT_SOURCES]
        if bad or len(set(self.sources)) != len(self.sources):
            raise ConfigError(
                f"text sources {','.join(self.sources)!r} are not valid; use a comma list of "
                f"{', '.join(TEXT_SOURCES)} without repeats"
            )

    def manifest_entry(self, path: str, roots: Sequence[str]) -> tuple[list[str], dict[str, Any], tuple[int, str]] | None:
        """Captions and extra columns for ``path`` from this run's manifests, if any lists it,
        and which entry matched: (index of the manifest, its key)."""
        for at, manifest in enumerate(self.manifests):
            key = manifest.lookup(path, roots)
            if key is not None:
                return manifest.texts.get(key, []), manifest.extras.get(key, {}), (at, key)
        return None

    def unmatched_rows(self, matched: set[tuple[int, str]]) -> int:
        """Rows of this run's manifests whose image was not among the files walked."""
        return sum(n for at, m in enumerate(self.manifests) for key, n in m.rows.items() if (at, key) not in matched)

    def unmatched_notes(self, matched: set[tuple[int, str]], roots: Sequence[str]) -> list[str]:
        """One line for each manifest none of whose rows found its image, saying why."""
        return [manifest.why_unmatched(roots) for at, manifest in enumerate(self.manifests)
                if manifest.rows and not any(m_at == at for m_at, _ in matched)]


@dataclass(frozen=True)
class ItemText:
    texts: list[str] = field(default_factory=list)
    source: str | None = None


def resolve_texts(
    path: str,
    root: str,
    sidecars: Sequence[str],
    embedded: Sequence[str],
    manifest: Sequence[str],
    options: TextOptions,
    read: Callable[[str, int], bytes] | None = None,
) -> ItemText:
    """Pick the item's texts by precedence, then add path words if asked. ``read(path, limit)``
    reads a sidecar that is not a local file (an object in object storage)."""
    from .paths import path_text
    from .sidecars import read_sidecars

    texts: list[str] = []
    source = None
    for name in options.sources:
        if name == "sidecar":
            found = read_sidecars(os.path.dirname(path), sidecars, read) if sidecars else []
        elif name == "embedded":
            found = list(embedded)
        else:
            found = list(manifest)
        if found:
            texts, source = found, name
            break
    if options.path_text:
        words = path_text(path, root)
        if words and words not in texts:
            texts = [*texts, words]
            source = f"{source}+path" if source else "path"
    return ItemText(texts, source)
