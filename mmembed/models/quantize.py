"""int8 graphs of the exported towers: onnxruntime's dynamic quantisation, and which CPU kind
it is made for (shared by ``image_tower.py`` and ``text_tower.py``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Any

__all__ = ["cpu_flags", "cpu_has_vnni", "quantize_graph", "make_int8"]


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from Linux /proc/cpuinfo (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_vnni() -> bool:
    """True on x86 CPUs with AVX-512 VNNI or AVX-VNNI: their int8 dot products cannot
    overflow, so weights keep all 8 bits. Elsewhere (AVX2 alone) onnxruntime's u8s8 kernels can
    saturate, and the weights are quantised to 7 bits (``reduce_range``)."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def quantize_graph(source: str, target: str, reduce_range: bool) -> None:
    """onnxruntime's dynamic quantisation of every MatMul and Gemm: int8 weights (per tensor; 7
    bits with ``reduce_range``), activations quantised at run time; quietly."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet = logging.getLogger()  # quantize_dynamic logs advice on the root logger
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            quantize_dynamic(source, target, op_types_to_quantize=["MatMul", "Gemm"], per_channel=False,
                             reduce_range=reduce_range, weight_type=QuantType.QInt8)
        finally:
            quiet.setLevel(level)


def make_int8(folder: str, source: str, target: str, info_name: str, *, reduce_range: bool, minimum: float,
              check: Callable[[str], float], record: dict[str, Any]) -> dict[str, Any] | None:
    """Quantise ``folder/source`` into ``folder/target`` and keep it only when ``check`` (the
    worst cosine of the quantised graph at the path it is given against fp32) reaches
    ``minimum``; then write ``record`` (with the cosine, ``reduce_range`` and the graph's size
    and mtime, which later say whether it is still the one checked) as ``info_name``. Every
    file appears by an atomic rename; None when the graph is not kept (``info_name`` then records
    the rejection, so later loads of the same graph do not quantise it again)."""
    if _rejected_before(os.path.join(folder, info_name), {**record, "minimum": minimum}, reduce_range):
        return None  # this graph was quantised and found unfaithful: not again on every load
    try:
        import onnxruntime.quantization  # noqa: F401 - 1.5 s to import (onnx, ml_dtypes): only when quantising
    except ImportError:
        return None
    fd, tmp = tempfile.mkstemp(prefix=f".{target}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        quantize_graph(os.path.join(folder, source), tmp, reduce_range)
        cosine: float | None = check(tmp)
    except Exception:  # noqa: BLE001 - a graph the quantiser cannot handle stays fp32
        cosine = None
    if cosine is None or cosine < minimum:
        os.remove(tmp)
        if cosine is not None:  # checked and found unfaithful (a graph that failed to load is tried again)
            _write_json(folder, info_name, {**record, "reduce_range": reduce_range, "rejected": True, "minimum": minimum,
                                            "min_cosine_on_check": round(cosine, 6)})
        return None
    os.replace(tmp, os.path.join(folder, target))
    st = os.stat(os.path.join(folder, target))
    record = {**record, "reduce_range": reduce_range, "min_cosine_on_check": round(cosine, 6),
              "file": [st.st_size, st.st_mtime_ns]}
    _write_json(folder, info_name, record)
    return record


def _rejected_before(path: str, record: dict[str, Any], reduce_range: bool) -> bool:
    """Whether ``path`` records that this same graph (``record``'s source) was found unfaithful
    at this ``reduce_range`` against the same bar (a new export, another CPU kind or another bar
    is tried again)."""
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return False
    return (isinstance(saved, dict) and saved.get("rejected") is True and saved.get("reduce_range") == reduce_range
            and all(saved.get(k) == v for k, v in record.items()))


def _write_json(folder: str, name: str, data: dict[str, Any]) -> None:
    """``data`` as ``folder/name``, by an atomic rename (best effort: a read-only cache keeps fp32)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, os.path.join(folder, name))
    except OSError:
        pass
