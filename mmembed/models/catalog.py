"""The model families known to work on the fast path (both towers exported to ONNX, a cold
query without torch), with what a user weighs when choosing: size, embedding dimension,
languages, the extra it needs, and the speed measured by ``benchmarks/families.py`` (read
from ``families_measured.json`` beside this module; never estimated here).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Family", "FAMILIES", "families", "measured"]

_MEASURED = os.path.join(os.path.dirname(__file__), "families_measured.json")


@dataclass(frozen=True)
class Family:
    """One family as a user picks it: ``--model NAME --pretrained TAG``."""

    key: str  # the family's key in the benchmark's record
    model: str  # open_clip architecture name
    pretrained: str  # a pretrained tag open_clip knows for it
    languages: str
    extra: str | None  # the mmembed extra it needs beyond the base install
    image_tower: str
    text_tower: str
    note: str = ""


FAMILIES: tuple[Family, ...] = (
    Family("vit-b-32", "ViT-B-32", "laion2b_s34b_b79k", "English", None, "ViT-B/32", "CLIP (OpenAI BPE)",
           "the default"),
    Family("mobileclip", "MobileCLIP2-S0", "dfndr2b", "English", None, "timm FastViT (MCi0)",
           "CLIP, non-causal (OpenAI BPE)", "small and fast; what Ente and LibrePhotos run"),
    Family("siglip2", "ViT-B-16-SigLIP2", "webli", "English (multilingual Gemma vocabulary)", "hf",
           "timm ViT-B/16, MAP pooling", "SigLIP (Gemma tokenizer)", "sigmoid scores; Immich's recommendation"),
    Family("xlmr", "xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k", "100 languages (Chinese, ...)", "hf", "ViT-B/32",
           "XLM-RoBERTa base (Hugging Face)", "queries in Chinese and other languages"),
    Family("convnext", "convnext_base_w", "laion2b_s13b_b82k", "English", None, "timm ConvNeXt-Base (wide)",
           "CLIP (OpenAI BPE)"),
)


def measured() -> dict[str, Any]:
    """The benchmark's record (date, CPU, command, per family), or {} where none was written."""
    try:
        with open(_MEASURED, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def families() -> list[dict[str, Any]]:
    """Every known family with its measured numbers (None where not measured)."""
    record = measured()
    by_key = {f.get("family"): f for f in record.get("families", []) if isinstance(f, dict)}
    out = []
    for family in FAMILIES:
        row: dict[str, Any] = asdict(family)
        found = by_key.get(family.key, {})
        row.update({
            "size_mb": found.get("size_mb"), "dim": found.get("dim"),
            "image_per_s": found.get("ingest_onnx_img_s"), "image_per_s_torch": found.get("ingest_torch_img_s"),
            "cold_text_query_s": found.get("cold_text_query_en_s"), "cold_text_query_zh_s": found.get("cold_text_query_zh_s"),
            "cold_image_query_s": found.get("cold_image_query_s"), "int8": found.get("image_int8"),
            "measured_on": f"{record.get('cpu')} ({record.get('date')}, {record.get('tier')} size)" if found else None,
        })
        out.append(row)
    return out
