"""Write docs/front-panel.png: the front panel mid-way through a simulated 30-minute run.

Runs offscreen on the simulator with a 600x clock (30 minutes in 3 s), grabs the window once
the treatment is past minute 16 of the hold, then switches the output off and closes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pyqtgraph.Qt import QtWidgets  # noqa: E402

from ionto_instruments.gui.window import FrontPanelWindow  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "front-panel.png"
SIZE = (1400, 900)
GRAB_AT_S = 16 * 60.0
SPEED = 600.0


def make_screenshot(output: Path = OUTPUT, speed: float = SPEED) -> Path:
    """Run a simulated session to mid-hold, save the window as PNG, return its path."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="ionto_screenshot_") as tmp:
        os.chdir(tmp)  # results go to ./runs of a scratch directory, shown as "runs"
        try:
            return _session(app, output, speed)
        finally:
            os.chdir(here)


def _session(app: QtWidgets.QApplication, output: Path, speed: float) -> Path:
    """Open the window, run to mid-hold, grab, E-stop and close."""
    window = FrontPanelWindow(scenario="normal", speed=speed, directory="runs")
    window.inputs.drug.setValue("bupivacaine")
    window.inputs.subject_id.setValue("PHANTOM-07")
    window.resize(*SIZE)
    window.show()
    experiment = window.queue()
    if experiment is None:
        raise RuntimeError(f"the run was refused: {window.notice.text()}")
    procedure = experiment.procedure
    deadline = time.monotonic() + 60
    while procedure.live.elapsed_s < GRAB_AT_S and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
    window.refresh()
    app.processEvents()
    window.grab().save(str(output))
    window.emergency_stop("screenshot taken")
    window.wait_idle(30)
    window.close()
    app.processEvents()
    return output


if __name__ == "__main__":
    print(make_screenshot())
