"""Vectors from pixels and words: the CLIP encoder, its ONNX text tower, the fusion of an item's image and text vectors, and OCR."""

from __future__ import annotations

from .._lazy import lazy_getattr

_EXPORTS = {
    "Encoder": "encoder", "ModelSpec": "encoder", "FusionConfig": "fusion",
    "FusionStrategy": "fusion", "Vectorizer": "vectorizer", "text_hash": "vectorizer",
    "OnnxTextEncoder": "text_tower", "export_text_tower": "text_tower",
    "TextReader": "ocr", "OcrConfig": "ocr", "OcrResult": "ocr", "read_text": "ocr", "has_text": "ocr",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
