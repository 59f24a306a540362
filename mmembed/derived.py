"""What fast search reads, kept in step with a table: the ANN index past its threshold, the
search snapshot, and the model's exported ONNX towers.

All of it is derived from the table and the model, so it is rebuilt, never a reason for a
write to fail: after an ingest has saved its rows, a failure here is a note on the
``mmembed`` logger (searches take the slower path), unless the caller asks for ``strict``
(``mmembed index --refresh``, ``mmembed doctor``).
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from .errors import StoreError
from .store.table import ANN_MIN_ROWS, Store

__all__ = ["refresh", "export_towers", "onnx_first"]

log = logging.getLogger("mmembed")


def refresh(index: Any, *, force: bool = True, strict: bool = False) -> None:
    """Keep the vector index, the quick-search snapshot and the text tower in step with the table.

    These are derived data: after an ingest has saved its rows, a failure here is a note
    (searches take the slower path), not an error, unless ``strict``. Without ``force``,
    only what is missing, stale or damaged is written again.
    """
    if index.store.count() >= max(index.config.ann_rows, ANN_MIN_ROWS) and not index.store.vector_indices():
        index.build_vector_index(refresh=False)
    try:
        if force or index._quick.snapshot() is None:
            index.store.write_snapshot()
        if strict:
            _drop_broken_text_tower(index)
        index._export_text_tower()
    except StoreError as exc:
        if strict:
            raise
        log.warning("%s; searches take the slower path until `mmembed index --refresh` succeeds", exc)


def export_towers(index: Any) -> None:
    """Write the ONNX towers, text then image, once per model (local tables only): quick
    search and image queries use them, and at fp32 on the CPU the encoder runs on them."""
    from .models.image_tower import export_image_tower, image_tower_exists, image_tower_folder
    from .models.text_tower import export_text_tower, fp32_torch, tower_exists, tower_folder

    if not index.store.is_local or index.meta is None:
        return
    fingerprint = index.encoder.spec.fingerprint  # the table's model (the new one during --reindex)
    wanted = [(folder, export) for folder, exists, export in (
        (tower_folder(fingerprint), tower_exists, export_text_tower),
        (image_tower_folder(fingerprint), image_tower_exists, export_image_tower),
    ) if not exists(folder, fingerprint)]
    if not wanted:
        return
    try:
        encoder = fp32_torch(index.encoder)  # one fp32 torch model for both exports
        for folder, export in wanted:
            try:
                export(encoder, folder)
            except OSError as exc:
                raise StoreError(f"cannot write the exported model in {folder} ({exc.strerror or exc})") from None
    except ImportError:
        return  # onnx/onnxruntime missing: torch does the work, as before
    _quantize_towers(index, fingerprint)


def _quantize_towers(index: Any, fingerprint: str) -> None:
    """Where this CPU encodes at int8, make both int8 graphs now, with the export (their one-time
    cost, a few seconds, belongs there rather than in the first search or captioned ingest)."""
    from .models.encoder import pick_precision
    from .models.image_tower import image_tower_folder, int8_tower_exists, quantize_image_tower
    from .models.text_tower import int8_text_tower_exists, quantize_text_tower, tower_folder

    try:
        if pick_precision("cpu", index.config.precision) != "int8":
            return
    except Exception:  # noqa: BLE001 - a precision this CPU refuses: nothing to prepare
        return
    for folder, exists, quantize in ((image_tower_folder(fingerprint), int8_tower_exists, quantize_image_tower),
                                     (tower_folder(fingerprint), int8_text_tower_exists, quantize_text_tower)):
        if os.path.isdir(folder) and not exists(folder):
            try:
                quantize(folder)  # None when not faithful: fp32 is used, as at load time
            except OSError:
                pass  # derived data: the first use tries again


def onnx_first(index: Any, target: Store) -> None:
    """A new table that this CPU encodes at int8 or fp32: export the towers before encoding, so
    that every image is encoded on ONNX Runtime (faster than torch; BENCHMARKS.md)."""
    from .models.encoder import _accelerator_possible, pick_precision

    if not (target.is_local and index.config.device in ("auto", "cpu") and not _accelerator_possible()
            and pick_precision("cpu", index.config.precision) in ("fp32", "int8")) or index.encoder.on_onnx:
        return
    try:
        index._export_text_tower()
    except StoreError:
        return  # a table that cannot be read, a cache that cannot be written: torch it is
    index._encoder = index._new_encoder(index.encoder.spec)  # now on the exported towers, if they were made
    index._vectorizer = None


def _drop_broken_text_tower(index: Any) -> None:
    """Remove an exported text tower that exists but cannot be loaded, so it is exported again."""
    from .models.text_tower import load_text_tower, tower_exists, tower_folder

    if index.meta is None:
        return
    folder = tower_folder(index.meta.fingerprint)
    if tower_exists(folder, index.meta.fingerprint):
        try:
            load_text_tower(folder, index.meta.fingerprint)
        except Exception:  # noqa: BLE001 - damaged (onnxruntime raises its own types)
            shutil.rmtree(folder, ignore_errors=True)
