"""Live charts of a run against time, with a per-tick cost that stays flat as the run grows.

PyMeasure's stock `ResultsCurve` re-reads the whole file and replots every point each tick.
Here a `ResultsTail` reads only the bytes appended since the last tick (a byte offset), and a
`ChunkedCurve` keeps completed chunks of points as static plot items that are never touched
again; only the last chunk gets `setData`. Clip-to-view and peak downsampling keep painting
cheap too.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from pymeasure.display.widgets.tab_widget import TabWidget
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ionto_instruments.procedures.contracts import EventKind
from ionto_instruments.procedures.drugs import get_drug
from ionto_instruments.procedures.events import RunEvent, load_events
from ionto_instruments.procedures.iontophoresis import CONTACT_CHECK_MA, CONTACT_CHECK_S
from ionto_instruments.procedures.plan import DOSE_CAP_MA_MIN
from ionto_instruments.procedures.safety import SafetyConfig

from . import theme
from .chunked_curve import ChunkedCurve, add_item, remove_item
from .results_tail import (
    CURRENT,
    DOSE,
    IMPEDANCE,
    PHASE,
    SETPOINT,
    TIME,
    VOLTAGE,
    ResultsTail,
)

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: Below this |current| an impedance V/I means nothing (offsets dominate): neither shown nor
#: charted. The contact check's own current still counts.
NEAR_ZERO_MA = 0.8 * CONTACT_CHECK_MA
#: Above this the contact is open or lifting (the impedance-high rule's threshold).
OPEN_KOHM = float(SafetyConfig.__dataclass_fields__["impedance_high_kohm"].default)
#: Impedances above this are charted at this value: an open circuit never rescales the axis.
CHART_MAX_KOHM = 2 * OPEN_KOHM

#: How each kind of event is marked on the charts: colour and label (others are not drawn).
EVENT_MARKS: dict[EventKind, tuple[str, str]] = {
    EventKind.TRIP: (theme.LIMIT, "TRIP"),
    EventKind.WARNING: (theme.SAFETY_COLORS["warning"], "warning"),
    EventKind.STOP: (theme.PHASE_COLORS["ramp-down"], "stop"),
    EventKind.PAUSE: (theme.SAFETY_COLORS["paused"], "pause"),
    EventKind.RESUME: (theme.SAFETY_COLORS["paused"], "resume"),
}

#: Where each kind's label sits on its line (fraction of the height): no two overlap.
EVENT_LABEL_HEIGHT = {EventKind.TRIP: 0.92, EventKind.WARNING: 0.72, EventKind.STOP: 0.52,
                      EventKind.PAUSE: 0.92, EventKind.RESUME: 0.72}

#: Event lines drawn per run at most (warnings may repeat every sample).
MAX_EVENT_LINES = 24

#: Colours given to successive runs (browser icon; curves of runs not in focus).
RUN_PALETTE = ("#ffd43b", "#4dabf7", "#ff922b", "#69db7c", "#f783ac", "#a9e34b", "#e599f7",
               "#66d9e8")


class MarkLine(pg.InfiniteLine):
    """A limit or event line that survives removal from its plot.

    pyqtgraph's InfiniteLine raises in boundingRect() once its ViewBox is gone, and a scene
    still indexing the removed item then calls it inside Qt's C++ code (seen as a crash).
    """

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 (Qt API)
        if self.getViewBox() is None:
            return QtCore.QRectF()
        return super().boundingRect()


def chartable_impedance(impedance_kohm: np.ndarray,
                        current_mA: np.ndarray | None) -> np.ndarray:
    """Impedance to chart: none at near-zero current, an open circuit capped at CHART_MAX_KOHM."""
    values = np.minimum(impedance_kohm, CHART_MAX_KOHM)
    if current_mA is not None:
        values = np.where(np.abs(current_mA) < NEAR_ZERO_MA, np.nan, values)
    return values


class RunCurves:
    """Everything one run draws: the curves, phase shading, limits and event marks.

    PyMeasure's Manager treats this as the run's "curve": it calls `update_data()` and the
    charts widget's `load`/`remove`/`set_color` with it.
    """

    def __init__(self, charts: ChartsWidget, results: Any, color: Any) -> None:
        self.wdg = charts
        self.results = results
        self.color = QtGui.QColor(color)
        self.tail = ResultsTail(results.data_filename)
        self.focused = False
        self.attached = True
        self.current = ChunkedCurve(charts.current_plot, None, z=2)
        self.setpoint = ChunkedCurve(charts.current_plot, None, z=1)
        self.voltage = ChunkedCurve(charts.voltage_plot, None, z=2)
        self.impedance = ChunkedCurve(charts.impedance_plot, None, z=2)
        self.dose = ChunkedCurve(charts.dose_plot, None, z=2)
        self.curves = (self.current, self.setpoint, self.voltage, self.impedance, self.dose)
        self._decor: list[tuple[pg.PlotItem, pg.GraphicsObject, bool]] = []
        #: Values each plot's scale must include while this run is in focus (limits).
        self._scale_marks: list[tuple[pg.PlotItem, float]] = []
        self._phase_regions: list[tuple[str, float, list[pg.LinearRegionItem]]] = []
        self._last_phase: str | None = None
        self._last_x = math.nan
        #: Latest time drawn (min) and the protocol's planned length (min, NaN if unknown).
        self.last_x = math.nan
        self.planned_span = math.nan
        self._event_lines = 0
        self._last_warning = ""
        self._events_seen = 0
        self._events_loaded = False
        #: The event lines drawn: (kind, minute).
        self.event_marks: list[tuple[EventKind, float]] = []
        self._add_limits()
        self.set_focus(True)

    # ---------------------------------------------------------------- data

    def update_data(self) -> int:
        """Read the rows appended to the file since the last call and draw them; return count."""
        block = self.tail.read_new()
        if not block:
            return 0
        numbers = block.numbers
        if TIME not in numbers:
            return 0
        x = numbers[TIME] / 60.0
        if IMPEDANCE in numbers:
            numbers[IMPEDANCE] = chartable_impedance(numbers[IMPEDANCE], numbers.get(CURRENT))
        for curve, column, scale in ((self.current, CURRENT, 1.0), (self.setpoint, SETPOINT, 1.0),
                                     (self.voltage, VOLTAGE, 1.0),
                                     (self.impedance, IMPEDANCE, 1e3),  # ohms: SI prefixes
                                     (self.dose, DOSE, 1.0)):
            if column in numbers:
                curve.append(x, numbers[column] * scale if scale != 1.0 else numbers[column])
        if PHASE in block.text:
            self._update_phases(x, block.text[PHASE])
        self._mark_events(self._new_events())
        pixels_per_unit = self.wdg.pixels_per_unit()
        for curve in self.curves:
            curve.set_density(pixels_per_unit)
        finite = x[np.isfinite(x)]
        if len(finite):
            self.last_x = float(finite.max()) if math.isnan(self.last_x) else max(
                self.last_x, float(finite.max()))
            if self.focused and self.attached:
                self.wdg.ensure_visible(self.last_x)
        self.wdg.autoscale_y()
        return len(block)

    @property
    def rows(self) -> int:
        """Rows read from the file so far."""
        return self.tail.rows_read

    # ---------------------------------------------------------------- decorations

    def _add_limits(self) -> None:
        procedure = getattr(self.results, "procedure", None)
        if procedure is None:
            return
        charts = self.wdg
        try:
            polarity = get_drug(procedure.drug).polarity
        except (ValueError, AttributeError):
            polarity = 1
        compliance = _float_or_nan(getattr(procedure, "compliance_voltage", math.nan))
        if math.isfinite(compliance):
            self._limit_line(charts.voltage_plot, polarity * compliance, theme.LIMIT,
                             f"compliance {compliance:g} V")
        target = math.nan
        label = "dose target"
        if getattr(procedure, "dose_controlled", False):
            target = _float_or_nan(getattr(procedure, "dose_target", math.nan))
        else:
            with contextlib.suppress(Exception):
                target = procedure.build_plan().planned_dose_mA_min
                label = "planned dose"
        with contextlib.suppress(Exception):
            self.planned_span = (CONTACT_CHECK_S + procedure.build_plan().nominal_duration_s
                                 + float(procedure.sample_interval)) / 60.0
        if math.isfinite(target):
            self._limit_line(charts.dose_plot, target, theme.TARGET, f"{label} {target:.1f}",
                             right=False)
        self._limit_line(charts.dose_plot, DOSE_CAP_MA_MIN, theme.LIMIT,
                         f"cap {DOSE_CAP_MA_MIN:g} mA\u00b7min")
        target_mA = _float_or_nan(getattr(procedure, "target_current", math.nan))
        if math.isfinite(target_mA):  # zero and some headroom above the hold current
            self._scale_marks += [(charts.current_plot, 0.0),
                                  (charts.current_plot, 1.2 * polarity * target_mA)]
        self._scale_marks.append((charts.dose_plot, 0.0))

    def _limit_line(self, plot: pg.PlotItem, y: float, color: str, label: str,
                    right: bool = True) -> None:
        # the scale reaches just beyond the limit, so the line and its label are in view
        self._scale_marks.append((plot, 1.3 * y))
        line = MarkLine(pos=y, angle=0, movable=False,
                               pen=pg.mkPen(color, width=1.5,
                                            style=QtCore.Qt.PenStyle.DashLine),
                               label=label,
                               labelOpts={"position": 0.985 if right else 0.015,
                                          "color": color,
                                          "anchors": [(1, 1), (1, 1)] if right
                                          else [(0, 1), (0, 1)]})
        self._add_decor(plot, line)

    def _add_decor(self, plot: pg.PlotItem, item: pg.GraphicsObject,
                   ignore_bounds: bool = True) -> None:
        self._decor.append((plot, item, ignore_bounds))
        if self.attached:
            add_item(plot, item, ignore_bounds)
        item.setVisible(self.focused)

    def _update_phases(self, x: np.ndarray, phases: list[str]) -> None:
        if not len(x):
            return
        for xi, phase in zip(x.tolist(), phases, strict=False):
            if phase != self._last_phase and phase:
                if self._phase_regions:
                    self._set_region_end(xi)
                self._start_region(phase, xi)
                self._last_phase = phase
        self._last_x = float(x[-1])
        self._set_region_end(self._last_x)

    def _start_region(self, phase: str, x: float) -> None:
        color = QtGui.QColor(theme.PHASE_COLORS.get(phase, "#868e96"))
        color.setAlpha(theme.PHASE_ALPHA)
        items = []
        for plot in self.wdg.plots:
            region = pg.LinearRegionItem(values=(x, x), orientation="vertical",
                                         brush=pg.mkBrush(color), pen=pg.mkPen(None),
                                         movable=False)
            region.setZValue(-10)
            self._add_decor(plot, region)
            items.append(region)
        self._phase_regions.append((phase, x, items))

    def _set_region_end(self, x: float) -> None:
        phase, start, items = self._phase_regions[-1]
        for region in items:
            region.setRegion((start, x))

    def y_bounds(self, plot: pg.PlotItem, log: bool = False) -> tuple[float, float]:
        """Smallest and largest value this run shows on `plot` (inf, -inf if none)."""
        low, high = math.inf, -math.inf
        if not self.attached:
            return low, high
        for curve in self.curves:
            if curve.plot is plot and curve.count:
                low = min(low, curve.y_min_positive if log else curve.y_min)
                high = max(high, curve.y_max)
        if self.focused:
            for mark_plot, value in self._scale_marks:
                if mark_plot is plot and (value > 0 or not log):
                    low, high = min(low, value), max(high, value)
        return low, high

    def phases(self) -> list[tuple[str, float, float]]:
        """The phase segments drawn: (phase, start min, end min)."""
        return [(phase, start, items[0].getRegion()[1])
                for phase, start, items in self._phase_regions]

    def _new_events(self) -> list[RunEvent]:
        """Events not drawn yet, with their kind as data.

        A live run: from the running procedure's `events`. A file: from its summary (or, for
        an old or cut-short file, from its Event column), once, after its rows are read.
        """
        procedure = getattr(self.results, "procedure", None)
        if procedure is not None and getattr(procedure, "results_file", None):
            events = list(procedure.events)
        elif not self._events_loaded:
            self._events_loaded = True
            events = load_events(self.results.data_filename)
        else:
            return []
        fresh = events[self._events_seen:]
        self._events_seen = len(events)
        return fresh

    def _mark_events(self, events: list[RunEvent]) -> None:
        for event in events:
            if self._event_lines >= MAX_EVENT_LINES or not math.isfinite(event.t):
                continue
            style = EVENT_MARKS.get(event.kind)
            if style is None:
                continue
            if event.kind == EventKind.WARNING:
                if event.message == self._last_warning:
                    continue
                self._last_warning = event.message
            color, text = style
            x = event.t / 60.0
            height = EVENT_LABEL_HEIGHT.get(event.kind, 0.9)
            self._event_lines += 1
            for k, plot in enumerate(self.wdg.plots):
                line = MarkLine(pos=x, angle=90, movable=False,
                                       pen=pg.mkPen(color, width=2),
                                       label=text if k == 0 else None,
                                       labelOpts={"position": height, "color": color})
                line.setToolTip(event.cell_text())
                self._add_decor(plot, line)
            self.event_marks.append((event.kind, x))

    # ---------------------------------------------------------------- appearance

    def set_focus(self, focused: bool) -> None:
        """The run in focus is drawn in the quantity colours with its phases and limits."""
        self.focused = focused
        if focused:
            pens = (pg.mkPen(theme.CURRENT, width=2),
                    pg.mkPen(theme.SETPOINT, width=1, style=QtCore.Qt.PenStyle.DashLine),
                    pg.mkPen(theme.VOLTAGE, width=2), pg.mkPen(theme.IMPEDANCE, width=2),
                    pg.mkPen(theme.DOSE, width=2))
        else:
            faded = QtGui.QColor(self.color)
            faded.setAlpha(170)
            run = pg.mkPen(faded, width=1)
            pens = (run, pg.mkPen(faded, width=1, style=QtCore.Qt.PenStyle.DotLine), run, run,
                    run)
        for curve, pen in zip(self.curves, pens, strict=True):
            curve.set_pen(pen)
        for _, item, _ in self._decor:
            item.setVisible(focused)

    def set_color(self, color: Any) -> None:
        """Change the run's colour (browser icon and the curves when not in focus)."""
        self.color = QtGui.QColor(color)
        self.set_focus(self.focused)

    def attach(self) -> None:
        """Put the run's items on the plots."""
        if self.attached:
            return
        self.attached = True
        for curve in self.curves:
            curve.attach()
        for plot, item, ignore in self._decor:
            add_item(plot, item, ignore)

    def detach(self) -> None:
        """Take the run's items off the plots."""
        if not self.attached:
            return
        self.attached = False
        for curve in self.curves:
            curve.detach()
        for plot, item, _ in self._decor:
            remove_item(plot, item)


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class ChartsWidget(TabWidget, QtWidgets.QWidget):
    """Four stacked charts against time (min): current+setpoint, voltage, impedance, dose."""

    def __init__(self, name: str = "Charts", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(name, parent)
        self.setObjectName("charts")
        self.runs: list[RunCurves] = []
        self.focus: RunCurves | None = None
        self._palette_index = 0
        self.layout_widget = pg.GraphicsLayoutWidget(self)
        self.layout_widget.setBackground(theme.DISPLAY_BACKGROUND)
        self.layout_widget.ci.layout.setSpacing(2)
        self.layout_widget.ci.setContentsMargins(2, 4, 8, 2)
        # two by two, so each chart keeps a readable height at 1280x800
        self.current_plot = self._add_plot("Current", "mA", theme.CURRENT, row=0)
        self.voltage_plot = self._add_plot("Voltage", "V", theme.VOLTAGE, row=1)
        self.impedance_plot = self._add_plot("Impedance", "\u03a9", theme.IMPEDANCE, row=0, col=1,
                                             si_units=True)
        self.dose_plot = self._add_plot("Dose", "mA\u00b7min", theme.DOSE, row=1, col=1)
        self.plots = (self.current_plot, self.voltage_plot, self.impedance_plot, self.dose_plot)
        view = self.dose_plot.getViewBox()
        view.sigXRangeChanged.connect(self._update_density)
        view.sigResized.connect(self._update_density)
        # The charts scale themselves ("follow"): a fixed time axis for the protocol and y
        # ranges from the extremes each curve tracks, so no tick makes pyqtgraph scan every
        # item's bounds. Zooming with the mouse stops following; the "A" button resumes.
        self.follow_x = True
        self.follow_y = {plot: True for plot in self.plots}
        for plot in self.plots:
            plot.enableAutoRange(x=False, y=False)
            plot.getViewBox().sigRangeChangedManually.connect(
                lambda mask, plot=plot: self._manual_range(plot, mask))
            plot.getViewBox().sigStateChanged.connect(
                lambda _view, plot=plot: self._auto_range_requested(plot))
        self.dose_plot.setXRange(0.0, 30.0, padding=0.01)
        for plot in self.plots[:-1]:
            plot.setXLink(self.dose_plot)
        for plot in (self.current_plot, self.impedance_plot):
            plot.getAxis("bottom").setStyle(showValues=False)
        for plot in (self.voltage_plot, self.dose_plot):
            plot.setLabel("bottom", "Time (min)", color=theme.TEXT_DIM)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self._phase_key())
        layout.addWidget(self.layout_widget, 1)

    def _add_plot(self, name: str, unit: str, color: str, row: int, col: int = 0,
                  si_units: bool = False) -> pg.PlotItem:
        """One chart; with `si_units` the axis scales its unit (kΩ normally, MΩ for an open
        circuit) instead of printing 1e+06 tick labels."""
        plot = self.layout_widget.addPlot(row=row, col=col)
        style = {"color": color, "font-size": "9pt", "font-weight": "bold"}
        if si_units:
            plot.setLabel("left", f"{name}<br>", units=unit, **style)
        else:
            plot.setLabel("left", f"{name}<br>({unit})", **style)
        plot.showGrid(x=True, y=True, alpha=0.18)
        plot.setClipToView(True)
        plot.getAxis("left").setWidth(64)
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setPen(pg.mkPen(theme.PANEL_EDGE))
            plot.getAxis(axis).setTextPen(pg.mkPen(theme.TEXT_DIM))
        return plot

    def _phase_key(self) -> QtWidgets.QWidget:
        key = QtWidgets.QWidget(self)
        row = QtWidgets.QHBoxLayout(key)
        row.setContentsMargins(6, 2, 6, 2)
        title = QtWidgets.QLabel("Phases:", key)
        title.setStyleSheet(f"color: {theme.TEXT_DIM};")
        row.addWidget(title)
        for phase in ("contact-check", "ramp-up", "hold", "ramp-down"):
            label = QtWidgets.QLabel(f" {phase} ", key)
            label.setStyleSheet(f"background-color: {theme.PHASE_COLORS[phase]}; color: #0b0e11;"
                                " border-radius: 3px; font-weight: bold;")
            row.addWidget(label)
        row.addSpacing(10)
        for text, color in (("\u2501 measured", theme.TEXT), ("\u2504 setpoint", theme.SETPOINT),
                            ("\u2504 target", theme.TARGET), ("\u2504 limit", theme.LIMIT),
                            ("\u2503 trip", theme.LIMIT),
                            ("\u2503 warning", theme.SAFETY_COLORS["warning"])):
            label = QtWidgets.QLabel(text, key)
            label.setStyleSheet(f"color: {color};")
            row.addWidget(label)
        row.addStretch(1)
        return key

    # ---------------------------------------------------------------- PyMeasure's widget API

    def next_color(self) -> QtGui.QColor:
        """The next run colour of the palette."""
        color = QtGui.QColor(RUN_PALETTE[self._palette_index % len(RUN_PALETTE)])
        self._palette_index += 1
        return color

    def new_curve(self, results: Any, color: Any = None, **kwargs: Any) -> RunCurves:
        """Create the run's drawing (not yet the focus; `load` makes it so)."""
        curves = RunCurves(self, results, color if color is not None else self.next_color())
        curves.set_focus(False)
        return curves

    def load(self, curve: RunCurves) -> None:
        """Show a run and bring it into focus (the newest loaded run is the focus)."""
        curve.attach()
        if curve not in self.runs:
            self.runs.append(curve)
        self.set_focus(curve)

    def remove(self, curve: RunCurves) -> None:
        """Hide a run; the focus moves to the newest run still shown."""
        curve.detach()
        if curve in self.runs:
            self.runs.remove(curve)
        if self.focus is curve:
            self.set_focus(self.runs[-1] if self.runs else None)

    def set_focus(self, curve: RunCurves | None) -> None:
        """Draw `curve` in the quantity colours with its phases and limits; fade the others."""
        self.focus = curve
        for run in self.runs:
            run.set_focus(run is curve)
        self.fit_time_axis()

    def fit_time_axis(self) -> None:
        """Show the whole protocol: 0 to the planned length (or the data, if longer).

        A fixed time axis (like a LabVIEW chart) keeps the completed chunks' display data
        valid from tick to tick; an ever-growing auto-range would re-clip every chunk.
        """
        spans = [run.last_x for run in self.runs if math.isfinite(run.last_x)]
        if self.focus is not None and math.isfinite(self.focus.planned_span):
            spans.append(self.focus.planned_span)
        if not spans:
            return
        if self.follow_x:
            self.dose_plot.setXRange(0.0, max(spans), padding=0.01)
        self.autoscale_y(force=True)

    def pixels_per_unit(self) -> float:
        """Screen pixels per minute of the time axis."""
        view = self.dose_plot.getViewBox()
        low, high = view.viewRange()[0]
        return view.width() / (high - low) if high > low else 0.0

    def _update_density(self, *_: object) -> None:
        pixels_per_unit = self.pixels_per_unit()
        for run in self.runs:
            for curve in run.curves:
                curve.set_density(pixels_per_unit)

    def ensure_visible(self, x: float) -> None:
        """Extend the time axis (by a quarter) when the data runs past its end."""
        view = self.dose_plot.getViewBox()
        if self.follow_x and x > view.viewRange()[0][1]:
            self.dose_plot.setXRange(0.0, x * 1.25, padding=0.01)

    def autoscale_y(self, force: bool = False) -> None:
        """Fit each following plot's y range to the shown runs; change it only when needed.

        The range grows with 10 % headroom when data leaves it and shrinks when the data
        uses less than a third of it, so a growing run rescales a few times, not every tick.
        """
        for plot in self.plots:
            if not self.follow_y[plot]:
                continue
            view = plot.getViewBox()
            log = bool(plot.ctrl.logYCheck.isChecked())
            low, high = math.inf, -math.inf
            for run in self.runs:
                run_low, run_high = run.y_bounds(plot, log)
                low, high = min(low, run_low), max(high, run_high)
            if not (math.isfinite(low) and math.isfinite(high)):
                continue
            if log:
                low, high = math.log10(low), math.log10(high)
            span = high - low
            pad = 0.05 * span if span > 0 else max(abs(high) * 0.1, 0.5)
            current_low, current_high = view.viewRange()[1]
            outside = low - pad * 0.5 < current_low or high + pad * 0.5 > current_high
            too_wide = (current_high - current_low) > 3 * (span + 2 * pad)
            if force or outside or too_wide:
                view.setYRange(low - pad, high + 2 * pad, padding=0.0)

    def _manual_range(self, plot: pg.PlotItem, mask: Any) -> None:
        """The operator zoomed or panned: stop following on those axes."""
        if mask is None or (len(mask) > 0 and mask[0]):
            self.follow_x = False
        if mask is None or (len(mask) > 1 and mask[1]):
            self.follow_y[plot] = False

    def _auto_range_requested(self, plot: pg.PlotItem) -> None:
        """pyqtgraph's "A" button (or menu) asked for auto-range: resume following."""
        view = plot.getViewBox()
        x_auto, y_auto = view.autoRangeEnabled()
        if not (x_auto or y_auto):
            return
        view.enableAutoRange(x=False, y=False)
        if x_auto:
            self.follow_x = True
        if y_auto:
            self.follow_y[plot] = True
        self.fit_time_axis()
        self.autoscale_y(force=True)

    def set_color(self, curve: RunCurves, color: Any) -> None:
        """Change a run's colour."""
        curve.set_color(color)

    def clear_widget(self) -> None:
        """Remove every run."""
        for run in list(self.runs):
            self.remove(run)
