"""What the operator sees at the critical moments (issue 11), asserted on real widgets.

Each test runs the front panel on the simulator and checks texts, visibility, geometry and
enabled state: an output not confirmed off, one treatment at a time, no modal dialog during
a run, no stale numbers, alerts laid out from the first frame, the 1280x800 fit, typed values,
locked inputs and the running treatment.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
from gui_support import RUN_TIMEOUT_MS, button, queue_run, wait_for_end, wait_for_phase
from pyqtgraph.Qt import QtCore, QtGui, QtTest, QtWidgets

from ionto_instruments.clock import VirtualClock
from ionto_instruments.gui.alerts import NOT_CONFIRMED_OFF, label_fits
from ionto_instruments.gui.dialogs import ResultsDialog
from ionto_instruments.gui.window import FIT_SIZE, NEAR_ZERO_MA
from ionto_instruments.procedures.iontophoresis import LiveStatus
from ionto_instruments.procedures.runner import make_procedure, run_protocol

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _max_speed(window, scenario: str = "normal") -> None:
    window.sim_banner.set_scenario(scenario)
    window.sim_banner.set_speed(math.inf)


def _fully_visible(window, widget: QtWidgets.QWidget) -> bool:
    """The widget is shown and lies entirely inside the window."""
    top_left = widget.mapTo(window, QtCore.QPoint(0, 0))
    rect = QtCore.QRect(top_left, widget.size())
    return widget.isVisible() and window.rect().contains(rect) and widget.width() > 20


# ------------------------------------------------------------------ blocker 1


def test_output_not_confirmed_off_is_the_loudest_state(qtbot, window):
    _max_speed(window, "io-timeout@1")
    experiment = queue_run(window, treatment_time=3.0)
    wait_for_end(qtbot, window)
    summary = experiment.procedure.summary
    assert summary["output_off_confirmed"] is False  # the simulator never answers again
    qtbot.wait(300)  # several refresh ticks: nothing turns it back into "off"
    alert = window.output_alert
    assert alert.isVisible() and alert.title_text() == NOT_CONFIRMED_OFF
    assert "OUTPUT key" in alert.title_text() and "patient leads" in alert.title_text()
    assert label_fits(alert.title) and label_fits(alert.message)
    assert window.panel_layout.indexOf(alert) < window.panel_layout.indexOf(window.trip_alert)
    trip = window.trip_alert  # the trip alert must not claim the output is off
    assert "NOT CONFIRMED OFF" in trip.title_text() and "switched off" not in trip.title_text()
    for display in (window.current_display, window.voltage_display):
        assert display.text() == "?" and display.unit_text() == "not confirmed off"
    assert window.phase_display.text() == "OUTPUT ?"
    assert window.safety_light.state() == "unconfirmed"
    assert window.safety_light.caption.text() == "OUTPUT NOT CONFIRMED OFF"
    assert experiment.browser_item.text(3) == "OUTPUT NOT CONFIRMED OFF"
    assert "OUTPUT NOT CONFIRMED OFF" in window.summary_label.text()
    assert window.alarm.is_active() and window.alarm.requests >= 1
    assert not window.queue_button.isEnabled() and window.queue() is None
    qtbot.mouseClick(button(window, "acknowledgeTrip"), QtCore.Qt.MouseButton.LeftButton)
    assert alert.isVisible() and window.alarm.is_active()  # acknowledged separately
    assert window.safety_light.state() == "unconfirmed"
    qtbot.mouseClick(button(window, "acknowledgeOutput"), QtCore.Qt.MouseButton.LeftButton)
    assert alert.isHidden() and not window.alarm.is_active()
    assert window.queue_button.isEnabled()


def test_a_trip_sounds_the_alarm_until_acknowledged(qtbot, window):
    _max_speed(window, "contact-loss@1")
    queue_run(window)
    wait_for_end(qtbot, window)
    assert window.trip_alert.is_active() and window.output_alert.isHidden()
    assert window.trip_alert.title_text().startswith("SAFETY TRIP (impedance-high)")
    assert window.trip_alert.title_text().endswith("output switched off")
    assert window.alarm.is_active()
    requests = window.alarm.requests
    window.alarm._ring()  # what the repeat timer does every REPEAT_S
    assert window.alarm.requests == requests + 1
    qtbot.mouseClick(button(window, "acknowledgeTrip"), QtCore.Qt.MouseButton.LeftButton)
    assert not window.alarm.is_active()
    focus = QtWidgets.QApplication.focusWidget()
    assert focus is None or not window.sim_banner.isAncestorOf(focus)


# ------------------------------------------------------------------ blocker 2


def test_one_treatment_at_a_time_and_nothing_starts_after_stop(qtbot, window):
    window.sim_banner.set_speed(60.0)  # slow enough that a loaded CI box never goes stale
    experiment = queue_run(window)
    procedure = experiment.procedure
    wait_for_phase(qtbot, procedure, "hold")
    start = button(window, "queueButton")
    assert not start.isEnabled()
    assert window.queue() is None and "One treatment at a time" in window.notice.text()
    # even a run slipped into PyMeasure's queue behind the panel's back never starts
    second = window.new_experiment(type(experiment.results)(
        make_procedure({}), Path(window.directory) / "second.csv"))
    window.manager.queue(second)
    qtbot.mouseClick(button(window, "stopRampDown"), QtCore.Qt.MouseButton.LeftButton)
    wait_for_end(qtbot, window)
    qtbot.wait(400)
    assert procedure.summary["outcome"] == "stopped", procedure.summary["reason"]
    assert not window.manager.is_running()
    assert second.procedure.status != second.procedure.RUNNING
    assert second.procedure.summary is None  # never ran, never energized
    assert procedure.simulator.model.output_enabled is False
    assert start.isEnabled()
    focus = QtWidgets.QApplication.focusWidget()
    assert focus is None or not window.sim_banner.isAncestorOf(focus)


# ------------------------------------------------------------------ major 3


def _estop_pressed_over(qtbot, window, popup: QtWidgets.QWidget) -> None:
    """Press where the E-stop is while `popup` (a menu or dialog) is on top."""
    centre = window.estop_button.mapToGlobal(window.estop_button.rect().center())
    QtTest.QTest.mousePress(popup, QtCore.Qt.MouseButton.LeftButton,
                            QtCore.Qt.KeyboardModifier.NoModifier, popup.mapFromGlobal(centre))


def test_no_modal_dialog_while_a_run_is_active(qtbot, window):
    experiment = queue_run(window)
    procedure = experiment.procedure
    wait_for_phase(qtbot, procedure, "hold")
    dialog = window.open_results_dialog()
    assert dialog.isVisible() and not dialog.isModal()
    assert QtWidgets.QApplication.activeModalWidget() is None
    other = dialog.browse()  # the file dialog for results elsewhere is not modal either
    assert QtWidgets.QApplication.activeModalWidget() is None
    other.close()
    window.close()  # the close question is in the panel
    assert window.close_confirm.isVisible()
    assert QtWidgets.QApplication.activeModalWidget() is None
    window.close_confirm.no.click()
    for action in (lambda: window.remove_experiment(experiment),
                   lambda: window.delete_experiment_data(experiment),
                   lambda: window.save_experiment_copy(experiment.data_filename),
                   lambda: window.change_color(experiment),
                   window.choose_directory):
        action()  # each would open a modal box: refused with a notice during a run
        assert QtWidgets.QApplication.activeModalWidget() is None
        assert "not available during a run" in window.notice.text() or \
            "cannot change during a run" in window.notice.text()
    assert Path(experiment.data_filename).exists() and window.manager.is_running()
    dialog.activateWindow()
    qtbot.keyClick(dialog.table, QtCore.Qt.Key.Key_Escape)  # Esc in a dialog e-stops first
    assert procedure.simulator.model.output_enabled is False
    wait_for_end(qtbot, window)
    assert procedure.summary["rule"] == "emergency-stop"
    assert "Esc key" in procedure.summary["reason"]


def test_estop_works_over_the_open_file_menu(qtbot, window):
    experiment = queue_run(window)
    procedure = experiment.procedure
    wait_for_phase(qtbot, procedure, "hold")
    window.file_menu.popup(window.mapToGlobal(QtCore.QPoint(10, 10)))
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activePopupWidget() is not None)
    _estop_pressed_over(qtbot, window, QtWidgets.QApplication.activePopupWidget())
    assert procedure.simulator.model.output_enabled is False
    wait_for_end(qtbot, window)
    assert "front-panel button" in procedure.summary["reason"]


def test_esc_on_an_open_menu_estops(qtbot, window):
    experiment = queue_run(window)
    procedure = experiment.procedure
    wait_for_phase(qtbot, procedure, "hold")
    window.file_menu.popup(window.mapToGlobal(QtCore.QPoint(10, 10)))
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activePopupWidget() is not None)
    qtbot.keyClick(QtWidgets.QApplication.activePopupWidget(), QtCore.Qt.Key.Key_Escape)
    assert procedure.simulator.model.output_enabled is False
    wait_for_end(qtbot, window)
    assert "Esc key" in procedure.summary["reason"]


# ------------------------------------------------------------------ major 4


def test_no_stale_numbers_after_a_trip(qtbot, window):
    _max_speed(window, "impedance-drop@2")
    experiment = queue_run(window)
    wait_for_end(qtbot, window)
    assert experiment.procedure.summary["outcome"] == "aborted"
    remaining = window.remaining_display.text()
    qtbot.wait(300)
    assert window.current_display.text() == "OFF" and window.voltage_display.text() == "OFF"
    assert window.current_display.unit_text() == "output off"
    assert window.impedance_display.text() == "---"
    assert window.phase_display.text() == "OFF"
    assert window.remaining_display.text() == remaining != "00:00"  # stopped counting


def test_impedance_display_never_shows_a_meaningless_number(window):
    def shown(current, voltage, impedance):
        window.show_live(LiveStatus(phase="hold", current_mA=current, voltage_V=voltage,
                                    impedance_kohm=impedance), "on")
        return window.impedance_display.text()

    assert shown(2.0, 6.0, 3.0) == "3.00"
    assert shown(0.0001, 40.0, 400000.0) == "OPEN"  # open circuit: no current, voltage up
    assert shown(0.004, 0.11, 27.5) == "---"  # near-zero current at the end of a ramp
    assert shown(NEAR_ZERO_MA * 1.1, 8.0, 182.0) == "> 100"
    assert shown(math.nan, math.nan, math.nan) == "---"


def test_charts_ignore_impedance_at_near_zero_current_and_open_circuit(qtbot, window):
    _max_speed(window, "contact-loss@1")
    experiment = queue_run(window)
    wait_for_end(qtbot, window)
    curves = experiment.curve_list[0]
    _, impedance = curves.impedance.data()
    assert len(impedance) and impedance.max() <= 200e3  # ohms: no 1e7 from an open circuit
    low, high = window.charts.impedance_plot.getViewBox().viewRange()[1]
    assert high < 1e6  # the axis stays in kΩ, never MΩ or GΩ


# ------------------------------------------------------------------ major 5 and 6


def test_alerts_are_laid_out_from_their_first_frame(qtbot, window):
    window.resize(*FIT_SIZE)
    window.trip_alert.raise_alert("Contact lost or lifting: the impedance rose above 100 kΩ. "
                                  "Check that the patch is attached, the gel is moist, and the "
                                  "leads are connected.", "SAFETY TRIP (impedance-high)")
    window.refuse("Run refused before energizing: target current 5 mA is outside 0.05–4 mA")
    QtWidgets.QApplication.processEvents()  # the first frame
    for label in (window.trip_alert.title, window.trip_alert.message, window.notice.message):
        assert label_fits(label), (label.objectName(), label.size(), label.sizeHint())
    for widget in (window.estop_button, window.queue_button, window.stop_button,
                   window.pause_button, window.charts.layout_widget):
        assert _fully_visible(window, widget), widget.objectName()
    assert window.charts.layout_widget.height() >= 250


def test_window_fits_1280_by_800(qtbot, window):
    assert window.minimumSize().width() <= FIT_SIZE[0]
    assert window.minimumSize().height() <= FIT_SIZE[1]
    assert window.minimumSizeHint().width() <= FIT_SIZE[0]
    assert window.minimumSizeHint().height() <= FIT_SIZE[1]
    window.resize(*FIT_SIZE)
    QtWidgets.QApplication.processEvents()
    assert window.width() <= FIT_SIZE[0] and window.height() <= FIT_SIZE[1]
    for widget in (window.estop_button, window.queue_button, window.stop_button,
                   window.pause_button, window.inputs.subject_kind, window.inputs.subject_id,
                   window.inputs.operator_note):
        assert _fully_visible(window, widget), widget.objectName()
    assert window.browser.height() >= 96  # at least three runs


# ------------------------------------------------------------------ major 7 and 8


@pytest.mark.parametrize(("field", "text", "words"), [
    ("target_current", "5", ["Target current", "5", "0.05\u20134 mA"]),
    ("treatment_time", "0.1", ["Treatment time", "0.1", "0.5\u201360 min"]),
    ("target_current", "-5", ["Target current", "-5", "0.05\u20134 mA"]),
    ("compliance_voltage", "abc", ["Compliance voltage", "'abc' is not a number"]),
])
def test_typed_values_are_rejected_visibly(qtbot, window, field, text, words):
    widget = getattr(window.inputs, field)
    widget.setFocus()
    widget.selectAll()
    qtbot.keyClicks(widget, text)
    qtbot.keyClick(widget, QtCore.Qt.Key.Key_Tab)  # focus leaves: no silent fallback
    assert widget.text() == text
    error = window.inputs.errors[field]
    assert error.isVisible() and all(word in error.text() for word in words), error.text()
    assert window.queue() is None and not window.manager.is_running()
    assert all(word in window.notice.text() for word in words), window.notice.text()
    assert window.browser.topLevelItemCount() == 0
    widget.setText("1.5" if field != "compliance_voltage" else "30")
    assert not error.isVisible()


def test_inputs_locked_and_running_treatment_shown(qtbot, window):
    window.inputs.drug.setValue("bupivacaine")
    window.inputs.subject_id.setValue("S-12")
    experiment = queue_run(window)
    wait_for_phase(qtbot, experiment.procedure, "hold")
    assert all(not getattr(window.inputs, name).isEnabled() for name in window.inputs._inputs)
    assert not window.directory_input.isEnabled()
    text = window.treatment_label.text()
    assert "bupivacaine" in text and "HI (red)" in text and "+2.000 mA" in text
    assert "phantom" in text and "S-12" in text
    window.inputs.drug.setValue("dexamethasone")  # programmatic change behind the lock
    window.refresh()
    assert "bupivacaine" in window.treatment_label.text()  # from the running procedure
    assert experiment.procedure.drug == "bupivacaine"
    assert "Run in progress" in window.summary_label.text()
    window.emergency_stop("end of test")
    wait_for_end(qtbot, window)
    assert all(getattr(window.inputs, name).isEnabled() for name in window.inputs._inputs)


def test_mouse_wheel_does_not_change_an_input_without_focus(qtbot, window):
    combo = window.inputs.drug
    combo.setValue("none")
    window.setFocus()
    before = combo.currentText()
    centre = QtCore.QPointF(combo.rect().center())
    event = QtGui.QWheelEvent(centre, QtCore.QPointF(combo.mapToGlobal(centre.toPoint())),
                              QtCore.QPoint(0, 0), QtCore.QPoint(0, -120),
                              QtCore.Qt.MouseButton.NoButton,
                              QtCore.Qt.KeyboardModifier.NoModifier,
                              QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(combo, event)
    assert combo.currentText() == before


def test_checkboxes_are_visible_in_the_dark_theme(window):
    box = window.inputs.dose_controlled
    box.setChecked(False)
    image = box.grab().toImage()
    bright = sum(1 for x in range(min(image.width(), 24)) for y in range(image.height())
                 if QtGui.QColor(image.pixel(x, y)).lightness() > 150)
    assert bright > 20  # the unchecked box has a light border


# ------------------------------------------------------------------ minor: past runs


def test_past_run_is_marked_with_its_outcome(qtbot, window, tmp_path):
    past = run_protocol(make_procedure({"treatment_time": 2.0, "subject_id": "P-9",
                                        "drug": "lidocaine"}),
                        output_dir=tmp_path / "past", clock=VirtualClock())
    experiment = window.open_results(past["results_file"])
    assert experiment is not None
    assert window.phase_display.text() == "PAST RUN"
    assert window.current_display.text() == "---"
    assert window.current_display.unit_text() == "past run"
    assert window.safety_light.caption.text() == "PAST RUN: COMPLETED"
    assert "PAST RUN" in window.treatment_label.text()
    assert "lidocaine" in window.treatment_label.text()
    assert experiment.browser_item.text(3) == "Completed"
    dialog = ResultsDialog(str(tmp_path / "past"))
    qtbot.addWidget(dialog)
    [row] = dialog.rows()
    assert row[2] == "lidocaine" and row[3] == "phantom P-9" and row[4] == "completed"


# ------------------------------------------------------------------ pause and resume


def test_pause_and_resume_from_the_panel(qtbot, window):
    window.sim_banner.set_speed(60.0)
    experiment = queue_run(window)
    procedure = experiment.procedure
    wait_for_phase(qtbot, procedure, "hold")
    pause = button(window, "pauseButton")
    assert pause.isEnabled() and pause.text() == "Pause"
    qtbot.mouseClick(pause, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: procedure.paused, timeout=RUN_TIMEOUT_MS)
    qtbot.wait(250)
    assert procedure.simulator.model.output_enabled is False
    assert window.phase_display.text() == "PAUSED"
    assert window.current_display.text() == "OFF" and window.voltage_display.text() == "OFF"
    assert window.safety_light.caption.text() == "PAUSED \u2014 OUTPUT OFF"
    assert pause.text() == "Resume"
    remaining = window.remaining_display.text()
    qtbot.wait(300)
    assert window.remaining_display.text() == remaining  # treatment time does not run
    qtbot.mouseClick(pause, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: procedure.live.phase == "hold", timeout=RUN_TIMEOUT_MS)
    qtbot.wait(200)
    assert window.current_display.text().startswith("+") and pause.text() == "Pause"
    window.emergency_stop("end of test")
    wait_for_end(qtbot, window)
    assert [p["duration_s"] > 0 for p in procedure.summary["pauses"]] == [True]


def test_a_long_safety_sentence_does_not_move_the_panel(qtbot, window):
    window.resize(*FIT_SIZE)
    QtWidgets.QApplication.processEvents()
    light, charts = window.safety_light, window.charts.layout_widget
    before = (light.height(), charts.mapTo(window, QtCore.QPoint(0, 0)).y())
    light.set_state("warning", "Voltage near compliance: " + "the skin is drying out " * 12)
    QtWidgets.QApplication.processEvents()
    after = (light.height(), charts.mapTo(window, QtCore.QPoint(0, 0)).y())
    assert after == before
    assert light.sentence.text().endswith("\u2026") and "drying" in light.sentence.toolTip()


def test_critical_log_lines_are_bright_on_the_dark_theme(window):
    record = logging.LogRecord("x", logging.CRITICAL, __file__, 1, "OUTPUT OFF NOT CONFIRMED",
                               None, None)
    html = window.log_handler.formatter.format(record)
    assert "DarkRed" not in html and QtGui.QColor("#ff4040").name() in html.lower()
