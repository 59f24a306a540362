"""Arrow vector columns as numpy matrices (no pyarrow import: it works on the column it is given)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["vector_matrix"]


def vector_matrix(column: Any, dim: int | None = None) -> np.ndarray:
    """A fixed-size-list vector column as a float32 (N, D) array; null vectors become zeros."""
    arr = column.combine_chunks()
    if len(arr) == 0:
        return np.zeros((0, dim or 0), dtype=np.float32)
    dim = dim or arr.type.list_size
    if arr.null_count:
        arr = arr.fill_null([0.0] * dim)
    return np.ascontiguousarray(arr.values.to_numpy(zero_copy_only=False).reshape(len(arr), dim), dtype=np.float32)
