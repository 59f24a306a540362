"""Video ingest speed: seconds of video indexed per second of wall time, and frames kept.

    python benchmarks/video.py [--minutes 10] [--model micro|vit-b-32] [--out /tmp/mmembed-bench]

Makes (once, cached under ``--out``) a 1080p 24 fps H.264 clip of ``--minutes`` minutes: a
slow pan across a Flickr8k dev photo, a new photo every 10 s (a scene change), a keyframe
every 2 s as phones and cameras write them. Then, side by side in one run:

- ``ingest``: ``Index.ingest`` of the clip's folder into a new table (decode, encode, drop
  near-identical frames, write), with micro-clip (``../shared``) or the ViT-B-32 shape with
  random weights (``benchmarks/datasets.py model``: speed does not depend on the weights);
- ``reingest``: the same folder again (unchanged: nothing is decoded);
- ``decode``: ``sources.video.sample_frames`` alone (keyframes only, every 2 s, <= 300 frames).

The clip is read once before timing, so every step finds it in the page cache.

Prints one JSON object; BENCHMARKS.md records it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import DEFAULT_OUT, DEV, MICRO, make_model  # noqa: E402

FPS = 24
SIZE = (1920, 1080)
SCENE_SECONDS = 10


def make_clip(path: Path, minutes: float) -> Path:
    """The benchmark clip (see the module docstring); made once."""
    if path.exists():
        return path
    import av
    import numpy as np
    from PIL import Image, ImageOps

    photos = sorted(DEV.glob("*.jpg"))
    tmp = path.with_suffix(".part.mp4")
    frames = int(minutes * 60 * FPS)
    w, h = SIZE
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.gop_size = 2 * FPS
        if stream.codec_context.name == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "23", "x264-params": f"keyint={2 * FPS}:min-keyint={2 * FPS}"}
        scene = None
        for n in range(frames):
            if n % (SCENE_SECONDS * FPS) == 0:
                with Image.open(photos[(n // (SCENE_SECONDS * FPS)) % len(photos)]) as im:
                    scene = np.asarray(ImageOps.fit(im.convert("RGB"), (w + 240, h + 135)))
            k = n % (SCENE_SECONDS * FPS) / (SCENE_SECONDS * FPS)  # pan from top-left to bottom-right
            x, y = int(240 * k), int(135 * k)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(scene[y:y + h, x:x + w]), format="rgb24")
            frame.pts = n
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", choices=["micro", "vit-b-32"], default="micro")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import mmembed
    from mmembed.sources.video import sample_frames

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    clip = make_clip(args.out / f"video-{args.minutes:g}min-1080p.mp4", args.minutes)
    made = time.perf_counter() - started
    model = f"local-dir:{MICRO}" if args.model == "micro" else f"local-dir:{make_model(args.out)}"

    with open(clip, "rb") as f:  # the page cache holds the clip for every step alike
        while f.read(1 << 24):
            pass

    work = Path(tempfile.mkdtemp(prefix="mmembed-video-bench-"))
    try:
        folder = work / "clips"
        folder.mkdir()
        os.link(clip, folder / clip.name) if clip.stat().st_dev == folder.stat().st_dev else shutil.copy(clip, folder)
        index = mmembed.Index(str(work / "db"), model=model)
        index.ingest(str(ROOT / "fixtures" / "images"))  # load the model and make the table first
        t = time.perf_counter()
        report = index.ingest(str(folder))
        ingest_s = time.perf_counter() - t
        t = time.perf_counter()
        again = index.ingest(str(folder))
        reingest_s = time.perf_counter() - t
    finally:
        shutil.rmtree(work, ignore_errors=True)
    t = time.perf_counter()
    info, frames = sample_frames(str(clip), min_side=224)
    sampled = len(list(frames))
    decode_s = time.perf_counter() - t
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    flags = open("/proc/cpuinfo").read()
    result = {
        "date": date.today().isoformat(), "cpu": cpu, "avx512_bf16": "avx512_bf16" in flags, "cores": os.cpu_count(),
        "clip": {"minutes": args.minutes, "size": f"{SIZE[0]}x{SIZE[1]}", "fps": FPS, "codec": info.codec,
                 "bytes": clip.stat().st_size, "keyframe_every_s": 2, "scene_every_s": SCENE_SECONDS,
                 "seconds_to_make": round(made, 1)},
        "model": args.model,
        "decode": {"frames_sampled": sampled, "seconds": round(decode_s, 2),
                   "video_seconds_per_second": round(info.duration / decode_s, 1)},
        "ingest": {"seconds": round(ingest_s, 2), "video_seconds_per_second": round(info.duration / ingest_s, 1),
                   "frames_kept": report.frames, "frames_kept_per_minute": round(report.frames / (info.duration / 60), 1),
                   "skipped": [s.reason for s in report.skipped]},
        "reingest": {"seconds": round(reingest_s, 3), "unchanged": again.unchanged, "frames": again.frames},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
