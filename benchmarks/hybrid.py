"""Words and looks together (issue 22): hybrid search quality and speed.

    python benchmarks/hybrid.py speed [--rows 100000] [--queries 40]
    python benchmarks/hybrid.py quality [--sets /tmp/mmembed-bench/ocr-holdout] [--model local-dir:...micro-clip]

``speed``: an mmembed table of ``rows`` random unit vectors (``datasets.make_vectors``'s schema)
whose rows carry synthetic OCR-like text (English words, Chinese written without spaces, codes),
refreshed as ingest does (words, FTS index, ANN index, snapshot); then warm ``Index.search`` p50/p95
per mode in one process (queries cut from random rows), and cold ``mmembed search`` processes,
hybrid and vector paired in turn.

``quality``: the rendered screenshot/sign/document sets of ``benchmarks/ocr_sets.py`` mixed with the
239 COCO photos, ingested with the model, the text sets read by ``models.ocr.TextReader`` (the COCO
photos through its ``has_text`` gate), ``ocr_text`` written and ``words`` recomposed. Queries name
words shown in a picture (English: its code and two words; Chinese: two phrases; signs: two words),
drawn with a fixed seed from the set's ``truth.jsonl``. R@1/R@5 for vector, hybrid (RRF), hybrid
(linear mix, weight 0.5 on the cosine: not tuned) and text only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = Path("/tmp/mmembed-bench")
MICRO = "local-dir:" + str(ROOT.parent / "shared" / "models" / "micro-clip")
COCO = ROOT.parent / "shared" / "data" / "photos" / "coco"
EN = ("invoice payment delivery meeting schedule account balance transfer weather forecast station platform departure "
      "arrival ticket museum garden library hospital pharmacy parking entrance exit bakery coffee market harbour tunnel "
      "bridge battery settings network password profile message calendar reminder document contract quarterly red car "
      "street sign open closed sale total cash card receipt order number customer service").split()
ZH = ("会议纪要 第三季度 预算报告 火车站 出口 入口 停车场 医院 图书馆 博物馆 咖啡店 超市 天气预报 明天下雨 付款成功 订单号 快递单 "
      "银行转账 电子发票 通知 安全出口 禁止吸烟 营业时间 欢迎光临 北京路 人民广场 地铁站 售票处 候车室 洗手间").split()


def _code(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return f"{rng.choice(letters)}{rng.choice(letters)}-{rng.randint(100, 999)}-{rng.choice(letters)}{rng.choice(letters)}"


def _text(rng: random.Random) -> str:
    parts = []
    kind = rng.random()
    if kind < 0.65:
        parts.append(" ".join(rng.choices(EN, k=rng.randint(4, 25))))
    if kind > 0.45:
        parts.append("".join(rng.choices(ZH, k=rng.randint(3, 12))))
    if rng.random() < 0.25:
        parts.append(f"Plate {_code(rng)}")
    return "\n".join(parts)


def build_speed_table(rows: int) -> tuple[str, str, list[str]]:
    import pyarrow as pa

    from benchmarks.datasets import make_vectors
    from mmembed.store import Store

    out = OUT / "fts-hybrid"  # its own tables: other benchmarks' rows_N stay as they are
    model_dir = ROOT.parent / "shared" / "models" / "micro-clip"
    name = make_vectors(out, rows, model_dir)  # rows_N, refreshed (ANN, snapshot)
    store = Store(str(out / "db"), name)
    rng = random.Random(rows)
    texts = [_text(rng) for _ in range(rows)]
    if "ocr_text" not in store.table.schema.names or store.count_where("ocr_text IS NOT NULL") < rows:
        store.ensure_columns({"ocr_text": pa.string(), "words": pa.string()})
        ids = store.read_columns(["id"]).column("id").to_pylist()
        for start in range(0, rows, 20_000):
            store.update_columns({"id": ids[start:start + 20_000], "ocr_text": texts[start:start + 20_000],
                                  "words": pa.nulls(len(ids[start:start + 20_000]), pa.string()).to_pylist()})
        store.compact()
    from mmembed import Index

    started = time.perf_counter()
    Index(out / "db", table=name).refresh()  # words composed, FTS index built, snapshot written
    print(f"refresh (words + FTS index + snapshot) {time.perf_counter() - started:.1f} s", file=sys.stderr)
    queries = []
    for text in rng.sample(texts, 200):
        words = text.split()
        if words:
            queries.append(rng.choice(words)[:8] if rng.random() < 0.5 else rng.choice(EN + ZH))
    return str(out / "db"), name, queries


def speed(args: argparse.Namespace) -> None:
    from mmembed import Index

    db, table, queries = build_speed_table(args.rows)
    queries = queries[: args.queries]
    index = Index(db, table=table)
    index.search("warm up", limit=10, mode="vector")
    for q in queries[:3]:
        index.search(q, limit=10)
    times: dict[str, list[float]] = {"vector": [], "hybrid": [], "text": []}
    for q in queries:  # modes in turn per query: paired under the same load
        for mode in times:
            started = time.perf_counter()
            index.search(q, limit=10, mode=mode)
            times[mode].append((time.perf_counter() - started) * 1000)
    for mode, ms in times.items():
        ms.sort()
        print(f"warm {mode:6s} {args.rows} rows: p50 {statistics.median(ms):.1f} ms, p95 {ms[int(len(ms) * 0.95)]:.1f} ms")
    exe = str(Path(sys.executable).parent / "mmembed")
    cold: dict[str, list[float]] = {"vector": [], "hybrid": []}
    for q in queries[: args.cold]:
        for mode in cold:
            started = time.perf_counter()
            subprocess.run([exe, "search", q, "--db", db, "--table", table, "--mode", mode, "-n", "10"],
                           capture_output=True, check=True)
            cold[mode].append(time.perf_counter() - started)
    for mode, s in cold.items():
        print(f"cold `mmembed search --mode {mode}` {args.rows} rows: median {statistics.median(s):.2f} s over {len(s)}")
    print(f"cold hybrid / vector: {statistics.median(cold['hybrid']) / statistics.median(cold['vector']):.2f}x")


def _queries(sets: Path, seed: int) -> list[tuple[str, str, str]]:
    """(set, file, query) for each text image."""
    rng = random.Random(seed)
    out = []
    for kind in ("screenshots", "signs", "documents"):
        for line in (sets / kind / "truth.jsonl").read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            words = list(dict.fromkeys(item["words"]))
            codes = [w for w in words if "-" in w]
            plain = [w for w in words if "-" not in w]
            if item["lang"] == "zh":
                picked = rng.sample(plain, min(2, len(plain)))
            else:
                picked = codes[:1] + rng.sample(plain, min(2, len(plain)))
            out.append((f"{kind}-{item['lang']}", item["file"], " ".join(picked)))
    return out


def quality(args: argparse.Namespace) -> None:
    import mmembed
    from mmembed.models.ocr import TextReader
    from mmembed.sources.decode import load_image
    from mmembed.store.fulltext import recompose_words

    sets = Path(args.sets)
    work = OUT / f"hybrid-{sets.name}"
    folder = work / "pics"
    if not folder.exists():
        folder.mkdir(parents=True)
        for kind in ("screenshots", "signs", "documents"):
            for f in (sets / kind).glob("*.*"):
                if f.suffix != ".jsonl":
                    os.symlink(f, folder / f.name)
        for f in sorted(COCO.glob("*.jpg")):
            os.symlink(f, folder / f"coco-{f.name}")
    db = str(work / "db.lancedb")
    index = mmembed.Index(db, model=args.model)
    report = index.ingest(folder)
    print(f"ingest: {report.added} added", file=sys.stderr)
    cache = work / "ocr.json"
    read = json.loads(cache.read_text()) if cache.exists() else {}
    reader = TextReader()
    rows = index.items()
    started = time.perf_counter()
    for row in rows:
        name = Path(row["path"]).name
        if name in read:
            continue
        image = load_image(row["path"]).image
        coco = name.startswith("coco-")
        read[name] = reader.read_text(image, gate=coco).text if (not coco or reader.has_text(image)) else ""
        cache.write_text(json.dumps(read, ensure_ascii=False))
    print(f"OCR {time.perf_counter() - started:.0f} s", file=sys.stderr)
    store = index.store
    ids = [r["id"] for r in rows]
    store.update_columns({"id": ids, "ocr_text": [read[Path(r["path"]).name] or None for r in rows]})
    recompose_words(store, ids=ids)
    index.refresh()
    index = mmembed.Index(db)
    by_name = {Path(r["path"]).name: r["id"] for r in rows}
    runs = {"vector": dict(mode="vector"), "hybrid rrf": dict(mode="hybrid"), "text only": dict(mode="text")}
    from mmembed.retrieval import hybrid

    results: dict[tuple[str, str], list[int]] = {}
    for kind, file, query in _queries(sets, args.seed):
        for label, opts in [*runs.items(), ("hybrid linear 0.5", dict(mode="hybrid"))]:
            hybrid.FUSION = "linear" if "linear" in label else "rrf"
            hits = index.search(query, limit=10, **opts)
            rank = next((i for i, h in enumerate(hits) if h.id == by_name[file]), 99)
            results.setdefault((kind, label), []).append(rank)
    hybrid.FUSION = "rrf"
    print(f"{'set':18s} {'ranking':18s} {'n':>3s} {'R@1':>6s} {'R@5':>6s}")
    for (kind, label), ranks in sorted(results.items()):
        r1 = sum(r < 1 for r in ranks) / len(ranks)
        r5 = sum(r < 5 for r in ranks) / len(ranks)
        print(f"{kind:18s} {label:18s} {len(ranks):3d} {r1:6.3f} {r5:6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--rows", type=int, default=100_000)
    s.add_argument("--queries", type=int, default=40)
    s.add_argument("--cold", type=int, default=5)
    q = sub.add_parser("quality")
    q.add_argument("--sets", default=str(OUT / "ocr-holdout"))
    q.add_argument("--model", default=MICRO)
    q.add_argument("--seed", type=int, default=22)
    args = parser.parse_args()
    speed(args) if args.what == "speed" else quality(args)


if __name__ == "__main__":
    main()
