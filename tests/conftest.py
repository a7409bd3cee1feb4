"""Suite-wide set-up."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_as_at_a_terminal() -> Iterator[None]:
    """The Ctrl-C tests need SIGINT to raise KeyboardInterrupt, as it does at a terminal. A test run
    started as a background job (`cmd &` in a script, some CI runners) inherits SIGINT ignored; Python
    then installs no handler, and neither do the CLI processes the tests start (exec keeps an ignored
    signal ignored). Restore Python's handler for the session: its children then start with the default."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session", autouse=True)
def onnx_export_in_background(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The suite's one ONNX export (`_onnx_fixtures.BackgroundExport`), started before the first test
    when a selected test uses it, so that it overlaps the tests that run before it."""
    if not any("exported" in getattr(item, "fixturenames", ()) for item in request.session.items):
        yield None
        return
    from _onnx_fixtures import BackgroundExport

    export = BackgroundExport(tmp_path_factory.mktemp("onnx"))
    yield export
    export.stop()


@pytest.fixture(scope="session")
def forked_cli() -> Iterator[object]:
    """One `_forked_cli.ForkedCli` server for the session: starting one imports the CLI (~2 s)."""
    from _forked_cli import ForkedCli

    with ForkedCli() as server:
        yield server
