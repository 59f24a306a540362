"""Words and looks together (issue 22): hybrid search quality and speed.

    python benchmarks/hybrid.py speed [--rows 100000] [--queries 40]
    python benchmarks/hybrid.py quality [--sets /tmp/mmembed-bench/ocr-holdout] [--model local-dir:...micro-clip]
    python benchmarks/hybrid.py flickr [--model local-dir:...micro-clip]

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


def _vocabulary(rng: random.Random) -> tuple[list[str], list[str]]:
    """English: the words of the Flickr8k training captions (~7,000); Chinese: 4,000 words of 2-4
    characters drawn from the 2,500 code points after U+4E00 (as ``fts.py``, whose jieba list is
    not installed here). A small pool would make every word common and every query slow."""
    import csv

    words: set[str] = set()
    with open(ROOT.parent / "shared" / "data" / "flickr8k" / "train_captions.csv") as f:
        for row in csv.reader(f):
            words.update(w for w in row[-1].lower().split() if w.isalpha() and len(w) > 2)
    chars = [chr(0x4E00 + i) for i in range(2500)]
    zh = sorted({"".join(rng.choices(chars, k=rng.randint(2, 4))) for _ in range(4000)})
    return sorted(words), zh


_VOCAB: list[tuple[list[str], list[str]]] = []


def _text(rng: random.Random) -> str:
    if not _VOCAB:
        _VOCAB.append(_vocabulary(random.Random(0)))
    en, zh = _VOCAB[0]
    parts = []
    kind = rng.random()
    if kind < 0.65:
        parts.append(" ".join(rng.choices(en, k=rng.randint(4, 25))))
    if kind > 0.45:
        parts.append("".join(rng.choices(zh, k=rng.randint(3, 12))))
    if rng.random() < 0.25:
        parts.append(f"Plate {_code(rng)}")
    return "\n".join(parts)


def build_speed_table(rows: int) -> tuple[str, str, list[str]]:
    import pyarrow as pa

    from benchmarks.datasets import make_vectors
    from mmembed.store import Store

    out = OUT / "fts-hybrid"  # its own tables: other benchmarks' rows_N stay as they are
    model_dir = ROOT.parent / "shared" / "models" / "micro-clip"
    name = make_vectors(out, rows, model_dir, dim=256)  # rows_N (micro-clip is 256-d), refreshed
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
            word = rng.choice(words)
            queries.append(word[:4] if not word.isascii() else word)  # a Chinese span starts a run
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
    """(set, file, query) for each text image: its words in a seeded order (a code first, where it
    shows one), at least two, taken until no other picture of the sets shows them all (at most 6): a query that
    names what this picture shows, and no other (the sets draw from small word pools, so two words
    alone often name several)."""
    rng = random.Random(seed)
    truth = []
    for kind in ("screenshots", "signs", "documents"):
        for line in (sets / kind / "truth.jsonl").read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            truth.append((kind, item["file"], item["lang"], list(dict.fromkeys(item["words"]))))
    shown = {file: {w.lower() for w in words} for _, file, _, words in truth}
    out = []
    for kind, file, lang, words in truth:
        codes = [w for w in words if "-" in w]
        plain = [w for w in words if "-" not in w]
        rng.shuffle(plain)
        picked: list[str] = []
        for word in codes[:1] + plain:
            picked.append(word)
            others = [f for f, ws in shown.items() if f != file and all(p.lower() in ws for p in picked)]
            if (not others and len(picked) >= 2) or len(picked) == 6:
                break
        shared = any(f != file and all(p.lower() in ws for p in picked) for f, ws in shown.items())
        out.append((f"{kind}-{lang}", file, " ".join(picked) + ("\t" if shared else "")))
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
    for other in OUT.glob("hybrid-*/ocr.json"):  # the same COCO photos, read by the same reader
        read.update({k: v for k, v in json.loads(other.read_text()).items() if k.startswith("coco-")})
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
    from mmembed.store.fulltext import contains_terms
    from mmembed.text.words import query_terms

    words = index.store.read_columns(["id", "words"]).to_pylist()
    runs = {"vector": dict(mode="vector"), "hybrid rrf": dict(mode="hybrid"), "text only": dict(mode="text")}
    from mmembed.retrieval import hybrid

    results: dict[tuple[str, str], list[int]] = {}
    queries = _queries(sets, args.seed)
    print(f"{len(queries)} queries; {sum(q.endswith(chr(9)) for _, _, q in queries)} name words another picture "
          "of the sets shows too by its truth list; '(shared)': by the OCR text of the whole table")
    for kind, file, query in queries:
        query = query.rstrip("\t")
        holding = sum(contains_terms(w["words"], query_terms(query)) for w in words if w["id"] != by_name[file])
        if holding:
            kind += " (shared)"  # another picture shows every word too (read by OCR): R@1 is not well posed
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


def _read_all(index, work: Path, gate_all: bool) -> dict[str, str]:
    """OCR text of every row (cached in ``work/ocr.json``): through the ``has_text`` gate."""
    from mmembed.models.ocr import TextReader
    from mmembed.sources.decode import load_image
    from mmembed.store.fulltext import recompose_words

    cache = work / "ocr.json"
    read = json.loads(cache.read_text()) if cache.exists() else {}
    reader = TextReader()
    rows = index.items()
    started = time.perf_counter()
    for n, row in enumerate(rows):
        name = Path(row["path"]).name
        if name in read:
            continue
        image = load_image(row["path"]).image
        read[name] = reader.read_text(image).text if reader.has_text(image) else ""
        if n % 20 == 0:
            cache.write_text(json.dumps(read, ensure_ascii=False))
    cache.write_text(json.dumps(read, ensure_ascii=False))
    print(f"OCR {time.perf_counter() - started:.0f} s, {sum(bool(t) for t in read.values())} of {len(rows)} with text",
          file=sys.stderr)
    ids = [r["id"] for r in rows]
    index.store.update_columns({"id": ids, "ocr_text": [read[Path(r["path"]).name] or None for r in rows]})
    recompose_words(index.store, ids=ids)
    index.refresh()
    return read


def flickr(args: argparse.Namespace) -> None:
    """Caption queries on Flickr8k dev (1000 images, no captions ingested: the words are OCR text
    and path words): R@1/5/10 of vector against hybrid, one query per caption (5000)."""
    import csv

    import mmembed

    work = OUT / "hybrid-flickr8k-dev"
    work.mkdir(parents=True, exist_ok=True)
    db = str(work / "db.lancedb")
    dev = ROOT.parent / "shared" / "data" / "flickr8k" / "dev"
    index = mmembed.Index(db, model=args.model)
    index.ingest(dev)
    _read_all(index, work, True)
    index = mmembed.Index(db)
    by_name = {Path(r["path"]).name: r["id"] for r in index.items()}
    with open(ROOT.parent / "shared" / "data" / "flickr8k" / "dev_captions.csv") as f:
        pairs = [(row["image"], row["caption"]) for row in csv.DictReader(f)]
    ranks: dict[str, list[int]] = {"vector": [], "hybrid": []}
    changed = 0
    for image, caption in pairs:
        got = {}
        for mode in ranks:
            hits = index.search(caption, limit=10, mode=mode)
            got[mode] = [h.id for h in hits]
            ranks[mode].append(next((i for i, h in enumerate(hits) if h.id == by_name[image]), 99))
        changed += got["vector"] != got["hybrid"]
    for mode, r in ranks.items():
        print(f"flickr8k dev {mode:6s} {len(r)} captions: R@1 {sum(x < 1 for x in r) / len(r):.4f} "
              f"R@5 {sum(x < 5 for x in r) / len(r):.4f} R@10 {sum(x < 10 for x in r) / len(r):.4f}")
    print(f"queries whose top 10 differ: {changed}")


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
    f = sub.add_parser("flickr")
    f.add_argument("--model", default=MICRO)
    args = parser.parse_args()
    {"speed": speed, "quality": quality, "flickr": flickr}[args.what](args)


if __name__ == "__main__":
    main()
