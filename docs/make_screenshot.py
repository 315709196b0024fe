"""Render the front panel in every safety state at 1280x800 into docs/ (offscreen, simulator).

States: running (docs/front-panel.png), warning, trip, output not confirmed off, refused,
paused and a past run (docs/panel-<state>.png). Each state gets a fresh window and a scratch
results directory; the grab is the whole window as an operator sees it on a 1280x800 screen.

    python docs/make_screenshot.py            # every state
    python docs/make_screenshot.py trip paused
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pyqtgraph.Qt import QtWidgets  # noqa: E402

from ionto_instruments.clock import VirtualClock  # noqa: E402
from ionto_instruments.gui.window import FrontPanelWindow  # noqa: E402
from ionto_instruments.procedures.runner import make_procedure, run_protocol  # noqa: E402
from ionto_instruments.procedures.screening import CONTRAINDICATIONS  # noqa: E402

DOCS = Path(__file__).resolve().parent
SIZE = (1280, 800)
TIMEOUT_S = 60.0


_APP: list[QtWidgets.QApplication] = []


def _app() -> QtWidgets.QApplication:
    """The application (kept referenced: a collected QApplication takes its widgets along)."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
        _APP.append(app)
    return app


def _wait(window: FrontPanelWindow, condition: Callable[[], bool]) -> None:
    """Let the window work until `condition()` (or TIMEOUT_S)."""
    app = _app()
    deadline = time.monotonic() + TIMEOUT_S
    while not condition() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
    if not condition():
        raise RuntimeError("the screenshot state was not reached in time")


def _window(scenario: str = "normal", speed: float = 600.0) -> FrontPanelWindow:
    window = FrontPanelWindow(scenario=scenario, speed=speed, directory="runs")
    window.inputs.drug.setValue("bupivacaine")
    window.inputs.subject_id.setValue("PHANTOM-07")
    window.resize(*SIZE)
    window.show()
    return window


def _grab(window: FrontPanelWindow, name: str, ticks: int = 3) -> Path:
    app = _app()
    for _ in range(ticks):  # refresh ticks, then the paint
        window.refresh()
        app.processEvents()
        time.sleep(0.12)
    path = DOCS / name
    window.grab().save(str(path))
    return path


def _close(window: FrontPanelWindow) -> None:
    if window.manager.is_running():
        window.emergency_stop("screenshot taken")
        window.wait_idle(30)
    window.alarm.stop()
    window.close()
    _app().processEvents()


def _start(window: FrontPanelWindow) -> object:
    experiment = window.queue()
    if experiment is None:
        raise RuntimeError(f"the run was refused: {window.notice.text()}")
    return experiment.procedure


def running() -> Path:
    """Mid-way through a 30-minute session: hold at minute 16."""
    window = _window()
    procedure = _start(window)
    _wait(window, lambda: procedure.live.elapsed_s >= 16 * 60)
    path = _grab(window, "front-panel.png")
    _close(window)
    return path


def warning() -> Path:
    """The skin dries: the voltage passes 80 % of compliance (amber) before it would trip."""
    window = _window("drying@1", 10.0)
    procedure = _start(window)
    _wait(window, lambda: procedure.live.safety == "warning")
    path = _grab(window, "panel-warning.png", ticks=1)
    _close(window)
    return path


def trip() -> Path:
    """Contact lost at minute 12: the rule trips, output off and confirmed, alarm."""
    window = _window("contact-loss@12")
    _start(window)
    _wait(window, lambda: not window.manager.is_running())
    path = _grab(window, "panel-trip.png")
    _close(window)
    return path


def not_confirmed_off() -> Path:
    """The instrument stops answering at minute 9: the off cannot be read back."""
    window = _window("io-timeout@9")
    _start(window)
    _wait(window, lambda: not window.manager.is_running())
    path = _grab(window, "panel-not-confirmed-off.png")
    _close(window)
    return path


def refused() -> Path:
    """A human subject with a pacemaker: the screening refuses; the refusal is recorded."""
    window = _window()
    window.inputs.subject_kind.setValue("human")
    window.inputs.subject_id.setValue("P-0042")
    answers = {item.key: item.key == "pacemaker" for item in CONTRAINDICATIONS}
    window.ask_screening = lambda procedure: answers
    window.queue()
    _wait(window, lambda: not window.manager.is_running() and window.last_summary is not None)
    path = _grab(window, "panel-refused.png")
    _close(window)
    return path


def paused() -> Path:
    """Paused at minute 10 to inspect the skin: ramped to zero, output off, dose kept."""
    window = _window(speed=60.0)
    procedure = _start(window)
    _wait(window, lambda: procedure.live.elapsed_s >= 10 * 60)
    window.toggle_pause()
    _wait(window, lambda: procedure.paused)
    path = _grab(window, "panel-paused.png")
    _close(window)
    return path


def past_run() -> Path:
    """A finished run opened from its file: marked PAST RUN with its outcome."""
    summary = run_protocol(make_procedure({"drug": "dexamethasone", "subject_id": "PHANTOM-03",
                                           "dose_controlled": True, "dose_target": 40.0,
                                           "scenario": "normal"}),
                           output_dir="past", clock=VirtualClock())
    window = _window()
    window.open_results(summary["results_file"])
    path = _grab(window, "panel-past-run.png")
    _close(window)
    return path


STATES: dict[str, Callable[[], Path]] = {
    "running": running, "warning": warning, "trip": trip,
    "not-confirmed-off": not_confirmed_off, "refused": refused, "paused": paused,
    "past-run": past_run,
}


def make_screenshots(names: list[str] | None = None) -> list[Path]:
    """Render the named states (default: all) in a scratch directory; return the PNG paths."""
    _app()
    here = os.getcwd()
    paths = []
    with tempfile.TemporaryDirectory(prefix="ionto_screenshot_") as tmp:
        os.chdir(tmp)  # results go to ./runs of a scratch directory, shown as "runs"
        try:
            for name in names or list(STATES):
                paths.append(STATES[name]())
        finally:
            os.chdir(here)
    return paths


if __name__ == "__main__":
    for written in make_screenshots(sys.argv[1:] or None):
        print(written)
