"""The Ray engine: the same ingest as ``pipeline.run_ingest``, as a Ray Data pipeline.

The driver plans with the local engine's ``IngestRun`` (walk, unchanged files settled against
the table, nothing read). The files to read become a dataset: read + hash + decode + preprocess
run as CPU tasks (``prepare.prepare_one``, the local engine's own function, so every per-file
error becomes a skipped file as it does locally), and encoding runs in an actor pool whose
actors each build the encoder once from the table's model spec, with a GPU each when the
cluster has GPUs. Results stream back to the driver, which hands them to the same
``IngestRun.consume`` as the local engine (the batch interface both engines drive: ``plan``,
``start``, ``consume``, ``finish``): item text, reuse of moved and copied files, fusion and
batched commits. Videos are read and encoded on the driver, as locally.

Write path: batched commits from the driver (``_Writer``: 256 rows or 10 s per commit), not
lance-ray. Measured (BENCHMARKS.md, 2026-12-02): the driver's handling and writing cost 0.08-0.15
ms per image (a 256-row commit 15-35 ms), 1-3 % of the wall time, so one writer keeps up with
~6,700-12,000 img/s, a few GPUs' worth; and a commit per batch is what makes a killed driver
safe to rerun (each batch atomic; a rerun sees the committed files as unchanged), while upserts,
copies of reused vectors and text vectors stay in the one place both engines share. Fragment
writes from the workers (lance-ray) are the step to take when the driver's busy fraction nears
1 (docs/scale-out.md).

On a cluster without GPUs both stages run in one CPU task per core, the encoder built once per
worker process (``_prepare_and_encode``: measured, an actor pool's start costs more than a
small run takes); with GPUs decode runs in CPU tasks and encode in one actor per GPU.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ..config import Config, mmembed_environment
from ..errors import ConfigError, MmembedError, ModelLoadError
from ..models.encoder import Encoder
from ..models.vectorizer import Vectorizer
from ..sources.discovery import DiscoveredFile
from ..sources.video import is_video_path
from ..store.failures import FailedFiles
from ..store.table import Store
from ..text.choose import TextOptions
from .options import IngestOptions
from .pipeline import IngestRun, run_ingest
from .prepare import ImageDecoder, Prepared, Row, Task, prepare_all, prepare_one
from .report import IngestProgress, IngestReport
from .unchanged import Walked, WalkDigest

__all__ = ["run_ingest_ray", "check_ray"]

logger = logging.getLogger(__name__)

NEEDS_RAY = "--engine ray needs Ray; install the extra: pip install 'mmembed[ray]'"
# Variables the workers need to find the same model files, caches and object store as the
# driver. Never credentials: those belong in the workers' own environment (docs/scale-out.md).
_PASSED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME",
               "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")


def run_ingest_ray(
    store: Store,
    vectorizer: Vectorizer,
    roots: Iterable[str | os.PathLike[str]],
    options: IngestOptions,
    config: Config,
    *,
    text_options: TextOptions | None = None,
    failed: FailedFiles | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    digest: WalkDigest | None = None,
    walked: Walked | None = None,
    address: str | None = None,
) -> IngestReport:
    """``run_ingest`` with reading, decoding and encoding on a Ray cluster.

    ``address`` connects to a running cluster (``ray://host:10001``, ``host:6379`` or
    ``auto``); None uses the cluster this process is already connected to, else starts a
    local one for the run. Stage timings are logged to ``mmembed.ingest.ray`` (DEBUG).
    """
    ray = _import_ray()
    started_here = _connect(ray, address, config)
    try:
        def engine(run: IngestRun, tasks: Sequence[Task], cfg: Config) -> None:
            _RayProcess(ray, run, cfg).run(tasks)

        return run_ingest(store, vectorizer, roots, options, config, text_options=text_options, failed=failed,
                          progress=progress, digest=digest, walked=walked, engine=engine)
    finally:
        if started_here:
            ray.shutdown()


def check_ray() -> None:
    """Raise ``ConfigError`` naming the extra when Ray is not installed (without importing it)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError(NEEDS_RAY)


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the extra installs both
    except ImportError:
        raise ConfigError(NEEDS_RAY) from None
    return ray


