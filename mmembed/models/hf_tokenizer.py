"""Hugging Face tokenizers at query time without torch or transformers.

open_clip's ``HFTokenizer`` cleans each text (ftfy, HTML unescaping, whitespace, and per model
lower-casing or SigLIP's canonicalisation), then calls a transformers fast tokenizer with
``padding='max_length', truncation=True``. A fast tokenizer is a Rust ``tokenizers.Tokenizer``
underneath: :func:`describe_hf_tokenizer` (at export, where transformers is loaded anyway)
records that Rust tokenizer as JSON with the cleaning, context length, padding and
truncation settings; :class:`HFQuickTokenizer` replays them with the small ``tokenizers``
wheel alone. The export checks the two agree token for token before it is used.
"""

from __future__ import annotations

import html
import json
import os
import re
import string
from typing import Any

import numpy as np

__all__ = ["HFQuickTokenizer", "describe_hf_tokenizer", "clean_text", "TOKENIZER_FILE"]

TOKENIZER_FILE = "tokenizer.json"
_PLAIN = re.compile(r"[ -%'-~]*")  # printable ASCII without '&': ftfy leaves it as it is
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _basic(text: str) -> str:
    if not _PLAIN.fullmatch(text):
        import ftfy

        text = ftfy.fix_text(text)
    return html.unescape(html.unescape(text)).strip()


def clean_text(text: str, clean: str) -> str:
    """open_clip's ``get_clean_fn(clean)`` ('whitespace', 'lower' or 'canonicalize')."""
    text = _basic(text)
    if clean == "canonicalize":
        text = text.replace("_", " ").translate(_PUNCTUATION).lower()
        return " ".join(text.split()).strip()
    text = " ".join(text.split()).strip()
    return text.lower() if clean == "lower" else text


def describe_hf_tokenizer(tokenizer: Any) -> tuple[dict[str, Any], str] | None:
    """(settings, tokenizer JSON) of an open_clip ``HFTokenizer`` over a fast tokenizer, or
    None where this path cannot replay it (a slow tokenizer, the 'clips' mode, an unknown clean)."""
    if type(tokenizer).__name__ != "HFTokenizer" or getattr(tokenizer, "tokenizer_mode", "") not in ("", None):
        return None
    clean = getattr(getattr(tokenizer, "clean_fn", None), "__name__", "")
    clean = {"_clean_canonicalize": "canonicalize", "_clean_lower": "lower", "_clean_whitespace": "whitespace"}.get(clean)
    hf = tokenizer.tokenizer
    backend = getattr(hf, "backend_tokenizer", None)
    if clean is None or backend is None or hf.pad_token_id is None:
        return None
    settings = {
        "kind": "hf", "file": TOKENIZER_FILE, "context_length": int(tokenizer.context_length), "clean": clean,
        "pad_id": int(hf.pad_token_id), "pad_token": str(hf.pad_token), "padding_side": str(hf.padding_side),
        "truncation_side": str(getattr(hf, "truncation_side", "right")),
        "strip_sep_id": int(hf.sep_token_id) if tokenizer.strip_sep_token and hf.sep_token_id is not None else None,
        "vocab_size": int(len(hf)),
    }
    return settings, backend.to_str()


class HFQuickTokenizer:
    """Replays an open_clip ``HFTokenizer`` from its recorded settings and ``tokenizer.json``.

    Example::

        tok = HFQuickTokenizer(folder, settings)
        tok(["沙发上的猫"]).shape   # (1, context_length)
    """

    def __init__(self, folder: str, settings: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self.settings = settings
        self.context_length = int(settings["context_length"])
        self.tokenizer = Tokenizer.from_file(os.path.join(folder, settings.get("file", TOKENIZER_FILE)))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.context_length, stride=0, strategy="longest_first",
                                         direction=settings.get("truncation_side", "right"))
        self.pad_id = int(settings["pad_id"])
        self.left = settings.get("padding_side", "right") == "left"
        self.strip_sep_id = settings.get("strip_sep_id")
        self.clean = settings["clean"]

    def __call__(self, texts: list[str], *, trim: bool = False) -> np.ndarray:
        """(N, context_length) int64 tokens as open_clip makes them (``trim`` is ignored: these
        towers attend to the padding, so every row keeps the full length)."""
        encodings = self.tokenizer.encode_batch([clean_text(t, self.clean) for t in texts], add_special_tokens=True)
        out = np.full((len(texts), self.context_length), self.pad_id, dtype=np.int64)
        for i, enc in enumerate(encodings):
            ids = enc.ids[: self.context_length]
            if self.left:
                out[i, self.context_length - len(ids):] = ids
            else:
                out[i, : len(ids)] = ids
        if self.strip_sep_id is not None:
            out[out == self.strip_sep_id] = 0
        return out


def save_tokenizer(folder: str, tokenizer_json: str) -> None:
    """Write the recorded tokenizer beside the exported text tower."""
    parsed = json.loads(tokenizer_json)
    parsed["truncation"] = None  # the quick tokenizer sets its own
    parsed["padding"] = None
    with open(os.path.join(folder, TOKENIZER_FILE), "w", encoding="utf-8") as f:
        json.dump(parsed, f, ensure_ascii=False)
