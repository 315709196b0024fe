"""Shared fixtures: every test gets its own simulator and clock; nothing leaks between tests."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

# The one place the tests choose Qt's headless platform (before anything imports Qt); the
# subprocesses of the CLI tests inherit it through os.environ.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from ionto_instruments.clock import VirtualClock  # noqa: E402
from ionto_instruments.procedures.iontophoresis import ConstantCurrentIontophoresis  # noqa: E402
from ionto_instruments.procedures.runner import make_procedure, run_protocol  # noqa: E402


@dataclass
class Run:
    """A finished run: its summary, the procedure, the simulator and the rows on disk."""

    summary: dict[str, Any]
    procedure: ConstantCurrentIontophoresis

    @property
    def simulator(self) -> Any:
        return self.procedure.simulator

    @property
    def rows(self) -> pd.DataFrame:
        return pd.read_csv(self.summary["results_file"], comment="#")

    @property
    def results_file(self) -> Path:
        return Path(self.summary["results_file"])


@pytest.fixture
def run_protocol_on_sim(tmp_path):
    """Run the Procedure to its end on a fresh simulator with a virtual clock."""

    def _run(clock=None, extra_rules=(), **values: Any) -> Run:
        procedure = make_procedure(values)
        procedure.extra_rules = list(extra_rules)
        summary = run_protocol(procedure, output_dir=tmp_path, clock=clock or VirtualClock())
        return Run(summary, procedure)

    return _run


@pytest.fixture(autouse=True)
def _quiet_pymeasure_logs():
    logging.getLogger("pymeasure").setLevel(logging.WARNING)
    yield


@pytest.fixture(autouse=True, scope="session")
def _records_in_a_temporary_database(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The front panel opens the course record: never the user's own during tests."""
    os.environ["IONTO_DB"] = f"sqlite:///{tmp_path_factory.mktemp('records') / 'r.sqlite3'}"


#: Longest a front-panel test waits for a run (ms of real time).
GUI_RUN_TIMEOUT_MS = 20_000


@pytest.fixture
def window(qtbot, tmp_path):
    """A front panel on the simulator at 600x, results in tmp; cleaned up after the test."""
    from ionto_instruments.gui.window import FrontPanelWindow  # Qt only for GUI tests

    root = logging.getLogger()
    handlers_before = list(root.handlers)
    package_level = logging.getLogger("ionto_instruments").level
    win = FrontPanelWindow(scenario="normal", speed=600.0, directory=tmp_path / "runs")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    if win.manager.is_running():
        win.emergency_stop("test teardown")
        qtbot.waitUntil(lambda: not win.manager.is_running(), timeout=GUI_RUN_TIMEOUT_MS)
    win.close()
    assert win.log_handler not in root.handlers
    assert root.handlers == handlers_before
    assert logging.getLogger("ionto_instruments").level == package_level
