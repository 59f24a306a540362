"""Progress on stderr that follows ``IngestProgress`` events: a rich bar on a terminal, and a
plain line every few seconds when stderr is a file or a pipe (a bar would only show at the end)."""

from __future__ import annotations

import sys
import time
from typing import Any

LABELS = {"scan": "scanning", "encode": "encoding", "prune": "pruning", "compact": "compacting", "fuse": "fusing",
          "compare": "comparing", "ocr": "reading text"}


class IngestBar:
    """Context manager; pass ``bar.update`` as the ingest progress callback."""

    def __init__(self, enabled: bool = True, *, interval: float = 5.0) -> None:
        self.enabled = enabled
        self.interval = interval  # seconds between plain lines
        self._plain = enabled and not sys.stderr.isatty()
        self._last = 0.0
        self._started = 0.0
        self._progress: Any = None
        self._task: Any = None
        self._phase = ""

    def __enter__(self) -> IngestBar:
        if self.enabled and not self._plain:
            from rich.console import Console
            from rich.progress import (
                BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                TimeElapsedColumn, TimeRemainingColumn,
            )

            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), console=Console(stderr=True), transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, event: Any) -> None:
        if self._plain:
            self._line(event)
            return
        if self._progress is None:
            return
        if event.phase != self._phase:
            self._phase = event.phase
            self._task = self._progress.add_task(LABELS.get(event.phase, event.phase), total=event.total, rate="")
        task = self._progress.tasks[-1]
        rate = f"{task.speed:.1f} files/s" if event.phase == "encode" and task.speed else ""
        self._progress.update(self._task, completed=event.done, total=event.total, rate=rate)

    def _line(self, event: Any) -> None:
        """One line when a phase starts or ends, and every ``interval`` seconds in between."""
        now = time.monotonic()
        new_phase = event.phase != self._phase
        if new_phase:
            self._phase, self._started = event.phase, now
        finished = event.total is not None and event.done >= event.total
        if not (new_phase or finished or now - self._last >= self.interval):
            return
        if new_phase and not event.done and event.phase in ("prune", "compact"):
            return  # short phases: their end line says it
        self._last = now
        total = f"/{event.total}" if event.total is not None else ""
        elapsed = now - self._started
        rate = f", {event.done / elapsed:.1f} files/s" if event.phase == "encode" and elapsed > 0 and event.done else ""
        sys.stderr.write(f"{LABELS.get(event.phase, event.phase)} {event.done}{total}{rate}\n")
        sys.stderr.flush()
