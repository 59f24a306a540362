"""Freed heap handed back to the system.

glibc keeps what a process frees in its arenas: one per thread that allocated (LanceDB's Rust
threads included), and it trims them only when asked. After a big step (a compaction, a table's
row index built) what was freed stays in RSS, and the next step adds to it rather than reusing it
(BENCHMARKS.md, issue 27).
"""

from __future__ import annotations

__all__ = ["give_back_memory"]


def give_back_memory() -> None:
    """``malloc_trim(0)``: every arena's free pages back to the system (glibc; a no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc
