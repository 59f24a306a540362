"""LanceDB full-text tokenizers for OCR text (English, Chinese without spaces, codes): recall and
precision on substring queries, index size, build time and query latency over synthetic rows.

    python benchmarks/fts.py [--rows 100000] [--queries 240] [--out /tmp/mmembed-bench/fts]

Rows are OCR-like: English words drawn from the Flickr8k training captions, Chinese words drawn by
frequency from jieba's dictionary and written without spaces, and codes such as ``KX-482-PD``.
Queries are cut from random rows: an English word, a Chinese word, a Chinese span that starts
anywhere (not on a word boundary: "会议纪要" out of "第三季度会议纪要"), and a code's first
two parts ("KX-482" out of "KX-482-PD"). A row is relevant when its lowercased text contains the
query. recall@10 = relevant rows in the top 10 / min(10, relevant rows); R-precision = relevant rows
among the first min(10, relevant rows) hits (are they ranked first?); false-hit share = hits (of at
most 10) that do not contain the query. The jieba config segments rows (``cut_for_search``) and queries
(``cut``) in Python and indexes the words with the whitespace tokenizer. Needs ``pip install jieba``
(benchmark only; it also supplies the Chinese vocabulary, which favours the jieba config).
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CAPTIONS = ROOT.parent / "shared" / "data" / "flickr8k" / "train_captions.csv"
CONFIGS = {
    "simple (default: stem, stop words)": dict(base_tokenizer="simple"),
    "ngram 2-2": dict(base_tokenizer="ngram", ngram_min_length=2, ngram_max_length=2),
    "ngram 2-3": dict(base_tokenizer="ngram", ngram_min_length=2, ngram_max_length=3),
    "ngram 3-3": dict(base_tokenizer="ngram", ngram_min_length=3, ngram_max_length=3),
    "ngram 2-3 + positions, phrase query": dict(base_tokenizer="ngram", ngram_min_length=2, ngram_max_length=3, with_position=True),
    "ngram 2-3 + LIKE '%q%' prefilter": dict(base_tokenizer="ngram", ngram_min_length=2, ngram_max_length=3),
    "ngram 2-3 prefix_only": dict(base_tokenizer="ngram", ngram_min_length=2, ngram_max_length=3, prefix_only=True),
    "jieba (Python) + whitespace": dict(base_tokenizer="whitespace"),
    "jieba/default (Lance native)": dict(base_tokenizer="jieba/default"),
}
NGRAM_OPTS = dict(stem=False, remove_stop_words=False, ascii_folding=True, lower_case=True)


def _vocab(rng: random.Random) -> tuple[list[str], list[str], list[float]]:
    import jieba

    words = set()
    with CAPTIONS.open() as f:
        for row in csv.reader(f):
            words.update(w for w in row[-1].lower().split() if w.isalpha() and len(w) > 2)
    zh, freq = [], []
    for line in (Path(jieba.__file__).parent / "dict.txt").read_text(encoding="utf-8").splitlines():
        word, count, _ = line.split(" ")
        if 2 <= len(word) <= 4 and int(count) >= 50:
            zh.append(word)
            freq.append(int(count))
    return sorted(words), zh, freq


def _code(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return (f"{rng.choice(letters)}{rng.choice(letters)}-{rng.randint(100, 999)}-"
            f"{rng.choice(letters)}{rng.choice(letters)}")


def corpus(rows: int, rng: random.Random) -> list[str]:
    en, zh, freq = _vocab(rng)
    texts = []
    for _ in range(rows):
        kind = rng.random()
        parts = []
        if kind < 0.65:
            parts.append(" ".join(rng.choices(en, k=rng.randint(4, 25))))
        if kind > 0.45:
            parts.append("".join(rng.choices(zh, weights=freq, k=rng.randint(3, 15))))
        if rng.random() < 0.25:
            parts.append(f"Plate {_code(rng)}" if rng.random() < 0.5 else _code(rng))
        texts.append("\n".join(parts))
    return texts


def queries(texts: list[str], count: int, rng: random.Random) -> list[tuple[str, str]]:
    import jieba

    out: list[tuple[str, str]] = []
    kinds = ["en word", "zh word", "zh span", "code part"]
    while len(out) < count:
        kind = kinds[len(out) % 4]
        text = rng.choice(texts)
        lines = text.split("\n")
        if kind == "en word" and lines[0].isascii() and " " in lines[0]:
            out.append((kind, rng.choice(lines[0].split())))
        elif kind.startswith("zh") and any(not line.isascii() for line in lines):
            line = next(line for line in lines if not line.isascii())
            if kind == "zh word":
                out.append((kind, rng.choice([w for w in jieba.lcut(line) if len(w) >= 2] or [line[:2]])))
            elif len(line) >= 6:
                start = rng.randrange(0, len(line) - 4)
                out.append((kind, line[start:start + rng.randint(3, 4)]))
        elif kind == "code part" and "-" in lines[-1]:
            code = lines[-1].split()[-1]
            out.append((kind, code.rsplit("-", 1)[0]))
    return out


def _segment(text: str) -> str:
    import jieba

    return " ".join(w for w in jieba.cut_for_search(text) if w.strip())


def run(config: str, texts: list[str], qs: list[tuple[str, str]], out: Path) -> str:
    import lancedb
    import pyarrow as pa
    from lancedb.index import FTS
    from lancedb.query import FullTextOperator, MatchQuery, PhraseQuery

    folder = out / f"{list(CONFIGS).index(config)}-{config.split()[0].replace('/', '-')}"
    shutil.rmtree(folder, ignore_errors=True)
    db = lancedb.connect(folder)
    jieba_py = config.startswith("jieba (Python)")
    column = [_segment(t) for t in texts] if jieba_py else texts
    table = db.create_table("t", pa.table({"id": list(range(len(texts))), "text": column}))
    opts = dict(CONFIGS[config])
    if opts["base_tokenizer"] != "simple":
        opts = NGRAM_OPTS | opts
    phrase = opts.get("with_position", False)
    start = time.perf_counter()
    try:
        table.create_index("text", config=FTS(**opts))
    except Exception as exc:  # a tokenizer this lancedb cannot build here: report why
        return f"| {config} | not built: {str(exc).splitlines()[0][:120]} |"
    build = time.perf_counter() - start
    size = sum(p.stat().st_size for p in (folder / "t.lance" / "_indices").rglob("*") if p.is_file())
    lowered = [t.lower() for t in texts]
    by_kind: dict[str, list[tuple[float, float]]] = {}
    latency = []
    for kind, q in qs:
        text = " ".join(jieba_lcut(q)) if jieba_py else q
        start = time.perf_counter()
        query = PhraseQuery(text, "text") if phrase else MatchQuery(text, "text", operator=FullTextOperator.AND)
        search = table.search(query, query_type="fts")
        if "LIKE" in config:  # keep only rows holding the query as one piece (grams can come from apart)
            search = search.where(f"lower(text) LIKE '%{q.lower()}%'", prefilter=True)
        hits = (search.limit(10).select(["id", "_score"]).to_arrow()["id"].to_pylist())
        latency.append(time.perf_counter() - start)
        relevant = {i for i, t in enumerate(lowered) if q.lower() in t}
        top = min(10, len(relevant))
        got = len(relevant.intersection(hits))
        ranked = len(relevant.intersection(hits[:top]))  # are the relevant rows the first ones?
        false = (len(hits) - got) / len(hits) if hits else 0.0
        by_kind.setdefault(kind, []).append((got / top, ranked / top, false))
    cells = [" / ".join(f"{statistics.mean(x[i] for x in v):.2f}" for i in range(3)) for v in by_kind.values()]
    lat = sorted(latency)
    return (f"| {config} | {' | '.join(cells)} | {size / 2**20:.1f} | {build:.1f} | "
            f"{lat[len(lat) // 2] * 1000:.1f} / {lat[int(len(lat) * 0.95)] * 1000:.1f} |")


def jieba_lcut(text: str) -> list[str]:
    import jieba

    return [w for w in jieba.lcut(text) if w.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=240)
    parser.add_argument("--out", type=Path, default=Path("/tmp/mmembed-bench/fts"))
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS))
    args = parser.parse_args()
    import jieba

    jieba.setLogLevel(60)
    rng = random.Random(11)
    texts = corpus(args.rows, rng)
    # the two examples ride along as rows 0 and 1 of the corpus
    texts[0], texts[1] = "第三季度会议纪要", "Plate KX-482-PD"
    qs = [("zh span", "会议纪要"), ("code part", "KX-482")] + queries(texts, args.queries - 2, rng)
    kinds = sorted({k for k, _ in qs}, key=[k for k, _ in qs].index)
    print(f"{args.rows} rows, {len(qs)} queries ({', '.join(kinds)}); cells: recall@10 / R-precision / false-hit share")
    print(f"| tokenizer | {' | '.join(kinds)} | index MiB | build s | query ms p50 / p95 |")
    print("|---" * (len(kinds) + 4) + "|")
    for config in args.config or CONFIGS:
        print(run(config, texts, qs, args.out), flush=True)


if __name__ == "__main__":
    main()
