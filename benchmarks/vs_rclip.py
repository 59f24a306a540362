"""mmembed against rclip 4.0.8 on rclip's own model, side by side in one run (issue 10).

    bash ../shared/tools/rclip-offline/prepare.sh ~/rclip-offline     # once, about 5 minutes
    python benchmarks/vs_rclip.py [--kit ~/rclip-offline] [--rounds 3] [--phones 120] [--json out.json]

Both tools run as whole processes (what a user waits for), paired and interleaved (the order
flips every round), on the same folders, after the page cache was warmed equally:

- ``../shared/data/photos/coco`` (239 photos, about 640 px) and ``--phones`` 4000x3000
  camera-size JPEGs from ``datasets.py phones`` (hard links into the work folder);
- models: rclip's exact ViT-B-32-256 ONNX graph with random weights (the kit), and for
  mmembed the same architecture with random weights as a ``local-dir:`` folder, its towers
  exported once before timing (a returning user's cache; the export is timed on its own).

Cases, per folder:

- **index**: rclip: ``rclip -f -t 1 QUERY`` with no database (rclip has no index-only command:
  indexing is the first part of a query run); mmembed: ``mmembed ingest FOLDER`` into a fresh
  table. rclip's img/s is also given with its own text-query run subtracted ("rclip
  indexing only"), which favours rclip; the ratios use that figure.
- **peak RSS** of those runs (GNU ``time``'s, where installed; else ``wait4``'s), and CPU seconds;
- **cold text query**: ``rclip -n -f -t 10 QUERY`` / ``mmembed search QUERY -n 10``;
- **cold image query**: ``rclip -n -f -t 10 ./photo.jpg`` / ``mmembed search --image photo.jpg -n 10``;
- **no-op re-index** of the unchanged folder: ``rclip -f -t 1 QUERY`` (its scan cannot run
  without a query) / ``mmembed ingest FOLDER``;
- **one new image** in an indexed folder: the same two commands after one file was added.

mmembed runs at its default precision (``auto``: int8 on ONNX Runtime on a CPU) and, for the
index case, also at ``--precision fp32`` (rclip's own number format). Its ingests run with
``--no-ocr`` (rclip reads no text); where the ocr extra is installed, one more index case runs
with OCR, as ``mmembed ingest`` does by default there. The machine's CPU
flags are printed: speed-ups differ between AVX2-only and AVX-512 machines. Without the kit
the script says so, names it, and exits 0 having measured nothing.
"""

from __future__ import annotations

import argparse
import json
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
from datasets import COCO, DEFAULT_OUT, SHARED, make_images, make_model  # noqa: E402

MMEMBED = [sys.executable, "-m", "mmembed"]
KIT_SCRIPT = SHARED / "tools" / "rclip-offline" / "prepare.sh"
RCLIP_MODEL = "ViT-B-32-256-datacomp_s34b_b86k"
QUERY = "a dog on a couch"


def cpu_summary() -> str:
    name, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and name == "unknown CPU":
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name}, {os.cpu_count()} CPUs, flags: {' '.join(shown) or 'none of avx2/avx512'}"


_TIME = "/usr/bin/time"  # GNU time: the peak RSS of the process itself


