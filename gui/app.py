"""Open the front panel: `run_gui()`, called lazily by `ionto gui` (procedures/cli.py).

The command line lives in one place, `ionto gui`; this module only builds the window and
runs the Qt event loop.
"""

from __future__ import annotations

import pyqtgraph as pg
from pyqtgraph.Qt import QtWidgets

from .window import FrontPanelWindow


def run_gui(scenario: str = "normal", speed: float = 60.0, resource: str | None = None,
            model: str = "keithley2400") -> int:
    """Open the front panel and run the Qt event loop; return its exit code.

    Without `resource` the simulated SourceMeter is used, with `scenario` and a clock
    `speed` times real time (both changeable in the window's simulation banner).
    """
    app = QtWidgets.QApplication.instance() or pg.mkQApp("ionto-instruments")
    window = FrontPanelWindow(scenario=scenario, speed=speed, resource=resource, model=model)
    window.show()
    return int(app.exec_())
