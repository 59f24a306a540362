"""``Index``: the facade users hold, a thin door. Each method hands its job to the room that owns
it (ARCHITECTURE.md). Building one opens nothing: the table (lancedb) and the model (torch) are
opened when first needed, so a search the snapshot answers loads neither."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ._options import items, options_from, takes
from .config import Config
from .errors import ConfigError, IndexEmptyError
from .ingest.options import IngestOptions
from .retrieval.query import Hit, SearchOptions
from .store.info import IndexInfo

if TYPE_CHECKING:
    import numpy as np

    from .ingest.report import IngestProgress, IngestReport
    from .models.encoder import Encoder
    from .models.fusion import FusionConfig
    from .models.vectorizer import Vectorizer
    from .retrieval.searcher import Searcher
    from .store.derived import Derived
    from .store.table import Store, TableMeta
    from .store.tablemodel import TableModel

__all__ = ["Index", "IndexInfo"]

PathLike = str | os.PathLike[str]


class Index:
    """A searchable image index in one LanceDB table.

    Example::

        idx = Index(db="./photos.lancedb", model="local-dir:./micro-clip")
        idx.ingest("./photos", captions=["captions.csv"])
        for hit in idx.search("a dog on grass", limit=5):
            print(hit.score, hit.path, hit.text)

    Arguments left as None come from ``MMEMBED_*`` environment variables, then defaults; ``model``/``pretrained``
    default to what the table records. ``one_query``: one query is asked (a CLI run): load for it.
    """

    def __init__(self, db: PathLike | None = None, *, table: str | None = None, model: str | None = None,
                 pretrained: str | None = None, device: str | None = None, batch_size: int | None = None,
                 workers: int | None = None, max_megapixels: float | None = None, precision: str | None = None,
                 decode: str | None = None, config: Config | None = None, one_query: bool = False) -> None:
        self.config = (config or Config.resolve(
            db=os.fspath(db) if db is not None else None, table=table, model=model, pretrained=pretrained,
            device=device, batch_size=batch_size, workers=workers, max_megapixels=max_megapixels,
            precision=precision, decode=decode)).absolute()
        self._one_query = one_query

    def __repr__(self) -> str:
        return f"Index(db={self.config.db!r}, table={self.config.table!r})"

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

        return Derived(self.store, lambda: self._model.encoder, self.config)

    @cached_property
    def _searcher(self) -> Searcher:
        from .retrieval.searcher import Searcher

        return Searcher(self.config, store=lambda: self.store, encoder=lambda: self._model.encoder,
                        vectorizer=lambda: self._model.vectorizer, one_query=self._one_query)

    @cached_property
    def _places(self) -> Any:
        """The table's places with counts, per table version (``retrieval.located.PlacesCache``)."""
        from .retrieval.located import PlacesCache

        return PlacesCache(self.config.db, self.config.table, lambda: self.store)

    def places(self) -> list[dict[str, Any]]:
        """The places of the table's photos, most photos first: place_id, place_city, place_region,
        place_country, place_country_code, place_names, count (and one photo's lat, lon)."""
        return list(self._places.entries()) if self.meta is not None else []

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

    @takes(IngestOptions)
    def ingest(self, paths: PathLike | Sequence[PathLike], *, options: IngestOptions | None = None,
               progress: Callable[[IngestProgress], None] | None = None, **kwargs: Any) -> IngestReport:
        """Index the images under ``paths``; unchanged files are skipped without being read, bad
        ones listed in ``report.skipped``. The keyword arguments are the fields of
        :class:`IngestOptions` (each explained there: captions, text sources, fusion, reindex,
        engine...); or pass one as ``options``. See ``ingest.entry.ingest_paths``. Example:
        ``Index("photos.lancedb").ingest("~/Pictures", engine="ray", ray_address="ray://head:10001")``."""
        from .ingest.entry import ingest_paths

        options = options_from(IngestOptions, options, kwargs)
        return ingest_paths(self._model, self._derived, self.config, paths, options, progress)

    @takes(IngestOptions)
    def watch(self, paths: PathLike | Sequence[PathLike], *, debounce: float = 1.0, settle: float = 0.5,
              max_wait: float = 30.0, poll: float = 2.0, on_event: Callable[[Any], None] | None = None,
              stop: Any = None, options: IngestOptions | None = None, **kwargs: Any) -> None:
        """Keep the table in step with ``paths`` until ``stop`` (a ``threading.Event``) is set: one
        ingest now, then one per burst of changes, ``debounce`` seconds after the last (see
        ``ingest.watch``); each step is a ``WatchEvent`` for ``on_event``. Needs watchdog
        (``pip install 'mmembed[watch]'``). Keyword arguments: :class:`IngestOptions`, as for ``ingest``.
        Example: ``idx.watch("./photos", on_event=lambda e: print(e.to_dict()), stop=threading.Event())``."""
        from .ingest.watch import WatchOptions, watch_paths

        options = options_from(IngestOptions, options, kwargs)
        timing = WatchOptions(debounce=debounce, settle=settle, max_wait=max_wait, poll=poll)
        ignore = [os.path.realpath(self.config.db)] if self.config.is_local else []
        watch_paths(paths, lambda present, progress: self.ingest(present, options=options, progress=progress),
                    options, timing, on_event=on_event, stop=stop, ignore=ignore)

    def apply_fusion(self, *, strategy: str | None = None, weight: float | None = None, text_aggregate: str | None = None,
                     progress: Callable[[IngestProgress], None] | None = None) -> int:
        """Recompute every row's fused vector (and text vector, if the aggregation changed) from
        stored vectors, without decoding any image. Returns the number of rows."""
        from .ingest.table_fusion import apply_fusion

        with self.store.write_lock("fusion apply"):
            return apply_fusion(self._model, self._derived, strategy=strategy, weight=weight,
                                text_aggregate=text_aggregate, progress=progress)

    def train_fusion(self, *, epochs: int | None = None, seed: int = 0, apply: bool = True,
                     progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
        """Train attention fusion on the items with two or more texts, store the weights and (``apply``)
        switch the table to it; ``epochs`` defaults to ``mmembed.fusion.TRAIN_EPOCHS``."""
        from .ingest.table_fusion import train_fusion

        with self.store.write_lock("fusion train"):
            return train_fusion(self._model, self._derived, epochs=epochs, seed=seed, apply=apply, progress=progress)

    def tag(self, labels: Sequence[str] | str | None = None, *, threshold: float | None = None) -> Any:
        """Zero-shot tags for every row from its stored image vector (``models.zeroshot``): each
        photo keeps its best label of ``labels`` (default: the built-in set) and any other with a
        probability of at least ``threshold`` (default 0.1), in the ``tags``/``tag_scores``
        columns, which are replaced. Only text is encoded. Returns a ``TagReport``. Example:
        ``idx.tag(["beach", "cat"])`` then ``idx.search("sunset", tags=["beach"])``."""
        from .ingest.table_tags import tag_all
        from .models.zeroshot import check_labels

        settings = check_labels(labels, threshold)
        with self.store.write_lock("tag"):
            return tag_all(self._nonempty(), self.encoder, self._derived, settings)

    def ocr(self, *, redo: bool = False, progress: Callable[[int, int], None] | None = None) -> Any:
        """Read the text in the pictures of rows not read yet, or read by an older engine (``redo``:
        every picture), without re-encoding any image (``ingest.ocr_pass``): ``ocr_text``,
        ``ocr_lines`` and ``words`` are written. Resumable; needs ``pip install 'mmembed[ocr]'``.
        Returns an ``OcrReport``. Example: ``idx.ocr().with_text``."""
        from .ingest.ocr_pass import ocr_table, require_ocr
        from .models.ocr import shared_reader

        require_ocr()
        with self.store.write_lock("ocr"):
            report = ocr_table(self._nonempty(), shared_reader(), redo=redo,
                               max_megapixels=self.config.max_megapixels, progress=progress)
            if report.read:
                self._derived.refresh(force=True)
        return report

    def doctor(self, *, repair: bool = False) -> list[Any]:
        """Check the table and its derived data and mend them (with ``repair``, a damaged table
        too); returns ``mmembed.doctor.Finding``s (check, status, detail)."""
        from .doctor import run_doctor

        with self.store.write_lock("doctor"):
            found = run_doctor(self.store, self._derived, self.config, finish_fusion=self.apply_fusion, repair=repair)
        self.__dict__.pop("_searcher", None)  # towers written again are loaded again
        return found

    def refresh(self) -> None:
        """Bring what fast search reads (ANN index, snapshot, towers) up to date with the table;
        for writes made some other way than through this Index."""
        with self.store.write_lock("refresh"):
            if self.meta is not None:
                from .ingest.where import backfill

                backfill(self.store)  # a table indexed before place names gains them (headers only)
            self._derived.refresh(strict=True, table_needed=True)

    def build_vector_index(self, target: str | None = None, *, refresh: bool = True) -> dict[str, Any]:
        """Build an approximate-nearest-neighbour index on ``target``'s vector column (default:
        the column searches use), replacing any index there. Returns what was built."""
        with self.store.write_lock("index build"):
            return self._derived.build_vector_index(target, refresh=refresh)

    def drop_vector_index(self) -> int:
        """Remove every vector index (searches become exact). Returns how many were dropped."""
        with self.store.write_lock("index drop"):
            return self._derived.drop_vector_index()

    @takes(SearchOptions)
    def search(self, text: str | None = None, *, image: PathLike | bytes | None = None,
               options: SearchOptions | None = None, **kwargs: Any) -> list[Hit]:
        """Nearest items to a text and/or image query (a path or an image file's bytes), best
        first. The keyword arguments are the fields of :class:`SearchOptions` (limit, where,
        target, image_weight, negatives, tags, min_score, cutoff, frames...); or pass one as
        ``options``. Scoring: ``retrieval.exact``; which path answers: ``retrieval.searcher``.
        Place and time words become filters ("a dog in Kyoto in December 2021"; ``literal=True``
        turns that off); ``near``/``radius_km``, ``taken_after``/``taken_before`` and ``sort="date"``
        filter and order explicitly (``retrieval.located``). The list's ``located`` says what was
        understood (``located.notes``, ``located.as_dict()``), its ``notes`` that and more: a query
        longer than the text model reads, why nothing matched.
        Example: ``idx.search("red car", where="format = 'PNG'", limit=5)``."""
        from .retrieval.located import run_located

        options = options_from(SearchOptions, options, kwargs)
        hits = run_located(text, image, options, search=self._searcher.search, store=lambda: self.store,
                           places=self._places)
        hits.more_notes = lambda: self._search_notes(text, options, hits)
        return hits

    def _search_notes(self, text: str | None, options: SearchOptions, hits: Any) -> list[str]:
        """``SearchHits.notes`` after the box's: query terms longer than the table's text model
        reads (``text_tower.cut_term_notes``), then why nothing matched."""
        from .models.text_tower import clip_context_length, cut_term_notes
        from .store.snapshot import table_context_length
        from .retrieval.query import parse_terms, why_nothing

        notes = []
        terms = [t for part in parse_terms(text) for t in part] + list(options.negatives)
        if any(len(t.encode("utf-8")) > 14 for t in terms):  # no text tower reads fewer than 16 tokens
            context = table_context_length(self.config.db, self.config.table) if self.config.is_local else None
            if context is None and self.meta is not None:
                context = clip_context_length(self.meta.fingerprint)
            notes += cut_term_notes(terms, context)
        if not hits:
            located = hits.located is not None and (hits.located.parsed is not None or hits.located.near is not None
                                                     or options.taken_after is not None or options.taken_before is not None)
            filters = [f"tags={list(options.tags)}"] if options.tags else []
            filters += [f"where={options.where!r}"] if options.where else []
            filters += ["the place and time filters noted"] if located else []
            notes.append(why_nothing(filters, min_score=options.min_score, mode=options.mode, cutoff=options.cutoff,
                                     tags=bool(options.tags), name=lambda name: name))
        return notes

    def items(self, ids: Sequence[str] | None = None, *, where: str | None = None) -> list[dict[str, Any]]:
        """Every row's metadata (or the rows with these ``ids``), without vectors: the columns of
        ``store.items.ITEM_COLUMNS`` (path, size, taken_ns, text, media, frame_time, raw_siblings,
        gps_lat/gps_lon and place_city/place_country where known...), manifest columns and ``ocr_text``; ``where`` is a SQL filter as for ``search``. [] before the first ingest.
        Example: ``folders = {os.path.dirname(item["path"]) for item in idx.items()}``."""
        from .store.items import read_items

        return read_items(self.store, ids, where)

    def duplicates(self, *, mode: str = "near", threshold: float | None = None,
                   progress: Callable[[int, int], None] | None = None, notes: Callable[[str], None] | None = None) -> list[Any]:
        """Groups of duplicate photos (``retrieval.dupes``): ``exact`` copies, ``near``-duplicates (re-encoded,
        resized, turned, cropped, bordered or edited; the default) or ``similar`` photos, each with a suggested
        keeper; no videos. The stored vectors propose pairs, ``near`` decodes them (small) to confirm. Changes
        nothing; ``notes`` hears of each file left out because it changed since it was indexed."""
        import numpy as np

        from .retrieval.dupes import ANN_ROWS, cut_of, find_duplicates, nearest_photos
        from .store.items import photos_and_vectors

        cut_of(mode, threshold)  # a bad mode or threshold is said before the table is read
        store = self._nonempty()
        # near, on a large table: float16 vectors (half the memory; the candidate stage works in float32 blocks)
        compact = mode == "near" and store.count() >= ANN_ROWS
        rows, vectors = photos_and_vectors(store, vectors=mode != "exact", dtype=np.float16 if compact else np.float32)
        nearest = None
        if mode == "near" and vectors is not None:
            # the vector stage first, then the vectors go: the pairs and their checks need none
            # (at a million rows that is 1 GB less while the pairs are made)
            nearest = nearest_photos(vectors, threshold=threshold, progress=progress)
            vectors = None
        return find_duplicates(rows, vectors, mode=mode, threshold=threshold, max_megapixels=self.config.max_megapixels,
                               progress=progress, notes=notes, nearest=nearest)

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
        from .store.info import table_info

        return table_info(self.store, self.config.db, self.config.table)

    def _nonempty(self) -> Store:
        if self.meta is None:
            raise IndexEmptyError(f"the index in {self.config.db} (table '{self.config.table}') is empty; "
                                  "run `mmembed ingest PATH` first")
        return self.store
