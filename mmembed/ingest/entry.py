"""The ingest room's one entry: bring a table in step with paths.

``ingest_paths`` owns the table's lifecycle around the pipeline: the paths checked (before a
table is made or a model loaded), the no-op stamp (``unchanged.py``) tried and written, one
walk of the folders shared by that check and the planner, the table created (or, for
``--reindex``, a staging table built and swapped in, with what stays valid of the old one
carried over), the model's new name recorded, fusion changes applied, the engine chosen (threads
here, or ``ray.py``), tags, and what fast search reads refreshed (``store.derived``).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .._options import items
from ..config import Config
from ..errors import ConfigError, StoreError
from ..models.encoder import ModelSpec
from ..models.fusion import FusionConfig, FusionStrategy
from ..store.derived import Derived
from ..store.table import Store, TableMeta
from ..store.tablemodel import TableModel
from .options import IngestOptions
from .report import IngestProgress, IngestReport
from .unchanged import Walked, WalkDigest, unchanged_report, write_stamp

if TYPE_CHECKING:
    from ..models.zeroshot import TagSettings
    from ..text.manifest import Manifest

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
    carried = _carry(store, config.table) if options.reindex and store.exists() else None
    if carried is not None and carried.manifest is not None:  # read after the manifests given: those win
        text_options = replace(text_options, manifests=(*text_options.manifests, carried.manifest))
    target, renamed = store, False
    if meta is None:
        target = _create_table(model, config, options, carried)
        if derived.onnx_first(target):
            model.use(model.new_encoder(model.encoder.spec))  # now on the exported towers, if they were made
    else:
        renamed = model.record_name(meta)
        _apply_fusion_change(model, derived, options)
    for manifest in text_options.manifests:
        target.ensure_columns(manifest.extra_columns)
    # Attention weights kept by a --reindex are read from the old table's database until the swap.
    vectorizer = model.vectorizer_for(FusionConfig.from_dict(target.meta().fusion), store)  # type: ignore[union-attr]
    failed = FailedFiles(config.db, config.table, decoder_signature(config.max_megapixels))
    run = _engine(options)
    digest = WalkDigest()
    report = run(target, vectorizer, roots, options, config, text_options=text_options, failed=failed,
                 progress=progress, digest=digest, walked=walked)
    if target is not store:
        assert carried is not None
        report.tagged += _carry_onto(target, model, carried, report, ocr_now=options.wants_ocr)
        store.replace_with(target)
        store.drop_blobs()  # fusion weights and tag settings belonged to the table just replaced ...
        _keep_blobs(store, carried)  # ... those still valid are stored again
        report.rows = store.count()
        report.warnings.extend(carried.warnings)
    report.located = _place_rows(store, fresh=meta is None)
    if options.tags:
        report.tagged += _tag_new_rows(model)
    if options.wants_ocr:  # the words in the pixels, right after the vectors are safe (ingest.ocr_pass)
        report.ocr = _read_text(store, config, roots, progress)
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


def _create_table(model: TableModel, config: Config, options: IngestOptions, carried: _Carried | None = None) -> Store:
    """A new table; when one exists already (reindex), a staging table swapped in at the end,
    with the old table's fusion settings where they still hold (``carried``)."""
    store = model.store
    spec = model.reindex_spec() if options.reindex else ModelSpec.resolve(config.model, config.pretrained)
    encoder = model.encoder_for(spec)  # a loaded model is not loaded twice
    fusion = FusionConfig(**options.fusion_change.given())
    if carried is not None:
        from .table_fusion import reindex_fusion

        wanted = options.fusion_change.given()
        fusion, note = reindex_fusion(carried.fusion, wanted, carried.attention, spec.fingerprint)
        carried.keep_attention = fusion.strategy is FusionStrategy.ATTENTION
        if note:
            carried.warnings.append(note)
    elif fusion.strategy is FusionStrategy.ATTENTION:
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


def _read_text(store: Store, config: Config, roots: list[PathLike],
               progress: Callable[[IngestProgress], None] | None) -> dict:
    """``ingest --ocr``: read the rows never read (new and changed files, or a pass cut short) under
    this run's paths; rows elsewhere (another folder, one ingested with ``--no-ocr``) are left for
    ``mmembed ocr``."""
    from ..models.ocr import shared_reader
    from .ocr_pass import ocr_table

    def step(done: int, total: int) -> None:
        if progress:
            progress(IngestProgress("ocr", done, total))

    under = [os.fspath(r) if os.fspath(r).startswith("s3://") else os.path.realpath(os.fspath(r)) for r in roots]
    return ocr_table(store, shared_reader(), unread_only=True, under=under, max_megapixels=config.max_megapixels,
                     progress=step).to_dict()


def _tag_new_rows(model: TableModel) -> int:
    """``ingest --tags``: tag the rows without tags, with the labels the table was last tagged
    with (else the built-in set). Returns how many rows were tagged."""
    from ..models.zeroshot import check_labels
    from .table_tags import stored_settings, tag_table

    settings = stored_settings(model.store) or check_labels(None, None)
    return tag_table(model.store, model.encoder, settings, only_missing=True).rows


@dataclass
class _Carried:
    """What a ``--reindex`` keeps of the table it rebuilds. Rows are matched by path: a rebuilt
    row gets a new id, and a path names one file (a video's frame rows share it; they hold no OCR)."""

    fusion: FusionConfig = field(default_factory=FusionConfig)  # the old table's settings
    attention: tuple[bytes, dict[str, Any]] | None = None  # its trained attention weights, if any
    keep_attention: bool = False  # trained for the new model too (a rebuild with the same one)
    manifest: Manifest | None = None  # its manifest captions and columns, read as one more manifest
    ocr: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (path, content hash) -> OCR columns
    tagged: set[str] = field(default_factory=set)  # paths of the rows that had tags
    tag_settings: TagSettings | None = None  # the labels they were tagged with
    paths: set[str] = field(default_factory=set)  # every path it held
    warnings: list[str] = field(default_factory=list)  # what could not be kept, and how to get it back


