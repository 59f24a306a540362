"""Text queries without torch: the model's text tower as ONNX, run by onnxruntime.

Files, per model: ``text.onnx`` (the transformer, projection and pooling), ``token_embedding.npy``
(memory-mapped; looked up in numpy) and ``text.json`` (fingerprint, dimension, context length).

Importing torch and open_clip costs seconds, which a one-shot ``mmembed search`` cannot
afford. At ingest (where torch is loaded anyway) :func:`export_text_tower` writes the text
tower to ``text.onnx`` in the user cache (:func:`tower_folder`, one per model), with the
facts a query needs (dimension, context length, fingerprint); :class:`OnnxTextEncoder` then encodes queries with onnxruntime and
:class:`ClipTokenizer`, a numpy-only port of CLIP's byte-pair tokenizer that reads the
vocabulary file shipped with open_clip (found without importing open_clip).

The export is only written when it is faithful: it is checked against ``encode_text`` on
sample texts (cosine >= 0.9999, identical tokens) and skipped otherwise (models with other
tokenizers or pooling), in which case search uses torch as before.

The exported graph takes tokens cut after the longest end-of-text token of the batch: with
a causal mask and pooling at end-of-text, the positions after it cannot change the result,
and a short query then costs a few milliseconds instead of a full 77-token pass.
"""

from __future__ import annotations

import contextlib
import gzip
import html
import io
import json
import os
import re
import warnings
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["ClipTokenizer", "OnnxTextEncoder", "export_text_tower", "tower_folder", "quantize_text_tower",
           "TEXT_TOWER_FILE", "INT8_TEXT_FILE"]

TEXT_TOWER_FILE = "text.onnx"
INT8_TEXT_FILE = "text.int8.onnx"
_INFO_FILE = "text.json"
_INT8_INFO_FILE = "text.int8.json"
_MIN_INT8_COSINE = 0.99  # the int8 text graph against the fp32 one, worst check text
_EMBEDDING_FILE = "token_embedding.npy"
_FORMAT = 2  # bumped when the files change meaning; an older export is made again
_PLAIN = re.compile(r"[ -%'-~]*")  # printable ASCII without '&' (ftfy may unescape entities)
_CHECK_TEXTS = [
    "a dog on grass", "A DOG, running!! on the BEACH at sunset", "Café & crème brûlée — 2019",
    "two children playing in the water near a red boat", "x", "über straße 東京 😀", "it's the cat's toy",
    "  lots   of\tspace  ", "&amp; html &lt;entities&gt;", "word " * 100,
]


@lru_cache(maxsize=1)
def _byte_table() -> dict[int, str]:
    """CLIP's reversible map from bytes to printable unicode characters."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars)))


def _vocab_path() -> str:
    """open_clip's BPE vocabulary file, located without importing open_clip (and torch)."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip is not installed")
    return os.path.join(list(spec.submodule_search_locations)[0], "bpe_simple_vocab_16e6.txt.gz")


class ClipTokenizer:
    """CLIP's byte-level BPE (the same vocabulary, cleaning and truncation as open_clip's
    ``SimpleTokenizer`` with its default 'lower' cleaning); returns numpy arrays."""

    def __init__(self, context_length: int = 77, vocab_path: str | None = None) -> None:
        import regex

        lines = gzip.open(vocab_path or _vocab_path()).read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
        base = list(_byte_table().values())
        vocab = base + [c + "</w>" for c in base] + ["".join(m) for m in merges]
        vocab += ["<start_of_text>", "<end_of_text>"]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.sot = self.encoder["<start_of_text>"]
        self.eot = self.encoder["<end_of_text>"]
        self.context_length = context_length
        self._cache: dict[str, list[int]] = {}
        self._pattern = regex.compile(
            r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    def _bpe(self, token: str) -> list[int]:
        if token in self._cache:
            return self._cache[token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, 1 << 30))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        ids = [self.encoder[w] for w in word]
        self._cache[token] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, without start/end tokens."""
        if not _PLAIN.fullmatch(text):  # ftfy leaves plain printable ASCII as it is; skip its import
            import ftfy

            text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        text = " ".join(text.split()).strip().lower()
        table = _byte_table()
        ids: list[int] = []
        for piece in self._pattern.findall(text):
            if piece in ("<start_of_text>", "<end_of_text>"):
                ids.append(self.encoder[piece])
                continue
            ids.extend(self._bpe("".join(table[b] for b in piece.encode("utf-8"))))
        return ids

    def __call__(self, texts: list[str], *, trim: bool = False) -> np.ndarray:
        """(N, context_length) int64 tokens as open_clip makes them; ``trim`` cuts the padding
        after the longest text's end-of-text token."""
        rows = []
        for text in texts:
            ids = [self.sot, *self.encode(text), self.eot]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot
            rows.append(ids)
        width = max(map(len, rows)) if trim else self.context_length
        out = np.zeros((len(rows), width), dtype=np.int64)
        for i, ids in enumerate(rows):
            out[i, : len(ids)] = ids
        return out


