"""Rich progress for a training run, on the given (stderr) console: step, loss, images per second."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from arseg_cli.train.loop import StepReport


@contextmanager
def training_progress(console: Console, total_steps: int, label: str) -> Iterator[Callable[[StepReport], None]]:
    """Yields `on_step(report)`; shows a bar with loss and speed while the console is a terminal."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[speed]:.1f} img/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as progress:
        task = progress.add_task(label, total=total_steps, loss=float("nan"), speed=0.0)

        def on_step(report: StepReport) -> None:
            progress.update(task, completed=report.step, loss=report.losses["total"], speed=report.images_per_s)

        yield on_step