def _carry(store: Store, table: str) -> _Carried:
    """Read what a rebuild keeps: manifest captions and columns, OCR results, which rows had tags
    and with which labels, fusion settings and weights. Model-made vectors and tags are not kept:
    the new model makes them again. A table that cannot be read keeps nothing, and says so."""
    from ..store.tablemodel import ATTENTION_BLOB
    from ..text.manifest import RESERVED_COLUMNS, Manifest
    from .ocr_pass import OCR_COLUMNS
    from .table_tags import stored_settings

    carried = _Carried()
    try:
        meta = store.meta()
        schema = store.table.schema
        extras = {name: schema.field(name).type for name in store.extra_columns if name not in RESERVED_COLUMNS}
        columns = [c for c in ("path", "content_hash", "manifest_texts", *OCR_COLUMNS, "tags") if c in schema.names]
        texts: dict[str, list[str]] = {}
        values: dict[str, dict[str, object]] = {}
        for batch in store.scan([*columns, *extras]):
            for row in batch.to_pylist():
                path = row["path"]
                carried.paths.add(path)
                found = {name: row[name] for name in extras if row[name] is not None}
                if row.get("manifest_texts") or found:
                    key = os.path.normpath(os.path.abspath(path))  # as Manifest.lookup names it
                    texts[key], values[key] = row.get("manifest_texts") or [], found
                if row.get("ocr_engine") is not None:
                    carried.ocr[(path, row["content_hash"])] = {name: row[name] for name in OCR_COLUMNS}
                if row.get("tags") is not None:
                    carried.tagged.add(path)
        if texts:
            carried.manifest = Manifest(os.path.join(store.uri, table), texts, values, extras)
        if meta is not None and meta.fusion:
            carried.fusion = FusionConfig.from_dict(meta.fusion)
        carried.attention = store.load_blob(ATTENTION_BLOB)
        carried.tag_settings = stored_settings(store)
    except StoreError:  # its fusion settings are still known from the search snapshot, as its model is
        snapshot = store.snapshot_meta()
        fusion = FusionConfig.from_dict(snapshot.fusion) if snapshot and snapshot.fusion else FusionConfig()
        return _Carried(fusion=fusion, warnings=[
            f"table '{table}' could not be read, so none of its manifest captions, text read from pictures or tags "
            "were kept; ingest again with --captions, then `mmembed ocr` and `mmembed tag`"])
    return carried


def _carry_onto(target: Store, model: TableModel, carried: _Carried, report: IngestReport, *, ocr_now: bool) -> int:
    """Before the swap: the OCR results of the files unchanged since they were read copied into
    the staging table (their words composed again), the rows that had tags tagged again with the
    new model and the same labels; what could not be kept noted in ``carried.warnings`` (a changed
    file's text only when this run does not read it: ``ocr_now``). Returns the rows tagged."""
    from ..store.table import ADDED_COLUMNS
    from ..text.words import WORD_COLUMNS, item_words
    from .ocr_pass import OCR_COLUMNS
    from .table_tags import tag_table

    target.ensure_columns(ADDED_COLUMNS)
    names = target.table.schema.names
    columns = ["id", "path", "content_hash", *[c for c in WORD_COLUMNS if c in names]]
    paths: dict[str, list[str]] = {}
    update: dict[str, list[Any]] = {name: [] for name in ("id", *OCR_COLUMNS, "words")}
    for batch in target.scan(columns):
        for row in batch.to_pylist():
            paths.setdefault(row["path"], []).append(row["id"])
            read = carried.ocr.get((row["path"], row["content_hash"]))
            if read is not None:
                for name in ("id", *OCR_COLUMNS):
                    update[name].append(row[name] if name == "id" else read[name])
                update["words"].append(item_words({**row, "ocr_text": read["ocr_text"]}) or None)
    target.update_columns(update)
    stale = len({path for path, _ in carried.ocr} & paths.keys()) - len(update["id"])
    if stale and not ocr_now:
        carried.warnings.append(f"{stale} files changed since their text was read, so that text was not kept; "
                                "`mmembed ocr` reads them again")
    tagged = 0
    if carried.tag_settings is not None:  # every row that had tags, tagged again with the labels kept
        ids = [i for path in carried.tagged if path in paths for i in paths[path]]
        tagged = tag_table(target, model.encoder, carried.tag_settings, ids=ids, keep_settings=False).rows
    elif carried.tagged & paths.keys():
        carried.warnings.append(f"{len(carried.tagged & paths.keys())} items lost their tags: the labels they were "
                                "tagged with were not stored; `mmembed tag` tags them again")
    skipped = {s.path for s in report.skipped}
    left = sorted(p for p in carried.paths - paths.keys()
                  if p not in skipped and not p.startswith("s3://") and os.path.exists(p))
    if left:
        carried.warnings.append(f"{len(left)} items indexed before were not among the files this rebuild walked (such "
                                f"as {left[0]}), so they are no longer indexed; ingest them again to index them")
    return tagged


def _keep_blobs(store: Store, carried: _Carried) -> None:
    """After the swap: the attention weights (when still valid) and tag labels stored again."""
    from ..store.tablemodel import ATTENTION_BLOB
    from .table_tags import save_settings

    if carried.keep_attention and carried.attention is not None:
        store.save_blob(ATTENTION_BLOB, *carried.attention)
    if carried.tag_settings is not None:
        save_settings(store, carried.tag_settings)
