"""Cost of ingest with fusion (captions) against without, timed as fresh `mmembed` processes.

For each repeat, in alternating order, ingests the image folder into a fresh temporary database
(A) without captions and (B) with ``--captions`` (mean fusion, the default). Then, on copies of
the captioned database B, times ``mmembed fusion apply --fusion concat``, ``mmembed fusion train``
and (C) a no-op re-ingest with the same ``--captions`` flag and one without it (``fusion train
--no-apply`` too: training and storing the weights without re-fusing the table). Each copy starts
from B's state, so no step sees another's changes. Wall times include process start and model
load; "seconds" is the figure the command itself reports. Prints one JSON object.

    python benchmarks/ingest_fusion.py [--repeats 3] [--model local-dir:../shared/models/micro-clip]
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
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
EXE = str(Path(sys.executable).parent / "mmembed")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(args: list[str], env: dict[str, str]) -> dict:
    """Run one mmembed command; return wall seconds, exit status, parsed JSON (if any), stderr tail."""
    started = time.perf_counter()
    done = subprocess.run([EXE, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    out: dict = {"wall_s": round(wall, 3), "rc": done.returncode}
    text = done.stdout.strip()
    if text:
        try:
            out["report"] = json.loads(text.splitlines()[-1])
        except json.JSONDecodeError:
            out["stdout_tail"] = text[-2000:]
    if done.returncode != 0 or not text:
        out["stderr_tail"] = done.stderr.strip()[-2000:]
    if isinstance(out.get("report"), dict) and "seconds" in out["report"]:
        out["seconds"] = out["report"]["seconds"]
    return out


def median_of(runs: list[dict], key: str, ok_only: bool = True) -> float | None:
    values = [r[key] for r in runs
              if (r.get("rc") == 0 or not ok_only) and isinstance(r.get(key), (int, float))]
    return round(statistics.median(values), 3) if values else None


def summary(runs: list[dict]) -> dict:
    """Medians over the successful runs; for failed ones, their wall time and last error line."""
    out = {"wall_s": median_of(runs, "wall_s"), "seconds": median_of(runs, "seconds"),
           "ok": sum(r["rc"] == 0 for r in runs), "n": len(runs)}
    failed = [r for r in runs if r["rc"] != 0]
    if failed:
        out["wall_s_failed_runs"] = median_of(failed, "wall_s", ok_only=False)
        out["errors"] = sorted({(r.get("message") or r.get("stderr_tail") or "").strip().splitlines()[-1:][0]
                                if (r.get("message") or r.get("stderr_tail")) else f"rc={r['rc']}"
                                for r in failed})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=SHARED / "data" / "flickr8k" / "dev")
    p.add_argument("--captions", type=Path, default=SHARED / "data" / "flickr8k" / "dev_captions.csv")
    p.add_argument("--model", default=f"local-dir:{SHARED / 'models' / 'micro-clip'}")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the temporary databases and print where")
    a = p.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    env["HF_HUB_OFFLINE"] = "1"
    work = Path(tempfile.mkdtemp(prefix="mmembed_ingest_fusion_"))
    base = [str(a.data), "--model", a.model, "--json", "-q"]
    cap = ["--captions", str(a.captions)]
    runs: dict[str, list[dict]] = {k: [] for k in (
        "A_ingest_no_captions", "B_ingest_captions_mean",
        "apply_concat", "train_attention", "train_attention_no_apply", "C_noop_with_captions", "C_noop_without_captions")}
    sizes: dict[str, list[int]] = {"A": [], "B": []}

    try:
        for r in range(a.repeats):
            order = ("A", "B") if r % 2 == 0 else ("B", "A")
            for which in order:
                db = work / f"r{r}_{which}"
                res = run(["ingest", *base, "--db", str(db), *(cap if which == "B" else [])], env)
                res.update(repeat=r, position=order.index(which))
                runs["A_ingest_no_captions" if which == "A" else "B_ingest_captions_mean"].append(res)
                if res["rc"] == 0:
                    sizes[which].append(dir_bytes(db))
            src = work / f"r{r}_B"
            if runs["B_ingest_captions_mean"][-1]["rc"] != 0:
                continue
            steps = [
                ("C_noop_with_captions", ["ingest", *base, *cap]),
                ("C_noop_without_captions", ["ingest", *base]),
                ("apply_concat", ["fusion", "apply", "--fusion", "concat"]),
                ("train_attention", ["fusion", "train", "--json"]),
                ("train_attention_no_apply", ["fusion", "train", "--no-apply", "--json"]),
            ]
            for name, args in steps:
                db = work / f"r{r}_{name}"
                shutil.copytree(src, db)
                res = run([*args, "--db", str(db)], env)
                res["repeat"] = r
                if name == "apply_concat":
                    res["message"] = res.pop("stderr_tail", None) or ""
                runs[name].append(res)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    medians = {name: summary(rs) for name, rs in runs.items()}
    ma, mb = medians["A_ingest_no_captions"], medians["B_ingest_captions_mean"]
    ratio = {k: (round(mb[k] / ma[k], 3) if ma[k] and mb[k] else None) for k in ("wall_s", "seconds")}

    print(json.dumps({
        "benchmark": "ingest_fusion",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu": cpu_name(), "arch": platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version()},
        "model": a.model,
        "data": {"images": str(a.data), "captions": str(a.captions)},
        "repeats": a.repeats,
        "notes": "wall_s: whole fresh process (start, imports, model load, work); seconds: the command's own "
                 "report (ingest JSON 'seconds'; fusion train JSON 'seconds'; fusion apply prints none). "
                 "A/B alternate order per repeat. apply/train/no-op steps each run on a fresh copy of that "
                 "repeat's captioned database B.",
        "medians": medians,
        "ratio_B_over_A": ratio,
        "db_bytes_median": {k: (int(statistics.median(v)) if v else None) for k, v in sizes.items()},
        "runs": runs,
        **({"kept": str(work)} if a.keep else {}),
    }, indent=1))


if __name__ == "__main__":
    main()
