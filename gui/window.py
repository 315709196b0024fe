"""The front panel: PyMeasure's ManagedWindowBase plus indicators, charts, E-stop and alerts.

PyMeasure supplies the parameter inputs, the run manager (Manager/Worker), the browser of
past runs and the log, so the window behaves like every PyMeasure tool. On top: big
indicators fed by polling `procedure.live` (10 Hz), incremental charts, an EMERGENCY STOP that
calls the running procedure's `emergency_stop()` directly (never the manager's abort, which
ramps), the screening dialog, latched alerts with an audible alarm, and a simulation banner.

Rules the panel keeps (issue 11): one treatment at a time and nothing starts without the
operator's Start; no modal dialog while a run is active, and Esc or a click on the E-stop
works over any dialog or menu; the big displays never show a stale number; an output that
could not be confirmed off is the loudest state.
"""

from __future__ import annotations

import contextlib
import logging
import math
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
from ionto_instruments.procedures.contracts import (
    EMERGENCY_STOP,
    PRE_FLIGHT,
    TRIP_OUTCOMES,
    Outcome,
    Phase,
    SafetyState,
)
from ionto_instruments.procedures.drugs import get_drug
from ionto_instruments.procedures.iontophoresis import ConstantCurrentIontophoresis, LiveStatus
from ionto_instruments.procedures.plan import InvalidParameter
from ionto_instruments.procedures.results import IontoResults, load_summary, new_results_file
from ionto_instruments.simulator import MODELS as SIM_MODELS
from ionto_instruments.simulator import SCENARIOS, parse_scenario

