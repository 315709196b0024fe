"""The front panel: PyMeasure's managed window plus indicators, charts, E-stop and alerts.

PyMeasure supplies the parameter inputs, the run queue (Manager/Worker), the browser of past
runs and the log, so the window behaves like every PyMeasure tool. On top: big indicators fed
by polling `procedure.live` (10 Hz), incremental charts, an EMERGENCY STOP that calls the
running procedure's `emergency_stop()` directly (never the manager's abort, which ramps), the
screening dialog for human subjects, a latched trip alert, and a simulation banner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from pymeasure.display.manager import Experiment, Manager
from pymeasure.display.widgets import LogWidget
from pymeasure.display.widgets.directory_widget import DirectoryLineEdit
from pymeasure.display.windows.managed_window import ManagedWindowBase
from pymeasure.experiment import Procedure, Results
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ionto_instruments.clock import Clock, RealClock, clock_for_speed
from ionto_instruments.procedures.drugs import get_drug
from ionto_instruments.procedures.iontophoresis import ConstantCurrentIontophoresis, LiveStatus
from ionto_instruments.procedures.plan import InvalidParameter
from ionto_instruments.procedures.results import IontoResults, load_summary, new_results_file
from ionto_instruments.simulator import MODELS as SIM_MODELS
from ionto_instruments.simulator import SCENARIOS, parse_scenario

from . import course_panel, theme
from .charts import ChartsWidget, RunCurves
from .dialogs import ScreeningDialog
from .indicators import (
    EmergencyStopButton,
    NoticeBanner,
    NumericIndicator,
    PhaseIndicator,
    SafetyLight,
    SimulationBanner,
    StopRampDownButton,
    TimeIndicator,
    TripAlert,
    format_duration,
    speed_label,
)

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: Parameters the operator sets in the inputs dock (the instrument, scenario, seed and the
#: screening flag are set by the window itself).
INPUTS = (
    "drug", "target_current", "treatment_time", "ramp_up", "ramp_down", "dose_controlled",
    "dose_target", "electrode_area", "max_density", "compliance_voltage", "sample_interval",
    "subject_kind", "subject_id", "session_id", "operator_note",
)
#: Parameters shown as columns of the run browser.
DISPLAYS = ("drug", "target_current", "treatment_time", "subject_kind", "scenario")
#: Outcomes that light the safety light red and raise the trip alert.
TRIP_OUTCOMES = ("aborted", "fault", "refused")
#: Indicator refresh period (ms): 10 Hz.
REFRESH_MS = 100

ESTOP_BUTTON = "Emergency stop by the operator (front-panel button)"
ESTOP_KEY = "Emergency stop by the operator (Esc key)"
ESTOP_CLOSE = "Emergency stop: the front panel was closed during the run"


def make_clock_for_speed(speed: float) -> Clock:
    """The clock for a simulated run (the CLI's factory): virtual for inf, real for 1x."""
    return clock_for_speed(speed)


def drug_description(key: str) -> str:
    """Rich text for the drug label: polarity, active electrode and the terminal wiring."""
    try:
        drug = get_drug(key)
    except ValueError as exc:
        return f"<span style='color:{theme.LIMIT}'>{exc}</span>"
    sign = "+" if drug.polarity > 0 else "\u2212"
    current = "positive" if drug.polarity > 0 else "negative"
    color = "#ff8787" if drug.polarity > 0 else "#74c0fc"
    return (f"<b>{drug.label}</b><br>"
            f"Polarity <b style='color:{color}; font-size:13pt'>{sign}</b> \u2014 delivered "
            f"from the <b>{drug.active_electrode}</b>, {current} current<br>"
            f"<span style='color:{theme.TEXT_DIM}'>{drug.terminal_hint}</span>")


def describe_summary(summary: dict[str, Any] | None) -> str:
    """Two short lines summarising a finished run (the reason goes to the safety light)."""
    if not summary:
        return "No summary beside this file (the run may not have finished)."
    outcome = str(summary.get("outcome") or "unknown").upper()
    rule = summary.get("rule")
    color = theme.SAFETY_COLORS["ok"] if outcome in ("COMPLETED", "STOPPED") else theme.LIMIT
    delivered = summary.get("delivered_dose_mA_min")
    planned = summary.get("planned_dose_mA_min")
    if isinstance(delivered, float | int) and isinstance(planned, float | int):
        dose = f"{delivered:.1f} of {planned:.1f} mA\u00b7min"
    else:
        dose = f"{delivered} mA\u00b7min"
    off = ("output off \u2714" if summary.get("output_off_confirmed")
           else f"<b style='color:{theme.LIMIT}'>OUTPUT OFF NOT CONFIRMED</b>")
    return (f"<b style='color:{color}'>{outcome}</b>" + (f" ({rule})" if rule else "")
            + f"<br>{dose} \u00b7 {format_duration(summary.get('duration_s'))} \u00b7 {off}")


class GuardedManager(Manager):
    """PyMeasure's Manager, tolerant of a run that reports its final status twice.

    When the procedure raises, the Worker reports FAILED and the procedure's shutdown
    reports it again; the stock Manager then cleans up a worker it already released
    (AttributeError in a Qt slot). The duplicate is ignored here.
    """

    def _failed(self) -> None:
        if self._worker is not None:
            super()._failed()

    def _abort_returned(self) -> None:
        if self._worker is not None:
            super()._abort_returned()

    def _finish(self) -> None:
        if self._worker is not None:
            super()._finish()


class FrontPanelWindow(ManagedWindowBase):
    """The iontophoresis front panel on PyMeasure's ManagedWindowBase."""

    def __init__(self, scenario: str = "normal", speed: float = 60.0,
                 resource: str | None = None, model: str = "keithley2400",
                 directory: str | os.PathLike[str] = "runs",
                 parent: QtWidgets.QWidget | None = None) -> None:
        self.resource = resource or None
        self.model = model
        self.simulated = self.resource is None
        self.charts = ChartsWidget("Charts")
        self.log_widget = LogWidget("Log")
        self.screening_dialog: ScreeningDialog | None = None
        self.shown_procedure: ConstantCurrentIontophoresis | None = None
        self.last_summary: dict[str, Any] | None = None
        self._trip_sentence: str | None = None
        self._tripped_procedure: Any = None
        self._idle_sentence = "No run yet. Set the parameters and press Queue."
        self._close_pending = False
        self._closed = False
        self._initial_scenario = scenario
        self._initial_speed = speed
        self._initial_directory = str(directory)
        super().__init__(ConstantCurrentIontophoresis,
                         widget_list=(self.charts, self.log_widget),
                         inputs=INPUTS, displays=DISPLAYS,
                         log_channel=__name__, log_level=logging.INFO,
                         inputs_in_scrollarea=True, enable_file_input=False)
        self.manager.port = None  # no ZMQ publisher: the window reads procedure.live instead
        self.manager.running.connect(self._run_started)
        self.manager.finished.connect(self._run_ended)
        self.manager.abort_returned.connect(self._run_ended)
        self.manager.failed.connect(self._run_ended)
        self.log_handler = self.log_widget.handler
        logging.getLogger().addHandler(self.log_handler)
        package_log = logging.getLogger("ionto_instruments")
        self._package_log_level = package_log.level
        if package_log.getEffectiveLevel() > logging.INFO:
            package_log.setLevel(logging.INFO)  # run events reach the Log tab
        self.setWindowTitle("Iontophoresis front panel \u2014 ionto-instruments"
                            + ("  [SIMULATED]" if self.simulated else ""))
        font = self.font()
        font.setPointSize(10)
        self.setFont(font)
        self.setStyleSheet(theme.STYLE_SHEET)
        self.resize(1400, 900)

        self.refresh_timer = QtCore.QTimer(self)
        self.refresh_timer.setInterval(REFRESH_MS)
        self.refresh_timer.timeout.connect(self.refresh)
        self.refresh_timer.start()

        self.estop_shortcut = QtWidgets.QShortcut(QtGui.QKeySequence(QtCore.Qt.Key.Key_Escape),
                                                  self)
        self.estop_shortcut.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        self.estop_shortcut.activated.connect(lambda: self.emergency_stop(ESTOP_KEY))
        instrument = QtWidgets.QLabel(
            f"Instrument: SIMULATED {self.model}" if self.simulated
            else f"Instrument: {self.resource} ({self.model}), real time", self)
        instrument.setObjectName("instrumentLabel")
        self.statusBar().addPermanentWidget(instrument)
        self.course_panel = course_panel.attach(self)  # course dock; records each run's outcome
        self._update_drug_info()
        self.refresh()
        log.info("Front panel ready (%s)", "SIMULATED instrument" if self.simulated
                 else f"instrument at {self.resource}")

    # ------------------------------------------------------------------ layout

    def _setup_ui(self) -> None:
        super()._setup_ui()
        stock = self.manager  # replaced before any run: same wiring, duplicate-status guard
        self.manager = GuardedManager(self.widget_list, self.browser,
                                      log_level=self.log_level, parent=self)
        self.manager.abort_returned.connect(self.abort_returned)
        self.manager.queued.connect(self.queued)
        self.manager.running.connect(self.running)
        self.manager.finished.connect(self.finished)
        self.manager.log.connect(self.log.handle)
        stock.deleteLater()
        self.estop_button = EmergencyStopButton(self)
        self.estop_button.clicked.connect(lambda: self.emergency_stop(ESTOP_BUTTON))
        self.stop_button = StopRampDownButton(self)
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop_ramp_down)
        self.trip_alert = TripAlert(self)
        self.trip_alert.acknowledged.connect(self.acknowledge_trip)
        self.notice = NoticeBanner("refusalNotice", self)
        self.sim_banner = SimulationBanner(
            SCENARIOS, self._initial_scenario, self._initial_speed,
            instrument=SIM_MODELS.get(self.model, ("", "", self.model))[2], parent=self)
        self.sim_banner.setVisible(self.simulated)
        self.current_display = NumericIndicator("Current", "mA", theme.CURRENT, 3, signed=True,
                                                object_name="indicatorCurrent")
        self.voltage_display = NumericIndicator("Voltage", "V", theme.VOLTAGE, 2, signed=True,
                                                object_name="indicatorVoltage")
        self.impedance_display = NumericIndicator("Impedance", "k\u03a9", theme.IMPEDANCE, 2,
                                                  object_name="indicatorImpedance", max_chars=7)
        self.dose_display = NumericIndicator("Dose", "mA\u00b7min", theme.DOSE, 2,
                                             object_name="indicatorDose", max_chars=5)
        self.elapsed_display = TimeIndicator("Elapsed", "min:s", theme.TIME,
                                             object_name="indicatorElapsed", max_chars=5)
        self.remaining_display = TimeIndicator("Remaining", "min:s", theme.TIME,
                                               object_name="indicatorRemaining", max_chars=5)
        self.phase_display = PhaseIndicator(self)
        self.safety_light = SafetyLight(self)
        self.progress_bar = QtWidgets.QProgressBar(self)
        self.progress_bar.setObjectName("runProgress")
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setFormat("Treatment progress %p %")
        self.progress_bar.setMinimumHeight(26)
        self.summary_label = QtWidgets.QLabel(self)
        self.summary_label.setObjectName("runSummary")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.summary_label.setStyleSheet(
            f"QLabel#runSummary {{ background-color: {theme.DISPLAY_BACKGROUND};"
            f" border: 1px solid {theme.PANEL_EDGE}; border-radius: 6px; padding: 6px; }}")
        self.summary_label.setText("<b>RUN SUMMARY</b><br>No finished run shown yet.")
        self.drug_info = QtWidgets.QLabel(self)
        self.drug_info.setObjectName("drugInfo")
        self.drug_info.setWordWrap(True)
        self.drug_info.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                     QtWidgets.QSizePolicy.Policy.Preferred)
        self.drug_info.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.drug_info.setStyleSheet(
            f"QLabel#drugInfo {{ background-color: {theme.PANEL}; border: 1px solid"
            f" {theme.PANEL_EDGE}; border-radius: 4px; padding: 5px; }}")
        self.directory_input = DirectoryLineEdit(self)
        self.directory_input.setObjectName("resultsDirectory")
        self.directory_input.setText(self._initial_directory)
        self.directory_input.setToolTip("Results (CSV + JSON summary) are written here")
        self.open_button = QtWidgets.QPushButton("Open results\u2026", self)
        self.open_button.setObjectName("openResults")
        self.open_button.clicked.connect(self.open_results_dialog)

    def _layout(self) -> None:
        super()._layout()
        self.abort_button.hide()  # PyMeasure's Abort ramps (should_stop); E-stop/Stop replace it
        self.queue_button.setText("Queue run")
        self.queue_button.setObjectName("queueButton")
        self.queue_button.setMinimumHeight(34)
        self.queue_button.setStyleSheet("QPushButton#queueButton { background-color: #2b8a3e;"
                                        " font-weight: bold; font-size: 11pt; }")
        self._layout_inputs_dock()
        self._layout_menu()

        old_main = self.takeCentralWidget()
        panel = QtWidgets.QWidget(self)
        panel.setObjectName("frontPanel")
        vbox = QtWidgets.QVBoxLayout(panel)
        vbox.setContentsMargins(6, 6, 6, 6)
        vbox.setSpacing(6)
        vbox.addWidget(self.sim_banner)
        vbox.addLayout(self._indicator_grid())
        vbox.addWidget(old_main, 1)
        self.setCentralWidget(panel)
        self.main = old_main
        # the trip alert and notices float over the top of the charts: no layout jump
        for overlay in (self.trip_alert, self.notice):
            overlay.setParent(old_main)
            overlay.hide()
            overlay.installEventFilter(self)
        old_main.installEventFilter(self)
        splitter = old_main.findChild(QtWidgets.QSplitter)
        if splitter is not None:
            splitter.setStretchFactor(0, 5)
            splitter.setStretchFactor(1, 1)
            splitter.setSizes([620, 100])

    def _indicator_grid(self) -> QtWidgets.QGridLayout:
        grid = QtWidgets.QGridLayout()
        grid.setSpacing(6)
        displays = (self.current_display, self.voltage_display, self.impedance_display,
                    self.dose_display, self.elapsed_display, self.remaining_display)
        for col, display in enumerate(displays):
            grid.addWidget(display, 0, col)
        grid.addWidget(self.phase_display, 1, 0)
        grid.addWidget(self.safety_light, 1, 1, 1, 3)
        grid.addWidget(self.summary_label, 1, 4, 1, 2)
        grid.addWidget(self.progress_bar, 2, 0, 1, 6)
        grid.addWidget(self.stop_button, 0, 6, 3, 1)
        grid.addWidget(self.estop_button, 0, 7, 3, 1)
        return grid

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802
        """Keep the floating alert and notice placed over the top of the charts."""
        if event.type() in (QtCore.QEvent.Type.Resize, QtCore.QEvent.Type.Show,
                            QtCore.QEvent.Type.Hide) and watched in (
                self.main, self.trip_alert, self.notice):
            self._place_overlays()
        return super().eventFilter(watched, event)

    def _place_overlays(self) -> None:
        top = self.tabs.tabBar().height() + 2
        width = self.main.width() - 12
        for overlay in (self.trip_alert, self.notice):
            if overlay.isHidden():
                continue
            height = (overlay.heightForWidth(width) if overlay.hasHeightForWidth()
                      else overlay.sizeHint().height())
            overlay.setGeometry(6, top, width, max(height, overlay.minimumSizeHint().height()))
            overlay.raise_()
            top += overlay.height() + 4

    def _layout_inputs_dock(self) -> None:
        drug_input = self.inputs.drug
        layout = drug_input.parentWidget().layout()
        layout.insertWidget(layout.indexOf(drug_input) + 1, self.drug_info)
        drug_input.currentIndexChanged.connect(self._update_drug_info)
        for dock in self.findChildren(QtWidgets.QDockWidget):
            if dock.widget() is not None and dock.widget().isAncestorOf(self.inputs):
                dock.setMinimumWidth(235)
                dock_layout = dock.widget().layout()
                dock_layout.setStretchFactor(self.inputs, 1)
                box = QtWidgets.QWidget(dock)
                row = QtWidgets.QVBoxLayout(box)
                row.setContentsMargins(0, 0, 0, 0)
                row.addWidget(QtWidgets.QLabel("Results directory", box))
                row.addWidget(self.directory_input)
                row.addWidget(self.open_button)
                dock_layout.insertWidget(1, box)

    def _layout_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        action = menu.addAction("&Open results\u2026")
        action.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        action.triggered.connect(self.open_results_dialog)
        action = menu.addAction("Results &directory\u2026")
        action.triggered.connect(self.directory_input.browse_triggered)
        menu.addSeparator()
        action = menu.addAction("&Quit")
        action.setShortcut(QtGui.QKeySequence.StandardKey.Quit)
        action.triggered.connect(self.close)

    def _update_drug_info(self, *_: object) -> None:
        self.drug_info.setText(drug_description(self.inputs.drug.value()))

    # ------------------------------------------------------------------ directory

    @property
    def directory(self) -> str:
        """The directory the next run's results go to (default ./runs)."""
        return self.directory_input.text().strip() or "runs"

    @directory.setter
    def directory(self, value: str | os.PathLike[str]) -> None:
        self.directory_input.setText(str(value))

    # ------------------------------------------------------------------ queueing

    def new_curve(self, wdg: Any, results: Any, color: Any = None, **kwargs: Any) -> Any:
        """Let the charts pick the run colour from their palette."""
        return wdg.new_curve(results, color=color, **kwargs)

    def queue(self, procedure: ConstantCurrentIontophoresis | None = None) -> Experiment | None:
        """Screen, configure (instrument, scenario, clock) and queue a run; None if refused."""
        if self.trip_alert.is_active():
            self.refuse("Acknowledge the safety trip before starting another run.")
            return None
        if procedure is None:
            procedure = self.make_procedure()
        procedure.instrument_model = self.model
        procedure.resource = self.resource or ""
        if self.simulated:
            scenario = self.sim_banner.scenario()
            try:
                scenario = parse_scenario(scenario).name
            except (ValueError, KeyError) as exc:
                self.refuse(f"Unknown simulator scenario {scenario!r}: {exc}")
                return None
            procedure.scenario = scenario
            procedure.clock = make_clock_for_speed(self.sim_banner.speed())
        else:
            procedure.clock = RealClock()
        if procedure.subject_kind == "human":
            answers = self.ask_screening(procedure)
            if answers is None:
                self.refuse("Run not started: the contraindication screening was cancelled.")
                return None
            try:
                procedure.confirm_screening(answers)
            except InvalidParameter as exc:
                self.refuse(f"Run refused. {exc.message}")
                return None
        try:
            procedure.preflight()
        except (InvalidParameter, ValueError) as exc:
            self.refuse(f"Run refused before energizing: {exc}")
            return None
        refusal = self.course_panel.before_queue(procedure)  # the course record, if one is picked
        if refusal:
            self.refuse(f"Run refused: {refusal}")
            return None
        filename = new_results_file(self.directory)
        results = IontoResults(procedure, filename)
        experiment = self.new_experiment(results)
        self.notice.hide()
        self.manager.queue(experiment)
        log.info("Queued %s (%s)", os.path.basename(filename),
                 f"simulated: {procedure.scenario}, clock {procedure.clock.name}"
                 if self.simulated else f"instrument {self.resource}")
        return experiment

    def ask_screening(self, procedure: ConstantCurrentIontophoresis) -> dict[str, bool] | None:
        """Show the screening dialog (modal); return the answers, or None if cancelled."""
        dialog = ScreeningDialog(self, subject=str(procedure.subject_id or ""))
        self.screening_dialog = dialog
        try:
            accepted = dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted
            return dialog.answers() if accepted else None
        finally:
            self.screening_dialog = None
            dialog.deleteLater()

    def refuse(self, message: str) -> None:
        """Show why a run was not started (in-window notice and the log)."""
        self.notice.show_message(message)
        log.warning(message)

    # ------------------------------------------------------------------ stops

    def running_procedure(self) -> ConstantCurrentIontophoresis | None:
        """The procedure of the run in progress, or None."""
        if not self.manager.is_running():
            return None
        return self.manager.running_experiment().procedure

    def emergency_stop(self, reason: str = ESTOP_BUTTON) -> bool:
        """Output off NOW on the running procedure (no ramp) and cancel queued runs."""
        procedure = self.running_procedure()
        cancelled = self.cancel_queued()
        if procedure is None:
            self.statusBar().showMessage("Emergency stop: no run is active"
                                         + (f"; {cancelled} queued run(s) cancelled"
                                            if cancelled else ""), 5000)
            return False
        procedure.emergency_stop(reason)
        log.warning("%s: output switched off", reason)
        self.statusBar().showMessage("EMERGENCY STOP: output switched off", 10000)
        return True

    def stop_ramp_down(self) -> None:
        """Operator stop of the running run: ramp down, then off."""
        procedure = self.running_procedure()
        if procedure is not None:
            procedure.request_stop()
            self.stop_button.setEnabled(False)
            log.info("Stop requested: ramping down")

    def cancel_queued(self) -> int:
        """Mark every queued (not started) run aborted so nothing starts after a stop."""
        count = 0
        for experiment in list(self.manager.experiments.queue):
            if experiment.procedure.status == Procedure.QUEUED and (
                    not self.manager.is_running()
                    or experiment is not self.manager.running_experiment()):
                experiment.procedure.status = Procedure.ABORTED
                experiment.browser_item.setStatus(Procedure.ABORTED)
                count += 1
        if count:
            log.warning("%d queued run(s) cancelled", count)
        return count

    # ------------------------------------------------------------------ run lifecycle

    def _run_started(self, experiment: Experiment) -> None:
        procedure = experiment.procedure
        self.shown_procedure = procedure
        self.stop_button.setEnabled(True)
        if self.simulated:
            speed = speed_label(procedure.clock.speed).split(" ")[0] if procedure.clock else "?"
            self.sim_banner.set_running(f"\u25b6 {procedure.scenario} @ {speed}")
        self.refresh()

    def _run_ended(self, experiment: Experiment) -> None:
        for curve in experiment.curve_list or ():
            if isinstance(curve, RunCurves):
                curve.update_data()
        procedure = experiment.procedure
        summary = getattr(procedure, "summary", None)
        self.last_summary = summary
        self._show_summary("RUN SUMMARY", experiment.data_filename, summary)
        if summary and summary.get("outcome") in TRIP_OUTCOMES:
            self._latch_trip(procedure, str(summary.get("reason") or ""))
        if summary:
            self._idle_sentence = str(summary.get("reason") or "")
        self.stop_button.setEnabled(False)
        self.sim_banner.set_running("")
        self.refresh()
        if self._close_pending and not self.manager.is_running():
            QtCore.QTimer.singleShot(0, self.close)

    def _show_summary(self, title: str, filename: str, summary: dict[str, Any] | None) -> None:
        self.summary_label.setText(f"<b>{title}</b><br>{describe_summary(summary)}")
        reason = (summary or {}).get("reason") or ""
        self.summary_label.setToolTip(f"{filename}\n{reason}")

    def _latch_trip(self, procedure: Any, sentence: str) -> None:
        """Raise (or update) the trip alert; the light stays red until acknowledged."""
        if not sentence:
            sentence = "The run was stopped by a safety rule; the output is off."
        if self._tripped_procedure is procedure and self._trip_sentence == sentence:
            return
        self._tripped_procedure = procedure
        self._trip_sentence = sentence
        self.trip_alert.raise_alert(sentence)
        self.cancel_queued()

    def acknowledge_trip(self) -> None:
        """The operator read the trip alert: hide it and let the light follow the run again."""
        self._trip_sentence = None
        self.trip_alert.hide()
        log.info("Safety trip acknowledged by the operator")
        self.refresh()

    # ------------------------------------------------------------------ indicators

    def refresh(self) -> None:
        """Poll the shown run: new rows into the charts, `procedure.live` into the indicators."""
        running = self.manager.is_running()
        if running:
            experiment = self.manager.running_experiment()
            for curve in experiment.curve_list or ():
                if isinstance(curve, RunCurves):
                    curve.update_data()
        procedure = self.shown_procedure
        if procedure is None:
            self._show_safety(running=False, live=None)
            return
        live = procedure.live
        self.show_live(live)
        if not running and procedure.summary is not None:
            self.phase_display.set_phase("off")  # ended (a trip leaves the phase it hit)
        if running and live.safety == "tripped" and self._tripped_procedure is not procedure:
            self._latch_trip(procedure, live.last_event)
        self._show_safety(running=running, live=live)

    def show_live(self, live: LiveStatus) -> None:
        """Put a live status on the numeric displays, phase and progress."""
        self.current_display.set_value(live.current_mA)
        self.voltage_display.set_value(live.voltage_V)
        self.voltage_display.set_alarm(bool(live.compliance))
        self.impedance_display.set_value(live.impedance_kohm)
        self.dose_display.set_value(live.dose_mA_min)
        self.elapsed_display.set_value(live.elapsed_s)
        self.remaining_display.set_value(live.remaining_s)
        self.phase_display.set_phase(live.phase)
        self.progress_bar.setValue(int(round(live.progress)))

    def _show_safety(self, running: bool, live: LiveStatus | None) -> None:
        if self._trip_sentence is not None:
            self.safety_light.set_state("tripped", self._trip_sentence)
        elif running and live is not None:
            self.safety_light.set_state(live.safety, live.last_event)
        else:
            self.safety_light.set_state("idle", self._idle_sentence)

    # ------------------------------------------------------------------ past results

    def open_experiment(self) -> None:
        """PyMeasure's browser "Open" button: same as File > Open results."""
        self.open_results_dialog()

    def open_results_dialog(self) -> None:
        """Ask for a results file and show it."""
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open results", self.directory, "Results (*.csv);;All files (*)")
        if path:
            self.open_results(path)

    def open_results(self, path: str | os.PathLike[str]) -> Experiment | None:
        """Load a past results file into the charts and the browser, with its summary."""
        filename = str(Path(path))
        if filename in self.manager.experiments:
            self.refuse(f"{os.path.basename(filename)} is already shown.")
            return None
        try:
            results = Results.load(filename)
        except Exception as exc:  # a damaged or foreign file: say so, do not crash the panel
            self.refuse(f"Could not open {filename}: {exc}")
            log.exception("Opening %s failed", filename)
            return None
        experiment = self.new_experiment(results)
        for curve in experiment.curve_list:
            if isinstance(curve, RunCurves):
                curve.update_data()
        experiment.browser_item.setProgress(100)
        self.manager.load(experiment)
        summary = load_summary(filename)
        self.last_summary = summary
        self._show_summary("PAST RUN", filename, summary)
        if not self.manager.is_running():
            self._show_past(experiment, summary)
        log.info("Opened results file %s", filename)
        return experiment

    def _show_past(self, experiment: Experiment, summary: dict[str, Any] | None) -> None:
        """Show a past run's last readings on the displays (no live run is shown then)."""
        self.shown_procedure = None
        data = experiment.results.data
        finite = data.dropna(subset=["Current (mA)"]) if len(data) else data
        last = finite.iloc[-1] if len(finite) else None
        self.current_display.set_value(None if last is None else last["Current (mA)"])
        self.voltage_display.set_value(None if last is None else last["Voltage (V)"])
        self.impedance_display.set_value(None if last is None else last["Impedance (kohm)"])
        self.dose_display.set_value((summary or {}).get("delivered_dose_mA_min"))
        self.elapsed_display.set_value((summary or {}).get("duration_s"))
        self.remaining_display.set_value(None)
        self.phase_display.set_phase(str(data["Phase"].iloc[-1]) if len(data) else "idle")
        self.progress_bar.setValue(100 if summary and summary.get("outcome") == "completed"
                                   else self.progress_bar.value())
        self._idle_sentence = f"Past run: {(summary or {}).get('reason') or 'no summary'}"
        self._show_safety(running=False, live=None)

    # ------------------------------------------------------------------ closing

    def confirm_close(self) -> bool:
        """Ask before closing during a run (tests replace this)."""
        answer = QtWidgets.QMessageBox.question(
            self, "A run is in progress",
            "A run is in progress. Closing switches the output OFF at once (emergency stop) "
            "and ends the run. Close the front panel?",
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No)
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt API)
        """During a run: ask, E-stop, and close only once the worker has finished the files."""
        if self.manager.is_running():
            event.ignore()
            if self._close_pending:
                return
            if not self.confirm_close():
                return
            self._close_pending = True
            self.emergency_stop(ESTOP_CLOSE)
            self.statusBar().showMessage("Closing: output off, finishing the results files\u2026")
            return
        self._teardown()
        super().closeEvent(event)

    def quit(self, evt: Any = None) -> None:
        """Application quit: E-stop a running run and wait for its files, then close."""
        if self.manager.is_running():
            self._close_pending = True
            self.emergency_stop(ESTOP_CLOSE)
            self.wait_idle(30.0)
        self.close()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Process events until no run is active (its files complete); False on timeout."""
        deadline = time.monotonic() + timeout
        app = QtWidgets.QApplication.instance()
        while self.manager.is_running() and time.monotonic() < deadline:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.005)
        return not self.manager.is_running()

    def _teardown(self) -> None:
        """Stop polling and take the log handler off the root logger (once)."""
        if self._closed:
            return
        self._closed = True
        self.refresh_timer.stop()
        self.cancel_queued()  # nothing may start after the panel is gone
        logging.getLogger().removeHandler(self.log_handler)
        logging.getLogger("ionto_instruments").setLevel(self._package_log_level)
        with contextlib.suppress(TypeError, RuntimeError):
            QtCore.QCoreApplication.instance().aboutToQuit.disconnect(self.quit)
