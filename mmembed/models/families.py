"""What a model family needs before open_clip loads it, checked so that a failure is one line
naming the file: the ``hf`` extra (transformers) for Hugging Face tokenizers and text towers,
a local folder's tokenizer files and Hugging Face text config, and a tokenizer whose
vocabulary fits the model's token embedding.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

__all__ = ["needs_hf", "check_folder", "local_kwargs", "check_tokenizer", "model_config", "NEEDS_HF"]

NEEDS_HF = "needs transformers (a Hugging Face tokenizer or text tower); install the extra: pip install 'mmembed[hf]'"
LOCAL_PREFIX = "local-dir:"  # as loading.LOCAL_PREFIX (which imports this module)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")


def model_config(spec: Any) -> dict[str, Any] | None:
    """The open_clip ``model_cfg`` of ``spec`` read from its JSON (a local folder's, or open_clip's
    built-in one) without importing open_clip; None where it is not at hand (hub models)."""
    if spec.name.startswith(LOCAL_PREFIX):
        path = Path(spec.name[len(LOCAL_PREFIX):]) / "open_clip_config.json"
    else:
        found = importlib.util.find_spec("open_clip")
        folders = list(found.submodule_search_locations or []) if found else []
        path = Path(folders[0]) / "model_configs" / f"{spec.name}.json" if folders else Path("/nonexistent")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("model_cfg", data) if isinstance(data, dict) else None


def _uses_hf(config: dict[str, Any] | None, name: str) -> bool:
    text = (config or {}).get("text_cfg", {})
    return bool(text.get("hf_model_name") or text.get("hf_tokenizer_name")) or (config is None and "siglip" in name.lower())


def needs_hf(spec: Any) -> None:
    """Raise ``ModelLoadError`` naming the ``hf`` extra when the model needs transformers and it
    is not installed."""
    if not _uses_hf(model_config(spec), spec.name):
        return
    try:
        found = importlib.util.find_spec("transformers") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ModelLoadError(f"model {spec.label} {NEEDS_HF}")


def check_folder(folder: str) -> None:
    """A local model folder that names a Hugging Face tokenizer must hold its files; one whose
    text tower is a Hugging Face model must hold that model's ``config.json`` (or have it in the
    Hugging Face cache)."""
    root = Path(folder)
    try:
        config = json.loads((root / "open_clip_config.json").read_text(encoding="utf-8")).get("model_cfg", {})
    except (OSError, ValueError, AttributeError):
        return  # open_clip says what is wrong with the config itself
    text = config.get("text_cfg", {}) if isinstance(config, dict) else {}
    if text.get("hf_tokenizer_name") and not any((root / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelLoadError(f"{root / 'tokenizer.json'} not found: model folder {root} names a Hugging Face "
                             f"tokenizer ({text['hf_tokenizer_name']}); put its tokenizer.json and "
                             "tokenizer_config.json in the folder")
    hf_name = text.get("hf_model_name")
    if hf_name and not (root / "config.json").is_file() and not Path(hf_name).is_dir() and not _cached(hf_name):
        raise ModelLoadError(f"{root / 'config.json'} not found: the text tower of model folder {root} is the "
                             f"Hugging Face model {hf_name}; put its config.json in the folder")


def _cached(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo, "config.json"), str)
    except Exception:  # noqa: BLE001 - an odd repo name: not cached
        return False


def local_kwargs(folder: str) -> dict[str, Any]:
    """Extra ``create_model`` arguments for a local folder: a Hugging Face text tower whose
    ``config.json`` is in the folder is built from it (its weights come with the checkpoint)."""
    root = Path(folder)
    try:
        config = json.loads((root / "open_clip_config.json").read_text(encoding="utf-8")).get("model_cfg", {})
    except (OSError, ValueError, AttributeError):
        return {}
    text = config.get("text_cfg", {}) if isinstance(config, dict) else {}
    if text.get("hf_model_name") and (root / "config.json").is_file():
        return {"text_cfg": {**text, "hf_model_name": str(root), "hf_model_pretrained": False}}
    return {}


def check_tokenizer(spec: Any, model: Any, tokenizer: Any) -> None:
    """A tokenizer that can make ids the model has no embedding for is not this model's."""
    hf = getattr(tokenizer, "tokenizer", None)
    text = getattr(model, "text", None)
    table = getattr(text, "token_embedding", None) if text is not None else getattr(model, "token_embedding", None)
    if table is None and hasattr(getattr(text, "transformer", None), "get_input_embeddings"):
        table = text.transformer.get_input_embeddings()
    rows = getattr(table, "num_embeddings", None)
    if hf is None or rows is None or not hasattr(hf, "__len__"):
        return
    size = len(hf)
    if size > rows:
        where = (str(Path(spec.name[len(LOCAL_PREFIX):]) / "tokenizer.json") if spec.name.startswith(LOCAL_PREFIX)
                 else f"the tokenizer of {spec.label}")
        raise ModelLoadError(f"{where} has {size} tokens but the model's text tower embeds {rows}: it is not "
                             "this model's tokenizer; use the tokenizer the model was trained with")
