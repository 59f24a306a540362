"""Fusion variants on the Flickr8k fusion protocol: mean/concat against trained attention modules.

Item = image + caption #1, queries = captions #2..#5 (mmembed.retrieval.evaluation.fusion_protocol).
Every module is trained on the TRAIN split only (contrastive: fused(image, caption A) must be
retrieved by the other captions of the same image from among the batch's items) and scored on DEV.
All modules start exactly equal to ``mean`` (zero-initialised output projection).

Variants
- ``attention_current``: mmembed.models.fusion.AttentionFusion with train_attention's defaults.
- ``xattn_text``: the text vector attends over (image, text); a zero-init residual is added to the
  text side only, the text is renormalised and mixed with the image at the fixed weight w.
- ``xattn_text_mix``: the same, trained with image mix-up augmentation (each train image vector
  is replaced by normalize((1-a)·î + a·î_random)), which makes train images about as
  uninformative as dev images are for this memorised encoder.
- ``text_residual``: a text-only low-rank residual (no image input), a reference.
- ``token_xattn`` (``--tokens``): text tokens attend over image CLS+patch tokens from
  open_clip's ``forward_intermediates``; zero-init residual on the text side, same mix-up.

Vectors are read from ``--cache`` (``vec_{split}.npz`` with arrays i, c) or computed with
mmembed.Encoder and written there. Prints one JSON object.

    python benchmarks/fusion_variants.py [--seeds 0 1 2] [--tokens] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


# ------------------------------------------------------------------ modules
def build_modules():
    import torch
    import torch.nn.functional as F
    from torch import nn

    from mmembed.models.fusion import AttentionFusion

    def CrossAttnTextFusion(dim: int, weight: float = 0.2, hidden: int = 64):  # noqa: N802
        """The shipped module: text attends over (image, text), zero-init text-side residual, fixed mix."""
        return AttentionFusion(dim, weight, hidden)

    class TextResidual(nn.Module):
        """Reference: text-only low-rank residual, no image input; same fixed mix."""

        def __init__(self, dim: int, weight: float = 0.2, hidden: int = 64) -> None:
            super().__init__()
            self.register_buffer("weight", torch.tensor(float(weight)))
            self.a, self.b = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
            nn.init.zeros_(self.b.weight)
            nn.init.zeros_(self.b.bias)

        def forward(self, image, text, has_text):
            m = has_text.to(image.dtype)[:, None]
            text = m * text + (1 - m) * image
            text = F.normalize(text + m * self.b(self.a(text)), dim=-1)
            fused = F.normalize(self.weight * image + (1 - self.weight) * text, dim=-1)
            return torch.where(has_text[:, None], fused, image)

    class TokenCrossAttnFusion(nn.Module):
        """Text tokens attend over image tokens (CLS + patches), pooled over valid text tokens."""

        def __init__(self, dim: int, weight: float = 0.2, hidden: int = 64) -> None:
            super().__init__()
            self.hidden = hidden
            self.register_buffer("weight", torch.tensor(float(weight)))
            self.nt, self.ni = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.q, self.k, self.v = nn.Linear(dim, hidden), nn.Linear(dim, hidden), nn.Linear(dim, hidden)
            self.out = nn.Linear(hidden, dim)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

        def forward(self, itok, ttok, length):
            image = F.normalize(itok[:, 0], dim=-1)
            text = F.normalize(ttok[torch.arange(len(ttok)), length - 1], dim=-1)
            ik = self.ni(itok)
            att = (self.q(self.nt(ttok)) @ self.k(ik).transpose(1, 2) / self.hidden ** 0.5).softmax(-1)
            o = att @ self.v(ik)
            valid = (torch.arange(ttok.shape[1])[None] < length[:, None]).to(o.dtype)[..., None]
            o = (o * valid).sum(1) / valid.sum(1)
            text = F.normalize(text + self.out(o), dim=-1)
            return F.normalize(self.weight * image + (1 - self.weight) * text, dim=-1)

    return CrossAttnTextFusion, TextResidual, TokenCrossAttnFusion


# ------------------------------------------------------------------ data
def caption_set(split: str):
    from mmembed.retrieval.evaluation import load_caption_set

    d = SHARED / "data" / "flickr8k"
    return load_caption_set(d / split, d / f"{split}_captions.csv")


def vectors(split: str, model: str, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    cs = caption_set(split)
    path = cache / f"vec_{split}.npz"
    seconds = None
    if path.is_file():
        d = np.load(path)
        img, cap = d["i"], d["c"]
    else:
        import mmembed

        enc = mmembed.Encoder(model, device="cpu", batch_size=100)
        t0 = time.perf_counter()
        img, cap = enc.encode_images(cs.images), enc.encode_text(cs.captions)
        seconds = time.perf_counter() - t0
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, i=img, c=cap)
    if len(img) != len(cs.images) or len(cap) != len(cs.captions):
        raise SystemExit(f"{path}: cached vectors do not match {split}; delete it to recompute")
    return cs.caption_image, img.astype(np.float32), cap.astype(np.float32), seconds


def tokens(split: str, model: str, cache: Path) -> tuple[dict[str, np.ndarray], float | None]:
    """Projected (256-d) CLS+patch tokens per image and text tokens per caption, fp16."""
    path = cache / f"tok_{split}.npz"
    if path.is_file():
        d = np.load(path)
        return {k: d[k] for k in ("img", "txt", "length")}, None
    import open_clip
    import torch
    from PIL import Image

    m, _, pre = open_clip.create_model_and_transforms(model)
    tok = open_clip.get_tokenizer(model)
    m.eval()
    cs = caption_set(split)
    t0 = time.perf_counter()
    img, txt, length = [], [], []
    with torch.no_grad():
        for s in range(0, len(cs.images), 100):
            x = torch.stack([pre(Image.open(p).convert("RGB")) for p in cs.images[s:s + 100]])
            o = m.forward_intermediates(image=x, image_indices=1, image_output_fmt="NLC",
                                        image_output_extra_tokens=True, intermediates_only=True)
            h = torch.cat([o["image_intermediates_prefix"][-1], o["image_intermediates"][-1]], 1)
            img.append((m.visual.ln_post(h) @ m.visual.proj).half().numpy())
        for s in range(0, len(cs.captions), 500):
            t = tok(cs.captions[s:s + 500])
            o = m.forward_intermediates(text=t, text_indices=1, intermediates_only=True)
            txt.append((m.ln_final(o["text_intermediates"][-1]) @ m.text_projection).half().numpy())
            length.append(t.argmax(-1).numpy() + 1)  # EOT has the highest id
    seconds = time.perf_counter() - t0
    out = {"img": np.concatenate(img), "txt": np.concatenate(txt), "length": np.concatenate(length)}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out, seconds


# ------------------------------------------------------------------ training
def train(step_fn, params, caption_image, queries, *, epochs, lr, wd, bs, seed, objective="all"):
    """Shared loop, the objective of mmembed.models.fusion.train_attention: each step fuses a batch of items
    (image + one caption A each); with objective "all" every other caption of an item is a query
    for it, with "pair" (the first objective, kept for comparison) one other caption B is, and the
    loss is symmetric. Cross-entropy over the batch, learnable temperature (init 1/20), AdamW, one-cycle.

    ``step_fn(batch, caption_a, rng)`` returns the fused batch; ``queries`` holds query vectors per caption.
    """
    import torch
    import torch.nn.functional as F

    from mmembed.models.fusion import _caption_table, lr_schedule

    members, counts = _caption_table(caption_image, int(caption_image.max()) + 1)
    items = np.flatnonzero(counts >= 2)
    slots = np.arange(members.shape[1])[None, :]
    rng = np.random.default_rng(seed)
    log_scale = torch.nn.Parameter(torch.tensor(float(np.log(20.0))))
    opt = torch.optim.AdamW([*params, log_scale], lr=lr, weight_decay=wd)
    bs = min(bs, len(items))
    spe = max(1, len(items) // bs)
    sched = lr_schedule(opt, lr, epochs * spe)
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = items[rng.permutation(len(items))]
        for s in range(spe):
            b = order[s * bs:(s + 1) * bs]
            n = counts[b]
            chosen = (rng.random(len(b)) * n).astype(np.int64)
            fused = step_fn(b, members[b, chosen], rng)
            scale = log_scale.exp().clamp(max=100)
            if objective == "all":
                owner, slot = np.nonzero((slots < n[:, None]) & (slots != chosen[:, None]))
                loss = F.cross_entropy(scale * queries[members[b[owner], slot]] @ fused.T, torch.from_numpy(owner))
            else:
                other = (chosen + 1 + (rng.random(len(b)) * (n - 1)).astype(np.int64)) % n
                logits = scale * queries[members[b, other]] @ fused.T
                lab = torch.arange(len(b))
                loss = (F.cross_entropy(logits, lab) + F.cross_entropy(logits.T, lab)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return time.perf_counter() - t0


def mixup(x, a, rng):
    import torch.nn.functional as F

    if not a:
        return x
    return F.normalize((1 - a) * x + a * x[rng.integers(0, len(x), len(x))], dim=-1)


# ------------------------------------------------------------------ scoring
def score(items: np.ndarray, captions: np.ndarray, caption_image: np.ndarray, mean_ranks=None):
    from mmembed.retrieval.evaluation import _ranks, protocol_split, recall

    _, q, owner = protocol_split(caption_image)
    ranks = _ranks(captions[q] @ items.T, owner)
    out = recall(ranks)
    if mean_ranks is not None:  # paired difference in R@1 against mean, with its standard error
        d = (ranks < 1).astype(float) - (mean_ranks < 1)
        out["dR@1_vs_mean"] = round(100 * d.mean(), 2)
        out["dR@1_se"] = round(100 * d.std() / np.sqrt(len(d)), 2)
    return out, ranks


def summarise(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if k not in ("seed",)]
    return {k: {"mean": round(float(np.mean([r[k] for r in runs])), 2),
                "std": round(float(np.std([r[k] for r in runs], ddof=1)) if len(runs) > 1 else 0.0, 2)}
            for k in keys}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=f"local-dir:{SHARED / 'models' / 'micro-clip'}")
    p.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    p.add_argument("--weight", type=float, default=0.2, help="image weight w of mean (the fixed mix)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=160)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--objective", choices=("all", "pair"), default="all",
                   help="all: every other caption of an item is a query (mmembed's); pair: one, symmetric loss")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--mix", type=float, default=0.7, help="image mix-up strength for *_mix variants")
    p.add_argument("--skip-current", action="store_true", help="skip mmembed's current AttentionFusion (slowest)")
    p.add_argument("--tokens", action="store_true", help="also run the token-level cross-attention variant")
    p.add_argument("--token-seeds", type=int, nargs="+", help="seeds for the token variant [default: --seeds]")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    from mmembed.retrieval.evaluation import fusion_protocol, protocol_split
    from mmembed.models.fusion import train_attention

    CrossAttn, TextRes, TokXAttn = build_modules()
    w = a.weight
    dci, dI, dC, dsec = vectors("dev", a.model, a.cache)
    tci, tI, tC, tsec = vectors("train", a.model, a.cache)
    base = fusion_protocol(dI, dC, dci, weight=w)
    ic, _, _ = protocol_split(dci)
    mean_items = dI * w + dC[ic] * (1 - w)
    mean_items /= np.linalg.norm(mean_items, axis=1, keepdims=True)
    _, mean_ranks = score(mean_items, dC, dci)
    ones = torch.ones(len(ic), dtype=torch.bool)
    It, Ct = torch.from_numpy(tI), torch.from_numpy(tC)
    hp = dict(epochs=a.epochs, lr=a.lr, wd=a.weight_decay, bs=a.batch, objective=a.objective)

    def run_vector_module(make, mix, seed):
        torch.manual_seed(seed)
        mod = make()
        with torch.no_grad():
            init = mod(torch.from_numpy(dI), torch.from_numpy(dC[ic]), ones).numpy()
        identical = bool(np.allclose(init, mean_items, atol=1e-6))

        def step(b, ca, rng):
            return mod(mixup(It[b], mix, rng), Ct[ca], torch.ones(len(b), dtype=torch.bool))

        mod.train()
        sec = train(step, mod.parameters(), tci, Ct, seed=seed, **hp)
        mod.eval()
        with torch.no_grad():
            fused = mod(torch.from_numpy(dI), torch.from_numpy(dC[ic]), ones).numpy()
        out, _ = score(fused, dC, dci, mean_ranks)
        return {"seed": seed, **out, "train_s": round(sec, 2), "init_equals_mean": identical}

    variants: dict[str, dict] = {}
    specs = {
        "xattn_text": (lambda: CrossAttn(tI.shape[1], w, a.hidden), 0.0),
        f"xattn_text_mix{a.mix}": (lambda: CrossAttn(tI.shape[1], w, a.hidden), a.mix),
        "text_residual": (lambda: TextRes(tI.shape[1], w, a.hidden), 0.0),
    }
    for name, (make, mix) in specs.items():
        runs = [run_vector_module(make, mix, s) for s in a.seeds]
        variants[name] = {"runs": runs, "summary": summarise([{k: v for k, v in r.items() if k != "init_equals_mean"} for r in runs])}
        print(f"# {name}: {variants[name]['summary']}", flush=True)

    if not a.skip_current:
        mod, stats = train_attention(tI, tC, tci, weight=w, seed=a.seeds[0])
        with torch.no_grad():
            fused = mod(torch.from_numpy(dI), torch.from_numpy(dC[ic]), ones).numpy()
        out, _ = score(fused, dC, dci, mean_ranks)
        variants["attention_current"] = {"runs": [{"seed": a.seeds[0], **out, "train_s": round(stats.seconds, 2)}]}

    token_info = None
    if a.tokens:
        dtk, dtok_s = tokens("dev", a.model, a.cache)
        ttk, ttok_s = tokens("train", a.model, a.cache)
        tIT, tTT, tL = (torch.from_numpy(ttk[k]) for k in ("img", "txt", "length"))
        tL = tL.long()
        dIT, dTT, dL = (torch.from_numpy(dtk[k]) for k in ("img", "txt", "length"))
        dL = dL.long()
        import torch.nn.functional as F

        tq = F.normalize(tTT[torch.arange(len(tTT)), tL - 1].float(), dim=-1)

        def tok_eval(mod):
            with torch.no_grad():
                j = torch.from_numpy(ic)
                return torch.cat([mod(dIT[s:s + 500].float(), dTT[j[s:s + 500]].float(), dL[j[s:s + 500]])
                                  for s in range(0, len(ic), 500)]).numpy()

        runs = []
        for seed in a.token_seeds or a.seeds:
            torch.manual_seed(seed)
            mod = TokXAttn(tI.shape[1], w, a.hidden)
            _, init_ranks = score(tok_eval(mod), dC, dci)

            def step(b, ca, rng, mod=mod):
                it = tIT[b].float()
                if a.mix:
                    it = (1 - a.mix) * it + a.mix * tIT[rng.integers(0, len(tIT), len(b))].float()
                return mod(it, tTT[ca].float(), tL[ca])

            mod.train()
            sec = train(step, mod.parameters(), tci, tq, seed=seed, **hp)
            mod.eval()
            t0 = time.perf_counter()
            out, _ = score(tok_eval(mod), dC, dci, mean_ranks)
            runs.append({"seed": seed, **out, "train_s": round(sec, 2), "fuse_dev_s": round(time.perf_counter() - t0, 2),
                         "init_rank_agreement_with_mean": round(float((init_ranks == mean_ranks).mean()), 4)})
        variants[f"token_xattn_mix{a.mix}"] = {"runs": runs, "summary": summarise(
            [{k: v for k, v in r.items() if k not in ("init_rank_agreement_with_mean",)} for r in runs])}
        token_info = {
            "extract_s": {"dev": dtok_s, "train": ttok_s},  # None when read from cache
            "bytes_per_item_image_tokens_fp16": int(dtk["img"].shape[1] * dtk["img"].shape[2] * 2),
            "bytes_per_caption_text_tokens_fp16": int(dtk["txt"].shape[1] * dtk["txt"].shape[2] * 2),
            "bytes_per_item_embedding_level_extra": 0,
            "note": "projected 256-d tokens (ln_post/ln_final + projection); CLS token = image vector, EOT token = text vector",
        }

    print(json.dumps({
        "benchmark": "fusion_variants",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "torch_threads": a.threads, "torch": torch.__version__},
        "model": a.model,
        "data": {"train": str(SHARED / "data/flickr8k/train"), "dev": str(SHARED / "data/flickr8k/dev")},
        "protocol": "item = image + caption #1, queries = captions #2..#5; modules trained on train only",
        "weight": w,
        "hyperparameters": {**hp, "hidden": a.hidden, "mix": a.mix, "seeds": a.seeds,
                            "loss": "cross-entropy over the batch's fused items, learnable temperature init 1/20; "
                                    "objective all: every other caption is a query; pair: one, symmetric"},
        "vector_encode_s": {"dev": dsec, "train": tsec},
        "dev_baselines": base,
        "dev_variants": variants,
        "token_level": token_info,
    }, indent=1))


if __name__ == "__main__":
    main()
