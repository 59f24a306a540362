"""Cold image queries before and after a change to the image tower's files, side by side (issue 26).

    git archive BASE | tar -x -C /tmp/before      # the code to compare against
    python benchmarks/cold_image.py --before /tmp/before [--families siglip2 convnext mobileclip] [--rounds 5] [--work DIR]

For each family (random weights of the exact open_clip architecture, ``fixtures/make_families.py``,
``--tier full``), a table of two COCO photos is ingested once with the ``--before`` code, which
exports the towers in its format (with ``--work``, a table and cache left there by an earlier run
are used again: ``DIR/FAMILY.lancedb``, ``DIR/FAMILY-cache-before``). That cache is copied (times kept, so the exports stay valid);
the first query of this checkout on the copy is timed on its own (it may rewrite the export);
then, interleaved round by round, whole ``mmembed search --image PHOTO`` processes of the
``--before`` code on its cache and of this checkout on the copy. Printed per family: the median
wall seconds, CPU seconds (user + system) and peak RSS of each, and the ratios. On a shared
machine the CPU seconds move less than the wall seconds.
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
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "fixtures"))
from make_families import make_family  # noqa: E402

COCO = ROOT.parent / "shared" / "data" / "photos" / "coco"


def run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of one whole process, started in ``cwd`` (not
    in a checkout: ``python -m`` puts the working folder before PYTHONPATH)."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed: {(proc.stderr.read() if proc.stderr else '')[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the code to compare against")
    parser.add_argument("--families", nargs="*", default=["siglip2", "convnext", "mobileclip"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "mmembed-families")
    parser.add_argument("--work", type=Path, help="keep the tables and before-caches here (default: a temporary folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="mmembed-cold-image-"))
    photos = work / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for path in sorted(COCO.glob("*.jpg"))[:2]:
        shutil.copy(path, photos / path.name)
    base = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_") and k != "PYTHONPATH"}
    base["HF_HUB_OFFLINE"] = "1"
    codes = {"before": str(args.before.resolve()), "after": str(ROOT)}
    query = str(sorted(photos.iterdir())[0])
    for family in args.families:
        folder = args.models / f"full-{family}"
        if not (folder / "open_clip_model.safetensors").exists():
            make_family(family, folder, "full")
        db, caches = work / f"{family}.lancedb", {k: work / f"{family}-cache-{k}" for k in codes}
        env = {k: {**base, "PYTHONPATH": codes[k], "MMEMBED_CACHE": str(caches[k])} for k in codes}
        if not (db.exists() and caches["before"].exists()):
            run([sys.executable, "-m", "mmembed", "ingest", str(photos), "--db", str(db), "--model",
                 f"local-dir:{folder}", "-q"], env["before"], work)
        shutil.rmtree(caches["after"], ignore_errors=True)
        shutil.copytree(caches["before"], caches["after"])  # copy2: the stamped times are kept
        search = [sys.executable, "-m", "mmembed", "search", "--image", query, "--db", str(db), "-n", "2"]
        first = run(search, env["after"], work)
        print(f"{family}: first query of this checkout on the copied cache {first[0]:.2f} s", flush=True)
        seen: dict[str, list[tuple[float, float, float]]] = {k: [] for k in codes}
        for _ in range(args.rounds):
            for k in codes:
                seen[k].append(run(search, env[k], work))
        med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in seen.items()}
        b, a = med["before"], med["after"]
        print(f"{family}: cold image query, median of {args.rounds}: before {b[0]:.2f} s wall, {b[1]:.2f} s CPU, "
              f"{b[2]:.0f} MB | after {a[0]:.2f} s wall, {a[1]:.2f} s CPU, {a[2]:.0f} MB | "
              f"after/before wall {a[0] / b[0]:.2f}, CPU {a[1] / b[1]:.2f}", flush=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
