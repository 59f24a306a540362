"""Videos: ``sample_frames()`` picks a bounded set of upright RGB frames from a video file
through PyAV (the ``video`` extra), decoding keyframes only, or raises ``ImageDecodeError``
with a reason a person can act on.

How frames are chosen, and why decoding stays cheap:

- Only keyframes are decoded (the decoder skips every other frame, and only the keyframe
  packets that are due are even sent to it), so a 4K movie costs one decode per kept frame,
  never one per frame.
- At most one frame every ``every`` seconds (default 2 s), starting at the first keyframe.
- At most ``max_frames`` per video (default 300): a longer video is sampled at a wider
  spacing (``duration / max_frames``), so a two-hour film still gives 300 frames.
- Near-identical consecutive frames are dropped later, by their vectors (``ingest``).

Rotation (a phone's portrait video) is applied from the stream's display matrix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import ImageDecodeError
from ..text.gps import GpsPosition, gps_from_iso6709

__all__ = ["VIDEO_EXTENSIONS", "VideoInfo", "VideoFrame", "sample_frames", "frame_at", "is_video_path",
           "video_available", "VIDEO_EXTRA_HINT", "FRAME_EVERY", "MAX_FRAMES", "clock"]

VIDEO_EXTENSIONS = frozenset(".mp4 .mov .m4v .webm .mkv .avi".split())
VIDEO_EXTRA_HINT = "video support needs PyAV; install the extra: pip install 'mmembed[video]'"
FRAME_EVERY = 2.0  # seconds between sampled frames, at least
MAX_FRAMES = 300  # frames sampled per video, at most (a longer video is sampled more sparsely)
_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2": "MP4", "matroska,webm": "MKV", "avi": "AVI"}


def clock(seconds: float, *, tenths: bool = False) -> str:
    """A time in a video as people write it: 6 -> 0:06, 3725 -> 1:02:05; with ``tenths``,
    12.5 -> 0:12.5 (a whole second keeps no decimal)."""
    whole, tenth = divmod(round(seconds * 10), 10) if tenths else (round(seconds), 0)
    h, m, s = whole // 3600, whole // 60 % 60, whole % 60
    text = f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
    return text + (f".{tenth}" if tenth else "")


def is_video_path(path: str) -> bool:
    """True when the file name ends in a video extension."""
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def video_available() -> bool:
    """True when PyAV can be imported."""
    import importlib.util

    return importlib.util.find_spec("av") is not None


@dataclass
class VideoInfo:
    """What the container says about a video."""

    duration: float  # seconds (0.0 when the container does not say)
    width: int  # displayed size, after rotation
    height: int
    format: str  # MP4, MOV, MKV, WEBM, AVI
    codec: str  # e.g. h264, hevc, vp9
    taken_ns: int | None = None  # the container's creation_time, ns since the epoch
    gps: GpsPosition | None = None  # the container's location tag (ISO 6709), when sane


@dataclass
class VideoFrame:
    """One sampled frame: its time in seconds from the start, and the upright RGB image."""

    time: float
    image: object  # PIL.Image.Image, mode RGB


def _format_name(container: object, path: str) -> str:
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    name = getattr(container, "format", None)
    long = getattr(name, "name", "") if name is not None else ""
    if ext in ("mov", "webm", "m4v"):
        return ext.upper()
    return _FORMATS.get(long, ext.upper() or "VIDEO")


def _location(container: object) -> GpsPosition | None:
    """The position a phone wrote into the container (``location``, ISO 6709); None when absent or nonsense."""
    tags = getattr(container, "metadata", None) or {}
    return gps_from_iso6709(tags.get("location") or tags.get("com.apple.quicktime.location.ISO6709"))


def _creation_ns(container: object) -> int | None:
    import datetime as dt

    raw = (getattr(container, "metadata", None) or {}).get("creation_time")
    if not raw:
        return None
    try:
        when = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    if when.year < 1971:  # 1904/1970: the "unset" values cameras and muxers write
        return None
    return int(when.timestamp()) * 1_000_000_000


def _open(path: str) -> object:
    try:
        import av
    except ImportError:
        raise ImageDecodeError(path, VIDEO_EXTRA_HINT) from None
    try:
        if os.path.getsize(path) == 0:
            raise ImageDecodeError(path, "empty file (0 bytes)")
        return av.open(path, metadata_errors="ignore")
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError(path, "file not found (moved or deleted?)") from None
    except PermissionError:
        raise ImageDecodeError(path, "permission denied; check the file's permissions") from None
    except Exception as exc:  # noqa: BLE001 - av.error.* and OSError for broken containers
        raise ImageDecodeError(path, f"truncated or corrupt video ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    """PyAV's message without the errno and file name it repeats."""
    strerror = getattr(exc, "strerror", None)
    text = strerror or (str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return str(text)[:160]


def _video_stream(container: object, path: str) -> object:
    streams = list(getattr(container, "streams").video)  # type: ignore[attr-defined]
    if not streams:
        raise ImageDecodeError(path, "no video stream in the file (audio only?)")
    return streams[0]


def _info(container: object, stream: object, path: str) -> VideoInfo:
    tb = stream.time_base  # type: ignore[attr-defined]
    duration = 0.0
    if stream.duration and tb:  # type: ignore[attr-defined]
        duration = float(stream.duration * tb)  # type: ignore[attr-defined]
    elif getattr(container, "duration", None):
        duration = container.duration / 1_000_000  # type: ignore[attr-defined]
    ctx = stream.codec_context  # type: ignore[attr-defined]
    width, height = int(ctx.width or 0), int(ctx.height or 0)  # swapped by the first frame if rotated
    return VideoInfo(duration, width, height, _format_name(container, path), str(ctx.name or "?"),
                     _creation_ns(container), _location(container))


def _upright(frame: object, min_side: int | None) -> object:
    """The frame as an upright RGB PIL image, scaled down (never up) so its short side is at
    least ``min_side`` (x2 for a sharp resize later) when it is much larger."""
    w, h = frame.width, frame.height  # type: ignore[attr-defined]
    if min_side and min(w, h) > 4 * min_side:
        scale = 2 * min_side / min(w, h)
        image = frame.to_image(width=max(1, round(w * scale)), height=max(1, round(h * scale)))  # type: ignore[attr-defined]
    else:
        image = frame.to_image()  # type: ignore[attr-defined]
    turn = int(getattr(frame, "rotation", 0) or 0) % 360  # counter-clockwise degrees (display matrix)
    if turn:
        image = image.rotate(turn, expand=True)
    return image if image.mode == "RGB" else image.convert("RGB")


def sample_frames(
    path: str,
    *,
    every: float = FRAME_EVERY,
    max_frames: int = MAX_FRAMES,
    min_side: int | None = None,
) -> tuple[VideoInfo, Iterator[VideoFrame]]:
    """The video's info and an iterator of sampled frames (see the module docstring).

    Raises ``ImageDecodeError`` when the file cannot be opened or has no video stream; the
    iterator raises it when the stream turns out corrupt or truncated part way, or when it
    holds no decodable frame at all. Close nothing: the iterator closes the file when done.

    Example::

        info, frames = sample_frames("clips/beach.mp4")
        [f.time for f in frames]   # [0.0, 2.0, 4.0, ...]
    """
    if every <= 0:
        raise ValueError("every must be positive")
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        info = _info(container, stream, path)
    except BaseException:
        container.close()  # type: ignore[attr-defined]
        raise
    spacing = max(every, info.duration / max_frames if info.duration else every)
    return info, _frames(container, stream, path, spacing, max_frames, min_side, info)


def _frames(container: object, stream: object, path: str, spacing: float, max_frames: int,
            min_side: int | None, info: VideoInfo) -> Iterator[VideoFrame]:
    tb = stream.time_base  # type: ignore[attr-defined]
    start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0  # type: ignore[attr-defined]
    ctx = stream.codec_context  # type: ignore[attr-defined]
    ctx.skip_frame = "NONKEY"  # the decoder itself drops every frame but keyframes
    stream.thread_type = "AUTO"  # type: ignore[attr-defined]
    next_time = -1.0
    kept = 0
    data_end = 0.0  # where the packets read so far end, in seconds
    try:
        try:
            for packet in container.demux(stream):  # type: ignore[attr-defined]
                if packet.pts is not None and tb:
                    data_end = max(data_end, float((packet.pts + (packet.duration or 0)) * tb) - start)
                if packet.size == 0:  # the flush packet at the end
                    frames = packet.decode()
                elif not packet.is_keyframe:
                    continue
                else:
                    t = float(packet.pts * tb) - start if packet.pts is not None and tb else None
                    if t is not None and t < next_time - 1e-3:
                        continue  # a keyframe too soon after the last sampled one: not even decoded
                    if t is not None:
                        next_time = t + spacing
                    frames = packet.decode()
                for frame in frames:
                    if kept >= max_frames:
                        return
                    t = float(frame.time) - start if frame.time is not None else kept * spacing
                    if kept == 0 and int(getattr(frame, "rotation", 0) or 0) % 180:
                        info.width, info.height = info.height, info.width  # a portrait phone video
                    kept += 1
                    yield VideoFrame(max(0.0, round(t, 3)), _upright(frame, min_side))
        except ImageDecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - av.error.* for damaged streams
            raise ImageDecodeError(path, f"truncated or corrupt video ({_short(exc)})") from None
        if kept == 0:
            raise ImageDecodeError(path, "no decodable frame in the video (truncated or corrupt?)")
        if info.duration and data_end < info.duration - max(1.0, 0.05 * info.duration) and kept < max_frames:
            raise ImageDecodeError(path, f"truncated video: its data ends at {data_end:.1f} s of {info.duration:.1f} s")
    finally:
        container.close()  # type: ignore[attr-defined]


def frame_at(path: str, seconds: float, *, min_side: int | None = None) -> object:
    """The upright RGB frame shown at ``seconds`` (the keyframe at or before it), for
    thumbnails of a video hit. Raises ``ImageDecodeError``."""
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        tb = stream.time_base  # type: ignore[attr-defined]
        start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0  # type: ignore[attr-defined]
        try:
            if tb:
                container.seek(int((seconds + start) / tb), stream=stream, backward=True, any_frame=False)  # type: ignore[attr-defined]
            for frame in container.decode(stream):  # type: ignore[attr-defined]
                return _upright(frame, min_side)
        except Exception as exc:  # noqa: BLE001 - av.error.*
            raise ImageDecodeError(path, f"truncated or corrupt video ({_short(exc)})") from None
        raise ImageDecodeError(path, "no decodable frame in the video (truncated or corrupt?)")
    finally:
        container.close()  # type: ignore[attr-defined]