class OnnxTextEncoder:
    """Encodes text with an exported text tower; float32 (N, D) unit rows, like ``Encoder.encode_text``."""

    def __init__(self, folder: str, *, one_shot: bool = False, precision: str = "fp32") -> None:
        import onnxruntime as ort

        with open(os.path.join(folder, _INFO_FILE)) as f:
            self.info = json.load(f)
        self.precision = precision
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Its threads must not spin after a query: numpy scores the vectors next, on the same cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if one_shot:  # a process that encodes one query: loading ~0.2 s faster beats ~10 ms slower runs
            options.add_session_config_entry("session.disable_prepacking", "1")
        # onnxruntime builds the session without holding the GIL: build the tokenizer meanwhile
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            graph = INT8_TEXT_FILE if precision == "int8" else TEXT_TOWER_FILE
            session = pool.submit(ort.InferenceSession, os.path.join(folder, graph), options,
                                  providers=["CPUExecutionProvider"])
            self.tokenizer = quick_tokenizer(folder, self.info.get("tokenizer") or
                                             {"kind": "clip", "context_length": self.info["context_length"]})
            self.session = session.result()
        self.trim = bool(self.info.get("trim", True))  # CLIP's causal tower: the padding cannot matter
        self.fingerprint: str = self.info["fingerprint"]
        self.dim: int = int(self.info["dim"])
        # The token embedding (40 % of a ViT-B-32 text tower) stays out of the ONNX graph: a
        # memory-mapped table of which a query reads a few rows, so loading the session is faster.
        self.embedding = np.load(os.path.join(folder, _EMBEDDING_FILE), mmap_mode="r")

    def encode_text(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self.precision == "int8" and len(texts) > 1:
            # dynamic quantisation scales by the whole input: one text per run keeps a text's
            # vector its own, whatever it is batched with
            return np.concatenate([self.encode_text([t]) for t in texts])
        tokens = self.tokenizer(list(texts), trim=self.trim)
        embedded = np.ascontiguousarray(self.embedding[tokens], dtype=np.float32)
        (out,) = self.session.run(None, {"embedded": embedded, "tokens": tokens})
        out = out.astype(np.float32, copy=False)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def tower_folder(fingerprint: str) -> str:
    """Where the text tower of the model with ``fingerprint`` is kept (one per model, shared by tables)."""
    import hashlib

    from ..config import cache_dir

    return os.path.join(cache_dir(), "text-towers", hashlib.sha256(fingerprint.encode()).hexdigest()[:24])


def tower_exists(folder: str, fingerprint: str) -> bool:
    """True when ``folder`` holds an exported text tower for the model with ``fingerprint``."""
    try:
        with open(os.path.join(folder, _INFO_FILE)) as f:
            info = json.load(f)
        return (info.get("format") == _FORMAT and info.get("fingerprint") == fingerprint
                and os.path.isfile(os.path.join(folder, TEXT_TOWER_FILE))
                and os.path.isfile(os.path.join(folder, _EMBEDDING_FILE))
                and info.get("files", _file_stamps(folder)) == _file_stamps(folder))
    except (OSError, ValueError, AttributeError):
        return False


def _changed_since_export(folder: str, fingerprint: str) -> bool:
    try:
        with open(os.path.join(folder, _INFO_FILE)) as f:
            info = json.load(f)
        if info.get("format") != _FORMAT or info.get("fingerprint") != fingerprint or "files" not in info:
            return False
        return info["files"] != _file_stamps(folder)
    except (OSError, ValueError, AttributeError):
        return False


def _file_stamps(folder: str) -> dict[str, list[int]]:
    """Size and mtime of the exported files: a file changed after the export (a copy cut short,
    a write over it) is not the export, and is made again."""
    out = {}
    extra = ("tokenizer.json",) if os.path.exists(os.path.join(folder, "tokenizer.json")) else ()
    for name in (TEXT_TOWER_FILE, _EMBEDDING_FILE, *extra):
        st = os.stat(os.path.join(folder, name))
        out[name] = [st.st_size, st.st_mtime_ns]
    return out


def load_text_tower(folder: str, fingerprint: str, *, one_shot: bool = False,
                    precision: str = "fp32") -> OnnxTextEncoder | None:
    """The exported text tower in ``folder`` if it exists and matches ``fingerprint``; else None.
    Raises when it was exported but its files changed since (damaged: export it again).

    At ``precision="int8"`` the quantised graph (made on first use by :func:`quantize_text_tower`)
    runs; the fp32 one when no faithful int8 graph can be made.
    """
    if not tower_exists(folder, fingerprint):
        if _changed_since_export(folder, fingerprint):
            raise ValueError("its files changed after the export")
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    if precision == "int8" and not int8_text_tower_exists(folder) and quantize_text_tower(folder) is None:
        precision = "fp32"
    return OnnxTextEncoder(folder, one_shot=one_shot, precision=precision)


def int8_text_tower_exists(folder: str) -> bool:
    """True when the int8 text graph was made from the fp32 one now in ``folder``, for this CPU kind."""
    from .quantize import cpu_has_vnni

    try:
        with open(os.path.join(folder, _INFO_FILE)) as f:
            info = json.load(f)
        with open(os.path.join(folder, _INT8_INFO_FILE)) as f:
            int8 = json.load(f)
        st = os.stat(os.path.join(folder, INT8_TEXT_FILE))
        return (int8.get("from") == info.get("files", {}).get(TEXT_TOWER_FILE)
                and int8.get("reduce_range") == (not cpu_has_vnni()) and int8.get("file") == [st.st_size, st.st_mtime_ns])
    except (OSError, ValueError, AttributeError):
        return False


def quantize_text_tower(folder: str) -> dict[str, Any] | None:
    """Quantise the text graph in ``folder`` to int8 (as ``image_tower.quantize_image_tower``
    does the image graph) and keep it only when its worst cosine to fp32 on the check texts
    reaches 0.99; None (nothing written) otherwise. The token embedding stays fp32."""
    from .quantize import cpu_has_vnni, make_int8

    try:
        with open(os.path.join(folder, _INFO_FILE)) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None

    def check(path: str) -> float:
        import onnxruntime as ort

        encoder = OnnxTextEncoder(folder)
        from .text_export import CHECK_TEXTS  # with Chinese and full-width punctuation

        want = encoder.encode_text(CHECK_TEXTS)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        encoder.session, encoder.precision = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]), "int8"
        return float((want * encoder.encode_text(CHECK_TEXTS)).sum(axis=1).min())

    return make_int8(folder, TEXT_TOWER_FILE, INT8_TEXT_FILE, _INT8_INFO_FILE, reduce_range=not cpu_has_vnni(),
                     minimum=_MIN_INT8_COSINE, check=check,
                     record={"from": info.get("files", {}).get(TEXT_TOWER_FILE)})


