"""The CLI frame: version, help, and the one place where errors become exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from arseg_cli import __version__
from arseg_cli.cli import main
from arseg_cli.cli._app import _ArsegGroup
from arseg_cli.errors import InputError, OptionsError


def _app_raising(error: BaseException) -> typer.Typer:
    app = typer.Typer(cls=_ArsegGroup, pretty_exceptions_enable=False)

    @app.command("boom")
    def boom() -> None:
        raise error

    @app.command("ok")
    def ok() -> None:
        typer.echo("fine")

    return app


def test_version_prints_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"arseg {__version__}"


def test_unknown_command_is_a_usage_error() -> None:
    assert main(["no-such-command"]) == 2


@pytest.mark.parametrize(
    ("error", "code"),
    [(InputError("bad input here"), 1), (OptionsError("these options clash"), 2), (RuntimeError("kaput"), 1)],
)
def test_errors_become_one_line_and_exit_code(error: BaseException, code: int) -> None:
    result = CliRunner().invoke(_app_raising(error), ["boom"])
    assert result.exit_code == code
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert str(error) in lines[0]
    assert "Traceback" not in result.output


def test_keyboard_interrupt_exits_130() -> None:
    result = CliRunner().invoke(_app_raising(KeyboardInterrupt()), ["boom"])
    assert result.exit_code == 130


def test_module_entry_point_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "arseg_cli", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"arseg {__version__}"
    assert done.stderr == ""


def _stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _assert_one_usage_error_line(code: int, stdout: str, stderr: str) -> None:
    assert code == 2
    lines = _stderr_lines(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "--help" in lines[0]
    assert stdout == ""


@pytest.mark.parametrize(
    "argv",
    [["info"], ["info", "--no-such-option", "x.mp4"], ["no-such-command"], ["encode", "in.mp4", "-o", "o.mp4", "--keyint", "0"]],
)
def test_usage_errors_are_one_line_with_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Each kind of usage error through `main` (as `python -m arseg_cli` calls it); the real process
    is the next test's (starting one costs ~2 s)."""
    code = main(argv)
    captured = capsys.readouterr()
    _assert_one_usage_error_line(code, captured.out, captured.err)


def test_a_usage_error_of_a_real_process_is_one_line_with_exit_2() -> None:
    argv = ["info", "--no-such-option", "x.mp4"]
    done = subprocess.run([sys.executable, "-m", "arseg_cli", *argv], capture_output=True, text=True, timeout=60)
    _assert_one_usage_error_line(done.returncode, done.stdout, done.stderr)


def test_error_text_is_not_read_as_markup() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "arseg_cli", "info", "/no/such/[bold]clip[/bold].mp4"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "[bold]clip[/bold].mp4" in done.stderr


def test_debug_shows_the_traceback() -> None:
    app = _app_raising(InputError("bad input here"))

    @app.callback()
    def options(ctx: typer.Context, debug: bool = typer.Option(False, "--debug")) -> None:
        ctx.obj = {"debug": debug}

    quiet = CliRunner().invoke(app, ["boom"])
    loud = CliRunner().invoke(app, ["--debug", "boom"])
    assert quiet.exit_code == loud.exit_code == 1
    assert "Traceback" not in quiet.output
    assert "Traceback" in loud.output and "bad input here" in loud.output


def test_broken_pipe_ends_quietly_with_exit_0() -> None:
    result = CliRunner().invoke(_app_raising(BrokenPipeError()), ["boom"])
    assert result.exit_code == 0
    assert "error" not in result.output


def test_arseg_error_while_parsing_options_is_one_line() -> None:
    def reject(value: str) -> str:
        raise OptionsError(f"cannot use {value!r} here")

    app = typer.Typer(cls=_ArsegGroup, pretty_exceptions_enable=False)

    @app.command("run")
    def run(mode: str = typer.Option("x", callback=reject)) -> None:
        typer.echo("never")

    @app.command("other")
    def other() -> None:
        pass

    result = CliRunner().invoke(app, ["run", "--mode", "fast"])
    assert result.exit_code == 2
    assert _stderr_lines(result.output) == ["error: cannot use 'fast' here"]


def test_errors_of_a_sub_command_group_are_handled_too() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "arseg_cli", "weights", "info", "/no/such/file.safetensors"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert len(_stderr_lines(done.stderr)) == 1 and "Traceback" not in done.stderr
