"""A rich progress bar on stderr that follows ``IngestProgress`` events."""

from __future__ import annotations

from typing import Any


class IngestBar:
    """Context manager; pass ``bar.update`` as the ingest progress callback."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        self._phase = ""

    def __enter__(self) -> IngestBar:
        if self.enabled:
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
        if self._progress is None:
            return
        labels = {"scan": "scanning", "encode": "encoding", "prune": "pruning", "compact": "compacting"}
        if event.phase != self._phase:
            self._phase = event.phase
            self._task = self._progress.add_task(labels.get(event.phase, event.phase), total=event.total, rate="")
        task = self._progress.tasks[-1]
        rate = f"{task.speed:.1f} files/s" if event.phase == "encode" and task.speed else ""
        self._progress.update(self._task, completed=event.done, total=event.total, rate=rate)
