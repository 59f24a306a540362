"""The text towers of the other families as ONNX: SigLIP's text transformer ('last' pooling),
MobileCLIP's non-causal CLIP text, Hugging Face towers (XLM-R) with their poolers.

``text_tower.export_text_tower`` covers the original CLIP text tower (causal mask, pooling
at end-of-text, the numpy BPE; queries cut after end-of-text). Every other open_clip
``CustomTextCLIP`` text tower comes here: the graph is the tower's own ``forward`` on tokens
of the full context length (these towers attend to the padding, so it cannot be cut), with
the token embedding looked up outside the graph as before (a memory-mapped table: SigLIP2's
and XLM-R's are 0.8 GB, which a cold query must not read whole). The tokenizer is recorded
for the quick path: the numpy BPE for OpenAI's, the Rust ``tokenizers`` replay of a Hugging
Face one (``hf_tokenizer.py``). Written only when the tokens are identical to open_clip's and
the vectors reach a cosine of 0.9999 to ``encode_text``, as for CLIP.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from typing import Any

import numpy as np

__all__ = ["export_family_text_tower", "CHECK_TEXTS"]

CHECK_TEXTS = [
    "a dog on grass", "A DOG, running!! on the BEACH at sunset", "Café & crème brûlée — 2019",
    "two children playing in the water near a red boat", "x", "über straße 東京 😀", "it's the cat's toy",
    "  lots   of\tspace  ", "&amp; html &lt;entities&gt;", "沙发上的猫", "一只狗在海滩上奔跑，日落。",
    "猫 cat 沙发 sofa！？", "ｆｕｌｌ－ｗｉｄｔｈ：（测试）", "word " * 100,
]


def _describe(tokenizer: Any) -> tuple[dict[str, Any], str | None] | None:
    from .hf_tokenizer import describe_hf_tokenizer

    if type(tokenizer).__name__ == "SimpleTokenizer":
        clean = getattr(getattr(tokenizer, "clean_fn", None), "__name__", "")
        if getattr(tokenizer, "reduction_fn", None) is not None or clean not in ("_clean_lower", ""):
            return None
        return {"kind": "clip", "context_length": int(tokenizer.context_length)}, None
    return describe_hf_tokenizer(tokenizer)


def _embedding_slot(text: Any) -> tuple[Any, str] | None:
    """(module, attribute) holding the text tower's token embedding."""
    import torch

    table = getattr(text, "token_embedding", None)
    if table is None and hasattr(getattr(text, "transformer", None), "get_input_embeddings"):
        table = text.transformer.get_input_embeddings()
    if not isinstance(table, torch.nn.Embedding):
        return None
    for module in text.modules():
        for name, child in module.named_children():
            if child is table:
                return module, name
    return None


