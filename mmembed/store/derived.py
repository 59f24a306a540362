"""What fast search reads, kept in step with a table: the ANN index past its threshold, the
search snapshot, and the model's exported ONNX towers.

All of it is derived from the table and the model, so it is rebuilt, never a reason for a
write to fail: after an ingest has saved its rows, a failure here is a note on the
``mmembed`` logger (searches take the slower path), unless the caller asks for ``strict``
(``mmembed index --refresh``, ``mmembed doctor``).

``Derived`` is handed its collaborators: the table's ``Store`` and the table's model (a
function that builds the encoder on first need, since most refreshes export nothing).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import ConfigError, StoreError
from .table import ANN_MIN_ROWS, Store

if TYPE_CHECKING:
    from ..models.encoder import Encoder

__all__ = ["Derived"]

log = logging.getLogger("mmembed")
_TARGETS = ("image", "text", "fused")  # as retrieval.query.TARGETS (store sits above retrieval)


class Derived:
    """The ANN index, the snapshot and the exported towers of one table.

    Example::

        Derived(store, lambda: encoder, Config.resolve(db="photos.lancedb")).refresh()
    """

    def __init__(self, store: Store, encoder: Callable[[], Encoder], config: Config) -> None:
        self.store = store
        self._encoder = encoder  # the table's model (the new one during --reindex)
        self.ann_rows = config.ann_rows  # tables this big get an ANN index
        self.precision = config.precision  # whether the towers are quantized too, and onnx_first
        self.device = config.device

    def refresh(self, *, force: bool = True, strict: bool = False, table_needed: bool = False) -> None:
        """Keep the vector index, the snapshot and the towers in step with the table. Without
        ``force``, only what is missing, stale or damaged is written again; ``table_needed``
        (``mmembed index --refresh``): no table yet is an error."""
        store = self.store
        if table_needed and store.meta() is None:
            raise ConfigError("no index yet; run `mmembed ingest PATH` first")
        if store.count() >= max(self.ann_rows, ANN_MIN_ROWS) and not store.vector_indices():
            self.build_vector_index(refresh=False)
        try:
            if store.count():
                store.ensure_id_index()  # before the words are filled: each of their merges looks rows up
            self.refresh_words()
            if force or not self._snapshot_current():
                store.write_snapshot()
            if strict:
                self._drop_broken_text_tower()
            self.export_towers()
        except StoreError as exc:
            if strict:
                raise
            log.warning("%s; searches take the slower path until `mmembed index --refresh` succeeds", exc)

    def refresh_words(self) -> None:
        """The full-text side (``store.fulltext``): ``words`` composed for the rows that lack it (a
        table built before the column gains it here, no image read), then the FTS index on it
        built, or brought up to date with the rows written since."""
        from .fulltext import ensure_fts_index, fill_words

        if self.store.meta() is None or not self.store.count():
            return
        filled = fill_words(self.store)
        if filled:
            log.info("composed the searchable words of %d rows", filled)
        ensure_fts_index(self.store)

    def build_vector_index(self, target: str | None = None, *, refresh: bool = True) -> dict[str, Any]:
        """An ANN index on ``target``'s vector column (default: the column searches use)."""
        store = self.store
        if store.meta() is None:
            raise ConfigError("no index yet; run `mmembed ingest PATH` first")
        target = target or ("fused" if store.any_where("text_vector IS NOT NULL") else "image")
        if target not in _TARGETS:
            raise ConfigError(f"target {target!r} is not one of {', '.join(_TARGETS)}")
        built = store.build_vector_index(f"{target}_vector")
        if refresh:
            store.write_snapshot()  # the new index is a new table version
        return built

    def drop_vector_index(self) -> int:
        """Remove every vector index. Returns how many were dropped."""
        dropped = self.store.drop_vector_indices() if self.store.meta() is not None else 0
        if dropped:
            self.store.write_snapshot()
        return dropped

    def export_towers(self) -> None:
        """Write the ONNX towers, text then image, once per model (local tables only): quick
        search and image queries use them, and at fp32 on the CPU the encoder runs on them."""
        from ..models.image_tower import export_image_tower, image_tower_exists, image_tower_folder
        from ..models.text_tower import export_text_tower, fp32_torch, tower_exists, tower_folder

        if not self.store.is_local or self.store.meta() is None:
            return
        model = self._encoder()
        fingerprint = model.spec.fingerprint
        wanted = [(folder, export) for folder, exists, export in (
            (tower_folder(fingerprint), tower_exists, export_text_tower),
            (image_tower_folder(fingerprint), image_tower_exists, export_image_tower),
        ) if not exists(folder, fingerprint)]
        if not wanted:
            return
        try:
            encoder = fp32_torch(model)  # one fp32 torch model for both exports
            for folder, export in wanted:
                try:
                    export(encoder, folder)
                except OSError as exc:
                    raise StoreError(f"cannot write the exported model in {folder} ({exc.strerror or exc})") from None
        except ImportError:
            return  # onnx/onnxruntime missing: torch does the work, as before
        self._quantize_towers(fingerprint)

    def onnx_first(self, target: Store) -> bool:
        """A new table that this CPU encodes at int8 or fp32: export the towers before encoding,
        so that every image is encoded on ONNX Runtime (faster than torch; BENCHMARKS.md).
        True when they were exported: the caller builds its encoder again, on them."""
        from ..models.runtime import accelerator_possible, onnx_precision

        # "auto" only where no GPU may be; "cpu" too (the encoder's choice, ``onnx_precision``)
        if not (target.is_local and not accelerator_possible()
                and onnx_precision(self.device, self.precision) is not None) or self._encoder().on_onnx:
            return False
        try:
            self.export_towers()
        except StoreError:
            return False  # a table that cannot be read, a cache that cannot be written: torch it is
        return True

    def snapshot_reads(self) -> bool:
        """The snapshot is current and every file of it reads, every row line included."""
        from .snapshot import Snapshot, SnapshotDamaged

        try:
            snapshot = Snapshot.open(*self._where())
            if snapshot is not None:
                snapshot.verify()
            return snapshot is not None
        except SnapshotDamaged:
            return False

    def _where(self) -> tuple[str, str]:
        return self.store.uri.removeprefix("file://"), self.store.table_name

    def _snapshot_current(self) -> bool:
        from .snapshot import Snapshot, SnapshotDamaged, report_damage, table_version

        db, table = self._where()
        try:
            return Snapshot.open(db, table) is not None
        except SnapshotDamaged as exc:
            report_damage(os.path.abspath(db), table, table_version(db, table), exc)
            return False

    def _quantize_towers(self, fingerprint: str) -> None:
        """Where this CPU encodes at int8, make both int8 graphs now, with the export (their
        one-time cost, a few seconds, belongs there rather than in the first search)."""
        from ..models.image_tower import image_tower_folder, int8_tower_exists, quantize_image_tower
        from ..models.text_tower import int8_text_tower_exists, quantize_text_tower, tower_folder

        from ..models.runtime import tower_precision

        if tower_precision(self.precision) != "int8":
            return
        for folder, exists, quantize in ((image_tower_folder(fingerprint), int8_tower_exists, quantize_image_tower),
                                         (tower_folder(fingerprint), int8_text_tower_exists, quantize_text_tower)):
            if os.path.isdir(folder) and not exists(folder):
                try:
                    quantize(folder)  # None when not faithful: fp32 is used, as at load time
                except OSError:
                    pass  # derived data: the first use tries again

    def _drop_broken_text_tower(self) -> None:
        """Remove an exported text tower that exists but cannot be loaded, so it is exported again."""
        from ..models.text_tower import load_text_tower, tower_exists, tower_folder

        meta = self.store.meta()
        if meta is None:
            return
        folder = tower_folder(meta.fingerprint)
        if tower_exists(folder, meta.fingerprint):
            try:
                load_text_tower(folder, meta.fingerprint)
            except Exception:  # noqa: BLE001 - damaged (onnxruntime raises its own types)
                shutil.rmtree(folder, ignore_errors=True)
