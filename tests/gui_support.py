"""Small helpers shared by the front-panel tests (the `window` fixture is in conftest)."""

from __future__ import annotations

from pyqtgraph.Qt import QtWidgets

from ionto_instruments.gui.window import FrontPanelWindow
from ionto_instruments.procedures.runner import make_procedure

RUN_TIMEOUT_MS = 20_000


def button(win: FrontPanelWindow, name: str) -> QtWidgets.QPushButton:
    widget = win.findChild(QtWidgets.QPushButton, name)
    assert widget is not None, f"no button named {name!r}"
    return widget


def queue_run(win: FrontPanelWindow, **values):
    """Queue a run through the window with parameters given as Procedure values."""
    experiment = win.queue(procedure=make_procedure(values) if values else None)
    assert experiment is not None, win.notice.text()
    return experiment


def wait_for_phase(qtbot, procedure, phase: str = "hold") -> None:
    qtbot.waitUntil(lambda: procedure.live.phase == phase, timeout=RUN_TIMEOUT_MS)


def wait_for_end(qtbot, win: FrontPanelWindow) -> None:
    qtbot.waitUntil(lambda: not win.manager.is_running(), timeout=RUN_TIMEOUT_MS)
