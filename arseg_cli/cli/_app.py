"""The Typer app, the stderr console and the one place where errors become exit codes."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from arseg_cli import __version__
from arseg_cli.cli._flags import in_flag_words
from arseg_cli.errors import ArsegError

if TYPE_CHECKING:
    from rich.progress import Progress

# Control flow of the CLI framework that must pass through untouched. Newer Typer vendors Click,
# older Typer uses it directly: find its exception base class through a public Typer name.
_CLI_FLOW: tuple[type[BaseException], ...] = (
    typer.Exit,
    typer.Abort,
    *(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException"),
)

#: The one console for messages and progress; stdout is left to data.
console = Console(stderr=True, highlight=False)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process that SIGTERM ended


class _ArsegGroup(TyperGroup):
    """Turns known errors into one red line and an exit code; tracebacks only with --debug."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Parse and run; usage errors become one line too (not the framework's multi-line panel)."""
        try:
            with _sigterm_as_interrupt():
                result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) and not isinstance(result, bool) else EXIT_OK
        except _CLI_FLOW[2:] as error:
            code = _report_usage(error)
        except typer.Abort:
            code = _interrupted()
        except ArsegError as error:  # raised while parsing, e.g. by an option callback
            print_error(str(error))
            code = error.exit_code
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _CLI_FLOW:
            raise
        except ArsegError as error:
            command = self.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
            _report(ctx, error, in_flag_words(str(error), command))
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(_interrupted()) from None
        except BrokenPipeError:
            # The reader of our stdout went away (`arseg ... -o - | head`): not an error of ours.
            _silence_stdout()
            raise typer.Exit(EXIT_OK) from None
        except Exception as error:  # noqa: BLE001 - the last line of defence, by design
            _report(ctx, error, f"internal error: {type(error).__name__}: {error} (run with --debug for details)")
            raise typer.Exit(EXIT_ERROR) from None


#: The group class of arseg's command groups (the app and its sub-apps): errors of their commands in its words.
ArsegGroup = _ArsegGroup

_terminated = threading.Event()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (`kill`, a service manager stopping arseg) ends a command the way Ctrl-C does: outputs
    finished with the frames written so far, temporary files removed; only the exit code differs (143).

    The handler re-raises the signal as SIGINT, so that whatever handles SIGINT at that moment (the
    KeyboardInterrupt, or a writer holding it back until its frame is complete) handles this one too.
    Where SIGINT is ignored (a background job of a non-interactive shell, `nohup`), it stays ignored but
    the forwarded SIGTERM is not. Only the main thread can install handlers; elsewhere SIGTERM keeps its
    default effect.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame: object) -> None:
        _terminated.set()
        signal.raise_signal(signal.SIGINT)

    def ignored_unless_terminated(signum: int, frame: object) -> None:
        if _terminated.is_set():
            raise KeyboardInterrupt

    _terminated.clear()
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int == signal.SIG_IGN:
        signal.signal(signal.SIGINT, ignored_unless_terminated)
    previous = signal.signal(signal.SIGTERM, forward)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupted() -> int:
    """Say how the command was stopped; the exit code: 143 for SIGTERM, 130 for Ctrl-C."""
    if _terminated.is_set():
        console.print("[yellow]terminated[/yellow]")
        return EXIT_TERMINATED
    console.print("[yellow]interrupted[/yellow]")
    return EXIT_INTERRUPTED


def _report_usage(error: BaseException) -> int:
    """One line for a usage error of the framework (unknown option, bad value, missing argument)."""
    if type(error).__name__ == "NoArgsIsHelpError":  # `arseg` alone: the help is the answer
        error.show()  # type: ignore[attr-defined]
        return int(getattr(error, "exit_code", EXIT_USAGE))
    ctx = getattr(error, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    message = error.format_message()  # type: ignore[attr-defined]
    print_error(message + hint)
    return int(getattr(error, "exit_code", EXIT_USAGE))


def _report(ctx: typer.Context, error: BaseException, message: str) -> None:
    if ctx.obj and ctx.obj.get("debug"):
        console.print_exception(show_locals=False)
    print_error(message)


def print_error(message: str) -> None:
    """`error: <message>` on stderr, one line; the message is text, never markup."""
    console.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True, markup=True)


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


app = typer.Typer(
    cls=_ArsegGroup,
    name="arseg",
    help="Efficient semantic segmentation of compressed videos by altering resolutions (AR-Seg).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"arseg {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main_options(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log more detail on stderr."),
) -> None:
    """Efficient semantic segmentation of compressed videos by altering resolutions (AR-Seg)."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    _configure_logging(logging.DEBUG if (debug or verbose) else logging.INFO)


def _configure_logging(level: int) -> None:
    """Library modules log through `logging`; the CLI shows those records on stderr."""
    from rich.logging import RichHandler

    logger = logging.getLogger("arseg_cli")
    logger.handlers.clear()
    handler = RichHandler(console=console, show_time=False, show_path=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def run_app(argv: Sequence[str] | None = None) -> int:
    """Run the app without letting it call sys.exit, and return the exit code."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="arseg", standalone_mode=True)
    except SystemExit as stop:
        code = stop.code
        if code is None:
            return EXIT_OK
        return code if isinstance(code, int) else EXIT_ERROR
    return EXIT_OK


def stderr_bar(*columns: Any, quiet: bool = False, screen: Console | None = None) -> Progress:
    """A Rich progress bar with `columns` on `screen` (default: the stderr console), drawn only on a
    terminal and unless `quiet`, that leaves no trace when done and does not capture the streams."""
    from rich.progress import Progress

    screen = screen or console
    return Progress(
        *columns,
        console=screen,
        transient=True,
        disable=quiet or not screen.is_terminal,
        redirect_stdout=False,
        redirect_stderr=False,
    )


@contextmanager
def frame_progress(label: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar for a loop over frames, on stderr and only when it is a terminal.

    Yields `on_frame(done, total_or_None)` for the library function to call after each frame.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    with stderr_bar(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as progress:
        task = progress.add_task(label, total=None)

        def on_frame(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield on_frame