from . import course_panel, theme
from .alarm import AudibleAlarm
from .alerts import NOT_CONFIRMED_OFF, ConfirmBanner, NoticeBanner, OutputAlert, TripAlert
from .charts import NEAR_ZERO_MA, OPEN_KOHM, ChartsWidget, RunCurves
from .dialogs import ResultsDialog, ScreeningDialog
from .indicators import (
    EmergencyStopButton,
    NumericIndicator,
    PhaseIndicator,
    SafetyLight,
    SimulationBanner,
    StopRampDownButton,
    TimeIndicator,
    format_duration,
    speed_label,
)
from .inputs import PanelInputs

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: Parameters the operator sets in the inputs dock, subject first (the instrument, scenario,
#: seed and the screening flag are set by the window itself).
INPUTS = (
    "drug", "subject_kind", "subject_id", "operator_note", "target_current", "treatment_time",
    "dose_controlled", "dose_target", "ramp_up", "ramp_down", "electrode_area", "max_density",
    "compliance_voltage", "sample_interval", "session_id",
)
#: Parameters shown as columns of the run browser.
DISPLAYS = ("drug", "target_current", "treatment_time", "subject_kind", "subject_id",
            "scenario")
#: Indicator refresh period (ms): 10 Hz.
REFRESH_MS = 100
#: Largest window the panel must fit in (a 1280x800 screen less a task bar).
FIT_SIZE = (1280, 770)

ESTOP_BUTTON = "Emergency stop by the operator (front-panel button)"
ESTOP_KEY = "Emergency stop by the operator (Esc key)"
ESTOP_CLOSE = "Emergency stop: the front panel was closed during the run"
ESTOP_RULE = EMERGENCY_STOP

#: Browser status column per outcome (PyMeasure would say "Finished" for all of them).
OUTCOME_LABELS = {Outcome.COMPLETED: "Completed", Outcome.STOPPED: "Stopped",
                  Outcome.ABORTED: "Tripped", Outcome.FAULT: "Fault",
                  Outcome.REFUSED: "Refused"}


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


def treatment_text(procedure: Any, prefix: str = "TREATMENT") -> str:
    """One line naming what a procedure delivers: drug, polarity and terminal, target, subject.

    Read from the procedure itself (the running one, or a past run's), never from the inputs.
    """
    try:
        drug = get_drug(str(procedure.drug))
        sign = "+" if drug.polarity > 0 else "\u2212"
        color = "#ff8787" if drug.polarity > 0 else "#74c0fc"
        terminal = "HI (red)" if drug.polarity > 0 else "LO (black)"
        drug_text = (f"<b>{drug.key}</b> (<b style='color:{color}'>{sign}</b>) "
                     f"on <b>{terminal}</b>")
        target = f"{drug.polarity * float(procedure.target_current):+.3f} mA"
    except (ValueError, TypeError, AttributeError):
        drug_text = f"<b>{getattr(procedure, 'drug', '?')}</b>"
        target = f"{getattr(procedure, 'target_current', '?')} mA"
    if getattr(procedure, "dose_controlled", False):
        length = f"dose {float(procedure.dose_target):g} mA\u00b7min"
    else:
        length = f"{float(getattr(procedure, 'treatment_time', math.nan)):g} min"
    subject = str(getattr(procedure, "subject_kind", "?"))
    subject_id = str(getattr(procedure, "subject_id", "") or "")
    return (f"<span style='color:{theme.TEXT_DIM}'>{prefix}</span> {drug_text} \u00b7 "
            f"<b>{target}</b> \u00b7 {length} \u00b7 <b>{subject}</b>"
            + (f" <b>{subject_id}</b>" if subject_id else ""))


def describe_summary(summary: dict[str, Any] | None) -> str:
    """Two short lines summarising a finished run (the reason goes to the safety light)."""
    if not summary:
        return "No summary beside this file (the run may not have finished)."
    outcome = str(summary.get("outcome") or "unknown").upper()
    color = theme.SAFETY_COLORS["ok"] if outcome in ("COMPLETED", "STOPPED") else theme.LIMIT
    delivered = summary.get("delivered_dose_mA_min")
    planned = summary.get("planned_dose_mA_min")
    if isinstance(delivered, float | int) and isinstance(planned, float | int):
        dose = f"{delivered:.1f} of {planned:.1f} mA\u00b7min"
    else:
        dose = f"{delivered} mA\u00b7min"
    off = ("output off \u2714" if summary.get("output_off_confirmed")
           else f"<b style='color:{theme.LIMIT}'>OUTPUT NOT CONFIRMED OFF</b>")
    label = outcome_label(summary, flag_output=False).partition(" (")[0].upper()
    return (f"<b style='color:{color}'>{label}</b>"
            + f"<br>{dose} \u00b7 {format_duration(summary.get('duration_s'))} \u00b7 {off}")


def outcome_label(summary: dict[str, Any] | None, flag_output: bool = True) -> str:
    """The browser's status text for a finished run: its outcome, not "Finished"."""
    if not summary:
        return "No summary"
    outcome = str(summary.get("outcome") or "")
    rule = summary.get("rule")
    if flag_output and not summary.get("output_off_confirmed", True):
        return "OUTPUT NOT CONFIRMED OFF"
    if rule == ESTOP_RULE:
        return "E-stopped"
    label = OUTCOME_LABELS.get(outcome, outcome.capitalize() or "Unknown")
    return f"{label} ({rule})" if rule and outcome in TRIP_OUTCOMES else label


def output_state(procedure: Any, running: bool) -> str:
    """What is known about the output: "on", "off", "switching-off" or "unconfirmed".

    The summary is the final word (read back as off, or not). During a run the procedure's
    OutputGuard says whether an on may have reached the instrument; after a trip that is the
    off still being confirmed.
    """
    summary = getattr(procedure, "summary", None)
    if summary is not None:
        return "off" if summary.get("output_off_confirmed") else "unconfirmed"
    if not running:
        return "unconfirmed"
    guard = getattr(procedure, "output", None)
    tripped = procedure.live.safety == SafetyState.TRIPPED
    if guard is not None and not guard.may_be_on:
        return "off"
    return "switching-off" if tripped else "on"


def _refused_before_energizing(summary: dict[str, Any] | None) -> bool:
    return bool(summary) and summary.get("rule") == PRE_FLIGHT


class GuardedManager(Manager):
    """PyMeasure's Manager: one run at a time, never a next run by itself, status once.

    When the procedure raises, the Worker reports FAILED and the procedure's shutdown
    reports it again; the stock Manager then cleans up a worker it already released
    (AttributeError in a Qt slot). The duplicate is ignored here. After a run ends, the
    stock Manager may start the next queued run ("continuous"); here nothing energizes
    without the operator's Start.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._is_continuous = False

    def resume(self) -> None:
        """Never resume a queue: each run is started by the operator."""

    def _failed(self) -> None:
        if self._worker is not None:
            super()._failed()

    def _abort_returned(self) -> None:
        if self._worker is not None:
            super()._abort_returned()

    def _finish(self) -> None:
        if self._worker is not None:
            self._is_continuous = False
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
        self.results_dialog: ResultsDialog | None = None
        self.shown_procedure: ConstantCurrentIontophoresis | None = None
        self.past_summary: dict[str, Any] | None = None
        self.last_summary: dict[str, Any] | None = None
        self._trip_sentence: str | None = None
        self._trip_caption: str | None = None
        self._tripped_procedure: Any = None
        self._estopped_procedure: Any = None
        self._unconfirmed_procedure: Any = None
        self._idle_sentence = "No run yet. Set the parameters and press Start run."
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
        # PyMeasure colours the log for a white page; on the dark theme CRITICAL was dark red
        self.log_handler.formatter.level_colors = dict(theme.LOG_COLORS)
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
        self.resize(*FIT_SIZE)

        self.refresh_timer = QtCore.QTimer(self)
        self.refresh_timer.setInterval(REFRESH_MS)
        self.refresh_timer.timeout.connect(self.refresh)
        self.refresh_timer.start()
        self.alarm = AudibleAlarm(self)

        self.estop_shortcut = QtWidgets.QShortcut(QtGui.QKeySequence(QtCore.Qt.Key.Key_Escape),
                                                  self)
        self.estop_shortcut.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        self.estop_shortcut.activated.connect(lambda: self.emergency_stop(ESTOP_KEY))
        # Esc and the E-stop button must work over any menu or dialog of the application
        QtWidgets.QApplication.instance().installEventFilter(self)
        instrument = QtWidgets.QLabel(
            f"Instrument: SIMULATED {self.model}" if self.simulated
            else f"Instrument: {self.resource} ({self.model}), real time", self)
        instrument.setObjectName("instrumentLabel")
        self.statusBar().addPermanentWidget(instrument)
        self.course_panel = course_panel.attach(self)  # course dock; records each run's outcome
        self.dock_as_tab("courseDock", "Course")  # a tab beside the charts: fits 1280x800
        self._update_drug_info()
        self._set_run_controls(running=False)
        self.refresh()
        log.info("Front panel ready (%s)", "SIMULATED instrument" if self.simulated
                 else f"instrument at {self.resource}")

    # ------------------------------------------------------------------ layout

    def _setup_ui(self) -> None:
        super()._setup_ui()
        stock = self.manager  # replaced before any run: same wiring, one run at a time
        self.manager = GuardedManager(self.widget_list, self.browser,
                                      log_level=self.log_level, parent=self)
        self.manager.abort_returned.connect(self.abort_returned)
        self.manager.queued.connect(self.queued)
        self.manager.running.connect(self.running)
        self.manager.finished.connect(self.finished)
        self.manager.log.connect(self.log.handle)
        stock.deleteLater()
        stock_inputs = self.inputs  # text number fields that never fall back silently
        self.inputs = PanelInputs(self.procedure_class, INPUTS, parent=self,
                                  hide_groups=self.hide_groups, inputs_in_scrollarea=True)
        stock_inputs.deleteLater()
        self.estop_button = EmergencyStopButton(self)
        self.estop_button.clicked.connect(lambda: self.emergency_stop(ESTOP_BUTTON))
        self.stop_button = StopRampDownButton(self)
        self.stop_button.clicked.connect(self.stop_ramp_down)
        self.pause_button = QtWidgets.QPushButton("Pause", self)
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.setToolTip("Ramp to zero and switch the output off; dose and "
                                     "treatment time are kept. Resume repeats the contact "
                                     "check and ramps back up.")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.trip_alert = TripAlert(self)
        self.trip_alert.acknowledged.connect(self.acknowledge_trip)
        self.output_alert = OutputAlert(self)
        self.output_alert.acknowledged.connect(self.acknowledge_output)
        self.notice = NoticeBanner("refusalNotice", self)
        self.close_confirm = ConfirmBanner("closeConfirm", "E-stop and close", "Keep running",
                                           self)
        self.close_confirm.accepted.connect(self._close_confirmed)
        self.sim_banner = SimulationBanner(
            SCENARIOS, self._initial_scenario, self._initial_speed,
            instrument=SIM_MODELS.get(self.model, ("", "", self.model))[2], parent=self)
        self.sim_banner.setVisible(self.simulated)
        self.current_display = NumericIndicator("Current", "mA", theme.CURRENT, 3, signed=True,
                                                object_name="indicatorCurrent")
        self.voltage_display = NumericIndicator("Voltage", "V", theme.VOLTAGE, 2, signed=True,
                                                object_name="indicatorVoltage")
        self.impedance_display = NumericIndicator("Impedance", "k\u03a9", theme.IMPEDANCE, 2,
                                                  object_name="indicatorImpedance")
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
        self.progress_bar.setFormat("%p % done")
        self.progress_bar.setMinimumHeight(22)
        self.summary_label = QtWidgets.QLabel(self)
        self.summary_label.setObjectName("runSummary")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.summary_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                         QtWidgets.QSizePolicy.Policy.Preferred)
        self.summary_label.setStyleSheet(
            f"QLabel#runSummary {{ background-color: {theme.DISPLAY_BACKGROUND};"
            f" border: 1px solid {theme.PANEL_EDGE}; border-radius: 6px; padding: 3px;"
            f" font-size: 9pt; }}")
        self.summary_label.setText("<b>RUN SUMMARY</b><br>No finished run shown yet.")
        self.summary_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignLeft
                                        | QtCore.Qt.AlignmentFlag.AlignTop)
        row_height = self.safety_light.sizeHint().height()
        for widget in (self.summary_label, self.safety_light, self.phase_display):
            widget.setFixedHeight(row_height)  # the row never grows with a long text
        self.treatment_label = QtWidgets.QLabel(self)
        self.treatment_label.setObjectName("treatmentInfo")
        self.treatment_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.treatment_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                           QtWidgets.QSizePolicy.Policy.Preferred)
        self.treatment_label.setStyleSheet(
            f"QLabel#treatmentInfo {{ background-color: {theme.DISPLAY_BACKGROUND};"
            f" border: 1px solid {theme.PANEL_EDGE}; border-radius: 6px; padding: 3px 6px;"
            f" font-size: 9pt; }}")
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
        self.queue_button.setText("Start\nrun")
        self.queue_button.setObjectName("queueButton")
        self.queue_button.setToolTip("Start the treatment with these parameters (one at a "
                                     "time; a human subject is screened first)")
        self.queue_button.setStyleSheet(
            "QPushButton#queueButton { background-color: #2b8a3e; font-weight: bold;"
            " font-size: 11pt; border-radius: 8px; }"
            "QPushButton#queueButton:disabled { background-color: #223326; color: #6b7f70; }")
        self._layout_inputs_dock()
        self._layout_menu()

        old_main = self.takeCentralWidget()
        panel = QtWidgets.QWidget(self)
        panel.setObjectName("frontPanel")
        self.panel_layout = QtWidgets.QVBoxLayout(panel)
        self.panel_layout.setContentsMargins(4, 4, 4, 4)
        self.panel_layout.setSpacing(4)
        self.panel_layout.addWidget(self.sim_banner)
        # alerts are part of the layout: laid out from their first frame, never squeezed
        for alert in (self.output_alert, self.trip_alert, self.close_confirm, self.notice):
            self.panel_layout.addWidget(alert)
        self.panel_layout.addLayout(self._indicator_grid())
        self.panel_layout.addWidget(old_main, 1)
        self.setCentralWidget(panel)
        self.main = old_main
        self.splitter = old_main.findChild(QtWidgets.QSplitter)
        if self.splitter is not None:
            self.splitter.setStretchFactor(0, 4)
            self.splitter.setStretchFactor(1, 1)
            self.splitter.setSizes([420, 100])
            self.splitter.setChildrenCollapsible(False)
        self.browser.setMinimumHeight(96)  # header and at least three runs
        self.charts.layout_widget.setMinimumHeight(250)  # readable charts under any alert
        self.setMinimumSize(1024, 640)

    def _indicator_grid(self) -> QtWidgets.QGridLayout:
        grid = QtWidgets.QGridLayout()
        grid.setSpacing(4)
        displays = (self.current_display, self.voltage_display, self.impedance_display,
                    self.dose_display, self.elapsed_display, self.remaining_display)
        for col, display in enumerate(displays):
            grid.addWidget(display, 0, col)
        grid.addWidget(self.phase_display, 1, 0)
        grid.addWidget(self.safety_light, 1, 1, 1, 3)
        grid.addWidget(self.summary_label, 1, 4, 1, 2)
        grid.addWidget(self.treatment_label, 2, 0, 1, 5)
        grid.addWidget(self.progress_bar, 2, 5)
        controls = QtWidgets.QVBoxLayout()
        controls.setSpacing(4)
        for button in (self.queue_button, self.pause_button, self.stop_button):
            button.setFixedWidth(96)
            button.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed,
                                 QtWidgets.QSizePolicy.Policy.Expanding)
            button.setMinimumHeight(36)
            controls.addWidget(button)
        grid.addLayout(controls, 0, 6, 3, 1)
        grid.addWidget(self.estop_button, 0, 7, 3, 1)
        for col in range(6):
            grid.setColumnStretch(col, 1)
        return grid

    def add_panel_tab(self, widget: QtWidgets.QWidget, title: str) -> None:
        """Add a tab beside Charts and Log (scrollable); one line for a new panel."""
        scroll = QtWidgets.QScrollArea(self.tabs)
        scroll.setObjectName(f"tab_{widget.objectName()}")
        scroll.setWidgetResizable(True)
        scroll.setWidget(widget)
        self.tabs.addTab(scroll, title)

    def show_tab(self, title: str) -> None:
        """Bring the tab named `title` to the front (if there is one)."""
        for index in range(self.tabs.count()):
            if self.tabs.tabText(index) == title:
                self.tabs.setCurrentIndex(index)

    def dock_as_tab(self, dock_name: str, title: str) -> None:
        """Move a panel someone added as a dock into a tab (a side dock would not fit)."""
        dock = self.findChild(QtWidgets.QDockWidget, dock_name)
        if dock is None or dock.widget() is None:
            return
        widget = dock.widget()
        self.removeDockWidget(dock)
        self.add_panel_tab(widget, title)
        dock.deleteLater()

    def _layout_inputs_dock(self) -> None:
        drug_input = self.inputs.drug
        layout = drug_input.parentWidget().layout()
        layout.insertWidget(layout.indexOf(drug_input) + 1, self.drug_info)
        drug_input.currentIndexChanged.connect(self._update_drug_info)
        for dock in self.findChildren(QtWidgets.QDockWidget):
            if dock.widget() is not None and dock.widget().isAncestorOf(self.inputs):
                self.inputs_dock = dock
                dock.setMinimumWidth(240)
                dock.setMaximumWidth(300)
                dock_layout = dock.widget().layout()
                dock_layout.setContentsMargins(4, 4, 4, 4)
                dock_layout.setStretchFactor(self.inputs, 1)
                box = QtWidgets.QWidget(dock)
                row = QtWidgets.QVBoxLayout(box)
                row.setContentsMargins(0, 0, 0, 0)
                row.addWidget(QtWidgets.QLabel("Results directory", box))
                row.addWidget(self.directory_input)
                row.addWidget(self.open_button)
                dock_layout.insertWidget(0, box)
                # PyMeasure's spacing and button row below the inputs: the buttons moved out
                for index in reversed(range(dock_layout.count())):
                    item = dock_layout.itemAt(index)
                    if item.spacerItem() is not None:
                        dock_layout.removeItem(item)

    def _layout_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        self.file_menu = menu
        action = menu.addAction("&Open results\u2026")
        action.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        action.triggered.connect(self.open_results_dialog)
        self.directory_action = menu.addAction("Results &directory\u2026")
        self.directory_action.triggered.connect(self.choose_directory)
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

    def choose_directory(self) -> QtWidgets.QFileDialog | None:
        """Pick the results directory in a non-modal dialog (not during a run)."""
        if self.manager.is_running():
            self.refuse("The results directory cannot change during a run.")
            return None
        dialog = QtWidgets.QFileDialog(self, "Results directory", self.directory)
        dialog.setFileMode(QtWidgets.QFileDialog.FileMode.Directory)
        dialog.setOption(QtWidgets.QFileDialog.Option.DontUseNativeDialog, True)
        dialog.setWindowModality(QtCore.Qt.WindowModality.NonModal)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda path: setattr(self, "directory", path))
        dialog.show()
        return dialog

    # ------------------------------------------------------------------ starting a run

    def new_curve(self, wdg: Any, results: Any, color: Any = None, **kwargs: Any) -> Any:
        """Let the charts pick the run colour from their palette."""
        return wdg.new_curve(results, color=color, **kwargs)

    def is_active(self) -> bool:
        """True while a run is running or waiting to run."""
        return self.manager.is_running() or self.manager.experiments.has_next()

    def make_procedure(self) -> ConstantCurrentIontophoresis:
        """The procedure from the inputs; raise InvalidParameter naming a rejected field."""
        errors = self.inputs.input_errors()
        if errors:
            field = errors[0].split(":", 1)[0]
            raise InvalidParameter(field, "; ".join(e.split(": ", 1)[-1] for e in errors)
                                   if len(errors) == 1 else " | ".join(errors))
        return self.inputs.get_procedure()

    def queue(self, procedure: ConstantCurrentIontophoresis | None = None) -> Experiment | None:
        """Start one run (screened, configured); None if refused. One treatment at a time."""
        if self.is_active():
            self.refuse("A treatment is already running. One treatment at a time: stop it "
                        "before starting another.")
            return None
        if self.output_alert.is_active():
            self.refuse("The output was not confirmed off. Switch the SourceMeter off at its "
                        "OUTPUT key, then acknowledge before starting another run.")
            return None
        if self.trip_alert.is_active():
            self.refuse("Acknowledge the alert before starting another run.")
            return None
        if procedure is None:
            try:
                procedure = self.make_procedure()
            except (InvalidParameter, ValueError) as exc:
                self.refuse(f"Run not started. {exc}")
                return None
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
        refusal = None
        if procedure.subject_kind == "human":
            answers = self.ask_screening(procedure)
            if answers is None:
                self.refuse("Run not started: the contraindication screening was cancelled.")
                return None
            try:
                procedure.confirm_screening(answers)
            except InvalidParameter as exc:
                refusal = f"Run refused. {exc.message}"
        if refusal is None:
            try:
                procedure.preflight()
            except (InvalidParameter, ValueError) as exc:
                self.course_panel.record_refused(procedure, str(exc))  # in the course record
                self.refuse(f"Run refused before energizing: {exc}")
                return None
        course_refusal = self.course_panel.before_queue(procedure)  # the course record, if any
        if course_refusal:
            self.refuse(f"Run refused: {course_refusal}")
            return None
        filename = new_results_file(self.directory)
        results = IontoResults(procedure, filename)
        experiment = self.new_experiment(results)
        self.notice.hide()
        self._set_run_controls(running=True)
        self.manager.queue(experiment)
        if refusal is not None:  # recorded: the procedure refuses and writes the summary
            self.refuse(f"{refusal} Recorded in {os.path.basename(filename)} (no current).")
            return None
        log.info("Started %s (%s)", os.path.basename(filename),
                 f"simulated: {procedure.scenario}, clock {procedure.clock.name}"
                 if self.simulated else f"instrument {self.resource}")
        return experiment

    def ask_screening(self, procedure: ConstantCurrentIontophoresis) -> dict[str, bool] | None:
        """Show the screening dialog before a run (no run is active then); None if cancelled."""
        dialog = ScreeningDialog(self, subject=str(procedure.subject_id or ""))
        self.screening_dialog = dialog
        try:
            accepted = dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted
            return dialog.answers() if accepted else None
        finally:
            self.screening_dialog = None
            dialog.deleteLater()

    def refuse(self, message: str) -> None:
        """Show why something was not done (in-window notice and the log)."""
        self.notice.show_message(message)
        log.warning(message)

    # ------------------------------------------------------------------ stops

    def running_procedure(self) -> ConstantCurrentIontophoresis | None:
        """The procedure of the run in progress, or None."""
        if not self.manager.is_running():
            return None
        return self.manager.running_experiment().procedure

    def emergency_stop(self, reason: str = ESTOP_BUTTON) -> bool:
        """Output off NOW on the running procedure (no ramp) and cancel anything waiting."""
        procedure = self.running_procedure()
        cancelled = self.cancel_queued()
        if procedure is None:
            self.statusBar().showMessage("Emergency stop: no run is active"
                                         + (f"; {cancelled} waiting run(s) cancelled"
                                            if cancelled else ""), 5000)
            return False
        procedure.emergency_stop(reason)
        if self._estopped_procedure is not procedure:
            self._estopped_procedure = procedure
            log.warning("%s: output switched off", reason)
        self.statusBar().showMessage("EMERGENCY STOP: output switched off", 10000)
        return True

    def stop_ramp_down(self) -> None:
        """Operator stop of the running run: ramp down, then off; nothing starts after it."""
        self.cancel_queued()
        procedure = self.running_procedure()
        if procedure is not None:
            procedure.request_stop()
            self.stop_button.setEnabled(False)
            self.pause_button.setEnabled(False)
            log.info("Stop requested: ramping down")
        self._park_focus()

    def toggle_pause(self) -> None:
        """Pause the running treatment (ramp to zero, output off) or resume it."""
        procedure = self.running_procedure()
        if procedure is None or not hasattr(procedure, "pause"):
            return
        if procedure.live.phase == "paused" or getattr(procedure, "pause_requested", False):
            procedure.resume()
            log.info("Resume requested: contact check, then ramping back up")
        else:
            procedure.pause()
            log.info("Pause requested: ramping to zero")
        self._park_focus()

    def cancel_queued(self) -> int:
        """Mark every waiting (not started) run aborted so nothing starts after a stop."""
        count = 0
        for experiment in list(self.manager.experiments.queue):
            if experiment.procedure.status == Procedure.QUEUED and (
                    not self.manager.is_running()
                    or experiment is not self.manager.running_experiment()):
                experiment.procedure.status = Procedure.ABORTED
                experiment.browser_item.setStatus(Procedure.ABORTED)
                count += 1
        if count:
            log.warning("%d waiting run(s) cancelled", count)
        return count

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802
        """Esc e-stops first, and a press on the E-stop works, over any menu or dialog."""
        kind = event.type()
        if kind == QtCore.QEvent.Type.KeyPress and event.key() == QtCore.Qt.Key.Key_Escape:
            if self.manager.is_running() and not self._closed:
                self.emergency_stop(ESTOP_KEY)
        elif kind == QtCore.QEvent.Type.MouseButtonPress and not self._closed and (
                QtWidgets.QApplication.activePopupWidget() is not None
                or QtWidgets.QApplication.activeModalWidget() is not None) \
                and watched is not self.estop_button and self.estop_button.isVisible():
            spot = self.estop_button.mapFromGlobal(event.globalPos())
            if self.estop_button.rect().contains(spot) and self.manager.is_running():
                self.emergency_stop(ESTOP_BUTTON)
        return False

    def _park_focus(self) -> None:
        """Leave the keyboard focus on the panel itself, not in a text field."""
        self.centralWidget().setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.centralWidget().setFocus(QtCore.Qt.FocusReason.OtherFocusReason)

    # ------------------------------------------------------------------ run lifecycle

    def _set_run_controls(self, running: bool) -> None:
        """Inputs locked and Start unavailable while a run is active; Stop/Pause only then."""
        self.inputs.set_locked(running)
        self.directory_input.setEnabled(not running)
        self.directory_action.setEnabled(not running)
        alert = self.trip_alert.is_active() or self.output_alert.is_active()
        self.queue_button.setEnabled(not running and not alert)
        self.queue_button.setToolTip("Acknowledge the alert first" if alert and not running
                                     else "Start the treatment with these parameters (one at "
                                     "a time; a human subject is screened first)")
        self.stop_button.setEnabled(running)
        self.pause_button.setEnabled(running)
        self.pause_button.setText("Pause")
        if self.simulated:
            self.sim_banner.scenario_combo.setEnabled(not running)
            self.sim_banner.speed_combo.setEnabled(not running)

    def _run_started(self, experiment: Experiment) -> None:
        procedure = experiment.procedure
        self.shown_procedure = procedure
        self.past_summary = None
        self._set_run_controls(running=True)
        self.summary_label.setText("<b>RUN SUMMARY</b><br>Run in progress\u2026")
        self.summary_label.setToolTip(experiment.data_filename)
        self.treatment_label.setText(treatment_text(procedure))
        self.treatment_label.setToolTip(drug_description(str(procedure.drug)))
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
        label = outcome_label(summary)
        experiment.browser_item.setText(3, label)
        QtCore.QTimer.singleShot(0, lambda: experiment.browser_item.setText(3, label))
        if summary and summary.get("rule") == PRE_FLIGHT:
            self.refuse(str(summary.get("reason") or "Run refused before energizing."))
        elif summary and summary.get("outcome") in TRIP_OUTCOMES:
            self._latch_trip(procedure, str(summary.get("reason") or ""))
        if summary is None or not summary.get("output_off_confirmed", False):
            self._raise_unconfirmed(procedure, summary)
        if summary:
            self._idle_sentence = str(summary.get("reason") or "")
        self._set_run_controls(running=self.is_active())
        self.sim_banner.set_running("")
        self.refresh()
        if getattr(procedure, "course_session_id", None) is not None:
            self.show_tab("Course")  # the after-form and the no-driving flag come next
        if self._close_pending and not self.manager.is_running():
            QtCore.QTimer.singleShot(0, self.close)

    def _show_summary(self, title: str, filename: str, summary: dict[str, Any] | None) -> None:
        self.summary_label.setText(f"<b>{title}</b> \u00b7 {describe_summary(summary)}")
        reason = (summary or {}).get("reason") or ""
        self.summary_label.setToolTip(f"{filename}\n{reason}")

    def _trip_title(self, procedure: Any) -> str:
        """The alert's title: what happened, and whether the output is known to be off."""
        summary = getattr(procedure, "summary", None)
        if summary is None:
            if self._estopped_procedure is procedure:
                return "EMERGENCY STOP \u2014 switching the output off\u2026"
            return "SAFETY TRIP \u2014 switching the output off\u2026"
        confirmed = bool(summary.get("output_off_confirmed"))
        off = "output switched off" if confirmed else "OUTPUT NOT CONFIRMED OFF"
        rule = summary.get("rule")
        if rule == ESTOP_RULE:
            return f"EMERGENCY STOP \u2014 {off}"
        if summary.get("outcome") == Outcome.FAULT:
            return f"INSTRUMENT FAULT \u2014 {off}"
        if summary.get("outcome") == Outcome.REFUSED:
            return f"RUN REFUSED ({rule}) \u2014 {off}"
        return f"SAFETY TRIP ({rule}) \u2014 {off}" if rule else f"SAFETY TRIP \u2014 {off}"

    def _latch_trip(self, procedure: Any, sentence: str) -> None:
        """Raise (or update) the trip alert; the light stays red until acknowledged."""
        if not sentence:
            sentence = "The run was stopped by a safety rule."
        title = self._trip_title(procedure)
        if (self._tripped_procedure is procedure and self._trip_sentence == sentence
                and self.trip_alert.title_text() == title):
            return
        first = self._tripped_procedure is not procedure
        self._tripped_procedure = procedure
        self._trip_sentence = sentence
        self._trip_caption = title.split(" \u2014 ")[0]
        self.trip_alert.raise_alert(sentence, title, compact=self.output_alert.is_active())
        self.cancel_queued()
        summary = getattr(procedure, "summary", None) or {}
        estop = self._estopped_procedure is procedure or summary.get("rule") == ESTOP_RULE
        if first and not estop:
            self.alarm.start("trip")

    def _raise_unconfirmed(self, procedure: Any, summary: dict[str, Any] | None) -> None:
        """The loudest state: the output could not be read back as off."""
        if self._unconfirmed_procedure is procedure:
            return
        self._unconfirmed_procedure = procedure
        what = self._trip_title(procedure).split(" \u2014 ")[0].lower() if summary else \
            "the run ended without a summary"
        self.output_alert.raise_alert(f"The software could not read the output back as off "
                                      f"({what}). The SourceMeter may still be sourcing.")
        if self.trip_alert.is_active():  # room for the charts: the trip's sentence shortened
            self.trip_alert.raise_alert(self._trip_sentence or "", self.trip_alert.title_text(),
                                        compact=True)
        self.alarm.start("output not confirmed off")
        log.critical(NOT_CONFIRMED_OFF)

    def acknowledge_trip(self) -> None:
        """The operator read the trip alert: hide it and let the light follow the run again."""
        self._trip_sentence = None
        self._trip_caption = None
        self.trip_alert.hide()
        if not self.output_alert.is_active():
            self.alarm.stop()
        log.info("Alert acknowledged by the operator")
        self._set_run_controls(running=self.is_active())
        self._park_focus()
        self.refresh()

    def acknowledge_output(self) -> None:
        """The operator switched the output off at the instrument and says so."""
        self.output_alert.hide()
        if not self.trip_alert.is_active():
            self.alarm.stop()
        log.warning("Output-not-confirmed-off alert acknowledged by the operator")
        self._set_run_controls(running=self.is_active())
        self._park_focus()
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
            if self.past_summary is None:
                self._show_idle()
            self._show_safety(running=False, live=None, state="off")
            return
        live = procedure.live
        state = output_state(procedure, running)
        self.show_live(live, state)
        if running and live.safety == SafetyState.TRIPPED and live.phase != Phase.PRE_FLIGHT:
            self._latch_trip(procedure, live.last_event)  # a refusal is a notice, at the end
        elif self._tripped_procedure is procedure and self._trip_sentence is not None:
            self._latch_trip(procedure, self._trip_sentence)  # title follows the summary
        if running and hasattr(procedure, "pause"):
            paused = live.phase == "paused" or getattr(procedure, "pause_requested", False)
            self.pause_button.setText("Resume" if paused else "Pause")
        self._show_safety(running=running, live=live, state=state)

    def show_live(self, live: LiveStatus, state: str = "on") -> None:
        """Put a live status on the displays; words instead of numbers when the output is off."""
        if state == "on":
            self.current_display.set_value(live.current_mA)
            self.voltage_display.set_value(live.voltage_V)
            self.voltage_display.set_alarm(bool(live.compliance))
            self._show_impedance(live)
        elif state == "unconfirmed":
            for display in (self.current_display, self.voltage_display):
                display.set_text("?", theme.LIMIT, unit="not confirmed off")
            self.impedance_display.set_text("---", theme.WORD)
        else:
            word = "\u2026" if state == "switching-off" else theme.OFF_TEXT
            for display in (self.current_display, self.voltage_display):
                display.set_alarm(False)
                display.set_text(word, theme.WORD, unit="output off")
            self.impedance_display.set_text("---", theme.WORD)
        self.dose_display.set_value(live.dose_mA_min)
        self.elapsed_display.set_value(live.elapsed_s)
        self.remaining_display.set_value(live.remaining_s)
        refused = _refused_before_energizing(getattr(self.shown_procedure, "summary", None))
        if state == "unconfirmed":
            self.phase_display.set_phase("off", "OUTPUT ?")
        elif refused:
            self.phase_display.set_phase("off", "REFUSED")
        elif state in ("off", "switching-off") and live.phase not in ("paused", "pre-flight"):
            self.phase_display.set_phase("off")
        else:
            self.phase_display.set_phase(live.phase)
        self.progress_bar.setValue(int(round(live.progress)))

    def _show_impedance(self, live: LiveStatus) -> None:
        """No impedance at near-zero current; an open contact says OPEN or > 100 kΩ."""
        current, voltage, impedance = live.current_mA, live.voltage_V, live.impedance_kohm
        display = self.impedance_display
        if not (math.isfinite(current) and math.isfinite(voltage)):
            display.set_text("---", theme.WORD)
        elif abs(current) < NEAR_ZERO_MA:
            if abs(voltage) >= 1.0:
                display.set_text("OPEN", theme.LIMIT, unit="no current")
            else:
                display.set_text("---", theme.WORD, unit="k\u03a9 (I \u2248 0)")
        elif math.isfinite(impedance) and impedance > OPEN_KOHM:
            display.set_text(f"> {OPEN_KOHM:g}", theme.LIMIT, unit="k\u03a9 open?")
        else:
            display.set_value(impedance)

    def _show_idle(self) -> None:
        for display in (self.current_display, self.voltage_display, self.impedance_display,
                        self.dose_display, self.elapsed_display, self.remaining_display):
            display.set_alarm(False)
            display.set_value(None)
        self.phase_display.set_phase("idle")
        self.treatment_label.setText(f"<span style='color:{theme.TEXT_DIM}'>TREATMENT</span>"
                                     " none running")

    def _show_safety(self, running: bool, live: LiveStatus | None, state: str) -> None:
        if self.output_alert.is_active() or state == "unconfirmed":
            self.safety_light.set_state("unconfirmed", NOT_CONFIRMED_OFF)
        elif self._trip_sentence is not None:
            self.safety_light.set_state("tripped", self._trip_sentence, self._trip_caption)
        elif running and live is not None and live.phase == "paused":
            self.safety_light.set_state("paused", live.last_event)
        elif running and live is not None:
            self.safety_light.set_state(live.safety, live.last_event)
        elif _refused_before_energizing(getattr(self.shown_procedure, "summary", None)):
            self.safety_light.set_state("refused", self._idle_sentence)
        elif self.past_summary is not None:
            outcome = outcome_label(self.past_summary).upper()
            self.safety_light.set_state("past", self._idle_sentence, f"PAST RUN: {outcome}")
        else:
            self.safety_light.set_state("idle", self._idle_sentence)

    # ------------------------------------------------------------------ past results

    def open_experiment(self) -> None:
        """PyMeasure's browser "Open" button: same as File > Open results."""
        self.open_results_dialog()

    def open_results_dialog(self) -> ResultsDialog:
        """Show the results list (non-modal: the E-stop stays usable while it is open)."""
        if self.results_dialog is None:
            self.results_dialog = ResultsDialog(self.directory, self)
            self.results_dialog.chosen.connect(self.open_results)
        else:
            self.results_dialog.set_directory(self.directory)
        self.results_dialog.show()
        self.results_dialog.raise_()
        return self.results_dialog

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
        experiment.browser_item.setText(3, outcome_label(summary))
        self.last_summary = summary
        if not self.manager.is_running():
            self._show_summary("PAST RUN", filename, summary)
            self._show_past(experiment, summary)
        log.info("Opened results file %s", filename)
        return experiment

    def _show_past(self, experiment: Experiment, summary: dict[str, Any] | None) -> None:
        """Show a past run: marked PAST RUN with its outcome; no live-looking numbers."""
        self.shown_procedure = None
        self.past_summary = summary or {"outcome": "unknown", "output_off_confirmed": True}
        for display in (self.current_display, self.voltage_display, self.impedance_display):
            display.set_alarm(False)
            display.set_text("---", theme.WORD, unit="past run")
        self.dose_display.set_value((summary or {}).get("delivered_dose_mA_min"))
        self.elapsed_display.set_value((summary or {}).get("duration_s"))
        self.remaining_display.set_value(None)
        self.phase_display.set_phase("past", "PAST RUN")
        self.progress_bar.setValue(100 if summary and summary.get("outcome") == Outcome.COMPLETED
                                   else 0)
        self.treatment_label.setText(treatment_text(experiment.procedure,
                                                    prefix="PAST RUN \u25b8"))
        self._idle_sentence = (f"{os.path.basename(experiment.data_filename)}: "
                               f"{(summary or {}).get('reason') or 'no summary'}")
        self._show_safety(running=False, live=None, state="off")

    # ------------------------------------------------------------------ no modal dialogs

    def remove_experiment(self, experiment: Any) -> None:
        """PyMeasure asks in a modal box: not during a run."""
        if self._refuse_modal("Removing runs from the list"):
            return
        super().remove_experiment(experiment)

    def delete_experiment_data(self, experiment: Any) -> None:
        """PyMeasure asks in a modal box: not during a run."""
        if self._refuse_modal("Deleting data files"):
            return
        super().delete_experiment_data(experiment)

    def save_experiment_copy(self, source_filename: str) -> None:
        """PyMeasure's save dialog is modal: not during a run."""
        if self._refuse_modal("Saving a copy"):
            return
        super().save_experiment_copy(source_filename)

    def change_color(self, experiment: Any) -> None:
        """PyMeasure's colour dialog is modal: not during a run."""
        if self._refuse_modal("Changing a run's colour"):
            return
        super().change_color(experiment)

    def _refuse_modal(self, what: str) -> bool:
        if self.manager.is_running():
            self.refuse(f"{what} is not available during a run (the E-stop must stay "
                        "reachable). Try again after the run.")
            return True
        return False

    # ------------------------------------------------------------------ closing

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt API)
        """During a run: ask in the panel (not a modal box), E-stop, close after the files."""
        if self.manager.is_running():
            event.ignore()
            if not self._close_pending:
                self.close_confirm.ask(
                    "A run is in progress",
                    "Closing switches the output OFF at once (emergency stop) and ends the "
                    "run. The EMERGENCY STOP and Esc work as always.")
            return
        self._teardown()
        super().closeEvent(event)

    def _close_confirmed(self) -> None:
        if not self.manager.is_running():
            self.close()
            return
        self._close_pending = True
        self.emergency_stop(ESTOP_CLOSE)
        self.statusBar().showMessage("Closing: output off, finishing the results files\u2026")

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
        """Stop polling and the alarm; take the log handler off the root logger (once)."""
        if self._closed:
            return
        self._closed = True
        self.refresh_timer.stop()
        self.alarm.stop()
        self.cancel_queued()  # nothing may start after the panel is gone
        QtWidgets.QApplication.instance().removeEventFilter(self)
        if self.results_dialog is not None:
            self.results_dialog.close()
        logging.getLogger().removeHandler(self.log_handler)
        logging.getLogger("ionto_instruments").setLevel(self._package_log_level)
        with contextlib.suppress(TypeError, RuntimeError):
            QtCore.QCoreApplication.instance().aboutToQuit.disconnect(self.quit)
