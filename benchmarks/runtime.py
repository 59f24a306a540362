"""The ONNX image tower against torch, side by side in one run (issue 10, first step).

    python benchmarks/runtime.py [--model vit-b-32-256] [--rounds 2]

Each round, interleaved, as whole `mmembed` processes on ../shared/data/photos/coco (239 photos):

- ``ingest fp32 torch``: a fresh table at --precision fp32 with no exported image tower in the
  cache (the pre-issue path: torch and open_clip load the model);
- ``ingest fp32 onnx``: the same with the towers exported (onnxruntime; torch is not imported);
- ``ingest auto``: --precision auto (bf16 torch on CPUs with native bf16, else the fp32 path);
- ``cold image query`` at fp32, with and without the exported image tower.

It prints wall time, img/s and peak RSS (from ``wait4``) per run and the median ratios. The
one-time export (both towers) is timed on its own. Models are random-weight ``local-dir:``
folders from ``datasets.py`` (speed does not depend on the weight values).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from datasets import COCO, DEFAULT_OUT, make_model  # noqa: E402

MMEMBED = [sys.executable, "-m", "mmembed"]


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stderr) of one whole process."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed: {err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32-256")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if not COCO.is_dir():
        raise SystemExit(f"{COCO} is missing: this benchmark needs ../shared/data/photos/coco")
    model = "local-dir:" + str(make_model(args.out, args.model))
    work = Path(tempfile.mkdtemp(prefix="mmembed-runtime-"))
    warm_cache, cold_cache = work / "cache-warm", work / "cache-cold"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MMEMBED_PRECISION", None)
    n = len(list(COCO.glob("*.jpg")))
    query = str(sorted(COCO.glob("*.jpg"))[0])

    # One-time export: the first ingest writes both towers at its end.
    t0 = time.perf_counter()
    first = run([*MMEMBED, "ingest", str(COCO), "--db", str(work / "first.lancedb"), "--model", model,
                 "--precision", "fp32", "-q"], {**env, "MMEMBED_CACHE": str(warm_cache)})
    print(f"first fp32 ingest incl. the export of both towers: {time.perf_counter() - t0:.1f} s, "
          f"peak RSS {first[1]:.0f} MB")

    results: dict[str, list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        shutil.rmtree(cold_cache, ignore_errors=True)
        shutil.copytree(warm_cache, cold_cache)
        shutil.rmtree(cold_cache / "image-towers", ignore_errors=True)  # torch for images, as before
        # a file where the folder would go: the torch ingest cannot export at its end (which
        # would add the export to its time, and warm the cache it measures)
        (cold_cache / "image-towers").write_text("no exports here\n")
        cases = [
            ("ingest fp32 torch", ["ingest", str(COCO), "--precision", "fp32", "-q"], cold_cache),
            ("ingest fp32 onnx", ["ingest", str(COCO), "--precision", "fp32", "-q"], warm_cache),
            ("ingest auto", ["ingest", str(COCO), "-q"], warm_cache),
        ]
        for name, cmd, cache in cases:
            db = work / f"{name.replace(' ', '-')}-{r}.lancedb"
            seconds, rss, _ = run([*MMEMBED, *cmd, "--db", str(db), "--model", model],
                                  {**env, "MMEMBED_CACHE": str(cache)})
            results.setdefault(name, []).append((seconds, rss))
        for name, cache in (("cold image query torch", cold_cache), ("cold image query onnx", warm_cache)):
            seconds, rss, _ = run([*MMEMBED, "search", "--image", query, "--db", str(work / "first.lancedb"),
                                   "-n", "5"], {**env, "MMEMBED_CACHE": str(cache), "MMEMBED_PRECISION": "fp32"})
            results.setdefault(name, []).append((seconds, rss))

    print(f"\n{n} COCO photos, {args.model} (random weights), {args.rounds} rounds, interleaved")
    print(f"{'case':28} {'median s':>9} {'img/s':>7} {'peak RSS MB':>12}")
    med = {}
    for name, runs in results.items():
        seconds = statistics.median(s for s, _ in runs)
        rss = max(m for _, m in runs)
        med[name] = seconds
        rate = f"{n / seconds:7.2f}" if name.startswith("ingest") else "      -"
        print(f"{name:28} {seconds:9.2f} {rate} {rss:12.0f}")
    print(f"\ningest fp32: onnx is {med['ingest fp32 torch'] / med['ingest fp32 onnx']:.2f}x torch (whole process)")
    print(f"cold image query: onnx is {med['cold image query torch'] / med['cold image query onnx']:.2f}x torch")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
