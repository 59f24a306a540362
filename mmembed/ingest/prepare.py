"""Reading, hashing, decoding and preprocessing files in a thread pool, in order, with a
bounded window of work in flight (decoded images never pile up)."""

from __future__ import annotations

import hashlib
import os
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import ImageDecodeError, MmembedError
from ..models.preprocess import NumpyTransform, transform_params
from ..sources.decode import load_image
from ..sources.discovery import DiscoveredFile
from ..sources.files import NotRegularFileError, open_regular, unlinked
from ..sources.video import is_video_path
from .where import PlaceLookup

__all__ = ["ImageDecoder", "Prepared", "Row", "Task", "TaskList", "fast_transform", "prepare_all", "prepare_one"]

_READ_CHUNK = 1 << 20
_READ_WHOLE = 64 << 20  # files up to this size are read once, hashed and decoded from memory


@dataclass(slots=True)  # one per row of the table, for the whole ingest
class Row:
    """The state columns of an existing row."""

    id: str
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    text_hash: str | None
    embedded_texts: list[str] | None
    manifest_texts: list[str] | None
    raw_siblings: list[str] | None = None
    etag: str | None = None  # the object's ETag when written (object storage); None for files and older rows


@dataclass(slots=True)  # one per file planned: 100k of them held a walk's worth of dicts
class Task:
    file: DiscoveredFile
    existing: Row | None  # the row at this path, when the file changed


class TaskList(Sequence[Task]):
    """The files a plan found to read, in order, held as one blob of paths and arrays of numbers
    rather than as five Python objects a file. Held as objects, 100k planned files left ~29 MB of
    half-empty pymalloc arenas behind them once they were read (the ingest's peak grew with the
    folder; BENCHMARKS.md, issue 27); these buffers go back whole. Each ``Task`` is made when it
    is read; ``drain`` reads them in order and empties the list."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._blob = bytearray()  # the paths, UTF-8 (surrogatepass: any str comes back the same)
        self._ends = array("q")
        self._sizes = array("q")
        self._mtimes = array("q")
        self._root_at = array("l")
        self._roots: list[str] = []
        self._rare: dict[int, tuple[tuple[str, ...], tuple[str, ...], str | None, Row | None]] = {}

    def append(self, task: Task) -> None:
        file = task.file
        i = len(self._ends)
        self._blob += file.path.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._blob))
        self._sizes.append(file.size)
        self._mtimes.append(file.mtime_ns)
        if not self._roots or self._roots[-1] != file.root:
            self._roots.append(file.root)  # a walk finds its roots' files one root after another
        self._root_at.append(len(self._roots) - 1)
        if file.sidecars or file.raw_siblings or file.etag is not None or task.existing is not None:
            self._rare[i] = (file.sidecars, file.raw_siblings, file.etag, task.existing)

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> Task:  # type: ignore[override]
        if not isinstance(i, int):
            raise TypeError("TaskList takes one index")
        n = len(self._ends)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        start = self._ends[i - 1] if i else 0
        sidecars, siblings, etag, existing = self._rare.get(i, ((), (), None, None))
        file = DiscoveredFile(self._blob[start:self._ends[i]].decode("utf-8", "surrogatepass"), self._sizes[i],
                              self._mtimes[i], self._roots[self._root_at[i]], sidecars, siblings, etag)
        return Task(file, existing)

    def __iter__(self) -> Iterator[Task]:
        return (self[i] for i in range(len(self)))

    def drain(self) -> Iterator[Task]:
        """Every task in order, then the list is empty (its buffers freed)."""
        try:
            yield from iter(self)
        finally:
            self._reset()


@dataclass
class Prepared:
    task: Task
    kind: str  # 'encode', 'video' (frames decoded later, in order), 'touched', 'reuse', 'skip'
    content_hash: str = ""
    tensor: Any = None
    width: int = 0
    height: int = 0
    format: str = ""
    embedded: list[str] = field(default_factory=list)
    reason: str = ""
    taken_ns: int | None = None
    vector: Any = None  # the image vector, when encoded before it reaches the driver (Ray engine)
    where: dict[str, Any] | None = None  # the gps_*/place_* columns (``where.PlaceLookup``); None: no position


class ImageDecoder:
    """Read-to-tensor for one model: decode (JPEG at reduced DCT scale when ``fast``) and preprocess.

    The model loads on first use, so a run with nothing to encode never loads it. ``fast``
    decodes a JPEG at the smallest scale that still covers the model's input (see
    ``load_image(min_side=...)``); BENCHMARKS.md gives its effect on vectors and recall.
    """

    def __init__(self, encoder: Any, *, fast: bool = True) -> None:
        self.encoder = encoder
        self.fast = fast
        self._transform: Callable[[Any], Any] | None = None
        self.places = PlaceLookup()  # GPS position -> place columns, in the prepare threads

    def __call__(self, source: str | bytes, max_megapixels: float, name: str | None = None) -> tuple[Any, Any]:
        min_side = self.encoder.image_size if self.fast else None
        decoded = load_image(source, max_megapixels=max_megapixels, name=name, min_side=min_side)
        return decoded, self.transform(decoded.image)

    def transform(self, image: Any) -> Any:
        """The model's preprocessing of one upright RGB image (a video frame, say)."""
        if self._transform is None:
            self._transform = fast_transform(self.encoder.preprocess) or self.encoder.preprocess
        return self._transform(image)


