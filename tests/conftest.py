"""Suite-wide set-up."""

from __future__ import annotations

import os
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
def one_torch_thread_for_the_session() -> Iterator[None]:
    """torch on one intra-op thread for the whole session, as several modules already did for theirs:
    the tests' tensors are tiny, and on a 2-core machine running anything else (the background export
    below, CI neighbours) an OpenMP thread that is descheduled stalls every op at a barrier (CReFF's
    float64 gradcheck: 1 s on one thread, 17 s on two). Tests about thread counts ask for
    `two_torch_threads`. The CLI processes the tests start run on one thread too (OMP_NUM_THREADS), so
    that what they compute is what the test process computes."""
    import torch

    threads, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(threads)
    if env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env


@pytest.fixture()
def two_torch_threads() -> Iterator[None]:
    """torch on two intra-op threads during the test (the session runs on one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


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
