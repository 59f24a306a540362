"""The model a table is built with: the one it records, checked against one a user names, and
the encoder and vectorizer made from it.

The table records which model built it and how its vectors are fused, so once a table
exists neither need be named again; naming a different model is refused with a message
that says how to re-index.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from ..config import Config
from ..errors import ConfigError, ModelLoadError, ModelMismatchError, StoreError
from ..models.encoder import Encoder, ModelSpec
from ..models.fusion import FusionConfig, FusionStrategy, load_attention
from ..models.vectorizer import Vectorizer
from .table import Store, TableMeta

__all__ = ["TableModel", "ATTENTION_BLOB"]

ATTENTION_BLOB = "attention"  # the stored attention fusion weights


class TableModel:
    """The encoder, vectorizer and fusion settings of the table in ``store``; built on first use.

    Example::

        model = TableModel(store, Config.resolve(db="photos.lancedb"))
        model.encoder.encode_text(["a dog"])
    """

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config  # model, pretrained, device, batch size and precision asked for
        self.loaded: Encoder | None = None  # the encoder built so far, if any
        self._vectorizer: Vectorizer | None = None

    @property
    def encoder(self) -> Encoder:
        """The recorded model, or the configured one for a new table."""
        if self.loaded is None:
            self.loaded = self.new_encoder(self.spec())
        return self.loaded

    def use(self, encoder: Encoder) -> None:
        """Make ``encoder`` this table's (a new table's model; the same one on exported towers)."""
        self.loaded, self._vectorizer = encoder, None

    def forget_vectorizer(self) -> None:
        self._vectorizer = None

    def new_encoder(self, spec: ModelSpec) -> Encoder:
        c = self.config
        return Encoder(spec, device=c.device, batch_size=c.batch_size, precision=c.precision)

    @property
    def fusion(self) -> FusionConfig:
        """The table's fusion settings (defaults before the first ingest)."""
        meta = self.store.meta()
        return FusionConfig.from_dict(meta.fusion) if meta and meta.fusion else FusionConfig()

    @property
    def vectorizer(self) -> Vectorizer:
        if self._vectorizer is None or self._vectorizer.config != self.fusion:
            self._vectorizer = self.vectorizer_for(self.fusion, self.store)
        return self._vectorizer

    def vectorizer_for(self, config: FusionConfig, store: Store) -> Vectorizer:
        """A vectorizer with ``config`` (attention weights read from ``store``)."""
        attention = None
        if config.strategy is FusionStrategy.ATTENTION:
            found = store.load_blob(ATTENTION_BLOB)
            if found is None:
                raise ConfigError("this table uses attention fusion but holds no trained weights; run `mmembed fusion train`")
            attention = load_attention(found[0], self.encoder.spec.fingerprint)
        return Vectorizer(self.encoder, config, attention)

    @property
    def named(self) -> bool:
        return self.config.model is not None or self.config.pretrained is not None

    def spec(self, meta: TableMeta | None = None) -> ModelSpec:
        """The table's model; a named model must be it (the same weights)."""
        meta = meta or self.store.meta()
        c = self.config
        if meta is None:
            return ModelSpec.resolve(c.model, c.pretrained)
        recorded = ModelSpec(meta.model, meta.pretrained, meta.fingerprint)
        if self.named:
            wanted = ModelSpec.resolve_over(c.model, c.pretrained, meta.model, meta.pretrained)
            if wanted.fingerprint != recorded.fingerprint:
                raise ModelMismatchError(
                    f"table '{c.table}' in {c.db} was built with {recorded.label}, "
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
            if ModelSpec.resolve(recorded.name).fingerprint != recorded.fingerprint:
                raise ModelMismatchError(
                    f"the weights in {folder} changed since table '{c.table}' was built; "
                    "re-index with `mmembed ingest PATH --reindex`"
                )
        return recorded

    def reindex_spec(self) -> ModelSpec:
        """The model for ``--reindex``: the named one, else the one the table records (read from
        its snapshot if the table cannot be opened), with the weights as they are now; the
        default model only for a table that never was."""
        if self.named:
            return ModelSpec.resolve(self.config.model, self.config.pretrained)
        try:
            meta = self.store.meta()
        except StoreError:
            meta = self.store.snapshot_meta()
            if meta is None:
                raise ConfigError(f"table '{self.config.table}' cannot be read to learn its model; "
                                  "pass --model to --reindex") from None
        if meta is None:
            return ModelSpec.resolve(None, None)
        return ModelSpec.resolve(meta.model, meta.pretrained)

    def encoder_for(self, spec: ModelSpec) -> Encoder:
        """The encoder for ``spec``: the one loaded already if it is that model (never loaded twice)."""
        if self.loaded is not None and self.loaded.spec.fingerprint == spec.fingerprint:
            return self.loaded
        return self.new_encoder(spec)

    def record_name(self, meta: TableMeta) -> bool:
        """A model named for an ingest that is the table's (same weights) under another name, such
        as a moved ``local-dir:`` folder, becomes the recorded name. True when it changed."""
        if self.config.model is None:
            return False
        spec = self.encoder.spec  # checked against the table: other weights raise ModelMismatchError
        if (spec.name, spec.pretrained) == (meta.model, meta.pretrained):
            return False
        self.store.set_meta(replace(meta, model=spec.name, pretrained=spec.pretrained))
        return True


def given(**values: Any) -> dict[str, Any]:
    """The values that are not None (options left out keep the table's setting)."""
    return {k: v for k, v in values.items() if v is not None}
