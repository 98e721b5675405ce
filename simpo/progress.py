"""A rich progress bar for long work: env steps/s, the latest eval return, the ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn


class TrainingProgress:
    """`with TrainingProgress(total, title=...) as p: p.advance(step); p.evaluated(best, single)`.

    Disabled (`enabled=False`) it prints nothing; a non-terminal stderr gets rich's plain fallback.
    """

    def __init__(self, total: int, *, enabled: bool = True, title: str = "training", unit: str = "steps"):
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TaskProgressColumn(),
            TextColumn("{task.fields[speed]}"),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
            refresh_per_second=4,
        )
        self._task = self._progress.add_task(title, total=total, speed="", status="")

    def __enter__(self) -> "TrainingProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def advance(self, completed: int) -> None:
        task = self._progress.tasks[0]
        speed = task.speed
        self._progress.update(self._task, completed=completed, speed=f"{speed:,.0f}/s" if speed else "")

    def evaluated(self, best_of_n: float, single: float) -> None:
        self._progress.update(self._task, status=f"eval {best_of_n:,.1f} (single {single:,.1f})")
