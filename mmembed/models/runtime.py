"""Which runtime encodes, on which device, at which precision: decided here, once, for every caller.

The exported towers run on ONNX Runtime (int8 or fp32, on a CPU); everything else runs the
open_clip model on torch. The encoder, the searcher (through ``QuickSearch``), ``Derived``
(exporting the towers before a new table is encoded, quantising them) and ingest ask these
functions, and nothing else decides. Only ``pick_device`` imports torch.
"""

from __future__ import annotations

import os
import sys

from ..errors import ConfigError

__all__ = ["pick_device", "pick_precision", "torch_precision", "tower_precision", "onnx_precision", "cpu_has_native_bf16",
           "accelerator_possible"]


def pick_device(device: str = "auto") -> str:
    """'auto' means cuda if available, else mps, else cpu; an explicit device must exist."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' asked for, but MPS is not available here; use --device cpu")
    return device


def pick_precision(device: str, precision: str = "auto") -> str:
    """'auto' means fp16 on CUDA, int8 on a CPU (the exported image tower, quantised, on ONNX
    Runtime; see ``torch_precision`` for models without one), fp32 elsewhere. BENCHMARKS.md has
    the speed and the cosine to fp32 that justify it."""
    if precision == "auto":
        if device.startswith("cuda"):
            return "fp16"
        return "int8" if device == "cpu" else "fp32"
    if precision == "fp16" and device == "cpu":
        raise ConfigError("precision fp16 is for GPUs; on a CPU use int8, bf16 or fp32")
    if precision == "int8" and device != "cpu":
        raise ConfigError(f"precision int8 runs on the CPU (ONNX Runtime); on {device} use fp16 or fp32")
    return precision


def torch_precision(device: str, precision: str = "auto") -> str:
    """The precision torch runs a model in: int8 (ONNX Runtime only) becomes bf16 on a CPU with
    native bf16 instructions (AVX-512 BF16 or AMX), fp32 elsewhere, where bf16 is emulated and
    slower than fp32."""
    precision = pick_precision(device, precision)
    if precision == "int8":
        return "bf16" if device == "cpu" and cpu_has_native_bf16() else "fp32"
    return precision


def tower_precision(precision: str) -> str | None:
    """The precision the exported towers run at on this CPU for the one asked for: 'int8' or
    'fp32'; None where they cannot serve (bf16 runs on torch; fp16 a CPU refuses, and the
    torch path says so)."""
    try:
        chosen = pick_precision("cpu", precision)
    except ConfigError:
        return None
    return chosen if chosen in ("int8", "fp32") else None


def onnx_precision(device: str, precision: str, runtime: str = "auto") -> str | None:
    """The precision an encoder runs at on ONNX Runtime for the device, precision and runtime
    asked for, or None for torch: runtime 'auto', the CPU (an 'auto' device only where no GPU
    may be: torch then chooses between cuda, mps and cpu) and int8 or fp32."""
    if runtime != "auto" or device not in ("auto", "cpu"):
        return None
    if device == "auto" and accelerator_possible():
        return None
    return tower_precision(precision)


def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX-512 BF16 or AMX (Linux /proc/cpuinfo); bf16 is emulated, and
    slower than fp32, elsewhere."""
    from .quantize import cpu_flags

    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def accelerator_possible() -> bool:
    """Whether this machine may have a GPU torch could use (without importing torch)."""
    return sys.platform == "darwin" or os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/dxg")
