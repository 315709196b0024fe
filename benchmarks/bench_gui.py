"""Chart refresh cost per tick vs rows on file: our incremental charts vs a stock-like baseline.

Ours: `ResultsTail` reads only the bytes appended since the last tick and `ChunkedCurve` calls
`setData` on the last chunk only. Baseline (what PyMeasure's `ResultsCurve` does): re-read the
whole file with pandas and `setData` every point of every curve. Both run here, on the same
files, in the same process. Each file is a 30-minute protocol (2k, 18k or 180k rows: 0.9 s,
0.1 s or 10 ms sampling). Also: the repaint after a tick, and the memory growth over a
30-minute run (9000 rows at 0.2 s) fed through the charts tick by tick. Printed, never
asserted.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pandas as pd  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from pyqtgraph.Qt import QtWidgets  # noqa: E402

from ionto_instruments.gui import theme  # noqa: E402
from ionto_instruments.gui.charts import ChartsWidget  # noqa: E402
from ionto_instruments.gui.results_tail import (  # noqa: E402
    CURRENT,
    DOSE,
    IMPEDANCE,
    SETPOINT,
    TIME,
    VOLTAGE,
)
from ionto_instruments.procedures.results import IontoResults  # noqa: E402
from ionto_instruments.procedures.runner import make_procedure  # noqa: E402

SIZES = (2_000, 18_000, 180_000)
#: Rows appended per tick: a 60x demo (0.2 s samples -> 300 rows/s) polled at 10 Hz.
ROWS_PER_TICK = 30
TICKS = 40
#: E-stops per dialog condition (each one a run started and stopped mid-hold at 60x).
ESTOP_REPEATS = 5
#: A 30-minute run at the default 0.2 s sample interval.
RUN_ROWS = 9_000
CURVE_COLUMNS = (CURRENT, SETPOINT, VOLTAGE, IMPEDANCE, DOSE)


def _app() -> QtWidgets.QApplication:
    return QtWidgets.QApplication.instance() or pg.mkQApp("bench_gui")


class SyntheticRun:
    """A results file written through IontoResults' formatter, row by row like a real run."""

    def __init__(self, path: Path, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.procedure = make_procedure({})
        self.results = IontoResults(self.procedure, path)
        self.path = path
        self.n = 0
        self.dose = 0.0
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def _row(self) -> dict:
        t = self.interval_s * self.n
        ramp = min(1.0, t / 30.0)
        phase = "contact-check" if t < 2 else ("ramp-up" if ramp < 1 else "hold")
        current = 2.0 * ramp * (1 + 0.002 * math.sin(self.n))
        resistance = 3.0 + 12.0 * math.exp(-t / 120.0)
        self.dose += abs(current) * self.interval_s / 60.0
        return {TIME: round(t, 4), "Phase": phase, SETPOINT: round(2.0 * ramp, 6),
                CURRENT: current, VOLTAGE: current * resistance, IMPEDANCE: resistance,
                DOSE: self.dose, "Current density (mA/cm^2)": current / 10.0, "Compliance": 0,
                "Event": ""}

    def append(self, rows: int) -> None:
        """Append rows and flush, as PyMeasure's FileHandler does."""
        formatter = self.results.formatter
        lines = []
        for _ in range(rows):
            lines.append(formatter.format(self._row()))
            self.n += 1
        self._file.write("\n".join(lines) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _charts() -> ChartsWidget:
    charts = ChartsWidget()
    charts.resize(1100, 520)
    charts.show()
    return charts


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def ours_tick_ms(run: SyntheticRun) -> tuple[float, float]:
    """Median (update, update + repaint) per tick with the incremental charts."""
    app = _app()
    charts = _charts()
    curves = charts.new_curve(SimpleNamespace(data_filename=str(run.path),
                                              procedure=run.procedure))
    charts.load(curves)
    curves.update_data()  # catch up with the file (not timed)
    app.processEvents()
    update, repaint = [], []
    for _ in range(TICKS):
        run.append(ROWS_PER_TICK)
        start = time.perf_counter()
        curves.update_data()
        middle = time.perf_counter()
        charts.layout_widget.grab()
        end = time.perf_counter()
        update.append(middle - start)
        repaint.append(end - start)
    assert curves.rows == run.n, (curves.rows, run.n)
    charts.close()
    charts.deleteLater()
    app.processEvents()
    return _median_ms(update), _median_ms(repaint)


def baseline_tick_ms(run: SyntheticRun) -> tuple[float, float]:
    """Median (update, update + repaint) per tick re-reading the file and replotting all.

    Stock-like: four plain pyqtgraph plots (auto-range, no clipping or downsampling, as
    PyMeasure's PlotWidget), the same size as ours.
    """
    app = _app()
    layout = pg.GraphicsLayoutWidget()
    layout.resize(1100, 520)
    layout.show()
    plots = [layout.addPlot(row=row, col=0) for row in range(4)]
    targets = (plots[0], plots[0], plots[1], plots[2], plots[3])
    colors = (theme.CURRENT, theme.SETPOINT, theme.VOLTAGE, theme.IMPEDANCE, theme.DOSE)
    items = []
    for plot, color in zip(targets, colors, strict=True):
        item = pg.PlotDataItem(pen=pg.mkPen(color, width=2))
        plot.addItem(item)
        items.append(item)

    def tick() -> None:
        data = pd.read_csv(run.path, comment="#")
        x = data[TIME].to_numpy() / 60.0
        for item, column in zip(items, CURVE_COLUMNS, strict=True):
            item.setData(x, data[column].to_numpy())

    tick()
    app.processEvents()
    update, repaint = [], []
    for _ in range(TICKS):
        run.append(ROWS_PER_TICK)
        start = time.perf_counter()
        tick()
        middle = time.perf_counter()
        layout.grab()
        end = time.perf_counter()
        update.append(middle - start)
        repaint.append(end - start)
    layout.close()
    layout.deleteLater()
    app.processEvents()
    return _median_ms(update), _median_ms(repaint)


def _rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def memory_growth(directory: Path) -> tuple[float, float, float]:
    """Feed a 30-minute run (9000 rows) through the charts tick by tick, repainting each tick.

    Returns (tracemalloc growth MB, tracemalloc peak above start MB, RSS growth MB).
    """
    app = _app()
    run = SyntheticRun(directory / "memory.csv")
    charts = _charts()
    curves = charts.new_curve(SimpleNamespace(data_filename=str(run.path),
                                              procedure=run.procedure))
    charts.load(curves)
    app.processEvents()
    gc.collect()
    rss_before = _rss_mb()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    while run.n < RUN_ROWS:
        run.append(ROWS_PER_TICK)
        curves.update_data()
        charts.layout_widget.grab()
    gc.collect()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = _rss_mb()
    run.close()
    charts.close()
    charts.deleteLater()
    app.processEvents()
    return (after - before) / 2**20, (peak - before) / 2**20, rss_after - rss_before


def _until(condition, timeout_s: float = 30.0) -> None:
    app = _app()
    deadline = time.perf_counter() + timeout_s
    while not condition() and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.002)


def estop_latency_ms(directory: Path, repeats: int = ESTOP_REPEATS) -> dict[str, list[float]]:
    """E-stop click -> OUTPUT 0 at the (simulated) instrument, mid-hold, per open dialog.

    The click is a real mouse press: on the button, or where the button is when a popup
    menu has the mouse grab (the press goes to the menu, as on a desktop). OUTPUT 0 is seen
    when the simulator's output state turns off.
    """
    from pyqtgraph.Qt import QtCore, QtTest

    from ionto_instruments.gui.window import FrontPanelWindow

    app = _app()
    window = FrontPanelWindow(scenario="normal", speed=60.0, directory=directory / "estop")
    window.resize(1280, 770)
    window.show()

    def on_button(popup: object) -> None:
        QtTest.QTest.mouseClick(window.estop_button, QtCore.Qt.MouseButton.LeftButton)

    def over_popup(popup: QtWidgets.QWidget) -> None:
        centre = window.estop_button.mapToGlobal(window.estop_button.rect().center())
        QtTest.QTest.mousePress(popup, QtCore.Qt.MouseButton.LeftButton,
                                QtCore.Qt.KeyboardModifier.NoModifier, popup.mapFromGlobal(centre))

    def menu() -> QtWidgets.QWidget:
        window.file_menu.popup(window.mapToGlobal(QtCore.QPoint(10, 10)))
        _until(lambda: QtWidgets.QApplication.activePopupWidget() is not None)
        return QtWidgets.QApplication.activePopupWidget()

    conditions = {
        "no dialog": (lambda: None, on_button),
        "Open results dialog open": (window.open_results_dialog, on_button),
        "close question shown": (lambda: window.close() or window.close_confirm, on_button),
        "File menu open": (menu, over_popup),
    }
    latencies: dict[str, list[float]] = {name: [] for name in conditions}
    for name, (setup, click) in conditions.items():
        for _ in range(repeats):
            experiment = window.queue()
            procedure = experiment.procedure
            _until(lambda procedure=procedure: procedure.live.phase == "hold")
            popup = setup()
            app.processEvents()
            model = procedure.simulator.model
            start = time.perf_counter()
            click(popup)
            while model.output_enabled:
                app.processEvents()
            latencies[name].append(time.perf_counter() - start)
            if QtWidgets.QApplication.activePopupWidget() is not None:
                QtWidgets.QApplication.activePopupWidget().close()
            if window.results_dialog is not None:
                window.results_dialog.close()
            window.close_confirm.hide()
            window._close_pending = False
            window.wait_idle(30)
            window.acknowledge_trip()
    window.close()
    app.processEvents()
    return latencies


def run() -> list[tuple[str, float, str]]:
    """Measure and return rows of (name, value, unit)."""
    _app()
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench_gui_estop_") as tmp:
        for name, samples in estop_latency_ms(Path(tmp)).items():
            rows += [(f"E-stop click -> OUTPUT 0, {name}: median", _median_ms(samples), "ms"),
                     (f"E-stop click -> OUTPUT 0, {name}: max of {len(samples)}",
                      max(samples) * 1e3, "ms")]
    with tempfile.TemporaryDirectory(prefix="bench_gui_") as tmp:
        directory = Path(tmp)
        grown, peak, rss = memory_growth(directory)  # first, before the big files
        memory_rows = [
            ("30-min run (9000 rows) through the charts: tracemalloc growth", grown, "MB"),
            ("30-min run: tracemalloc peak above start", peak, "MB"),
            ("30-min run: RSS growth", rss, "MB"),
        ]
        for size in SIZES:
            label = f"{size // 1000}k"
            interval = 1800.0 / size  # every file is a 30-minute protocol, finer sampled
            run_ours = SyntheticRun(directory / f"ours_{size}.csv", interval)
            run_ours.append(size)
            ours_update, ours_repaint = ours_tick_ms(run_ours)
            run_ours.close()
            run_base = SyntheticRun(directory / f"base_{size}.csv", interval)
            run_base.append(size)
            base_update, base_repaint = baseline_tick_ms(run_base)
            run_base.close()
            rows += [
                (f"chart tick @ {label} rows, ours (tail + last-chunk setData)", ours_update,
                 "ms"),
                (f"chart tick @ {label} rows, baseline (pandas re-read + setData all)",
                 base_update, "ms"),
                (f"tick + repaint @ {label} rows, ours", ours_repaint, "ms"),
                (f"tick + repaint @ {label} rows, baseline", base_repaint, "ms"),
            ]
    return rows + memory_rows


def main() -> int:
    """Print the table."""
    print(f"bench_gui: {ROWS_PER_TICK} new rows per tick, median over {TICKS} ticks "
          f"(python {sys.version.split()[0]}, pyqtgraph {pg.__version__})")
    for name, value, unit in run():
        print(f"  {name:66s} {value:10.3f} {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
