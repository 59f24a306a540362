"""Work the web app does in a background thread while the page shows its progress: the
duplicate search (``Index.duplicates``), which reads every vector and may decode photos, so a
request never waits for it (the endpoint answers 202 with the progress until it is done)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from ..errors import MmembedError

__all__ = ["Job"]


class Job:
    """``work(progress)`` run once in a daemon thread; ``answer()`` is its result, its progress so
    far, or raises the MmembedError it raised."""

    def __init__(self, work: Callable[[Callable[[int, int], None]], dict[str, Any]]) -> None:
        self._work = work
        self._done = self._total = 0
        self._result: dict[str, Any] | None = None
        self._error: MmembedError | None = None
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="mmembed-job", daemon=True)
        self._thread.start()

    def _progress(self, done: int, total: int) -> None:
        self._done, self._total = done, total

    def _run(self) -> None:
        try:
            self._result = self._work(self._progress)
        except MmembedError as exc:
            self._error = exc
        except Exception as exc:  # noqa: BLE001 - shown on the page instead of a thread's trace
            self._error = MmembedError(f"the duplicate search failed: {type(exc).__name__}: {exc}")

    @property
    def finished(self) -> bool:
        return self._result is not None or self._error is not None

    def answer(self, wait: float = 0.0) -> dict[str, Any]:
        """The result ({"state": "done", ...}); or {"state": "running", "done", "total", "percent",
        "seconds"} while it runs (after waiting up to ``wait`` seconds for it)."""
        if wait > 0:
            self._thread.join(wait)
        if self._error is not None:
            raise self._error
        if self._result is not None:
            return {"state": "done", **self._result}
        done, total = self._done, self._total
        return {"state": "running", "done": done, "total": total,
                "percent": round(100 * done / total) if total else 0,
                "seconds": round(time.perf_counter() - self._started, 1)}
