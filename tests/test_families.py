"""Model families on the fast path (issue 26): random weights of the same architecture classes
as MobileCLIP2 (timm FastViT), SigLIP2 (timm ViT with MAP pooling, 'last'-pooled text, a
Hugging Face tokenizer), XLM-R CLIP (a Hugging Face text tower) and ConvNeXt, at test size,
built at session start (fixtures/make_families.py) and run through the real CLI."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURE_IMAGES, one_error_line, run_cli

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

_NO_TORCH = (
    "import sys\n"
    "from mmembed.cli import main\n"
    "sys.argv = ['mmembed', *sys.argv[1:]]\n"
    "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\nelse:\n    code = 0\n"
    "loaded = sorted(m for m in ('torch', 'transformers', 'open_clip', 'lancedb') if m in sys.modules)\n"
    "print('LOADED=' + ','.join(loaded), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@pytest.fixture(scope="session")
def families(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny families' local-dir folders, made once per session (a fixed seed)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
    from make_families import FAMILIES, make_family

    root = tmp_path_factory.mktemp("families")
    return {name: make_family(name, root / name, "tiny") for name in FAMILIES}


def strings(n: int = 1000, seed: int = 0) -> list[str]:
    """English, Chinese, mixed, full-width punctuation, emoji, HTML entities, odd spaces."""
    rng = random.Random(seed)
    en = "a the cat dog sofa beach sunset red car mountain snow two children playing water Photo OF My".split()
    zh = list("沙发上的猫狗海滩日落红色汽车山雪两个孩子在水里玩照片我的北京上海很好看")
    punct = list("，。！？：；（）【】「」、“”‘’ＡＢＣａｂｃ１２３－～　") + list(",.!?:;()'\"&-_/")
    extra = ["😀", "🐱", "👍🏽", "🇨🇳", "&amp;", "&lt;b&gt;", "\t", "  ", "Café", "naïve", "ß", "Ⅻ", "ﬁ"]
    out = []
    for i in range(n):
        kind = i % 5
        k = rng.randint(1, 14)
        if kind == 0:
            parts = [rng.choice(en) for _ in range(k)]
            text = " ".join(parts)
        elif kind == 1:
            text = "".join(rng.choice(zh) for _ in range(k))
        elif kind == 2:
            text = " ".join(rng.choice(en) if rng.random() < 0.5 else "".join(rng.choice(zh) for _ in range(3))
                            for _ in range(k))
        elif kind == 3:
            text = "".join(rng.choice(zh + punct) for _ in range(k))
        else:
            text = "".join(rng.choice([*en, *zh, *punct, *extra]) + rng.choice(["", " "]) for _ in range(k))
        out.append(text * (8 if i % 97 == 0 else 1))  # some past the context length
    return out


@pytest.mark.parametrize("family", ["siglip2", "xlmr", "mobileclip"])
def test_query_tokenizer_is_open_clips_on_1000_strings(families: dict[str, Path], family: str, tmp_path: Path) -> None:
    """The query-time tokenizer (numpy BPE, or the Rust ``tokenizers`` replay of the Hugging
    Face tokenizer with open_clip's cleaning) gives open_clip's tokens, byte for byte."""
    import open_clip

    from mmembed.models.hf_tokenizer import describe_hf_tokenizer, save_tokenizer
    from mmembed.models.text_tower import quick_tokenizer

    reference = open_clip.get_tokenizer(f"local-dir:{families[family]}")
    texts = strings()
    if family == "mobileclip":
        settings = {"kind": "clip", "context_length": int(reference.context_length)}
    else:
        described = describe_hf_tokenizer(reference)
        assert described is not None
        settings, as_json = described
        save_tokenizer(str(tmp_path), as_json)
    ours = quick_tokenizer(str(tmp_path), settings)
    want = reference(texts).numpy()
    got = ours(texts)
    differ = [texts[i] for i in range(len(texts)) if not np.array_equal(want[i], got[i])]
    assert not differ, f"{len(differ)} of {len(texts)} differ, e.g. {differ[:3]!r}"
    assert (want != settings.get("pad_id", 0)).sum() > 5 * len(texts)  # real tokens, not just padding


def _ingest(family: str, folder: Path, photos: Path, db: str) -> dict:
    done = run_cli("ingest", str(photos), "--db", db, "--model", f"local-dir:{folder}", timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def _cold(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEMBED_")}
    done = subprocess.run([sys.executable, "-c", _NO_TORCH, *args], capture_output=True, text=True, env=env, timeout=120)
    loaded = [line for line in done.stderr.splitlines() if line.startswith("LOADED=")]
    return done, set(filter(None, loaded[-1].removeprefix("LOADED=").split(","))) if loaded else {"?"}


def _towers(session_cache: Path, folder: Path) -> tuple[dict, dict]:
    from mmembed.models.encoder import local_fingerprint
    from mmembed.models.image_tower import image_tower_folder
    from mmembed.models.text_tower import tower_folder

    fingerprint = local_fingerprint(folder)
    with open(Path(tower_folder(fingerprint)) / "text.json") as f:
        text = json.load(f)
    with open(Path(image_tower_folder(fingerprint)) / "image.json") as f:
        image = json.load(f)
    return text, image


@pytest.mark.parametrize("family", ["xlmr", pytest.param("siglip2", marks=pytest.mark.slow),
                                    pytest.param("mobileclip", marks=pytest.mark.slow),
                                    pytest.param("convnext", marks=pytest.mark.slow)])
def test_family_on_the_fast_path(families: dict[str, Path], family: str, tmp_path: Path, session_cache: Path) -> None:
    """Ingest exports both towers; the stored vectors are open_clip's (cos >= 0.99); a cold
    English, Chinese and image query answer without torch, transformers, open_clip or lancedb."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("red.jpg", "cmyk.jpg", "lying_png.jpg", "rotated_exif6.jpg"):
        shutil.copy(FIXTURE_IMAGES / name, photos / name)
    db = str(tmp_path / "db")
    _ingest(family, families[family], photos, db)
    text, image = _towers(session_cache, families[family])
    assert text["min_cosine_on_check"] >= 0.9999 and image["min_cosine_on_check"] >= 0.9999
    assert image["data"][0] > 10 * image["file"][0]  # sizes: the weights sit in image.onnx.data, memory-mapped
    assert text["scores"]["kind"] == ("sigmoid" if family == "siglip2" else "softmax")

    import lancedb
    import open_clip
    import torch

    rows = lancedb.connect(db).open_table("images").to_arrow().to_pylist()
    model, preprocess = open_clip.create_model_from_pretrained(f"local-dir:{families[family]}", **_kwargs(families[family]))
    model.eval()  # open_clip builds models in train mode: BatchNorm (MobileCLIP's FastViT) would use batch statistics
    from PIL import Image

    from mmembed.sources.decode import load_image

    for row in rows:
        pixels = preprocess(load_image(row["path"]).image.convert("RGB")).unsqueeze(0)
        with torch.no_grad():
            want = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)[0].numpy()
        assert float(np.dot(want, np.asarray(row["image_vector"], dtype=np.float32))) >= 0.99, row["path"]
    del Image

    for query in ("a cat on the sofa", "沙发上的猫", "猫 on the 沙发！"):
        done, loaded = _cold("search", query, "--db", db, "--json")
        assert done.returncode == 0, done.stderr
        assert not loaded, f"{query!r} imported {loaded}"
        assert len(done.stdout.strip().splitlines()) == len(rows)
    done, loaded = _cold("search", "--image", str(photos / "red.jpg"), "--db", db, "--json", "--limit", "1")
    assert done.returncode == 0 and not loaded, (done.stderr, loaded)
    assert json.loads(done.stdout.strip().splitlines()[0])["path"].endswith("red.jpg")


def _kwargs(folder: Path) -> dict:
    from mmembed.models.families import local_kwargs

    return local_kwargs(str(folder))


def test_chinese_query_through_index_search(families: dict[str, Path], tmp_path: Path) -> None:
    """``Index.search`` (what the web app and the API call) takes a Chinese query on the
    multilingual family, and its vector is the torch model's."""
    import mmembed

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("red.jpg", "cmyk.jpg"):
        shutil.copy(FIXTURE_IMAGES / name, photos / name)
    index = mmembed.Index(str(tmp_path / "db"), model=f"local-dir:{families['xlmr']}")
    index.ingest(photos)
    hits = index.search("沙发上的猫", limit=2)
    assert len(hits) == 2 and all(-1.0 <= h.score <= 1.0 for h in hits)
    from mmembed.models.encoder import Encoder

    onnx = Encoder(f"local-dir:{families['xlmr']}", device="cpu", precision="fp32")
    torch_side = Encoder(f"local-dir:{families['xlmr']}", device="cpu", precision="fp32", runtime="torch")
    assert onnx.on_onnx
    texts = ["沙发上的猫", "一只狗在海滩上奔跑，日落。", "猫 cat 沙发 sofa！？"]
    assert float((onnx.encode_text(texts) * torch_side.encode_text(texts)).sum(axis=1).min()) >= 0.9999


def test_sigmoid_tags_use_the_models_scale_and_bias() -> None:
    from mmembed.models.zeroshot import probabilities

    cos = np.array([[0.9, 0.1, -0.2]], dtype=np.float32)
    sig = probabilities(cos, {"kind": "sigmoid", "scale": 10.0, "bias": -5.0})
    assert np.allclose(sig, 1 / (1 + np.exp(-(10 * cos - 5))))
    soft = probabilities(cos, {"kind": "softmax", "scale": 50.0})
    assert np.isclose(soft.sum(), 1.0) and np.allclose(soft, np.exp(50 * cos) / np.exp(50 * cos).sum())


