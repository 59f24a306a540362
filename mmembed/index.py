"""``Index``: the facade users hold, a thin door. Each method hands its job to the room that
owns it: ``ingest.entry`` (ingest), ``retrieval.searcher`` (search), ``store.derived``
(snapshot, towers, ANN index), ``store.tablemodel`` (the table's model), ``doctor``.

Building an ``Index`` opens nothing: the table (lancedb) and the model (torch) are opened
when a method first needs them, so a search the snapshot answers loads neither.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ._options import items, options_from, takes
from .config import Config
from .errors import ConfigError, IndexEmptyError
from .ingest.options import IngestOptions
from .retrieval.query import Hit, SearchOptions

if TYPE_CHECKING:
    import numpy as np

    from .ingest.report import IngestProgress, IngestReport
    from .models.encoder import Encoder
    from .models.fusion import FusionConfig
    from .models.vectorizer import Vectorizer
    from .store.derived import Derived
    from .store.table import Store, TableMeta
    from .store.tablemodel import TableModel

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
    ``model``/``pretrained`` default to what the table records. ``one_query``: this Index
    answers one query (a CLI run), so the text tower is loaded for one query (faster to load).
    """

    def __init__(self, db: PathLike | None = None, *, table: str | None = None, model: str | None = None,
                 pretrained: str | None = None, device: str | None = None, batch_size: int | None = None,
                 workers: int | None = None, max_megapixels: float | None = None, precision: str | None = None,
                 decode: str | None = None, config: Config | None = None, one_query: bool = False) -> None:
        if config is None:
            config = Config.resolve(
                db=os.fspath(db) if db is not None else None, table=table, model=model,
                pretrained=pretrained, device=device, batch_size=batch_size, workers=workers,
                max_megapixels=max_megapixels, precision=precision, decode=decode,
            )
        if config.is_local:
            config = replace(config, db=os.path.abspath(os.path.expanduser(config.db.removeprefix("file://"))))
        self.config = config
        self._one_query = one_query
        self._searcher = self._new_searcher()

    def __repr__(self) -> str:
        return f"Index(db={self.config.db!r}, table={self.config.table!r})"

    # ------------------------------------------------------------ collaborators, made on first use
    @cached_property
    def store(self) -> Store:
        """The LanceDB table (``store.table.Store``)."""
        from .store.table import Store

        return Store(self.config.db, self.config.table)

    @cached_property
    def _model(self) -> TableModel:
        from .store.tablemodel import TableModel

        return TableModel(self.store, self.config)

    @cached_property
    def _derived(self) -> Derived:
        from .store.derived import Derived

        c = self.config
        return Derived(self.store, lambda: self._model.encoder, ann_rows=c.ann_rows, precision=c.precision,
                       device=c.device)

    def _new_searcher(self) -> Any:
        from .retrieval.searcher import Searcher

        return Searcher(self.config, store=lambda: self.store, encoder=lambda: self._model.encoder,
                        vectorizer=lambda: self._model.vectorizer, one_query=self._one_query)

    @property
    def meta(self) -> TableMeta | None:
        """What built the table, or None before the first ingest."""
        return self.store.meta()

    @property
    def encoder(self) -> Encoder:
        """The encoder for this table: the recorded model, or the configured one for a new table."""
        return self._model.encoder

    @property
    def fusion(self) -> FusionConfig:
        """The table's fusion settings (defaults before the first ingest)."""
        return self._model.fusion

    @property
    def vectorizer(self) -> Vectorizer:
        return self._model.vectorizer

    # ------------------------------------------------------------ writing
    @takes(IngestOptions)
    def ingest(self, paths: PathLike | Sequence[PathLike], *, options: IngestOptions | None = None,
               progress: Callable[[IngestProgress], None] | None = None, **kwargs: Any) -> IngestReport:
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
        from .ingest.entry import ingest_paths

        options = options_from(IngestOptions, options, kwargs)
        return ingest_paths(self._model, self._derived, self.config, paths, options, progress)

    @takes(IngestOptions)
    def watch(self, paths: PathLike | Sequence[PathLike], *, debounce: float = 1.0, settle: float = 0.5,
              max_wait: float = 30.0, poll: float = 2.0, on_event: Callable[[Any], None] | None = None,
              stop: Any = None, options: IngestOptions | None = None, **kwargs: Any) -> None:
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
        from .ingest.watch import WatchOptions, watch_paths

        options = options_from(IngestOptions, options, kwargs)
        timing = WatchOptions(debounce=debounce, settle=settle, max_wait=max_wait, poll=poll)
        ignore = [os.path.realpath(self.config.db)] if self.config.is_local else []
        watch_paths(paths, lambda present, progress: self.ingest(present, options=options, progress=progress),
                    options, timing, on_event=on_event, stop=stop, ignore=ignore)

    def apply_fusion(self, *, strategy: str | None = None, weight: float | None = None,
                     text_aggregate: str | None = None,
                     progress: Callable[[IngestProgress], None] | None = None) -> int:
        """Recompute every row's fused vector (and text vector, if the aggregation changed)
        from stored vectors, without decoding any image. Returns the number of rows."""
        from .ingest.table_fusion import apply_fusion

        with self.store.write_lock("fusion apply"):
            return apply_fusion(self._model, self._derived, strategy=strategy, weight=weight,
                                text_aggregate=text_aggregate, progress=progress)

    def train_fusion(self, *, epochs: int | None = None, seed: int = 0, apply: bool = True,
                     progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
        """Train attention fusion on this table's items that have two or more texts, store the
        weights in the database, and (by default) switch the table to attention fusion.
        ``epochs`` defaults to ``mmembed.fusion.TRAIN_EPOCHS``."""
        from .ingest.table_fusion import train_on_table
        from .store.tablemodel import ATTENTION_BLOB

        with self.store.write_lock("fusion train"):
            info = train_on_table(self.store, self.encoder, self.fusion, epochs=epochs, seed=seed, progress=progress)
            self.store.save_blob(ATTENTION_BLOB, info.pop("blob"), {"id": info["id"], **info})
            if apply:
                info["rows"] = self.apply_fusion(strategy="attention")
        return info

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
            report = tag_table(self._nonempty(), self.encoder, settings)
            self._derived.refresh()
        return report

    # ------------------------------------------------------------ derived data and health
    def doctor(self, *, repair: bool = False) -> list[Any]:
        """Check the table and its derived data; mend the derived data and leftovers, and with
        ``repair`` bring a damaged table back to its last good version. Returns the findings
        (``mmembed.doctor.Finding``: check, status 'ok'/'repaired'/'problem', detail)."""
        from .doctor import run_doctor

        with self.store.write_lock("doctor"):
            found = run_doctor(self.store, self._derived, self.config, finish_fusion=self.apply_fusion, repair=repair)
        self._searcher = self._new_searcher()  # towers written again are loaded again
        return found

    def refresh(self) -> None:
        """Bring what fast search reads up to date with the table: the ANN index (once the table
        has ``ann_rows`` rows), the snapshot and the exported text tower. Ingest and fusion apply
        do this themselves; call it after writing to the table some other way."""
        with self.store.write_lock("refresh"):
            if self.meta is None:
                raise ConfigError("no index yet; run `mmembed ingest PATH` first")
            self._derived.refresh(strict=True)

    def build_vector_index(self, target: str | None = None, *, refresh: bool = True) -> dict[str, Any]:
        """Build an approximate-nearest-neighbour index on ``target``'s vector column (default:
        the column searches use), replacing any index there. Returns what was built."""
        with self.store.write_lock("index build"):
            return self._derived.build_vector_index(target, refresh=refresh)

    def drop_vector_index(self) -> int:
        """Remove every vector index (searches become exact). Returns how many were dropped."""
        with self.store.write_lock("index drop"):
            return self._derived.drop_vector_index()

    # ------------------------------------------------------------ reading
    @takes(SearchOptions)
    def search(self, text: str | None = None, *, image: PathLike | bytes | None = None,
               options: SearchOptions | None = None, **kwargs: Any) -> list[Hit]:
        """Nearest items to a text and/or image query, best first.

        ``image`` is a path or an image file's bytes. ``target`` is 'image', 'text' or 'fused'
        (default: fused when the table has item text).
        ``where`` is a SQL filter on the metadata columns, e.g. ``"format = 'PNG'"``. See
        ``mmembed.retrieval.exact`` for how composite queries are scored. The keyword arguments
        are the fields of :class:`SearchOptions` (limit, where, target, image_weight, negatives,
        negative_weight, tags, min_score, cutoff, frames); or pass one as ``options``. A video
        is one hit at its best frame (``hit.frame_time``) unless ``frames=True``.
        """
        return self._searcher.search(text, image, options_from(SearchOptions, options, kwargs))

    def items(self, ids: Sequence[str] | None = None, *, where: str | None = None) -> list[dict[str, Any]]:
        """Every row's metadata (or the rows with these ``ids``), without vectors: id, path, size,
        mtime_ns, content_hash, width, height, format, taken_ns (EXIF date taken, where read),
        text, texts, text_source, media (image or video), frame_time and duration (a video's rows:
        one per kept frame), raw_siblings (a JPEG's RAW files of the same shot), and manifest
        columns; ``where`` is a SQL filter as for ``search``. No model is loaded. [] before
        the first ingest.

        Example::

            folders = {os.path.dirname(item["path"]) for item in idx.items()}
        """
        from .store.items import read_items

        return read_items(self.store, ids, where)

    def duplicates(self, *, mode: str = "near", threshold: float | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[Any]:
        """Groups of duplicate photos (``retrieval.dupes``): ``exact`` copies, ``near``-duplicates
        (the same photo re-encoded, resized, rotated, lightly cropped or edited; the default) or
        ``similar`` photos, each with a suggested keeper (most pixels, then oldest); videos are
        left out. Reads the stored image vectors; decodes no image, changes nothing.

        Example::

            for group in idx.duplicates():
                print([(f.path, f.keep) for f in group.files])
        """
        from .retrieval.dupes import find_duplicates
        from .store.items import image_vectors, read_items

        store = self._nonempty()
        rows = [row for row in read_items(store) if row.get("media") != "video"]  # frames of one video: not copies
        vectors = image_vectors(store, rows) if mode != "exact" else None
        return find_duplicates(rows, vectors, mode=mode, threshold=threshold,
                               max_megapixels=self.config.max_megapixels, progress=progress)

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
        meta, c = self.meta, self.config
        if meta is None:
            return IndexInfo(c.db, c.table, 0, None, None, None, 0, None)
        return IndexInfo(db=c.db, table=c.table, rows=self.store.count(), model=meta.model,
                         pretrained=meta.pretrained, dim=meta.dim, bytes=self.store.bytes_on_disk(),
                         schema_version=meta.schema_version, fusion=meta.fusion,
                         captioned=self.store.count_where("text_vector IS NOT NULL"))

    def _nonempty(self) -> Store:
        if self.meta is None:
            raise IndexEmptyError(f"the index in {self.config.db} (table '{self.config.table}') is empty; "
                                  "run `mmembed ingest PATH` first")
        return self.store