def export_text_tower(encoder: Any, folder: str) -> dict[str, Any] | None:
    """Write ``encoder``'s text tower to ``folder`` as ONNX when that is faithful; return its info.

    Returns None (and writes nothing) for models this path does not cover: not a plain CLIP
    text tower with end-of-text pooling, another tokenizer, or a check that fails.
    """
    import torch

    encoder = fp32_torch(encoder)
    model = encoder._model
    tokenizer = encoder._tokenizer
    if not _exportable(model, tokenizer):
        return _export_family(encoder, folder)
    ours = ClipTokenizer(int(tokenizer.context_length))
    reference = tokenizer(_CHECK_TEXTS)
    if not np.array_equal(ours(_CHECK_TEXTS), reference.numpy()):
        return None
    reference_model = model  # fp32 on the CPU; the export only reads it
    tower = _TextTower(reference_model)
    tmp = os.path.join(folder, f".{TEXT_TOWER_FILE}.{os.getpid()}.tmp")
    os.makedirs(folder, exist_ok=True)
    sample = torch.from_numpy(ours(["a photo of a cat", "two dogs"], trim=True))
    embedded = reference_model.token_embedding(sample).detach()
    batch = torch.export.Dim("batch", min=1, max=4096)
    length = torch.export.Dim("length", min=2, max=int(tokenizer.context_length))
    table = os.path.join(folder, f".{_EMBEDDING_FILE}.{os.getpid()}.tmp.npy")
    np.save(table, reference_model.token_embedding.weight.detach().numpy().astype(np.float32))
    with torch.inference_mode(False), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # torch.export keeps batch and length symbolic (the TorchScript tracer bakes them in)
        torch.onnx.export(tower, (embedded, sample), tmp, input_names=["embedded", "tokens"],
                          output_names=["vectors"],
                          dynamic_shapes={"embedded": {0: batch, 1: length}, "tokens": {0: batch, 1: length}},
                          dynamo=True, optimize=True, external_data=False)
    info = {"format": _FORMAT, "fingerprint": encoder.spec.fingerprint, "model": encoder.spec.name, "dim": encoder.dim,
            "context_length": int(tokenizer.context_length)}
    try:
        check = _check_export(tmp, table, reference_model, tokenizer, info)
    except Exception:  # noqa: BLE001 - an export onnxruntime cannot run is simply not used
        check = None
    if check is None or check < 0.9999:
        os.remove(tmp)
        os.remove(table)
        note_on_torch(encoder.spec, "text")
        return None
    info["min_cosine_on_check"] = round(float(check), 6)
    info.update(scores=model_scores(model), tokenizer={"kind": "clip", "context_length": info["context_length"]}, trim=True)
    os.replace(table, os.path.join(folder, _EMBEDDING_FILE))
    os.replace(tmp, os.path.join(folder, TEXT_TOWER_FILE))
    info["files"] = _file_stamps(folder)
    with open(os.path.join(folder, _INFO_FILE), "w") as f:
        json.dump(info, f)
    return info


