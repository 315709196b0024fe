"""Start the front panel: `run_gui()` from Python, `main()` for `ionto gui` / `python -m`."""

from __future__ import annotations

import argparse
import math
import sys

import pyqtgraph as pg
from pyqtgraph.Qt import QtWidgets

from .window import FrontPanelWindow


def parse_speed(text: str) -> float:
    """Parse a clock speed: a number (60) or "max" for the virtual clock."""
    if str(text).strip().lower() in ("max", "virtual", "inf"):
        return math.inf
    speed = float(text)
    if not speed > 0:
        raise argparse.ArgumentTypeError(f"speed must be > 0 or 'max', got {text!r}")
    return speed


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


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: `ionto-gui [--scenario S] [--speed N|max] [--resource R]`."""
    parser = argparse.ArgumentParser(prog="ionto gui", description=run_gui.__doc__)
    parser.add_argument("--scenario", default="normal",
                        help="simulator scenario, e.g. normal or contact-loss@1")
    parser.add_argument("--speed", type=parse_speed, default=60.0,
                        help="simulated clock speed (x real time) or 'max'")
    parser.add_argument("--resource", default=None,
                        help="VISA resource of a real SourceMeter (default: the simulator)")
    parser.add_argument("--model", default="keithley2400",
                        help="instrument model (keithley2400 or keithley2450)")
    args = parser.parse_args(argv)
    return run_gui(scenario=args.scenario, speed=args.speed, resource=args.resource,
                   model=args.model)


if __name__ == "__main__":
    sys.exit(main())