def run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one whole process; raises on failure.

    The peak RSS comes from GNU time where it is installed: a child forked from this (large)
    process reports this process's peak as its own through ``wait4`` (Linux carries the high-water
    mark across fork and exec), which printed one value for every row."""
    timed = os.path.exists(_TIME)
    started = time.perf_counter()
    proc = subprocess.Popen([_TIME, "-f", "mmembed-bench-rss-kb=%M", *args] if timed else args,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd or '.'}: {err[-2000:]}")
    rss = usage.ru_maxrss / 1024
    for line in err.splitlines()[::-1]:
        if line.startswith("mmembed-bench-rss-kb="):
            rss = int(line.split("=", 1)[1]) / 1024
            break
    return {"s": seconds, "cpu": usage.ru_utime + usage.ru_stime, "rss": rss}


def warm(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            path.read_bytes()


class Tools:
    def __init__(self, kit: Path, work: Path, model: str) -> None:
        self.work, self.model = work, model
        self.rclip = kit / "venv" / "bin" / "rclip"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MMEMBED_", "RCLIP_"))}
        base.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
        self.rclip_env = {**base, "RCLIP_DATADIR": str(kit / "rclip-data")}
        self.rclip_db = kit / "rclip-data" / "db.sqlite3"
        self.mm_env = {**base, "MMEMBED_CACHE": str(work / "cache"), "MMEMBED_MODEL": model}

    # rclip keeps one database for every folder, next to its models
    def rclip_index(self, folder: Path, fresh: bool) -> dict[str, float]:
        if fresh:
            self.rclip_db.unlink(missing_ok=True)
        return run([str(self.rclip), "-f", "-t", "1", QUERY], self.rclip_env, folder)

    def rclip_text(self, folder: Path) -> dict[str, float]:
        return run([str(self.rclip), "-n", "-f", "-t", "10", QUERY], self.rclip_env, folder)

    def rclip_image(self, folder: Path, image: Path) -> dict[str, float]:
        return run([str(self.rclip), "-n", "-f", "-t", "10", "./" + image.name], self.rclip_env, folder)

    def mm_ingest(self, folder: Path, db: Path, *extra: str) -> dict[str, float]:
        """``mmembed ingest``; without OCR unless ``--ocr`` is in ``extra`` (rclip reads no text)."""
        ocr = [] if "--ocr" in extra else ["--no-ocr"]
        return run([*MMEMBED, "ingest", str(folder), "--db", str(db), "-q", *ocr, *extra], self.mm_env)

    def mm_text(self, db: Path) -> dict[str, float]:
        return run([*MMEMBED, "search", QUERY, "--db", str(db), "-n", "10"], self.mm_env)

    def mm_image(self, db: Path, image: Path) -> dict[str, float]:
        return run([*MMEMBED, "search", "--image", str(image), "--db", str(db), "-n", "10"], self.mm_env)


def link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def link_folder(files: list[Path], folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for src in files:
        link(src, folder / src.name)
    return folder


def measure_folder(tools: Tools, label: str, files: list[Path], rounds: int,
                   ocr_too: bool = False) -> dict[str, list[dict[str, float]]]:
    """Every case on one folder, ``rounds`` times, the tool order flipping each round."""
    work = tools.work
    folder = link_folder(files[:-1], work / label)  # the last file is the 'one new image'
    extra = files[-1]
    image = folder / files[0].name
    warm(folder)
    extra.read_bytes()
    results: dict[str, list[dict[str, float]]] = {}

    def note(case: str, value: dict[str, float]) -> None:
        results.setdefault(case, []).append(value)

    for r in range(rounds):
        (folder / extra.name).unlink(missing_ok=True)
        db = work / f"{label}-{r}.lancedb"
        db32 = work / f"{label}-{r}-fp32.lancedb"
        dbocr = work / f"{label}-{r}-ocr.lancedb"
        order = ("rclip", "mmembed") if r % 2 == 0 else ("mmembed", "rclip")
        for tool in order:
            if tool == "rclip":
                note("index rclip", tools.rclip_index(folder, fresh=True))
                note("text query rclip", tools.rclip_text(folder))
                note("image query rclip", tools.rclip_image(folder, image))
                note("no-op rclip", tools.rclip_index(folder, fresh=False))
            else:
                note("index mmembed", tools.mm_ingest(folder, db))
                note("text query mmembed", tools.mm_text(db))
                note("image query mmembed", tools.mm_image(db, image))
                note("no-op mmembed", tools.mm_ingest(folder, db))
                note("index mmembed fp32", tools.mm_ingest(folder, db32, "--precision", "fp32"))
                if ocr_too:
                    note("index mmembed ocr", tools.mm_ingest(folder, dbocr, "--ocr"))
        link(extra, folder / extra.name)
        for tool in order:
            if tool == "rclip":
                note("one new image rclip", tools.rclip_index(folder, fresh=False))
            else:
                note("one new image mmembed", tools.mm_ingest(folder, db))
        shutil.rmtree(db32, ignore_errors=True)
        shutil.rmtree(dbocr, ignore_errors=True)
    tools.rclip_db.unlink(missing_ok=True)
    return results


def summarise(label: str, n: int, results: dict[str, list[dict[str, float]]]) -> list[dict[str, object]]:
    med = {case: {k: statistics.median(v[k] for v in runs) for k in ("s", "cpu")} for case, runs in results.items()}
    peak = {case: max(v["rss"] for v in runs) for case, runs in results.items()}
    rclip_index_only = med["index rclip"]["s"] - med["text query rclip"]["s"]
    rows: list[dict[str, object]] = []

    def row(work: str, mm: str, rc: str, *, rate: bool = False, rc_seconds: float | None = None) -> None:
        m, c = med[mm]["s"], rc_seconds if rc_seconds is not None else med[rc]["s"]
        entry = {"folder": label, "work": work, "mmembed_s": round(m, 3), "rclip_s": round(c, 3),
                 "mmembed_rss_mb": round(peak[mm]), "rclip_rss_mb": round(peak[rc]),
                 "mmembed_cpu_s": round(med[mm]["cpu"], 1), "rclip_cpu_s": round(med[rc]["cpu"], 1),
                 "ratio_time": round(m / c, 3)}
        if rate:
            entry.update(mmembed_img_s=round(n / m, 2), rclip_img_s=round(n / c, 2), speedup=round(c / m, 2))
        rows.append(entry)

    row("index, whole process (rclip: index + 1 text query)", "index mmembed", "index rclip", rate=True)
    row("index (rclip: its text-query run subtracted)", "index mmembed", "index rclip", rate=True,
        rc_seconds=rclip_index_only)
    row("index at --precision fp32 (rclip: query subtracted)", "index mmembed fp32", "index rclip", rate=True,
        rc_seconds=rclip_index_only)
    if "index mmembed ocr" in med:
        row("index with OCR, the default where the ocr extra is installed (rclip: query subtracted)",
            "index mmembed ocr", "index rclip", rate=True, rc_seconds=rclip_index_only)
    row("cold text query", "text query mmembed", "text query rclip")
    row("cold image query", "image query mmembed", "image query rclip")
    row("no-op re-index (rclip: + 1 text query)", "no-op mmembed", "no-op rclip")
    row("one new image (rclip: + 1 text query)", "one new image mmembed", "one new image rclip")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kit", type=Path, default=Path(os.environ.get("RCLIP_OFFLINE", "~/rclip-offline")).expanduser(),
                        help="the folder prepare.sh built (default: $RCLIP_OFFLINE or ~/rclip-offline)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phones", type=int, default=120, help="4000x3000 JPEGs to index (0: COCO only)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where datasets.py keeps models and photos")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    from mmembed.models.ocr import ocr_available

    rclip = args.kit / "venv" / "bin" / "rclip"
    visual = args.kit / "rclip-data" / RCLIP_MODEL / "visual.onnx"
    if not (rclip.exists() and visual.exists()):
        print(f"skipped: the rclip kit is not built at {args.kit} ({rclip.name} or {RCLIP_MODEL}/visual.onnx "
              f"missing). Build it with: bash {KIT_SCRIPT} {args.kit}   (about 5 minutes, offline)")
        return
    if not COCO.is_dir():
        raise SystemExit(f"{COCO} is missing: this benchmark needs ../shared/data/photos/coco")

    print(cpu_summary())
    model = "local-dir:" + str(make_model(args.out, "ViT-B-32-256"))
    work = Path(tempfile.mkdtemp(prefix="mmembed-vs-rclip-"))
    tools = Tools(args.kit, work, model)
    folders = [("coco", sorted(COCO.glob("*.jpg")))]
    if args.phones:
        phones = make_images(args.out, "phones", args.phones, 2)
        folders.append((f"phones-{args.phones}", sorted(phones.rglob("*.jpg"))[: args.phones]))

    started = time.perf_counter()  # the one-time export of both towers (and the int8 quantisation)
    first = tools.mm_ingest(link_folder(folders[0][1][:8], work / "first"), work / "first.lancedb")
    print(f"one-time export of both towers + int8 quantisation, in a first 8-image ingest: "
          f"{time.perf_counter() - started:.1f} s, peak RSS {first['rss']:.0f} MB")

    rows: list[dict[str, object]] = []
    for label, files in folders:
        print(f"\n{label}: {len(files)} files, {args.rounds} rounds ...", flush=True)
        results = measure_folder(tools, label, files, args.rounds, ocr_too=ocr_available())
        rows += summarise(label, len(files) - 1, results)

    print(f"\n{'folder':12} {'work':54} {'mmembed':>9} {'rclip':>9} {'mm/rclip':>9} {'speed-up':>9} "
          f"{'RSS mm':>7} {'RSS rc':>7} {'CPU-s mm':>9} {'CPU-s rc':>9}")
    for r in rows:
        speed = f"{r['speedup']:.2f}x" if "speedup" in r else f"{1 / float(r['ratio_time']):.2f}x"  # type: ignore[arg-type]
        print(f"{r['folder']:12} {r['work']:54} {r['mmembed_s']:8.2f}s {r['rclip_s']:8.2f}s {r['ratio_time']:9.2f} "
              f"{speed:>9} {r['mmembed_rss_mb']:7} {r['rclip_rss_mb']:7} {r['mmembed_cpu_s']:9} {r['rclip_cpu_s']:9}")
        if "mmembed_img_s" in r:
            print(f"{'':12} {'  img/s':54} {r['mmembed_img_s']:9} {r['rclip_img_s']:9}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_summary(), "rounds": args.rounds, "rows": rows}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