def _copy(folder: Path, dest: Path) -> Path:
    """A copy that is another model (its config differs by a space): no export of the original serves it."""
    shutil.copytree(folder, dest)
    (dest / "open_clip_config.json").write_text((folder / "open_clip_config.json").read_text() + " ")
    return dest


def test_bad_model_folders_are_one_line(families: dict[str, Path], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(FIXTURE_IMAGES / "red.jpg", photos / "red.jpg")

    no_tok = _copy(families["siglip2"], tmp_path / "no-tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (no_tok / name).unlink()
    line = one_error_line(run_cli("ingest", str(photos), "--db", str(tmp_path / "a"), "--model", f"local-dir:{no_tok}"))
    assert str(no_tok / "tokenizer.json") in line

    no_config = _copy(families["xlmr"], tmp_path / "no-config")
    (no_config / "config.json").unlink()
    line = one_error_line(run_cli("ingest", str(photos), "--db", str(tmp_path / "b"), "--model", f"local-dir:{no_config}",
                                  env={"HF_HUB_OFFLINE": "1"}))
    assert str(no_config / "config.json") in line


@pytest.mark.slow
def test_tokenizer_of_another_model_is_one_line(families: dict[str, Path], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(FIXTURE_IMAGES / "red.jpg", photos / "red.jpg")
    wrong = _copy(families["siglip2"], tmp_path / "wrong-vocab")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
    from make_families import _save_tokenizer, _train_tokenizer

    _save_tokenizer(_train_tokenizer("gemma", 900), "gemma", wrong)  # 900 tokens for a 600-row embedding
    line = one_error_line(run_cli("ingest", str(photos), "--db", str(tmp_path / "c"), "--model", f"local-dir:{wrong}"))
    assert str(wrong / "tokenizer.json") in line and "not this model's tokenizer" in line


_BLOCK = """import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('transformers', 'tokenizers'):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, _Block())
"""


@pytest.mark.slow
def test_missing_hf_extra_is_one_line(families: dict[str, Path], tmp_path: Path) -> None:
    """Without transformers (an install without the hf extra), a family that needs it stops
    with one line naming the extra, before any work."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_BLOCK)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(FIXTURE_IMAGES / "red.jpg", photos / "red.jpg")
    folder = _copy(families["xlmr"], tmp_path / "xlmr")
    line = one_error_line(run_cli("ingest", str(photos), "--db", str(tmp_path / "db"), "--model", f"local-dir:{folder}",
                                  env={"PYTHONPATH": str(tmp_path / "site")}))
    assert "pip install 'mmembed[hf]'" in line and str(folder) in line


def test_auto_cutoff_does_not_depend_on_a_familys_calibration() -> None:
    """``--cutoff auto`` keeps a hit when it stands ``AUTO_CUTOFF_Z`` robust spreads above the
    median of the query's scores over the table: a family whose cosines sit lower and closer
    together (SigLIP's around 0.1, CLIP's around 0.25) keeps the same hits, since any
    ``a * cos + b`` (a > 0) moves the median and the spread alike."""
    from mmembed.retrieval.query import Hit, SearchOptions, apply_cutoff, score_stats

    rng = np.random.default_rng(0)
    table = rng.standard_normal((2000, 32)).astype(np.float32)
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    query = table[:5].mean(axis=0)
    query /= np.linalg.norm(query)
    cos = table @ query
    kept = []
    for a, b in ((1.0, 0.0), (0.3, 0.05), (2.5, -0.4)):
        scores = a * cos + b
        # the table's scores as a matrix of "vectors" whose dot with [1] is the score
        background = score_stats(scores[:, None], np.ones(1, np.float32))
        hits = [Hit(path=str(i), score=float(s), id=str(i)) for i, s in enumerate(scores)]
        kept.append({h.id for h in apply_cutoff(hits, SearchOptions(cutoff="auto"), background)})
    assert kept[0] and 0 < len(kept[0]) < 200
    assert kept[0] == kept[1] == kept[2]


def test_models_lists_the_families_with_their_measurements() -> None:
    """``mmembed models --json``: every family on the fast path, the extra it needs, and the
    numbers benchmarks/families.py recorded (not made up: absent where not measured)."""
    from mmembed.models.catalog import FAMILIES, measured

    done = run_cli("models", "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["model"] for r in rows] == [f.model for f in FAMILIES]
    assert {r["model"]: r["extra"] for r in rows}["xlm-roberta-base-ViT-B-32"] == "hf"
    record = {f["family"]: f for f in measured().get("families", [])}
    for row in rows:
        found = record.get(row["key"])
        assert row["image_per_s"] == (found["ingest_onnx_img_s"] if found else None)
        assert row["cold_text_query_s"] == (found["cold_text_query_en_s"] if found else None)
    assert any(r["image_per_s"] for r in rows), "no family measured: run benchmarks/families.py"
