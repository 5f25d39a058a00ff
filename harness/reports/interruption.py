"""An interrupted run (Ctrl-C, SIGTERM, SIGHUP): pytest's teardown runs and the report says so.

SIGTERM (what CI cancellation and `timeout` send) and SIGHUP would end the pytest process at once,
without tearing fixtures down (spawned targets left running) and without a report. In the pytest
controller this plugin turns them into KeyboardInterrupt, the path Ctrl-C takes: pytest stops,
tears down, prints the report and exits with 2 (ExitCode.INTERRUPTED).

It also keeps what the reports need to say so (harness/reports/pytest_items.py RunState): whether
the run was interrupted, and what it collected (how many cases it was to run).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import pytest

from harness.reports.pytest_items import RUN_STATE_KEY, RunState

CONVERTED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")


class Interruption:
    """The per-run part of the plugin: the signal handlers it set, and the hooks that need the config."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.state = RunState()
        config.stash[RUN_STATE_KEY] = self.state
        self.previous_handlers: dict[int, Any] = {}
        # The controller only (xdist workers are shut down by it); handlers can be set in the main thread only.
        if hasattr(config, "workerinput") or threading.current_thread() is not threading.main_thread():
            return
        for sig in CONVERTED_SIGNALS:
            if signal.getsignal(sig) is signal.SIG_DFL:  # a handler someone else set is left alone
                self.previous_handlers[sig] = signal.signal(sig, _raise_interrupt)

    def restore(self) -> None:
        for sig, handler in self.previous_handlers.items():
            signal.signal(sig, handler)
        self.previous_handlers.clear()

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # Not pytest.exit(), which takes this hook too, nor a run the suite itself stopped
        # (session.shouldstop: a target that cannot be restarted), whose exception is a KeyboardInterrupt.
        if isinstance(excinfo.value, KeyboardInterrupt) and not isinstance(excinfo.value, pytest.Session.Interrupted):
            self.state.interrupted = True

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.state.collected = [item.nodeid for item in session.items]

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        # The controller collects nothing itself; every worker collects the same items.
        self.state.collected = list(ids)


_PLUGIN_NAME = "fcgispec-interruption"


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Interruption(config), _PLUGIN_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin(_PLUGIN_NAME)
    if isinstance(plugin, Interruption):
        plugin.restore()