def fast_transform(preprocess: Any) -> Callable[[Any], Any] | None:
    """open_clip's usual eval transform done in numpy (``models/preprocess.py``), as a torch
    tensor; None for any other transform (which is then used as is)."""
    params = transform_params(preprocess)
    if params is None:
        return None
    numpy_transform = NumpyTransform(params)

    def transform(image: Any) -> Any:
        import torch

        return torch.from_numpy(numpy_transform(image))

    return transform


def prepare_all(
    tasks: Iterable[Task],
    reusable: frozenset[str],
    decode: ImageDecoder,
    max_megapixels: float,
    workers: int,
    batch_size: int,
) -> Iterator[Prepared]:
    """Read, hash, decode and preprocess in a thread pool, yielding in order, with a bounded window."""
    workers = workers or min(8, os.cpu_count() or 1)
    window = max(2 * batch_size, 4 * workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmembed-decode")
    try:
        in_flight: deque[Future[Prepared]] = deque()
        for task in tasks:
            in_flight.append(pool.submit(prepare_one, task, reusable, decode, max_megapixels))
            if len(in_flight) >= window:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
    except BaseException:  # Ctrl-C, say: never wait for a reader that may be blocked for good
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _read_and_hash(path: str, size: int, keep: bool = True) -> tuple[str, bytes | None]:
    """The file's content hash, and its bytes when small enough to decode from memory (and ``keep``).
    An ``s3://`` path is read from object storage (``sources.remote``), streamed the same way."""
    if path.startswith("s3://"):
        from ..sources.remote import read_and_hash

        return read_and_hash(path, keep, _READ_WHOLE, _READ_CHUNK)
    digest = hashlib.blake2b(digest_size=16)
    data = None
    with open_regular(path) as f:  # never a named pipe or a device: they would block or never end
        if keep and size <= _READ_WHOLE:
            data = f.read()
            digest.update(data)
        else:
            while chunk := f.read(_READ_CHUNK):
                digest.update(chunk)
        if unlinked(f):
            raise FileNotFoundError(path)  # deleted while it was read: no row for a file that is gone
    return digest.hexdigest(), data


def prepare_one(task: Task, reusable: frozenset[str], decode: ImageDecoder, max_megapixels: float) -> Prepared:
    path = task.file.path
    video = is_video_path(path)
    try:
        digest, data = _read_and_hash(path, task.file.size, keep=not video)
    except PermissionError:
        return Prepared(task, "skip", reason="permission denied; check the file's permissions")
    except FileNotFoundError:
        return Prepared(task, "skip", reason="file vanished during ingest")
    except NotRegularFileError as exc:
        return Prepared(task, "skip", reason=exc.strerror)
    except OSError as exc:
        return Prepared(task, "skip", reason=f"cannot read file ({exc.strerror or exc})")
    if task.existing is not None and task.existing.content_hash == digest:
        return Prepared(task, "touched", digest)
    if digest in reusable:
        return Prepared(task, "reuse", digest)
    if video:  # frames are decoded by the ingest loop, one video at a time (memory stays flat)
        return Prepared(task, "video", digest)
    if data is None and path.startswith("s3://"):
        return Prepared(task, "skip", digest, reason=f"objects over {_READ_WHOLE >> 20} MB are not decoded from object storage")
    try:
        decoded, tensor = decode(data if data else path, max_megapixels, name=path)
    except ImageDecodeError as exc:
        return Prepared(task, "skip", digest, reason=exc.reason)
    except MmembedError:
        raise  # e.g. the model failed to load: that stops the run, it is not this file's fault
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop the run
        return Prepared(task, "skip", digest, reason=f"could not decode ({type(exc).__name__}: {exc})"[:200])
    where = decode.places.columns(decoded.gps) if decoded.gps is not None else None
    return Prepared(task, "encode", digest, tensor, decoded.width, decoded.height, decoded.format, decoded.texts,
                     taken_ns=decoded.taken_ns, where=where)