def _connect(ray: Any, address: str | None, config: Config) -> bool:
    """Connect (or start a local cluster); True when this call did, so the run shuts it down."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws its own bar; Ray's would mix into it
    for name in ("ray", "ray.data"):  # Ray's notices (and that its bars are off) would too
        logging.getLogger(name).setLevel(logging.ERROR)
    if ray.is_initialized() and address is None:
        return False
    env = {name: os.environ[name] for name in os.environ if name in _PASSED_ENV} | mmembed_environment()
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False,
                              "configure_logging": True, "logging_level": logging.ERROR}
    if address is None:  # a local cluster for this run: one CPU per decode worker
        kwargs.update(num_cpus=config.workers or os.cpu_count() or 1, include_dashboard=False)
    try:
        with warnings.catch_warnings():  # Ray forks only to exec its own processes: lancedb's state is not used
            warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)
            ray.init(address=address, **kwargs)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError, ...
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise ConfigError(f"could not connect to {where}: {str(exc).splitlines()[0][:200]}; "
                          "check --ray-address (e.g. ray://HEAD:10001, or HEAD:6379 from a node)") from None
    return True


class _RayProcess:
    """One run's Ray Data pipeline, feeding the driver's ``IngestRun``."""

    def __init__(self, ray: Any, run: IngestRun, config: Config) -> None:
        self.ray = ray
        self.run_ = run
        self.config = config
        self.stats: dict[str, Any] = {"prepare_s": 0.0, "encode_s": 0.0, "driver_s": 0.0, "write_s": 0.0, "wait_s": 0.0,
                                      "actors": {}, "images": 0}

    def run(self, tasks: Sequence[Task]) -> None:
        run, config = self.run_, self.config
        run.start(config.batch_size, fast_decode=config.decode == "fast")
        images = [t for t in tasks if not is_video_path(t.file.path)]
        videos = [t for t in tasks if is_video_path(t.file.path)]
        started = time.perf_counter()
        prepared_all = self._stream(images) if images else iter(())
        run.consume(_chain(prepared_all, self._videos(videos)), len(tasks), self.stats)
        tick = time.perf_counter()
        run.writer.flush()
        self.stats["write_s"] += time.perf_counter() - tick
        self.stats["wall_s"] = time.perf_counter() - started
        if images:
            logger.debug("ray ingest stages: %s", json.dumps(self.stats), extra={"stages": self.stats})

    def _videos(self, videos: list[Task]) -> Iterator[Prepared]:
        """Videos on the driver, as the local engine does them (frames in order, one at a time)."""
        run, config = self.run_, self.config
        assert run.decoder is not None
        return prepare_all(videos, run.reusable, run.decoder, config.max_megapixels,
                            config.workers, config.batch_size)

    def _stream(self, tasks: list[Task]) -> Iterator[Prepared]:
        """Each task read, decoded and encoded on the cluster, as a ``Prepared`` (vector set)."""
        ray, run, config = self.ray, self.run_, self.config
        encoder = run.encoder
        items = [{"i": i, "path": t.file.path, "size": t.file.size, "mtime_ns": t.file.mtime_ns,
                  "old_hash": t.existing.content_hash if t.existing else ""} for i, t in enumerate(tasks)]
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if not config.device.startswith(("cpu", "mps")) else 0
        pool = gpus or max(1, min(int(resources.get("CPU", 1)), config.workers or 1 << 30))
        self.stats.update(pool=pool, gpus=gpus)
        ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // config.batch_size // 2, 10_000)))
        prepare = {"reusable": run.reusable, "image_size": encoder.image_size,
                   "preprocess": encoder.preprocess, "max_megapixels": config.max_megapixels,
                   "fast": config.decode == "fast"}
        settings = _encoder_settings(encoder, config)
        if gpus:  # decode in CPU tasks; encode in one actor per GPU, each loading the model once
            ds = ds.map_batches(_prepare_batch, batch_size=config.batch_size, num_cpus=1, fn_kwargs=prepare)
            ds = ds.map_batches(_Encode, batch_size=config.batch_size, compute=ray.data.ActorPoolStrategy(size=gpus),
                                fn_constructor_kwargs={"settings": settings}, num_gpus=1, num_cpus=1)
        else:  # CPUs only: see _prepare_and_encode
            ds = ds.map_batches(_prepare_and_encode, batch_size=_TASK_BATCHES * config.batch_size, num_cpus=1, fn_kwargs={"prepare": prepare, "settings": settings})
        started = time.perf_counter()
        seen = bytearray(len(tasks))  # a block delivered twice (a retried task) is written once
        batches = iter(ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1))
        while True:
            tick = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - a RayTaskError wrapping ours: raise ours
                raise _unwrap(exc) from None
            finally:
                self.stats["wait_s"] += time.perf_counter() - tick
                self.stats.setdefault("first_result_s", time.perf_counter() - started)
            yield from self._unpack(batch, tasks, seen)

    def _unpack(self, batch: dict[str, Any], tasks: list[Task], seen: bytearray) -> Iterator[Prepared]:
        stats = self.stats
        stats["prepare_s"] += float(np.sum(batch["t_prepare"]))
        stats["encode_s"] += float(np.sum(batch["t_encode"]))
        for i, meta_json, vector, t_encode, actor in zip(batch["i"], batch["meta"], batch["vector"],
                                                        batch["t_encode"], batch["actor"]):
            if seen[int(i)]:
                continue
            seen[int(i)] = 1
            meta = json.loads(meta_json)
            prepared = Prepared(tasks[int(i)], meta["kind"], meta["hash"], None, meta["width"], meta["height"],
                                 meta["format"], meta["embedded"], meta["reason"], meta["taken_ns"],
                                 where=meta.get("where"))
            if meta["kind"] == "encode":
                prepared.vector = np.frombuffer(vector, dtype=np.float32)
                per = stats["actors"].setdefault(str(actor), [0, 0.0])
                per[0] += 1
                per[1] += float(t_encode)
                stats["images"] += 1
            yield prepared


def _chain(*streams: Iterator[Prepared]) -> Iterator[Prepared]:
    for stream in streams:
        yield from stream


def _unwrap(exc: Exception) -> Exception:
    """The mmembed error inside a Ray task error (e.g. the model failed to load on a worker)."""
    cause = getattr(exc, "cause", None) or exc.__cause__
    if isinstance(cause, MmembedError):
        return cause
    if isinstance(exc, MmembedError):
        return exc
    return ModelLoadError(f"the Ray pipeline failed: {str(exc).strip().splitlines()[-1][:300]}")


def _encoder_settings(encoder: Encoder, config: Config) -> dict[str, Any]:
    """What an actor needs to build the same encoder: the spec (with its fingerprint) and the
    requested device, precision and runtime; never the loaded model."""
    return {"model": encoder.spec, "device": getattr(encoder, "_device_request", config.device),
            "precision": getattr(encoder, "_precision_request", config.precision),
            "runtime": encoder.runtime, "batch_size": encoder.batch_size}


class _DecodeModel:
    """What ``ImageDecoder`` needs of an encoder, without the model: input size and preprocessing."""

    def __init__(self, image_size: int, preprocess: Any) -> None:
        self.image_size = image_size
        self.preprocess = preprocess


def _prepare_batch(batch: dict[str, Any], *, reusable: frozenset[str], image_size: int, preprocess: Any,
                   max_megapixels: float, fast: bool) -> dict[str, Any]:
    """CPU stage: read, hash, decode and preprocess each file of the batch (``prepare.prepare_one``)."""
    started = time.perf_counter()
    decode = ImageDecoder(_DecodeModel(image_size, preprocess), fast=fast)
    metas, tensors = [], []
    for path, size, mtime_ns, old_hash in zip(batch["path"], batch["size"], batch["mtime_ns"], batch["old_hash"]):
        existing = Row("", str(path), int(size), int(mtime_ns), str(old_hash), None, None, None) if old_hash else None
        p = prepare_one(Task(DiscoveredFile(str(path), int(size), int(mtime_ns)), existing), reusable, decode,
                     max_megapixels)
        tensor = np.ascontiguousarray(np.asarray(p.tensor, dtype=np.float32)) if p.kind == "encode" else None
        metas.append(json.dumps({"kind": p.kind, "hash": p.content_hash, "width": p.width, "height": p.height,
                                 "format": p.format, "embedded": list(p.embedded), "reason": p.reason,
                                 "taken_ns": p.taken_ns, "where": p.where, "shape": list(tensor.shape) if tensor is not None else None}))
        tensors.append(tensor.tobytes() if tensor is not None else b"")
    seconds = (time.perf_counter() - started) / max(1, len(metas))
    return {"i": batch["i"], "meta": np.array(metas, dtype=object), "tensor": np.array(tensors, dtype=object),
            "t_prepare": np.full(len(metas), seconds)}


_TASK_BATCHES = 4  # encode batches per CPU task: Ray's per-task cost was a third of a 32-image task here
_ENCODERS: dict[str, _Encode] = {}  # per worker process: the encoder built by its first task


def _prepare_and_encode(batch: dict[str, Any], *, prepare: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Both stages in one CPU task, the encoder built once per worker process and kept.

    Measured on 2 cores (BENCHMARKS.md, 2026-12-02): a Ray Data actor pool starts new worker
    processes for each run (3.5-5.5 s here before the first batch, a large share of a
    1,000-image run), while tasks run on the cluster's already started workers; fusing decode
    and encode into one task per core also keeps every core busy whatever their cost ratio,
    and no tensor crosses the object store. On GPUs the stages stay apart (actors above).
    """
    key = repr(sorted(settings.items()))
    if key not in _ENCODERS:
        _ENCODERS.clear()
        _ENCODERS[key] = _Encode(settings)
    return _ENCODERS[key](_prepare_batch(batch, **prepare))


