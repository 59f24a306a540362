"""The ingest room's one entry: bring a table in step with paths.

``ingest_paths`` owns the table's lifecycle around the pipeline: the paths checked (before a
table is made or a model loaded), the no-op stamp (``unchanged.py``) tried and written, one
walk of the folders shared by that check and the planner, the table created (or, for
``--reindex``, a staging table built and swapped in), the model's new name recorded, fusion
changes applied, the engine chosen (threads here, or ``ray.py``), tags, and what fast search
reads refreshed (``store.derived``).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from .._options import items
from ..config import Config
from ..errors import ConfigError
from ..models.encoder import ModelSpec
from ..models.fusion import FusionConfig, FusionStrategy
from ..store.derived import Derived
from ..store.table import Store, TableMeta
from ..store.tablemodel import TableModel
from .options import IngestOptions
from .report import IngestProgress, IngestReport
from .unchanged import Walked, WalkDigest, unchanged_report, write_stamp

__all__ = ["ingest_paths", "check_paths"]

PathLike = str | os.PathLike[str]


def check_paths(paths: PathLike | Sequence[PathLike]) -> tuple[list[PathLike], list[str], bool]:
    """(the paths, their real paths, whether any is remote); raises ``ConfigError`` for a path
    that does not exist, before a table is made or a model loaded."""
    roots = list(items(paths, "paths", ConfigError, (str, os.PathLike)))
    if not roots:
        raise ConfigError("no paths to ingest; give at least one folder or image file")
    remote = [r for r in roots if isinstance(r, str) and r.startswith("s3://")]  # listed by sources.remote
    if remote:
        from ..sources.remote import check_root

        for root in remote:
            check_root(os.fspath(root))
    for root in roots:
        if root not in remote and not os.path.exists(root):
            raise ConfigError(f"{os.fspath(root)}: no such file or folder; check the path")
    real = [os.fspath(r) if r in remote else os.path.realpath(os.fspath(r)) for r in roots]
    return roots, real, bool(remote)


def ingest_paths(model: TableModel, derived: Derived, config: Config, paths: PathLike | Sequence[PathLike],
                 options: IngestOptions, progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
    """Index the images under ``paths`` into ``model.store`` (see ``Index.ingest``)."""
    started = time.perf_counter()
    store = model.store
    roots, real_roots, remote = check_paths(paths)
    if options.engine_choice.engine == "ray":
        from .ray import check_ray

        check_ray()  # said before anything else, even when nothing changed
    if options.ocr:  # asked for: a missing extra is said before anything is read
        from .ocr_pass import require_ocr

        require_ocr()
    stamped = store.is_local and not remote  # the stamp sees local files only
    walked = Walked()
    if stamped:  # nothing changed? Known without lancedb; else the walk is kept for the planner
        report = unchanged_report(config, options, real_roots, progress, walked)
        if report is not None:
            report.seconds = time.perf_counter() - started
            return report
    with store.write_lock("ingest"):
        report, digest = _write(model, derived, config, roots, options, progress, walked)
        if stamped:
            write_stamp(config, options, real_roots, digest, report)
    report.seconds = time.perf_counter() - started
    return report


def _write(model: TableModel, derived: Derived, config: Config, roots: list[PathLike], options: IngestOptions,
           progress: Callable[[IngestProgress], None] | None, walked: Walked) -> tuple[IngestReport, WalkDigest]:
    """The ingest proper, under the write lock: the table made or checked, the run, the swap."""
    from ..sources.decode import decoder_signature
    from ..store.failures import FailedFiles
    from ..text.choose import TextOptions
    from ..text.manifest import Manifest

    store = model.store
    text = options.text
    text_options = TextOptions(tuple(text.text_sources), tuple(Manifest.load(c) for c in text.captions), text.path_text)
    Store(store.uri, f"{config.table}__staging").drop()  # a killed --reindex left it
    meta = None if options.reindex else store.meta()
    target, renamed = store, False
    if meta is None:
        target = _create_table(model, config, options)
        if derived.onnx_first(target):
            model.use(model.new_encoder(model.encoder.spec))  # now on the exported towers, if they were made
    else:
        renamed = model.record_name(meta)
        _apply_fusion_change(model, derived, options)
    for manifest in text_options.manifests:
        target.ensure_columns(manifest.extra_columns)
    vectorizer = model.vectorizer_for(FusionConfig.from_dict(target.meta().fusion), target)  # type: ignore[union-attr]
    failed = FailedFiles(config.db, config.table, decoder_signature(config.max_megapixels))
    run = _engine(options)
    digest = WalkDigest()
    report = run(target, vectorizer, roots, options, config, text_options=text_options, failed=failed,
                 progress=progress, digest=digest, walked=walked)
    if target is not store:
        store.replace_with(target)
        store.drop_blobs()  # fusion weights belonged to the table just replaced
        report.rows = store.count()
    report.located = _place_rows(store, fresh=meta is None)
    if options.tags:
        report.tagged = _tag_new_rows(model)
    if options.wants_ocr:  # the words in the pixels, right after the vectors are safe (ingest.ocr_pass)
        report.ocr = _read_text(store, config, progress)
    changed = report.located or renamed or target is not store or report.added or report.updated or report.moved \
        or report.removed or report.text_updated or report.tagged or (report.ocr and report.ocr["read"])
    derived.refresh(force=bool(changed))  # unchanged: heals a snapshot or text tower that is missing or damaged
    return report, digest


def _place_rows(store: Store, *, fresh: bool) -> int:
    """A new table's rows were placed as they were written; an older one's get their places once."""
    from .where import backfill, mark_current

    if fresh:
        mark_current(store)
        return 0
    return backfill(store)


def _engine(options: IngestOptions) -> Callable[..., IngestReport]:
    choice = options.engine_choice
    if choice.engine == "ray":  # the same run as a Ray Data pipeline (ray.py)
        from .ray import run_ingest_ray

        return functools.partial(run_ingest_ray, address=choice.ray_address)
    from .pipeline import run_ingest

    return run_ingest


def _create_table(model: TableModel, config: Config, options: IngestOptions) -> Store:
    """A new table; when one exists already (reindex), a staging table swapped in at the end."""
    store = model.store
    spec = model.reindex_spec() if options.reindex else ModelSpec.resolve(config.model, config.pretrained)
    encoder = model.encoder_for(spec)  # a loaded model is not loaded twice
    fusion = FusionConfig(**options.fusion_change.given())
    if fusion.strategy is FusionStrategy.ATTENTION:
        raise ConfigError("a new table starts with mean or concat fusion; train attention with `mmembed fusion train`")
    meta = TableMeta(spec.name, spec.pretrained, spec.fingerprint, encoder.dim, fusion.to_dict())
    target = Store(store.uri, f"{config.table}__staging") if options.reindex and store.exists() else store
    target.create(meta, fusion.fused_dim(meta.dim), replace=True)
    if target is store:
        store.drop_blobs()  # weights trained for an older table of this name
    model.use(encoder)
    return target


def _apply_fusion_change(model: TableModel, derived: Derived, options: IngestOptions) -> None:
    """Fusion options that differ from the table's (or an apply cut short) are applied first."""
    from .table_fusion import apply_fusion

    wanted = options.fusion_change.given()
    current = model.fusion
    if (wanted and replace(current, **wanted) != current) or model.store.meta().fusion_pending:  # type: ignore[union-attr]
        apply_fusion(model, derived, **wanted)


def _read_text(store: Store, config: Config, progress: Callable[[IngestProgress], None] | None) -> dict:
    """``ingest --ocr``: read the rows never read (new and changed files, or a pass cut short)."""
    from ..models.ocr import shared_reader
    from .ocr_pass import ocr_table

    def step(done: int, total: int) -> None:
        if progress:
            progress(IngestProgress("ocr", done, total))

    return ocr_table(store, shared_reader(), unread_only=True, max_megapixels=config.max_megapixels, progress=step).to_dict()


def _tag_new_rows(model: TableModel) -> int:
    """``ingest --tags``: tag the rows without tags, with the labels the table was last tagged
    with (else the built-in set). Returns how many rows were tagged."""
    from ..models.zeroshot import check_labels
    from .table_tags import stored_settings, tag_table

    settings = stored_settings(model.store) or check_labels(None, None)
    return tag_table(model.store, model.encoder, settings, only_missing=True).rows