def _tower_class() -> Any:
    import torch

    class Given(torch.nn.Module):
        """Stands in for the token embedding while exporting: returns the looked-up rows."""

        def __init__(self, box: list[Any]) -> None:
            super().__init__()
            self.box = box

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.box[0]

    class Tower(torch.nn.Module):
        """A ``CustomTextCLIP``'s text tower on (looked-up embeddings, tokens), unnormalised."""

        def __init__(self, text: Any, box: list[Any]) -> None:
            super().__init__()
            self.text = text
            self.box = box

        def forward(self, embedded: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
            self.box[0] = embedded
            return self.text(tokens)

    return Given, Tower


def export_family_text_tower(encoder: Any, folder: str, names: dict[str, str],
                             quick_tokenizer: Any) -> dict[str, Any] | None:
    """Write the text tower of ``encoder`` (torch, fp32, CPU) into ``folder`` as ``names``
    ('graph', 'table', 'tokenizer' file names); the info to record, or None (nothing written).
    ``quick_tokenizer(folder, settings)`` makes the query-time tokenizer (``text_tower``'s)."""
    import torch

    model, tokenizer = encoder._model, encoder._tokenizer
    text = getattr(model, "text", None)
    described = _describe(tokenizer)
    slot = _embedding_slot(text) if text is not None else None
    if described is None or slot is None:
        return None
    settings, tokenizer_json = described
    os.makedirs(folder, exist_ok=True)
    pid = os.getpid()
    tmp_tok = os.path.join(folder, f".tok.{pid}")
    os.makedirs(tmp_tok, exist_ok=True)
    graph = os.path.join(folder, f".{names['graph']}.{pid}.tmp")
    table = os.path.join(folder, f".{names['table']}.{pid}.tmp.npy")
    try:
        if tokenizer_json is not None:
            from .hf_tokenizer import save_tokenizer

            save_tokenizer(tmp_tok, tokenizer_json)
        ours = quick_tokenizer(tmp_tok, settings)
        if not np.array_equal(ours(CHECK_TEXTS), tokenizer(CHECK_TEXTS).numpy()):
            return None
        owner, name = slot
        embedding = getattr(owner, name)
        if int(ours(CHECK_TEXTS).max()) >= embedding.num_embeddings:
            return None
        np.save(table, embedding.weight.detach().float().numpy())
        given_cls, tower_cls = _tower_class()
        box: list[Any] = [None]
        tokens = torch.from_numpy(ours(["a photo of a cat", "沙发上的猫"]))
        embedded = embedding(tokens).detach()
        setattr(owner, name, given_cls(box))
        try:
            _export(tower_cls(text, box), embedded, tokens, graph)
        finally:
            setattr(owner, name, embedding)
        check = _check(graph, table, model, tokenizer, ours)
        if check is None or check < 0.9999:
            return None
        if tokenizer_json is not None:
            os.replace(os.path.join(tmp_tok, settings["file"]), os.path.join(folder, names["tokenizer"]))
        os.replace(table, os.path.join(folder, names["table"]))
        os.replace(graph, os.path.join(folder, names["graph"]))
        return {"tokenizer": settings, "trim": False, "min_cosine_on_check": round(float(check), 6)}
    except Exception:  # noqa: BLE001 - a tower the exporter or onnxruntime cannot handle stays on torch
        return None
    finally:
        for path in (graph, table):
            if os.path.exists(path):
                os.remove(path)
        import shutil

        shutil.rmtree(tmp_tok, ignore_errors=True)


def _export(tower: Any, embedded: Any, tokens: Any, path: str) -> None:
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.inference_mode(False), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(tower, (embedded, tokens), path, input_names=["embedded", "tokens"],
                              output_names=["vectors"], dynamic_shapes={"embedded": {0: batch}, "tokens": {0: batch}},
                              dynamo=True, optimize=True, external_data=False)
        except Exception:  # noqa: BLE001 - torch.export refuses some Hugging Face code: the tracer
            torch.onnx.export(tower, (embedded, tokens), path, input_names=["embedded", "tokens"],
                              output_names=["vectors"], dynamic_axes={"embedded": {0: "batch"}, "tokens": {0: "batch"},
                                                                      "vectors": {0: "batch"}},
                              dynamo=False, opset_version=17)


def _check(graph: str, table_path: str, model: Any, tokenizer: Any, ours: Any) -> float | None:
    """Worst cosine between the graph (our tokens) and open_clip's ``encode_text`` (its tokens)."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = torch.nn.functional.normalize(model.encode_text(tokenizer(CHECK_TEXTS)), dim=-1).numpy()
    table = np.load(table_path, mmap_mode="r")
    worst = 1.0
    for idx in (list(range(len(CHECK_TEXTS))), [0], [3, 9]):
        tokens = ours([CHECK_TEXTS[i] for i in idx])
        (got,) = session.run(None, {"embedded": np.ascontiguousarray(table[tokens], dtype=np.float32), "tokens": tokens})
        got = got / np.linalg.norm(got, axis=1, keepdims=True)
        worst = min(worst, float((got * want[idx]).sum(axis=1).min()))
    return worst