def clip_context_length(fingerprint: str) -> int | None:
    """How many tokens the exported text tower of the model with ``fingerprint`` reads, from its
    export's record (no model loaded); None without an export, or for a tokenizer other than CLIP's."""
    try:
        with open(os.path.join(tower_folder(fingerprint), _INFO_FILE)) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    length = info.get("context_length")
    clip = (info.get("tokenizer") or {}).get("kind", "clip") == "clip"
    return int(length) if clip and isinstance(length, int) else None


def cut_term_notes(terms: list[str], context_length: int | None) -> list[str]:
    """A note for each query term longer than a text tower of ``context_length`` tokens reads
    (CLIP's tokenizer: 77, micro-clip's 32): its words past that are silently dropped. Cheap for
    short terms (no tokenizer is loaded when no term could be cut)."""
    if context_length is None or all(len(t.encode("utf-8")) <= context_length - 2 for t in terms):
        return []  # a token covers at least one byte: too short to be cut
    tokenizer = _clip_tokenizer(context_length)
    notes = []
    for term in terms:
        ids = tokenizer.encode(term)
        if len(ids) > context_length - 2:
            shown = " ".join(term.split())
            shown = shown if len(shown) <= 40 else shown[:39] + "…"
            notes.append(f"the query {shown!r} is {len(ids)} tokens long; the text model reads only the first "
                         f"{context_length - 2}, the rest is ignored")
    return notes


@lru_cache(maxsize=2)
def _clip_tokenizer(context_length: int) -> ClipTokenizer:
    return ClipTokenizer(context_length)  # (its vocabulary is read once a process)


def quick_tokenizer(folder: str, settings: dict[str, Any]) -> Any:
    """The query-time tokenizer an export recorded: the numpy BPE ('clip') or the Rust replay
    of a Hugging Face tokenizer ('hf', ``hf_tokenizer.HFQuickTokenizer``)."""
    if settings.get("kind") == "hf":
        from .hf_tokenizer import HFQuickTokenizer

        return HFQuickTokenizer(folder, settings)
    return ClipTokenizer(int(settings["context_length"]))


def _export_family(encoder: Any, folder: str) -> dict[str, Any] | None:
    """Another family's text tower (``text_export.py``): SigLIP, MobileCLIP, Hugging Face towers."""
    from .hf_tokenizer import TOKENIZER_FILE
    from .text_export import export_family_text_tower

    done = export_family_text_tower(encoder, folder, {"graph": TEXT_TOWER_FILE, "table": _EMBEDDING_FILE,
                                                      "tokenizer": TOKENIZER_FILE}, quick_tokenizer)
    if done is None:
        note_on_torch(encoder.spec, "text")
        return None
    info = {"format": _FORMAT, "fingerprint": encoder.spec.fingerprint, "model": encoder.spec.name, "dim": encoder.dim,
            "context_length": int(done["tokenizer"]["context_length"]), "scores": model_scores(encoder._model), **done}
    info["files"] = _file_stamps(folder)
    with open(os.path.join(folder, _INFO_FILE), "w") as f:
        json.dump(info, f)
    return info


