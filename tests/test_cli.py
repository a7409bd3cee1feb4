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
