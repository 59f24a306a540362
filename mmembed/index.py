"""``Index``: the facade users hold. It owns the config, the store, the encoder and fusion.

The table records which model built it and how its vectors are fused, so once a table
exists neither need be named again; naming a different model is refused with a message
that says how to re-index.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from . import derived
from ._options import items, options_from, takes
from .config import Config
from .models.encoder import Encoder, ModelSpec
from .errors import ConfigError, IndexEmptyError, ModelLoadError, ModelMismatchError, StoreError
from .models.fusion import FusionConfig, FusionStrategy, load_attention
from .ingest.pipeline import run_ingest
from .ingest.report import IngestProgress, IngestReport
from .ingest.options import IngestOptions
from .ingest.unchanged import WalkDigest, unchanged_report, write_stamp
from .retrieval.exact import TARGETS, Hit, run_search
from .retrieval.query import SearchOptions
from .sources.decode import decoder_signature
from .store.failures import FailedFiles
from .store.table import Store, TableMeta
from .models.vectorizer import Vectorizer
from .text.choose import TextOptions

__all__ = ["Index", "IndexInfo"]

log = logging.getLogger("mmembed")

PathLike = str | os.PathLike[str]
_ITEM_COLUMNS = ("id", "path", "size", "mtime_ns", "content_hash", "width", "height", "format", "taken_ns",
                 "text", "texts", "text_source", "media", "frame_time", "duration", "raw_siblings")
_ATTENTION_BLOB = "attention"


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
    fusion: dict[str, Any] | None = None
    captioned: int = 0  # rows with item text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Index:
    """A searchable image index in one LanceDB table.

    Example::

        idx = Index(db="./photos.lancedb", model="local-dir:./micro-clip")
        idx.ingest("./photos", captions=["captions.csv"])
        for hit in idx.search("a dog on grass", limit=5):
            print(hit.score, hit.path, hit.text)

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
        precision: str | None = None,
        decode: str | None = None,
        config: Config | None = None,
    ) -> None:
        if config is None:
            config = Config.resolve(
                db=os.fspath(db) if db is not None else None, table=table, model=model,
                pretrained=pretrained, device=device, batch_size=batch_size, workers=workers,
                max_megapixels=max_megapixels, precision=precision, decode=decode,
            )
        if config.is_local:
            path = config.db.removeprefix("file://")
            config = replace(config, db=os.path.abspath(os.path.expanduser(path)))
        self.config = config
        self.store = Store(config.db, config.table)
        self._encoder: Encoder | None = None
        self._vectorizer: Vectorizer | None = None
        from .retrieval.quick import QuickSearch

        self._quick = QuickSearch(self.config.db, self.config.table, precision=self.config.precision)  # see quick.py

    def __repr__(self) -> str:
        return f"Index(db={self.config.db!r}, table={self.config.table!r})"

    # ------------------------------------------------------------ model and fusion
    @property
    def meta(self) -> TableMeta | None:
        """What built the table, or None before the first ingest."""
        return self.store.meta()

    @property
    def encoder(self) -> Encoder:
        """The encoder for this table: the recorded model, or the configured one for a new table."""
        if self._encoder is None:
            self._encoder = self._new_encoder(self._model_spec())
        return self._encoder

    def _new_encoder(self, spec: ModelSpec) -> Encoder:
        return Encoder(spec, device=self.config.device, batch_size=self.config.batch_size,
                       precision=self.config.precision)

    @property
    def fusion(self) -> FusionConfig:
        """The table's fusion settings (defaults before the first ingest)."""
        meta = self.meta
        return FusionConfig.from_dict(meta.fusion) if meta and meta.fusion else FusionConfig()

    @property
    def vectorizer(self) -> Vectorizer:
        if self._vectorizer is None or self._vectorizer.config != self.fusion:
            self._vectorizer = self._make_vectorizer(self.fusion, self.encoder, self.store)
        return self._vectorizer

    def _make_vectorizer(self, config: FusionConfig, encoder: Encoder, store: Store) -> Vectorizer:
        attention = None
        if config.strategy is FusionStrategy.ATTENTION:
            found = store.load_blob(_ATTENTION_BLOB)
            if found is None:
                raise ConfigError("this table uses attention fusion but holds no trained weights; run `mmembed fusion train`")
            attention = load_attention(found[0], encoder.spec.fingerprint)
        return Vectorizer(encoder, config, attention)

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
            if ModelSpec.resolve(recorded.name).fingerprint != recorded.fingerprint:
                raise ModelMismatchError(
                    f"the weights in {folder} changed since table '{self.config.table}' was built; "
                    "re-index with `mmembed ingest PATH --reindex`"
                )
        return recorded

    # ------------------------------------------------------------ ingest
    @takes(IngestOptions)
    def ingest(
        self,
        paths: PathLike | Sequence[PathLike],
        *,
        options: IngestOptions | None = None,
        progress: Callable[[IngestProgress], None] | None = None,
        **kwargs: Any,
    ) -> IngestReport:
        """Index the images under ``paths``; unchanged files are skipped without being read.

        ``captions`` are manifest files (.csv, .jsonl, .parquet) mapping image paths to text;
        ``text_sources`` sets the precedence of sidecar, embedded and manifest text;
        ``fusion``/``fusion_weight``/``text_aggregate`` change how fused vectors are made (the
        whole table is refused first). Bad files are listed in ``report.skipped`` and never
        stop the run. ``reindex`` rebuilds the table (needed to switch models); searches keep
        seeing the old table until the new one is complete. ``engine="ray"`` runs reading,
        decoding and encoding as a Ray Data pipeline (``ray_address`` names a running cluster,
        else a local one is started; docs/scale-out.md). The keyword arguments are the
        fields of :class:`IngestOptions`; or pass one as ``options``.

        Example::

            Index("photos.lancedb").ingest("~/Pictures", engine="ray", ray_address="ray://head:10001")
        """
        from .text.manifest import Manifest

        options = options_from(IngestOptions, options, kwargs)
        started = time.perf_counter()
        roots = items(paths, "paths", ConfigError, (str, os.PathLike))
        if not roots:
            raise ConfigError("no paths to ingest; give at least one folder or image file")
        remote = [r for r in roots if _is_s3(r)]  # s3://bucket/prefix: listed by sources.remote
        if remote:
            from .sources.remote import check_root

            for root in remote:
                check_root(os.fspath(root))  # before a table is made or a model loaded
        for root in roots:
            if root not in remote and not os.path.exists(root):
                raise ConfigError(f"{os.fspath(root)}: no such file or folder; check the path")
        real_roots = [os.fspath(r) if r in remote else os.path.realpath(os.fspath(r)) for r in roots]
        if options.engine == "ray":
            from .ingest.ray import check_ray

            check_ray()  # said before anything else, even when nothing changed
        stamped = self.store.is_local and not remote  # the stamp sees local files only
        if stamped:  # nothing changed? Known without lancedb (ingest/unchanged.py)
            report = unchanged_report(self.config, options, real_roots, progress)
            if report is not None:
                report.seconds = time.perf_counter() - started
                return report
        digest = WalkDigest()
        text_options = TextOptions(tuple(options.text_sources), tuple(Manifest.load(c) for c in options.captions),
                                   options.path_text)
        fusion = (options.fusion, options.fusion_weight, options.text_aggregate)
        with self.store.write_lock("ingest"):
            Store(self.store.uri, f"{self.config.table}__staging").drop()  # a killed --reindex left it
            meta = None if options.reindex else self.meta
            target, renamed = self.store, False
            if meta is None:
                target = self._create_table(options.reindex, *fusion)
                derived.onnx_first(self, target)
            else:
                renamed = self._record_model_name(meta)
                self._refuse_fusion_change(*fusion)
            for manifest in text_options.manifests:
                target.ensure_columns(manifest.extra_columns)
            vectorizer = self._make_vectorizer(FusionConfig.from_dict(target.meta().fusion), self.encoder, target)
            failed = FailedFiles(self.config.db, self.config.table, decoder_signature(self.config.max_megapixels))
            run: Callable[..., IngestReport] = run_ingest
            if options.engine == "ray":  # the same run as a Ray Data pipeline (ingest/ray.py)
                from .ingest.ray import run_ingest_ray

                run = functools.partial(run_ingest_ray, address=options.ray_address)
            report = run(target, vectorizer, roots, options, self.config, text_options=text_options,
                         failed=failed, progress=progress, digest=digest)
            if target is not self.store:
                self.store.replace_with(target)
                self.store.drop_blobs()  # fusion weights belonged to the table just replaced
                report.rows = self.store.count()
            if options.tags:
                report.tagged = self._tag_new_rows()
            if renamed or target is not self.store or report.added or report.updated or report.moved \
                    or report.removed or report.text_updated or report.tagged:
                self._after_write()
            else:
                self._after_write(force=False)  # heals a snapshot or text tower that is missing or damaged
            if stamped:
                write_stamp(self.config, options, real_roots, digest, report)
        report.seconds = time.perf_counter() - started
        return report

    @takes(IngestOptions)
    def watch(
        self,
        paths: PathLike | Sequence[PathLike],
        *,
        debounce: float = 1.0,
        settle: float = 0.5,
        max_wait: float = 30.0,
        poll: float = 2.0,
        on_event: Callable[[Any], None] | None = None,
        stop: Any = None,
        options: IngestOptions | None = None,
        **kwargs: Any,
    ) -> None:
        """Keep the table in step with ``paths`` until ``stop`` (a ``threading.Event``) is set:
        one ingest now, then one per burst of changes, ``debounce`` seconds after the last
        change (``ingest.watch``: files still being written are waited for, a root that is
        unmounted keeps its rows and is caught up with when it is back). Each step is a
        ``WatchEvent`` handed to ``on_event``. Needs watchdog (``pip install 'mmembed[watch]'``).
        The keyword arguments are the fields of :class:`IngestOptions`, as for ``ingest``.

        Example::

            stop = threading.Event()
            idx.watch("./photos", on_event=lambda e: print(e.to_dict()), stop=stop)
        """
        from .ingest.watch import WatchOptions, run_watch

        options = options_from(IngestOptions, options, kwargs)
        if options.reindex:
            raise ConfigError("watch does not rebuild the table; run `mmembed ingest PATH --reindex` first")
        timing = WatchOptions(debounce=debounce, settle=settle, max_wait=max_wait, poll=poll)
        given = items(paths, "paths", ConfigError, (str, os.PathLike))
        if any(_is_s3(p) for p in given):
            raise ConfigError("watch follows local folders only; for s3:// run `mmembed ingest s3://...` on a schedule")
        roots = [os.path.realpath(os.fspath(p)) for p in given]
        if not roots:
            raise ConfigError("no paths to watch; give at least one folder")
        ignore = [os.path.realpath(self.config.db)] if self.store.is_local else []
        run_watch(roots, lambda present, progress: self.ingest(present, options=options, progress=progress),
                  timing, on_event=on_event, stop=stop, ignore=ignore)

    def _tag_new_rows(self) -> int:
        """``ingest --tags``: tag the rows without tags, with the labels the table was last
        tagged with (else the built-in set). Returns how many rows were tagged."""
        from .ingest.table_tags import stored_settings, tag_table
        from .models.zeroshot import check_labels

        settings = stored_settings(self.store) or check_labels(None, None)
        return tag_table(self.store, self.encoder, settings, only_missing=True).rows

    def _create_table(self, reindex: bool, strategy: str | None, weight: float | None, aggregate: str | None) -> Store:
        """A new table; when one exists already (reindex), a staging table swapped in at the end."""
        named = self.config.model is not None or self.config.pretrained is not None
        spec = self._reindex_spec() if reindex and not named else ModelSpec.resolve(self.config.model, self.config.pretrained)
        same = self._encoder is not None and self._encoder.spec.fingerprint == spec.fingerprint
        encoder = self._encoder if same else self._new_encoder(spec)  # a loaded model is not loaded twice
        fusion = FusionConfig(**_given(strategy=strategy, weight=weight, text_aggregate=aggregate))
        if fusion.strategy is FusionStrategy.ATTENTION:
            raise ConfigError("a new table starts with mean or concat fusion; train attention with `mmembed fusion train`")
        meta = TableMeta(spec.name, spec.pretrained, spec.fingerprint, encoder.dim, fusion.to_dict())
        target = Store(self.store.uri, f"{self.config.table}__staging") if reindex and self.store.exists() else self.store
        target.create(meta, fusion.fused_dim(meta.dim), replace=True)
        if target is self.store:
            self.store.drop_blobs()  # weights trained for an older table of this name
        self._encoder, self._vectorizer = encoder, None
        return target

    def _reindex_spec(self) -> ModelSpec:
        """The model the table records (read from its snapshot if the table cannot be opened),
        with the weights as they are now; the default model only for a table that never was."""
        try:
            meta = self.meta
        except StoreError:
            meta = self.store.snapshot_meta()
            if meta is None:
                raise ConfigError(f"table '{self.config.table}' cannot be read to learn its model; "
                                  "pass --model to --reindex") from None
        if meta is None:
            return ModelSpec.resolve(None, None)
        return ModelSpec.resolve(meta.model, meta.pretrained)

    def _record_model_name(self, meta: TableMeta) -> bool:
        """A model named for an ingest that is the table's (same weights) under another name, such
        as a moved ``local-dir:`` folder, becomes the recorded name. True when it changed."""
        if self.config.model is None:
            return False
        spec = self.encoder.spec  # checked against the table: other weights raise ModelMismatchError
        if (spec.name, spec.pretrained) == (meta.model, meta.pretrained):
            return False
        self.store.set_meta(replace(meta, model=spec.name, pretrained=spec.pretrained))
        return True

    def _refuse_fusion_change(self, strategy: str | None, weight: float | None, aggregate: str | None) -> None:
        wanted = _given(strategy=strategy, weight=weight, text_aggregate=aggregate)
        current = self.fusion
        if (wanted and replace(current, **wanted) != current) or self.meta.fusion_pending:  # type: ignore[union-attr]
            self.apply_fusion(**wanted)

    # ------------------------------------------------------------ fusion
    def apply_fusion(
        self,
        *,
        strategy: str | None = None,
        weight: float | None = None,
        text_aggregate: str | None = None,
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> int:
        """Recompute every row's fused vector (and text vector, if the aggregation changed)
        from stored vectors, without decoding any image. Returns the number of rows."""
        with self.store.write_lock("fusion apply"):
            return self._apply_fusion(strategy, weight, text_aggregate, progress)

    def _apply_fusion(self, strategy: str | None, weight: float | None, text_aggregate: str | None,
                      progress: Callable[[IngestProgress], None] | None) -> int:
        from .ingest.table_fusion import refuse_table

        meta = self.meta
        if meta is None:
            raise ConfigError("no index yet; run `mmembed ingest PATH` first")
        current = self.fusion
        new = replace(current, **_given(strategy=strategy, weight=weight, text_aggregate=text_aggregate))
        if new.strategy is FusionStrategy.ATTENTION:
            found = self.store.load_blob(_ATTENTION_BLOB)
            if found is None:
                raise ConfigError("no trained attention weights in this database; run `mmembed fusion train` first")
            new = replace(new, attention_id=found[1].get("id"))
        vectorizer = self._make_vectorizer(new, self.encoder, self.store)
        # After an apply that was cut short, rows are in no known state: redo text vectors too.
        redo_text = meta.fusion_pending or new.text_aggregate != current.text_aggregate
        # Record the new settings first, marked pending: a run cut short is then visible, and
        # rerunning `mmembed fusion apply` finishes it.
        self.store.set_meta(replace(meta, fusion=new.to_dict(), fusion_pending=True))
        rows = refuse_table(self.store, vectorizer, redo_text, progress)
        self.store.set_meta(replace(meta, fusion=new.to_dict(), fusion_pending=False))
        self._vectorizer = None
        self._after_write()
        return rows

    def train_fusion(self, *, epochs: int | None = None, seed: int = 0, apply: bool = True,
                     progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
        """Train attention fusion on this table's items that have two or more texts, store the
        weights in the database, and (by default) switch the table to attention fusion.
        ``epochs`` defaults to ``mmembed.fusion.TRAIN_EPOCHS``."""
        from .ingest.table_fusion import train_on_table

        with self.store.write_lock("fusion train"):
            info = train_on_table(self.store, self.encoder, self.fusion, epochs=epochs, seed=seed, progress=progress)
            self.store.save_blob(_ATTENTION_BLOB, info.pop("blob"), {"id": info["id"], **info})
            if apply:
                info["rows"] = self.apply_fusion(strategy="attention")
        return info

    def doctor(self, *, repair: bool = False) -> list[Any]:
        """Check the table and its derived data; mend the derived data and leftovers, and with
        ``repair`` bring a damaged table back to its last good version. Returns the findings
        (``mmembed.doctor.Finding``: check, status 'ok'/'repaired'/'problem', detail)."""
        from .doctor import run_doctor

        with self.store.write_lock("doctor"):
            return run_doctor(self, repair=repair)

    # ------------------------------------------------------------ speed: ANN index and quick search
    def refresh(self) -> None:
        """Bring what fast search reads up to date with the table: the ANN index (once the table
        has ``ann_rows`` rows), the snapshot and the exported text tower. Ingest and fusion apply
        do this themselves; call it after writing to the table some other way."""
        with self.store.write_lock("refresh"):
            if self.meta is None:
                raise ConfigError("no index yet; run `mmembed ingest PATH` first")
            self._after_write(strict=True)

    def _after_write(self, *, force: bool = True, strict: bool = False) -> None:
        """Keep what fast search reads in step with the table (``derived.refresh``)."""
        derived.refresh(self, force=force, strict=strict)

    def _export_text_tower(self) -> None:
        """Export the model's ONNX towers once (``derived.export_towers``)."""
        derived.export_towers(self)

    def build_vector_index(self, target: str | None = None, *, refresh: bool = True) -> dict[str, Any]:
        """Build an approximate-nearest-neighbour index on ``target``'s vector column (default:
        the column searches use), replacing any index there. Returns what was built."""
        with self.store.write_lock("index build"):
            return self._build_vector_index(target, refresh)

    def _build_vector_index(self, target: str | None, refresh: bool) -> dict[str, Any]:
        if self.meta is None:
            raise ConfigError("no index yet; run `mmembed ingest PATH` first")
        target = target or ("fused" if self.store.count_where("text_vector IS NOT NULL") else "image")
        if target not in TARGETS:
            raise ConfigError(f"target {target!r} is not one of {', '.join(TARGETS)}")
        built = self.store.build_vector_index(f"{target}_vector")
        if refresh:
            self.store.write_snapshot()  # the new index is a new table version
        return built

    def drop_vector_index(self) -> int:
        """Remove every vector index (searches become exact). Returns how many were dropped."""
        with self.store.write_lock("index drop"):
            dropped = self.store.drop_vector_indices() if self.meta is not None else 0
            if dropped:
                self.store.write_snapshot()
        return dropped

    def _text_encoder(self) -> Any:
        """The exported ONNX text tower when it matches this table's model, else None (torch)."""
        meta = self.meta
        if meta is None or not self._quick_ok():
            return None
        return self._quick.tower(meta.fingerprint)

    def _quick_ok(self) -> bool:
        """Whether snapshot search and the text tower may stand in for LanceDB and torch here."""
        from .retrieval.quick import usable

        c = self.config
        if not usable(c):
            return False
        if (c.model is not None or c.pretrained is not None) and self.meta is not None:
            _ = self.encoder  # checks the named model against the table; raises on a mismatch
        return True

    # ------------------------------------------------------------ search and inspection
    @takes(SearchOptions)
    def search(
        self,
        text: str | None = None,
        *,
        image: PathLike | bytes | None = None,
        options: SearchOptions | None = None,
        **kwargs: Any,
    ) -> list[Hit]:
        """Nearest items to a text and/or image query, best first.

        ``image`` is a path or an image file's bytes. ``target`` is 'image', 'text' or 'fused'
        (default: fused when the table has item text).
        ``where`` is a SQL filter on the metadata columns, e.g. ``"format = 'PNG'"``. See
        ``mmembed.retrieval.exact`` for how composite queries are scored. The keyword arguments
        are the fields of :class:`SearchOptions` (limit, where, target, image_weight, negatives,
        negative_weight, tags, min_score, cutoff, frames); or pass one as ``options``. A video
        is one hit at its best frame (``hit.frame_time``) unless ``frames=True``.
        """
        options = options_from(SearchOptions, options, kwargs)
        quick = self._quick_ok()
        if options.filter_sql() is None and quick:
            hits = self._quick.search(text, options, image=image, encoder=_LazyEncoder(self),
                                      max_megapixels=self.config.max_megapixels)
            if hits is not None:
                return hits
        meta = self.meta
        return run_search(
            self.store, _LazyVectorizer(self), text, image, options, max_megapixels=self.config.max_megapixels,
            text_encoder=self._text_encoder() if image is None else None,
            query_encoder=self._quick.image_encoder(asdict(meta)) if image is not None and quick and meta else None,
        )

    def items(self, ids: Sequence[str] | None = None, *, where: str | None = None) -> list[dict[str, Any]]:
        """Every row's metadata (or the rows with these ``ids``), without vectors: id, path, size,
        mtime_ns, content_hash, width, height, format, taken_ns (EXIF date taken, where read),
        text, texts, text_source, media (image or video), frame_time and duration (a video's rows:
        one per kept frame), raw_siblings (a JPEG's RAW files of the same shot), and manifest
        columns; ``where`` is a SQL filter as for
        ``search``. No model is loaded. [] before the first ingest.

        Example::

            folders = {os.path.dirname(item["path"]) for item in idx.items()}
        """
        if self.meta is None:
            return []
        wanted = [*_ITEM_COLUMNS, *self.store.extra_columns]
        columns = [c for c in wanted if c in self.store.table.schema.names]
        if ids is None:
            return self.store.read_columns(columns, where).to_pylist()
        ids = list(items(ids, "ids", ConfigError, (str,)))
        found = [row for row in self.store.rows_by_id(ids)]
        return [{c: row.get(c) for c in columns} for row in found]

    def duplicates(self, *, mode: str = "near", threshold: float | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   notes: Callable[[str], None] | None = None) -> list[Any]:
        """Groups of duplicate photos (``retrieval.dupes``): ``exact`` copies, ``near``-duplicates
        (the same photo re-encoded, resized, turned, cropped, bordered or edited; the default) or
        ``similar`` photos, each with a suggested keeper (most pixels, then oldest); videos are
        left out. The stored image vectors propose pairs; ``near`` decodes the photos of those
        pairs (small) to confirm them by local features. Changes nothing; ``notes`` hears of
        each file left out because it changed since it was indexed.

        Example::

            for group in idx.duplicates():
                print([(f.path, f.keep) for f in group.files])
        """
        from .retrieval.dupes import find_duplicates
        from .store.vectors import vector_matrix

        if self.meta is None:
            raise IndexEmptyError(f"the index in {self.config.db} (table '{self.config.table}') is empty; "
                                  "run `mmembed ingest PATH` first")
        rows = [row for row in self.items() if row.get("media") != "video"]  # frames of one video: not copies
        vectors = None
        if mode != "exact":
            data = self.store.read_columns(["id", "image_vector"])
            at = {row_id: i for i, row_id in enumerate(data.column("id").to_pylist())}
            matrix = vector_matrix(data.column("image_vector"))
            vectors = matrix[[at[row["id"]] for row in rows]] if rows else matrix
        return find_duplicates(rows, vectors, mode=mode, threshold=threshold,
                               max_megapixels=self.config.max_megapixels, progress=progress, notes=notes)

    def tag(self, labels: Sequence[str] | str | None = None, *, threshold: float | None = None) -> Any:
        """Zero-shot tags for every row from its stored image vector (``models.zeroshot``):
        ``labels`` (default: the built-in set of everyday photo concepts) each scored through
        CLIP's prompt templates; a photo keeps its best label and any other with a probability
        of at least ``threshold`` (default 0.1), in the ``tags``/``tag_scores`` columns, which
        are replaced. Only text is encoded. Returns a ``TagReport``.

        Example::

            idx.tag(["beach", "cat", "receipt"])
            idx.search("sunset", tags=["beach"])
        """
        from .ingest.table_tags import tag_table
        from .models.zeroshot import check_labels

        settings = check_labels(labels, threshold)
        with self.store.write_lock("tag"):
            if self.meta is None:
                raise IndexEmptyError(f"the index in {self.config.db} (table '{self.config.table}') is empty; "
                                      "run `mmembed ingest PATH` first")
            report = tag_table(self.store, self.encoder, settings)
            self._after_write()
        return report

    def embed_text(self, texts: str | Sequence[str]) -> np.ndarray:
        """float32 (N, D) unit vectors from this index's model; a single string is one text."""
        return self.encoder.encode_text(list(items(texts, "texts", ConfigError)))

    def embed_images(self, images: Any) -> np.ndarray:
        """float32 (N, D) unit vectors from this index's model, decoded as ingest decodes; a
        single path or image is one image."""
        single = isinstance(images, (str, os.PathLike)) or hasattr(images, "mode")  # a path or a PIL image
        return self.encoder.encode_images([images] if single else list(images), max_megapixels=self.config.max_megapixels)

    def info(self) -> IndexInfo:
        """Location, size, model and fusion of the index (no model is loaded)."""
        meta = self.meta
        if meta is None:
            return IndexInfo(self.config.db, self.config.table, 0, None, None, None, 0, None)
        return IndexInfo(
            db=self.config.db, table=self.config.table, rows=self.store.count(), model=meta.model,
            pretrained=meta.pretrained, dim=meta.dim, bytes=self.store.bytes_on_disk(),
            schema_version=meta.schema_version, fusion=meta.fusion,
            captioned=self.store.count_where("text_vector IS NOT NULL"),
        )


class _LazyVectorizer:
    """Defers building (and checking) the encoder until a query really needs a vector."""

    def __init__(self, index: Index) -> None:
        self._index = index

    @property
    def fusion_config(self) -> FusionConfig:
        return self._index.fusion

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index.vectorizer, name)


class _LazyEncoder:
    """The index's encoder, checked and built only if a query is really encoded with it."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        return self._index.encoder.encode_text(list(texts))


def _is_s3(path: PathLike) -> bool:
    return isinstance(path, str) and path.startswith("s3://")


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
