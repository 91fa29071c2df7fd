"""One global progress bar (rich) with throughput and ETA, or structured log lines.

Only process 0 draws the bar. Under MPI it shows the global count (all processes
report to a shared counter); elsewhere each process knows only its own chunk.
In quiet mode no bar is drawn and progress goes to the ``grid_dispatch`` logger
as ``key=value`` lines every ``log_every_s`` seconds (configure ``logging`` to
see them, e.g. ``logging.basicConfig(level=logging.INFO)``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

logger = logging.getLogger("grid_dispatch")


class _RateColumn(ProgressColumn):
    """Configurations per second since the start of this run."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- cfg/s" if speed is None else f"{speed:,.0f} cfg/s", style="cyan")


class ProgressReporter:
    """Progress of a grid run: a rich bar on process 0, and ``key=value`` log lines.

    Args:
        total: configurations in scope (the grid, or this process's chunk).
        initial: configurations already done at the start (resumed).
        show_bar: draw the bar (process 0, not quiet).
        log_every_s: seconds between log lines.
        label: bar description.
    """

    def __init__(
        self,
        total: int,
        initial: int,
        *,
        show_bar: bool,
        log_every_s: float,
        label: str,
        fields: dict[str, Any] | None = None,
    ) -> None:
        self.total = total
        self.initial = initial
        self.done = initial
        self.log_every_s = log_every_s
        self.fields = " ".join(f"{k}={v}" for k, v in (fields or {}).items())
        self._t0 = time.perf_counter()
        self._last_log = self._t0
        self._progress: Progress | None = None
        if show_bar:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(label, total=total, completed=initial)

    def update(self, done: int) -> None:
        """Set the number of configurations done (global where known)."""
        self.done = done
        if self._progress is not None:
            self._progress.update(self._task, completed=done)
        now = time.perf_counter()
        if now - self._last_log >= self.log_every_s:
            self._last_log = now
            self.log("progress")

    def log(self, event: str) -> None:
        elapsed = time.perf_counter() - self._t0
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        logger.info(
            "event=%s %s done=%d total=%d rate_cfg_s=%.1f elapsed_s=%.1f eta_s=%.1f",
            event,
            self.fields,
            self.done,
            self.total,
            rate,
            elapsed,
            eta,
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
