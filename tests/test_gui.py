"""The front panel end to end (pytest-qt, offscreen) on the simulator with a fast clock."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from gui_support import (
    RUN_TIMEOUT_MS,
    button,
    queue_run,
    wait_for_end,
    wait_for_phase,
)
from pymeasure.experiment import Procedure
from pyqtgraph.Qt import QtCore, QtWidgets

from ionto_instruments.clock import ScaledClock, VirtualClock
from ionto_instruments.gui.window import FrontPanelWindow
from ionto_instruments.procedures.results import load_summary
from ionto_instruments.procedures.runner import make_procedure, run_protocol
from ionto_instruments.procedures.screening import CONTRAINDICATIONS

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

def test_window_opens_with_panel_controls(window):
    estop = button(window, "emergencyStop")
    assert estop.isEnabled() and "Esc" in estop.text()
    assert not button(window, "stopRampDown").isEnabled()
    banner = window.findChild(QtWidgets.QFrame, "simBanner")
    assert banner.isVisible() and "SIMULATED" in banner.title.text()
    assert banner.scenario() == "normal" and banner.speed() == 600.0
    assert window.findChild(QtWidgets.QFrame, "tripAlert").isHidden()
    assert window.safety_light.state() == "idle"
    assert window.directory == str(Path(window.directory))


def test_drug_label_shows_polarity_and_terminal(window):
    window.inputs.drug.setValue("dexamethasone")
    text = window.drug_info.text()
    assert "cathode" in text and "negative current" in text and "HI" in text
    window.inputs.drug.setValue("bupivacaine")
    text = window.drug_info.text()
    assert "anode" in text and "positive current" in text and "Marcaine" in text


def test_queued_run_fills_charts_and_indicators(qtbot, window, tmp_path):
    window.inputs.treatment_time.setValue(10.0)
    experiment = queue_run(window)
    procedure = experiment.procedure
    assert isinstance(procedure.clock, ScaledClock) and procedure.clock.speed == 600
    assert Path(experiment.data_filename).parent == tmp_path / "runs"
    wait_for_phase(qtbot, procedure, "hold")
    qtbot.waitUntil(lambda: experiment.curve_list[0].rows > 20, timeout=RUN_TIMEOUT_MS)
    qtbot.wait(250)  # a few refresh ticks
    assert window.phase_display.phase() in ("hold", "ramp-down", "off")
    for display in (window.current_display, window.voltage_display,
                    window.impedance_display, window.dose_display):
        assert display.text() != "---"
    assert window.current_display.text().startswith("+")
    if window.manager.is_running():
        assert window.safety_light.state() in ("ok", "warning")
        assert button(window, "stopRampDown").isEnabled()
    wait_for_end(qtbot, window)
    curves = experiment.curve_list[0]
    x, y = curves.current.data()
    assert len(x) > 100 and max(y) == pytest.approx(2.0, abs=0.05)
    assert [p for p, _, _ in curves.phases()][:4] == ["contact-check", "ramp-up", "hold",
                                                      "ramp-down"]
    summary = procedure.summary
    assert summary["outcome"] == "completed"
    assert "COMPLETED" in window.summary_label.text()
    assert window.safety_light.state() == "idle"
    assert curves.rows == summary["samples"] + 1
    assert window.progress_bar.value() == 100


def _assert_estopped(qtbot, window, experiment, reason_part: str) -> None:
    procedure = experiment.procedure
    assert procedure.simulator.model.output_enabled is False  # off before the next sample
    wait_for_end(qtbot, window)
    summary = procedure.summary
    assert summary["outcome"] == "aborted" and summary["rule"] == "emergency-stop"
    assert reason_part in summary["reason"]
    assert summary["output_off_confirmed"] is True
    assert procedure.status == Procedure.ABORTED
    assert experiment.browser_item.text(3) == "E-stopped"
    alert = window.findChild(QtWidgets.QFrame, "tripAlert")
    assert alert.isVisible() and reason_part in alert.text()
    assert alert.title_text() == "EMERGENCY STOP \u2014 output switched off"
    assert "SAFETY TRIP" not in alert.title_text()
    assert window.safety_light.state() == "tripped"
    assert window.safety_light.caption.text() == "EMERGENCY STOP"
    assert reason_part in window.safety_light.full_sentence()
    assert not window.alarm.is_active()  # the operator's own stop: no alarm
    assert load_summary(experiment.data_filename) == summary  # the files are complete


def test_emergency_stop_button_switches_output_off(qtbot, window):
    experiment = queue_run(window)
    procedure = experiment.procedure
    wait_for_phase(qtbot, procedure, "hold")
    assert procedure.simulator.model.output_enabled is True
    qtbot.mouseClick(button(window, "emergencyStop"), QtCore.Qt.MouseButton.LeftButton)
    _assert_estopped(qtbot, window, experiment, "front-panel button")


def test_escape_key_triggers_emergency_stop(qtbot, window):
    experiment = queue_run(window)
    procedure = experiment.procedure
    wait_for_phase(qtbot, procedure, "hold")
    window.activateWindow()
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is window, timeout=2000)
    field = window.inputs.subject_id  # even with the focus in a text field
    field.setFocus()
    qtbot.keyClick(field, QtCore.Qt.Key.Key_Escape)
    _assert_estopped(qtbot, window, experiment, "Esc key")


def test_stop_button_ramps_down(qtbot, window):
    experiment = queue_run(window)
    procedure = experiment.procedure
    wait_for_phase(qtbot, procedure, "hold")
    qtbot.mouseClick(button(window, "stopRampDown"), QtCore.Qt.MouseButton.LeftButton)
    wait_for_end(qtbot, window)
    assert procedure.summary["outcome"] == "stopped"
    assert procedure.simulator.model.output_enabled is False
    assert window.trip_alert.isHidden()
    live = procedure.live  # REMAINING froze at the stop; the 30 s ramp-down did not count it
    assert live.remaining_s + live.elapsed_s >= 30 * 60 + 25
    assert "ramp-down" in [p for p, _, _ in experiment.curve_list[0].phases()]


def _answer_screening(qtbot, window, answers: dict[str, bool], checks: list) -> None:
    """Arrange for the modal screening dialog to be answered once it opens."""

    def handle():
        dialog = window.screening_dialog
        if dialog is None or not dialog.isVisible():
            QtCore.QTimer.singleShot(10, handle)
            return
        ok = dialog.findChild(QtWidgets.QPushButton, "screeningOk")
        checks.append(("initially disabled", not ok.isEnabled()))
        items = list(answers.items())
        for key, yes in items[:-1]:
            name = f"screening_{key}_{'yes' if yes else 'no'}"
            qtbot.mouseClick(dialog.findChild(QtWidgets.QRadioButton, name),
                             QtCore.Qt.MouseButton.LeftButton)
        checks.append(("disabled until all answered", not ok.isEnabled()))
        key, yes = items[-1]
        dialog.answer(key, yes)
        checks.append(("enabled when all answered", ok.isEnabled()))
        qtbot.mouseClick(ok, QtCore.Qt.MouseButton.LeftButton)

    QtCore.QTimer.singleShot(0, handle)


def test_screening_dialog_gates_a_human_run(qtbot, window):
    window.inputs.subject_kind.setValue("human")
    window.sim_banner.set_speed(math.inf)
    checks: list = []
    _answer_screening(qtbot, window, {c.key: False for c in CONTRAINDICATIONS}, checks)
    experiment = window.queue()
    assert all(ok for _, ok in checks), checks
    assert experiment is not None
    assert experiment.procedure.screening_confirmed is True
    assert isinstance(experiment.procedure.clock, VirtualClock)
    wait_for_end(qtbot, window)
    assert experiment.procedure.summary["outcome"] == "completed"
    recorded = load_summary(experiment.data_filename)["screening_answers"]
    assert recorded == {c.key: False for c in CONTRAINDICATIONS}


def test_screening_yes_refuses_the_run_and_records_it(qtbot, window):
    window.inputs.subject_kind.setValue("human")
    window.inputs.subject_id.setValue("P-01")
    answers = {c.key: False for c in CONTRAINDICATIONS}
    answers["pacemaker"] = True
    checks: list = []
    _answer_screening(qtbot, window, answers, checks)
    assert window.queue() is None
    assert all(ok for _, ok in checks), checks
    notice = window.findChild(QtWidgets.QFrame, "refusalNotice")
    assert notice.isVisible() and "pacemaker" in notice.text()
    wait_for_end(qtbot, window)
    [csv] = Path(window.directory).glob("*.csv")
    summary = load_summary(csv)  # the refusal is on record: answers, and no current
    assert summary["outcome"] == "refused" and summary["rule"] == "pre-flight"
    assert "pacemaker" in summary["reason"].lower()
    assert summary["screening_answers"] == answers
    assert summary["output_was_on"] is False and summary["samples"] == 0
    assert summary["delivered_dose_mA_min"] == 0
    assert window.browser.topLevelItem(0).text(3) == "Refused (pre-flight)"
    assert not window.trip_alert.is_active() and notice.isVisible()


def test_cancelled_screening_refuses_the_run(qtbot, window):
    window.inputs.subject_kind.setValue("human")

    def cancel():
        dialog = window.screening_dialog
        if dialog is None:
            QtCore.QTimer.singleShot(10, cancel)
            return
        dialog.reject()

    QtCore.QTimer.singleShot(0, cancel)
    assert window.queue() is None
    assert "cancelled" in window.notice.text()


def test_fault_scenario_latches_red_until_acknowledged(qtbot, window):
    window.sim_banner.set_scenario("contact-loss@1")
    window.sim_banner.set_speed(math.inf)
    experiment = queue_run(window)
    assert experiment.procedure.scenario == "contact-loss@1"
    wait_for_end(qtbot, window)
    summary = experiment.procedure.summary
    assert summary["outcome"] == "aborted" and summary["rule"] != "emergency-stop"
    sentence = summary["reason"]
    assert "Contact lost" in sentence
    alert = window.findChild(QtWidgets.QFrame, "tripAlert")
    assert alert.isVisible() and alert.text() == sentence
    assert window.safety_light.state() == "tripped"
    assert window.safety_light.color() == "#e03131"
    assert window.safety_light.full_sentence() == sentence
    qtbot.wait(300)  # several refresh ticks later it is still red and still shown
    assert alert.isVisible() and window.safety_light.state() == "tripped"
    assert window.queue() is None  # no new run before the trip is acknowledged
    qtbot.mouseClick(button(window, "acknowledgeTrip"), QtCore.Qt.MouseButton.LeftButton)
    assert alert.isHidden()
    assert window.safety_light.state() == "idle"
    assert experiment.procedure.simulator.model.output_enabled is False


def test_closing_during_a_run_switches_off_and_completes_files(qtbot, window):
    experiment = queue_run(window)
    procedure = experiment.procedure
    wait_for_phase(qtbot, procedure, "hold")
    window.close()
    confirm = window.findChild(QtWidgets.QFrame, "closeConfirm")
    assert confirm.isVisible() and QtWidgets.QApplication.activeModalWidget() is None
    qtbot.mouseClick(button(window, "closeConfirmNo"), QtCore.Qt.MouseButton.LeftButton)
    assert window.isVisible() and window.manager.is_running()  # declined: nothing happens
    assert procedure.simulator.model.output_enabled is True
    window.close()
    qtbot.mouseClick(button(window, "closeConfirmYes"), QtCore.Qt.MouseButton.LeftButton)
    assert procedure.simulator.model.output_enabled is False
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT_MS)
    assert not window.manager.is_running()
    summary = load_summary(experiment.data_filename)
    assert summary["outcome"] == "aborted" and "closed" in summary["reason"]
    assert summary["output_off_confirmed"] is True
    assert window.log_handler not in logging.getLogger().handlers


def test_past_results_file_loads_with_summary(qtbot, window, tmp_path):
    past = run_protocol(make_procedure({"treatment_time": 5.0}), output_dir=tmp_path / "past",
                        clock=VirtualClock())
    path = past["results_file"]
    experiment = window.open_results(path)
    assert experiment is not None
    curves = experiment.curve_list[0]
    assert curves.rows == past["samples"] + 1
    x, y = curves.dose.data()
    assert y[-1] == pytest.approx(past["delivered_dose_mA_min"], rel=1e-3)
    assert "PAST RUN" in window.summary_label.text()
    assert "COMPLETED" in window.summary_label.text()
    assert window.dose_display.text() == f"{past['delivered_dose_mA_min']:.2f}"
    assert window.browser.topLevelItemCount() == 1
    assert window.charts.focus is curves
    assert window.open_results(path) is None  # the same file twice is refused
    item = experiment.browser_item  # the browser's check box hides and shows the run
    item.setCheckState(0, QtCore.Qt.CheckState.Unchecked)
    assert not curves.attached and window.charts.focus is None
    item.setCheckState(0, QtCore.Qt.CheckState.Checked)
    assert curves.attached and window.charts.focus is curves
    window.manager.remove(experiment)
    assert window.browser.topLevelItemCount() == 0 and not curves.attached


def test_hardware_mode_hides_the_simulation_banner(qtbot, tmp_path):
    win = FrontPanelWindow(resource="GPIB0::24::INSTR", directory=tmp_path)
    qtbot.addWidget(win)
    try:
        assert win.sim_banner.isHidden()
        assert "SIMULATED" not in win.windowTitle()
    finally:
        win.close()


def test_summary_file_matches_run_summary(qtbot, window):
    window.sim_banner.set_speed(math.inf)
    experiment = queue_run(window, treatment_time=2.0)
    wait_for_end(qtbot, window)
    on_disk = json.loads(Path(experiment.data_filename).with_suffix(".json").read_text())
    assert on_disk == experiment.procedure.summary


def test_internal_error_in_a_run_ends_it_cleanly(qtbot, window):
    """A bug inside the run: output off, FAILED once, the panel keeps working."""
    window.sim_banner.set_speed(math.inf)
    procedure = make_procedure({})
    original, calls = procedure._take_sample, []

    def failing_sample(*args, **kwargs):
        calls.append(1)
        if len(calls) > 20:
            raise RuntimeError("simulated bug")
        return original(*args, **kwargs)

    procedure._take_sample = failing_sample
    experiment = window.queue(procedure=procedure)
    wait_for_end(qtbot, window)
    qtbot.wait(100)  # a duplicate FAILED status from the worker must not break the manager
    assert experiment.browser_item.text(3) == "Fault"
    assert procedure.summary["outcome"] == "fault"
    assert procedure.simulator.model.output_enabled is False
    assert window.trip_alert.is_active() and "simulated bug" in window.trip_alert.text()
