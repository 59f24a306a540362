"""``Index``: the facade users hold. It owns the config, the store and the encoder.

The table records which model built it, so once a table exists the model need not be
named again; naming a different one is refused with a message that says how to re-index.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .config import Config
from .encoders import Encoder, ModelSpec
from .errors import ModelLoadError, ModelMismatchError
from .ingest import IngestProgress, IngestReport, run_ingest
from .search import Hit, run_search
from .store import Store, TableMeta

__all__ = ["Index", "IndexInfo"]

PathLike = str | os.PathLike[str]


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Index:
    """A searchable image index in one LanceDB table.

    Example::

        idx = Index(db="./photos.lancedb", model="local-dir:./micro-clip")
        idx.ingest("./photos")
        for hit in idx.search("a dog on grass", limit=5):
            print(hit.score, hit.path)

    Arguments left as None come from ``MMEMBED_*`` environment variables, then defaults;
    ``model``/``pretrained`` default to what the table records.
    """

    def __init__(
        self,
        db: PathLike | None = None,
        *,
        table: str | None = None,
        model: str | None = None,
        pretrained: str | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        max_megapixels: float | None = None,
        config: Config | None = None,
    ) -> None:
        if config is None:
            config = Config.resolve(
                db=os.fspath(db) if db is not None else None, table=table, model=model,
                pretrained=pretrained, device=device, batch_size=batch_size, workers=workers,
                max_megapixels=max_megapixels,
            )
        if config.is_local:
            config = _with_absolute_db(config)
        self.config = config
        self.store = Store(config.db, config.table)
        self._encoder: Encoder | None = None

    def __repr__(self) -> str:
        return f"Index(db={self.config.db!r}, table={self.config.table!r})"

    # ------------------------------------------------------------ model
    @property
    def meta(self) -> TableMeta | None:
        """What built the table, or None before the first ingest."""
        return self.store.meta()

    @property
    def encoder(self) -> Encoder:
        """The encoder for this table: the recorded model, or the configured one for a new table."""
        if self._encoder is None:
            self._encoder = Encoder(
                self._model_spec(), device=self.config.device, batch_size=self.config.batch_size
            )
        return self._encoder

    def _model_spec(self, meta: TableMeta | None = None) -> ModelSpec:
        meta = meta or self.meta
        asked = self.config.model is not None or self.config.pretrained is not None
        if meta is None:
            return ModelSpec.resolve(self.config.model, self.config.pretrained)
        recorded = ModelSpec(meta.model, meta.pretrained, meta.fingerprint)
        if asked:
            wanted = ModelSpec.resolve(self.config.model or meta.model, self.config.pretrained or meta.pretrained)
            if wanted.fingerprint != recorded.fingerprint:
                raise ModelMismatchError(
                    f"table '{self.config.table}' in {self.config.db} was built with {recorded.label}, "
                    f"not {wanted.label}; re-index with `mmembed ingest PATH --reindex` (replaces every "
                    "vector), or use another --db/--table"
                )
            return wanted
        if recorded.name.startswith("local-dir:"):
            folder = recorded.name.removeprefix("local-dir:")
            if not os.path.isdir(folder):
                raise ModelLoadError(
                    f"the model folder this table was built with, {folder}, is gone; pass "
                    "--model local-dir:PATH to where it is now"
                )
            current = ModelSpec.resolve(recorded.name)
            if current.fingerprint != recorded.fingerprint:
                raise ModelMismatchError(
                    f"the weights in {folder} changed since table '{self.config.table}' was built; "
                    "re-index with `mmembed ingest PATH --reindex`"
                )
        return recorded

    # ------------------------------------------------------------ work
    def ingest(
        self,
        paths: PathLike | Sequence[PathLike],
        *,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        hidden: bool = False,
        follow_symlinks: bool = False,
        prune: bool = True,
        reindex: bool = False,
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> IngestReport:
        """Index the images under ``paths``; unchanged files are skipped without being read.

        Returns an ``IngestReport``. Bad files are listed in ``report.skipped`` and never
        stop the run. ``reindex`` drops the table first (needed to switch models).
        """
        roots = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        with self.store.write_lock():
            meta = None if reindex else self.meta
            if meta is None:
                self._encoder = None
                spec = ModelSpec.resolve(self.config.model, self.config.pretrained)
                encoder = Encoder(spec, device=self.config.device, batch_size=self.config.batch_size)
                new_meta = TableMeta(spec.name, spec.pretrained, spec.fingerprint, encoder.dim)
                self.store.create(new_meta, replace=reindex)
                self._encoder = encoder
            encoder = self.encoder
            return run_ingest(
                self.store, encoder, roots, include=include, exclude=exclude, hidden=hidden,
                follow_symlinks=follow_symlinks, prune=prune,
                max_megapixels=self.config.max_megapixels, workers=self.config.workers,
                batch_size=self.config.batch_size, progress=progress,
            )

    def search(
        self,
        text: str | None = None,
        *,
        image: PathLike | None = None,
        limit: int = 10,
        where: str | None = None,
    ) -> list[Hit]:
        """Nearest images to a text and/or image query, best first.

        ``where`` is a SQL filter on the metadata columns, e.g. ``"format = 'PNG'"``.
        """
        return run_search(
            self.store, _LazyEncoder(self), text, image=image, limit=limit, where=where,
            max_megapixels=self.config.max_megapixels,
        )

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (N, D) unit vectors from this index's model."""
        return self.encoder.encode_text(list(texts))

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        """float32 (N, D) unit vectors from this index's model, decoded as ingest decodes."""
        return self.encoder.encode_images(list(images), max_megapixels=self.config.max_megapixels)

    def info(self) -> IndexInfo:
        """Location, size and model of the index (no model is loaded)."""
        meta = self.meta
        exists = meta is not None
        return IndexInfo(
            db=self.config.db,
            table=self.config.table,
            rows=self.store.count() if exists else 0,
            model=meta.model if meta else None,
            pretrained=meta.pretrained if meta else None,
            dim=meta.dim if meta else None,
            bytes=self.store.bytes_on_disk() if exists else 0,
            schema_version=meta.schema_version if meta else None,
        )


class _LazyEncoder:
    """Defers building (and checking) the encoder until a query really needs a vector."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index.encoder, name)


def _with_absolute_db(config: Config) -> Config:
    from dataclasses import replace

    path = config.db.removeprefix("file://")
    return replace(config, db=os.path.abspath(os.path.expanduser(path)))
