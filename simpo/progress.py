"""Progress for long work: env steps/s, the latest eval return, the ETA.

On a terminal it is a rich progress bar. Anywhere else (a log file, CI, a batch job), where a live bar would
show only at the end, it prints one plain line at the start, at every evaluation and at every tenth of the run.
"""

from __future__ import annotations

import time
from datetime import timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn


class TrainingProgress:
    """`with TrainingProgress(total, title=...) as p: p.advance(step); p.evaluated(best, single, at=step)`.

    Disabled (`enabled=False`) it prints nothing. `console` defaults to stderr; when it is not a terminal, the
    plain lines replace the bar.
    """

    def __init__(self, total: int, *, enabled: bool = True, title: str = "training", unit: str = "steps",
                 console: Console | None = None):
        self.total, self.title, self.unit = total, title, unit
        self.console = console or Console(stderr=True)
        self.plain = enabled and not self.console.is_terminal
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TaskProgressColumn(),
            TextColumn("{task.fields[speed]}"),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled or self.plain,
            refresh_per_second=4,
        )
        self._task = self._progress.add_task(title, total=total, speed="", status="")
        self._start: tuple[float, int] | None = None  # (time, step) of the first advance, then of the last line
        self._completed, self._status, self._printed = 0, "", -1

    def __enter__(self) -> "TrainingProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()
        if self.plain and self._printed != self._completed:
            self._line()

    def advance(self, completed: int) -> None:
        if self._start is None:
            self._start = (time.monotonic(), completed)
        before, self._completed = self._completed, completed
        task = self._progress.tasks[0]
        speed = task.speed
        self._progress.update(self._task, completed=completed, speed=f"{speed:,.0f}/s" if speed else "")
        if self.plain and (self._printed < 0 or self.total > 0 and self._tenth(completed) > self._tenth(before)):
            self._line()

    def evaluated(self, best_of_n: float, single: float, at: int | None = None) -> None:
        """The latest eval returns; `at` (the eval's env step) also advances to it."""
        self._completed = self._completed if at is None else at
        self._status = f"eval {best_of_n:,.1f} (single {single:,.1f})"
        self._progress.update(self._task, completed=self._completed, status=self._status)
        if self.plain:
            self._line()

    def _tenth(self, completed: int) -> int:
        return completed * 10 // self.total

    def _line(self) -> None:
        """`TITLE: 2,000/3,000 steps (67%), 73 steps/s, eval 191.2 (single -25.6), ETA 0:00:14`."""
        count = f"{self._completed:,}/{self.total:,} {self.unit} ({100 * self._completed // max(self.total, 1)}%)"
        rate = eta = ""
        now = time.monotonic()
        if self._start is not None:  # the rate since the previous line: the warm-up's speed does not linger
            elapsed, done = now - self._start[0], self._completed - self._start[1]
            if elapsed > 0 and done > 0:
                rate = f"{done / elapsed:,.0f} {self.unit}/s"
                if self._completed < self.total:
                    eta = f"ETA {timedelta(seconds=round((self.total - self._completed) * elapsed / done))}"
        parts = [p for p in (count, rate, self._status, eta) if p]
        self.console.print(f"{self.title}: " + ", ".join(parts), markup=False, highlight=False, soft_wrap=True)
        self._printed, self._start = self._completed, (now, self._completed)
