"""Rich progress for a training run, on the given (stderr) console: step, loss, images per second.
On a terminal a live bar; otherwise (a log file, `nohup`) one plain line every `LOG_EVERY`th of the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from arseg_cli.train.loop import StepReport

#: Lines a run writes when stderr is not a terminal (one per 1/LOG_LINES of the steps, and the last).
LOG_LINES = 20


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

        every = max(1, total_steps // LOG_LINES)

        def on_step(report: StepReport) -> None:
            progress.update(task, completed=report.step, loss=report.losses["total"], speed=report.images_per_s)
            if not console.is_terminal and (report.step % every == 0 or report.step == total_steps):
                console.print(
                    f"{label}: step {report.step}/{total_steps} loss {report.losses['total']:.4f} "
                    f"lr {report.lr:.3g} {report.images_per_s:.1f} img/s",
                    highlight=False,
                )

        yield on_step
