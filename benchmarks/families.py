"""Every family on the fast path, against the same family on torch (issue 26).

    python benchmarks/families.py [--tier full|tiny] [--photos 32] [--families mobileclip xlmr siglip2 convnext]

For each family (random weights of the exact open_clip architecture, ``fixtures/make_families.py``;
speed does not depend on the weight values), as whole ``mmembed`` processes on the first
--photos COCO photos of ../shared/data/photos/coco:

- ``first ingest``: the export of both towers (and int8 where the gate keeps it), timed on its own;
- ``ingest torch`` and ``ingest onnx``, side by side: a fresh table at the default precision,
  once with the exports blocked (torch and open_clip encode, as before the issue), once with them;
- fidelity: every stored image vector of the onnx table against the torch fp32 table's (open_clip
  fp32), worst cosine;
- cold queries (English, Chinese, image), whole process, with the modules they imported (torch,
  transformers, open_clip, lancedb must not be).

Prints a table and writes the results as JSON to --json (default
mmembed/models/families_measured.json, which ``mmembed models`` shows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "fixtures"))
from make_families import FAMILIES, make_family  # noqa: E402

sys.path.insert(0, str(HERE))
from runtime import run  # noqa: E402 - one whole process: seconds, peak RSS, stderr

# runtime.py brought in benchmarks/datasets.py as `datasets`, which would shadow Hugging Face's
# `datasets` that lancedb imports (``vectors``): neither that module nor this folder stays visible.
sys.path.remove(str(HERE))
sys.modules.pop("datasets", None)

COCO = ROOT.parent / "shared" / "data" / "photos" / "coco"
MMEMBED = [sys.executable, "-m", "mmembed"]
PROBE = (
    "import sys, time\n"
    "from mmembed.cli import main\n"
    "sys.argv = ['mmembed', *sys.argv[1:]]\n"
    "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
    "print('LOADED=' + ','.join(m for m in ('torch', 'transformers', 'open_clip', 'lancedb') if m in sys.modules),"
    " file=sys.stderr)\n"
    "sys.exit(code)\n"
)
QUERIES = {"cold text query (en)": "a cat on the sofa", "cold text query (zh)": "沙发上的猫"}


def vectors(db: Path) -> dict[str, list[float]]:
    import lancedb

    rows = lancedb.connect(str(db)).open_table("images").to_arrow().select(["path", "image_vector"]).to_pylist()
    return {r["path"]: r["image_vector"] for r in rows}


def bench_family(family: str, folder: Path, photos: Path, work: Path, env: dict[str, str], rounds: int) -> dict:
    import numpy as np

    model = f"local-dir:{folder}"
    warm, cold = work / f"{family}-cache", work / f"{family}-cache-torch"
    size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    t0 = time.perf_counter()
    run([*MMEMBED, "ingest", str(photos), "--db", str(work / f"{family}-first"), "--model", model, "-q"],
        {**env, "MMEMBED_CACHE": str(warm)})
    export_s = time.perf_counter() - t0
    cold.mkdir(exist_ok=True)
    for name in ("image-towers", "text-towers"):  # a file where the folder would go: nothing exported
        (cold / name).write_text("no exports here\n")
    runs: dict[str, list[float]] = {}
    for r in range(rounds):
        for name, cache in (("ingest torch", cold), ("ingest onnx", warm)):
            db = work / f"{family}-{name.split()[-1]}-{r}"
            shutil.rmtree(db, ignore_errors=True)
            seconds, _, _ = run([*MMEMBED, "ingest", str(photos), "--db", str(db), "--model", model, "-q"],
                                {**env, "MMEMBED_CACHE": str(cache)})
            runs.setdefault(name, []).append(seconds)
    reference = work / f"{family}-fp32"
    run([*MMEMBED, "ingest", str(photos), "--db", str(reference), "--model", model, "-q", "--precision", "fp32"],
        {**env, "MMEMBED_CACHE": str(cold)})
    ours, want = vectors(work / f"{family}-onnx-0"), vectors(reference)
    cosines = [float(np.dot(np.asarray(ours[p]), np.asarray(want[p]))) for p in want]
    query_db = work / f"{family}-onnx-0"
    queries = {**{k: ["search", q] for k, q in QUERIES.items()},
               "cold image query": ["search", "--image", str(sorted(photos.iterdir())[0])]}
    cold_s: dict[str, list[float]] = {}
    loaded: set[str] = set()
    for _ in range(rounds):
        for name, args in queries.items():
            seconds, _, err = run([sys.executable, "-c", PROBE, *args, "--db", str(query_db), "-n", "5"],
                                  {**env, "MMEMBED_CACHE": str(warm)})
            cold_s.setdefault(name, []).append(seconds)
            loaded |= {m for line in err.splitlines() if line.startswith("LOADED=")
                       for m in line.removeprefix("LOADED=").split(",") if m}
    text_info = json.loads(next((warm / "text-towers").iterdir()).joinpath("text.json").read_text())
    image_dir = next((warm / "image-towers").iterdir())
    n = len(list(photos.iterdir()))
    torch_s, onnx_s = statistics.median(runs["ingest torch"]), statistics.median(runs["ingest onnx"])
    return {
        "family": family, "size_mb": round(size_mb), "dim": text_info["dim"], "photos": n,
        "export_and_first_ingest_s": round(export_s, 1),
        "image_int8": (image_dir / "image.int8.onnx").exists(),
        "text_int8": (next((warm / "text-towers").iterdir()) / "text.int8.onnx").exists(),
        "tokenizer": text_info.get("tokenizer", {}).get("kind", "clip"), "scores": text_info.get("scores"),
        "ingest_torch_img_s": round(n / torch_s, 2), "ingest_onnx_img_s": round(n / onnx_s, 2),
        "ingest_speedup": round(torch_s / onnx_s, 2),
        "min_cos_vs_open_clip_fp32": round(min(cosines), 5),
        **{name.replace(" ", "_").replace("(", "").replace(")", "") + "_s": round(statistics.median(v), 2)
           for name, v in cold_s.items()},
        "imported_by_cold_queries": sorted(loaded),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", default="full", choices=["full", "tiny"])
    parser.add_argument("--photos", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "mmembed-families")
    parser.add_argument("--json", type=Path, default=ROOT / "mmembed" / "models" / "families_measured.json")
    args = parser.parse_args()
    if not COCO.is_dir():
        raise SystemExit(f"{COCO} is missing: this benchmark needs ../shared/data/photos/coco")
    work = Path(tempfile.mkdtemp(prefix="mmembed-families-"))
    photos = work / "photos"
    photos.mkdir()
    for path in sorted(COCO.glob("*.jpg"))[: args.photos]:
        shutil.copy(path, photos / path.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    env["HF_HUB_OFFLINE"] = "1"
    results = []
    for family in args.families:
        folder = args.models / f"{args.tier}-{family}"
        if not (folder / "open_clip_model.safetensors").exists():
            make_family(family, folder, args.tier)
        results.append(bench_family(family, folder, photos, work, env, args.rounds))
        print(json.dumps(results[-1]), flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    record = {"date": time.strftime("%Y-%m-%d"), "tier": args.tier, "cpu": cpu, "cores": os.cpu_count(),
              "command": "python benchmarks/families.py " + " ".join(sys.argv[1:]), "families": results}
    previous = json.loads(args.json.read_text()) if args.json.exists() else {}
    if previous.get("tier") == args.tier:  # keep the families not rerun
        kept = {f["family"]: f for f in previous.get("families", [])}
        kept.update({f["family"]: f for f in results})
        record["families"] = list(kept.values())
    args.json.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(f"\n{'family':12} {'MB':>6} {'dim':>4} {'torch img/s':>11} {'onnx img/s':>10} {'x':>5} {'cos':>7} "
          f"{'en s':>5} {'zh s':>5} {'img s':>5} imported")
    for f in results:
        print(f"{f['family']:12} {f['size_mb']:6} {f['dim']:4} {f['ingest_torch_img_s']:11} {f['ingest_onnx_img_s']:10} "
              f"{f['ingest_speedup']:5} {f['min_cos_vs_open_clip_fp32']:7} {f['cold_text_query_en_s']:5} "
              f"{f['cold_text_query_zh_s']:5} {f['cold_image_query_s']:5} {','.join(f['imported_by_cold_queries']) or '-'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
