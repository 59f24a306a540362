"""Decode-only, model-only and end-to-end ingest throughput, side by side in one run.

    python benchmarks/datasets.py model phones          # once: ViT-B-32 folder, 4000x3000 JPEGs
    python benchmarks/throughput.py --data coco --data phones [--precision fp32 --precision bf16]

For each dataset and precision it prints one JSON object:

- ``decode_img_s``: ingest's own read + hash + decode + preprocess stage alone (its thread
  pool, no model), i.e. what decode can feed;
- ``model_img_s``: ``Encoder.encode_pixels`` on ready tensors, at each batch size tried; the
  best is the limit ingest can reach;
- ``e2e_img_s``: ``Index.ingest`` of the folder into a fresh table (model loaded beforehand,
  so this is the pipeline's steady rate: walk, hash, decode, encode, write, compact), and
  ``e2e_ratio`` = e2e / best model-only;
- ``cli_seconds``: the same ingest as a fresh ``mmembed ingest`` process (imports and model
  load included), once.

Figures are medians of ``--repeat`` runs, with the files read once beforehand so that they
sit in the OS cache (a first ingest from a slow disk is bound by the disk instead).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import COCO, DEFAULT_OUT  # noqa: E402

DATA = {"coco": COCO, "phones": DEFAULT_OUT / "phones", "tiles": DEFAULT_OUT / "tiles"}


def _files(folder: Path, limit: int | None) -> list[str]:
    from mmembed.sources import walk

    found = [f for f in walk([str(folder.resolve())], on_error=lambda p, r: None)]
    return [f.path for f in found][:limit] if limit else [f.path for f in found]


def decode_rate(encoder, folder: Path, decode: str, workers: int, batch: int) -> float:
    from mmembed.ingest.prepare import prepare_all, Task
    from mmembed.sources import walk

    files = list(walk([str(folder.resolve())], on_error=lambda p, r: None, follow_symlinks=True))
    tasks = [Task(f, None) for f in files]
    decoder = _decoder(encoder, decode)
    started = time.perf_counter()
    kinds = [p.kind for p in prepare_all(tasks, frozenset(), decoder, 100.0, workers, batch)]
    elapsed = time.perf_counter() - started
    assert kinds.count("encode") == len(tasks), "every benchmark image must decode"
    return len(tasks) / elapsed


def _decoder(encoder, decode: str):
    """What ingest hands its decode stage."""
    from mmembed import ingest

    if hasattr(ingest, "ImageDecoder"):
        return ingest.ImageDecoder(encoder, fast=decode == "fast")
    return encoder.preprocess  # before the fast decode path existed


def model_rate(encoder, folder: Path, batches: list[int], seconds: float) -> dict[int, float]:
    import numpy as np

    from mmembed.sources import load_image

    paths = _files(folder, max(batches))
    tensors = [encoder.preprocess(load_image(p).image) for p in paths]
    while len(tensors) < max(batches):
        tensors += tensors
    rates = {}
    for bs in batches:
        batch = tensors[:bs]
        if hasattr(batch[0], "numpy"):  # torch tensors (the torch runtime)
            import torch

            batch = torch.stack(batch)
        else:  # numpy arrays (the ONNX Runtime towers)
            batch = np.stack(batch)
        encoder.encode_pixels(batch)  # warm-up
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            encoder.encode_pixels(batch)
            done += bs
        rates[bs] = done / (time.perf_counter() - started)
    return rates


def e2e_rate(model: str, precision: str, decode: str, folder: Path, workers: int, batch: int) -> tuple[float, int]:
    from mmembed import Index

    with tempfile.TemporaryDirectory() as tmp:
        index = Index(tmp, model=model, batch_size=batch, workers=workers, **_precision_kw(precision, decode))
        index.encoder.load()
        started = time.perf_counter()
        report = index.ingest(folder)
        elapsed = time.perf_counter() - started
    files = report.added + report.updated
    return files / elapsed, files


def cli_seconds(model: str, precision: str, decode: str, folder: Path, batch: int) -> float:
    exe = shutil.which("mmembed", path=str(Path(sys.executable).parent)) or "mmembed"
    extra = ["--precision", precision, "--decode", decode] if _precision_kw(precision, decode) else []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([exe, "ingest", str(folder), "--db", tmp, "--model", model, "--batch-size", str(batch),
                        *extra, "--json", "-q"], check=True, capture_output=True)
        return time.perf_counter() - started


def _precision_kw(precision: str, decode: str | None = None) -> dict[str, str]:
    """Options that exist only after the speed work (so the script also measures the code before it)."""
    import inspect

    from mmembed import Index

    if "precision" not in inspect.signature(Index).parameters:
        return {}
    return {"precision": precision, **({"decode": decode} if decode else {})}


def _encoder(model: str, precision: str, batch: int):
    from mmembed.models.encoder import Encoder

    return Encoder(model, batch_size=batch, device="cpu", **_precision_kw(precision)).load()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=f"local-dir:{DEFAULT_OUT / 'models' / 'vit-b-32'}")
    parser.add_argument("--data", action="append", choices=sorted(DATA), help="repeatable; default coco")
    parser.add_argument("--precision", action="append", help="repeatable; default fp32")
    parser.add_argument("--decode", action="append", choices=["fast", "exact"], help="repeatable; default fast")
    parser.add_argument("--limit", type=int, help="use only the first N images of each folder")
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--workers", type=int, default=0, help="decode threads; 0 = ingest's default")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="per model-only measurement")
    parser.add_argument("--skip", action="append", default=[], choices=["decode", "model", "e2e", "cli"])
    args = parser.parse_args()
    import torch

    from mmembed.sources import walk

    for name in args.data or ["coco"]:
        folder = DATA[name]
        if args.limit:  # a fixed subset, as its own folder of links
            sub = Path(tempfile.mkdtemp(prefix=f"mmembed-{name}-"))
            for p in _files(folder, args.limit):
                os.symlink(p, sub / Path(p).name)
            folder = sub
        count = sum(1 for _ in walk([str(folder.resolve())], on_error=lambda p, r: None, follow_symlinks=True))
        for path in _files(folder, None):  # files in the OS cache: measure the CPU, not this disk
            with open(path, "rb") as f:
                while f.read(1 << 24):
                    pass
        for precision in args.precision or ["fp32"]:
            out: dict[str, object] = {
                "date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
                "processor": _cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                "model": Path(args.model).name, "data": name, "images": count, "precision": precision,
            }
            encoder = _encoder(args.model, precision, max(args.batch))
            if "model" not in args.skip:
                per = [model_rate(encoder, folder, args.batch, args.seconds) for _ in range(args.repeat)]
                out["model_img_s"] = {bs: round(statistics.median(r[bs] for r in per), 2) for bs in args.batch}
                out["best_batch"] = max(args.batch, key=lambda b: out["model_img_s"][b])
            bs = out.get("best_batch", 32)
            for decode in args.decode or ["fast"]:
                part: dict[str, object] = {}
                if "decode" not in args.skip:
                    rates = [decode_rate(encoder, folder, decode, args.workers, bs) for _ in range(args.repeat)]
                    part["decode_img_s"] = round(statistics.median(rates), 1)
                if "e2e" not in args.skip:
                    rates = [e2e_rate(args.model, precision, decode, folder, args.workers, bs)[0]
                             for _ in range(args.repeat)]
                    part["e2e_img_s"] = round(statistics.median(rates), 2)
                    if "model_img_s" in out:
                        part["e2e_ratio"] = round(part["e2e_img_s"] / out["model_img_s"][bs], 3)
                if "cli" not in args.skip:
                    part["cli_seconds"] = round(cli_seconds(args.model, precision, decode, folder, bs), 2)
                out[f"decode_{decode}"] = part
            print(json.dumps(out), flush=True)


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