class _Encode:
    """Encode stage: one encoder per actor (or worker process), built once; each call encodes
    one batch (truly batched)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.encoder = Encoder(**settings).load()
        self.name = f"{os.uname().nodename}:{os.getpid()}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        n = len(batch["i"])
        rows = [k for k in range(n) if batch["tensor"][k]]
        vectors: list[bytes] = [b""] * n
        if rows:
            shape = json.loads(batch["meta"][rows[0]])["shape"]
            pixels = np.stack([np.frombuffer(batch["tensor"][k], dtype=np.float32).reshape(shape) for k in rows])
            if not self.encoder.on_onnx:
                import torch

                pixels = torch.from_numpy(pixels)
            step = self.encoder.batch_size
            for start in range(0, len(rows), step):
                for k, vector in zip(rows[start:start + step], self.encoder.encode_pixels(pixels[start:start + step])):
                    vectors[k] = np.asarray(vector, dtype=np.float32).tobytes()
        seconds = (time.perf_counter() - started) / max(1, len(rows))
        return {"i": batch["i"], "meta": batch["meta"], "vector": np.array(vectors, dtype=object),
                "t_prepare": batch["t_prepare"], "t_encode": np.array([seconds if v else 0.0 for v in vectors]),
                "actor": np.array([self.name] * n, dtype=object)}
