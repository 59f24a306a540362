"""int8 graphs of the exported towers: onnxruntime's dynamic quantisation, and which CPU kind
it is made for (shared by ``image_tower.py`` and ``text_tower.py``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import warnings
from typing import Any

__all__ = ["cpu_has_vnni", "quantize_graph", "keep_graph"]


def cpu_has_vnni() -> bool:
    """True on x86 CPUs with AVX-512 VNNI or AVX-VNNI (Linux /proc/cpuinfo): their int8 dot
    products cannot overflow, so weights keep all 8 bits. Elsewhere (AVX2 alone) onnxruntime's
    u8s8 kernels can saturate, and the weights are quantised to 7 bits (``reduce_range``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return bool(set(line.split(":", 1)[1].split()) & {"avx512_vnni", "avx_vnni", "amx_int8"})
    except OSError:
        pass
    return False


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


def keep_graph(tmp: str, folder: str, graph: str, info_name: str, record: dict[str, Any]) -> dict[str, Any]:
    """Move a checked int8 graph into place as ``graph`` and write ``record`` (plus the graph's
    size and mtime, which later say whether it is still the one checked) as ``info_name``,
    each by an atomic rename."""
    os.replace(tmp, os.path.join(folder, graph))
    st = os.stat(os.path.join(folder, graph))
    record = {**record, "file": [st.st_size, st.st_mtime_ns]}
    fd, info_tmp = tempfile.mkstemp(prefix=f".{info_name}.", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    os.replace(info_tmp, os.path.join(folder, info_name))
    return record
