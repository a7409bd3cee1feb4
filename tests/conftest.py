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