def note_on_torch(spec: Any, tower: str) -> None:
    """Say, in one line, that a tower stays on torch (never silently)."""
    import logging

    logging.getLogger("mmembed").warning(
        "model %s: its %s tower cannot be exported to ONNX faithfully (an unsupported tokenizer or layer, or a "
        "check under a cosine of 0.9999); it runs on torch, and cold queries take seconds", spec.label, tower)


def model_scores(model: Any) -> dict[str, Any]:
    """How the model turns cosines into probabilities: CLIP's softmax over ``scale * cos``, or
    SigLIP's sigmoid of ``scale * cos + bias``; the learnt values, kept with the exported towers."""
    scale = getattr(model, "logit_scale", None)
    bias = getattr(model, "logit_bias", None)
    out: dict[str, Any] = {"scale": round(float(scale.exp().item()), 6) if scale is not None else 100.0}
    if bias is not None:
        out.update(kind="sigmoid", bias=round(float(bias.item()), 6))
    else:
        out["kind"] = "softmax"
    return out


def _exportable(model: Any, tokenizer: Any) -> bool:
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection", "attn_mask")
    return (
        all(getattr(model, name, None) is not None for name in needed)
        and getattr(model, "text_pool_type", "argmax") == "argmax"
        and getattr(model, "cls_emb", None) is None
        and type(tokenizer).__name__ == "SimpleTokenizer"
        and getattr(tokenizer, "reduction_fn", None) is None
        and getattr(getattr(tokenizer, "clean_fn", None), "__name__", "") in ("_clean_lower", "")
    )


def _check_export(path: str, table_path: str, model: Any, tokenizer: Any, info: dict[str, Any]) -> float:
    """Worst cosine between the ONNX graph (our tokens, trimmed) and open_clip's own
    ``encode_text`` (its tokens, full length) in fp32, over batches of several sizes."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ours = ClipTokenizer(int(info["context_length"]))
    with torch.no_grad():
        want = torch.nn.functional.normalize(model.encode_text(tokenizer(_CHECK_TEXTS)), dim=-1).numpy()
    worst = 1.0
    table = np.load(table_path, mmap_mode="r")
    for batch in (_CHECK_TEXTS, _CHECK_TEXTS[:1], _CHECK_TEXTS[3:5]):
        tokens = ours(batch, trim=True)
        (got,) = session.run(None, {"embedded": np.ascontiguousarray(table[tokens]), "tokens": tokens})
        got = got / np.linalg.norm(got, axis=1, keepdims=True)
        idx = [_CHECK_TEXTS.index(t) for t in batch]
        worst = min(worst, float((got * want[idx]).sum(axis=1).min()))
    return worst


def _text_tower_class() -> Any:
    import torch

    class TextTower(torch.nn.Module):
        """open_clip's ``CLIP.encode_text`` on tokens of any length up to the context length."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.positional_embedding = model.positional_embedding
            self.transformer = model.transformer
            self.ln_final = model.ln_final
            self.text_projection = model.text_projection
            self.register_buffer("attn_mask", model.attn_mask, persistent=False)

        def forward(self, embedded: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
            length = tokens.shape[1]
            x = embedded + self.positional_embedding[:length]
            x = self.transformer(x, attn_mask=self.attn_mask[:length, :length])
            x = self.ln_final(x)
            x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
            if isinstance(self.text_projection, torch.nn.Linear):
                return self.text_projection(x)
            return x @ self.text_projection

    return TextTower


def _TextTower(model: Any) -> Any:  # noqa: N802 - builds the torch module lazily (torch import)
    return _text_tower_class()(model)


def fp32_torch(encoder: Any) -> Any:
    """``encoder`` when it is torch at fp32 on the CPU, else such an encoder for the same model:
    an export must carry the fp32 weights (bf16/fp16 copies were rounded when loaded)."""
    encoder.load()
    if encoder._model is None or encoder.precision != "fp32" or encoder.device != "cpu":
        encoder = type(encoder)(encoder.spec, device="cpu", precision="fp32", runtime="torch").load()
    return encoder
