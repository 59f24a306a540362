"""A video's rows: sample its frames (``sources.video``), encode them in batches, and keep
each frame unless it is nearly the same picture as the last one kept."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..sources.video import FRAME_EVERY, MAX_FRAMES, VideoInfo, sample_frames
from .prepare import ImageDecoder

__all__ = ["encode_video", "EncodedVideo", "SAME_FRAME"]

# A sampled frame whose image vector has at least this cosine to the last frame kept shows the
# same scene (a still shot, a slideshow slide, a talking head) and is dropped.
SAME_FRAME = 0.95


@dataclass
class EncodedVideo:
    """What a video gives to the table: its info and the kept frames' times and vectors."""

    info: VideoInfo
    times: list[float]
    vectors: np.ndarray  # (kept, D) unit image vectors
    sampled: int  # frames decoded and encoded, kept or not


_DONE = object()


def _decoded_ahead(frames: Iterator[Any], decoder: ImageDecoder, ahead: int) -> Iterator[tuple[float, Any]]:
    """(time, preprocessed frame) pairs, decoded in a thread up to ``ahead`` frames ahead of
    the encoder (FFmpeg and the numpy preprocessing release the GIL: decode and encode
    overlap, and memory stays bounded). Errors of the decoding thread are raised here."""
    out: queue.Queue[Any] = queue.Queue(maxsize=max(1, ahead))
    stop = threading.Event()

    def produce() -> None:
        try:
            for frame in frames:
                item = (frame.time, decoder.transform(frame.image))
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            out.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            out.put(exc)

    worker = threading.Thread(target=produce, name="mmembed-video-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=10)


def encode_video(path: str, decoder: ImageDecoder, encoder: Any, batch_size: int, *,
                 every: float = FRAME_EVERY, max_frames: int = MAX_FRAMES) -> EncodedVideo:
    """Sample, encode and thin out one video's frames; raises ``ImageDecodeError`` for a
    video that cannot be read to its end (nothing of it is kept then)."""
    info, frames = sample_frames(path, every=every, max_frames=max_frames, min_side=encoder.image_size)
    times: list[float] = []
    kept: list[np.ndarray] = []
    batch: list[Any] = []
    batch_times: list[float] = []
    sampled = 0

    def encode_batch() -> None:
        vectors = np.asarray(encoder.encode_pixels(batch), dtype=np.float32)
        for t, v in zip(batch_times, vectors):
            if not kept or float(np.dot(kept[-1], v)) < SAME_FRAME:
                kept.append(v)
                times.append(t)
        batch.clear()
        batch_times.clear()

    for t, tensor in _decoded_ahead(frames, decoder, 2 * batch_size):
        batch.append(tensor)
        batch_times.append(t)
        sampled += 1
        if len(batch) >= batch_size:
            encode_batch()
    if batch:
        encode_batch()
    dim = int(getattr(encoder, "dim", 0) or 0)
    matrix = np.stack(kept) if kept else np.zeros((0, dim), np.float32)
    return EncodedVideo(info, times, matrix, sampled)
