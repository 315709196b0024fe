"""The course panel (pytest-qt, offscreen): pickers, plan, the no-driving flag, refusals,
history, the course chart, the before/after form, and runs recorded from the front panel."""

from __future__ import annotations

import json
import logging

import pytest

from ionto_instruments.gui.course_panel import NO_COURSE, CoursePanel  # noqa: E402
from ionto_instruments.procedures.records import Store  # noqa: E402
from ionto_instruments.procedures.records.store import screening_all_no  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
RUN_TIMEOUT_MS = 20_000
DONE = {"outcome": "completed", "delivered_dose_mA_min": 30.0, "output_was_on": True}


@pytest.fixture
def url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'panel.sqlite3'}"
    with Store(url) as store:
        store.add_subject("S001", "dr")
        store.start_course("S001", "bupivacaine", "dr", trial_count=4)
    return url


@pytest.fixture
def panel(qtbot, url) -> CoursePanel:
    widget = CoursePanel(url)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.close_store()


def test_panel_shows_plan_and_the_no_driving_flag_for_a_first_session(panel) -> None:
    assert panel.subject_box.currentText() == "S001"
    assert panel.course_box.currentText() == "course 1: bupivacaine"
    assert "trial of 4" in panel.plan_label.text()
    assert "Schedule: " in panel.plan_label.text() and "review by the pain specialist" in \
        panel.plan_label.text()
    assert panel.next_label.text() == "Next: session 1 may start."
    assert panel.no_drive_label.isVisible()
    assert "MUST NOT DRIVE HOME (first treatment)" in panel.no_drive_label.text()
    assert not panel.save_button.isEnabled()  # no session yet
    panel.course_box.setCurrentIndex(panel.course_box.findText(NO_COURSE))
    assert panel.course_id is None and not panel.no_drive_label.isVisible()


def test_history_chart_and_form(panel, url) -> None:
    with Store(url) as store:
        opened = store.open_session(1, "nurse", screening=screening_all_no())
        store.record_outcome(opened.session.id, DONE, "nurse")
    panel.refresh()
    assert panel.history.rowCount() == 1
    assert panel.history.item(0, 2).text() == "completed"
    assert panel.history.item(0, 8).text() == "MUST NOT DRIVE"
    assert panel.save_button.isEnabled()
    assert panel.form_target.text() == "For session 1 of course 1"
    assert "Refused by the course rule 'too-soon'" in panel.next_label.text()
    panel.phase_box.setCurrentText("after")
    panel.nrs_box.setValue(4)
    panel.grade_boxes["dizziness"].setCurrentText("mild")
    panel.grade_boxes["anode_burn"].setCurrentText("moderate")
    assert panel.save_form()
    assert panel.status_label.text() == "Saved: after form for session 1."
    assert panel.history.item(0, 6).text() == "4"
    assert "anode burn moderate" in panel.history.item(0, 7).text()
    assert "'burn-hold'" in panel.next_label.text()
    counts = panel.chart.point_counts()
    assert counts == {"dose": 1, "nrs_before": 0, "nrs_after": 1, "effects": 1}
    assert list(panel.chart.effects.getData()[1]) == [1 + 2]  # mild + moderate


def test_unreachable_record_disables_the_panel(qtbot, tmp_path) -> None:
    widget = CoursePanel(f"postgresql://x@/none?host={tmp_path}&port=5999")
    qtbot.addWidget(widget)
    assert widget.db_label.text().startswith("<b>Records unavailable:</b> cannot reach")
    assert not widget.subject_box.isEnabled() and not widget.save_button.isEnabled()


@pytest.fixture
def window(qtbot, tmp_path, url):
    from ionto_instruments.gui import course_panel
    from ionto_instruments.gui.window import FrontPanelWindow

    root = logging.getLogger()
    handlers_before = list(root.handlers)
    win = FrontPanelWindow(scenario="normal", speed=600.0, directory=tmp_path / "runs")
    if not isinstance(getattr(win, "course_panel", None), CoursePanel):
        pytest.fail("the front panel has no course panel (gui/window.py hook missing)")
    win.course_panel.close_store()
    win.course_panel.db_url = url
    win.course_panel.connect_store()
    assert course_panel.CoursePanel is CoursePanel
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.show_tab("Course")
    assert win.course_panel.isVisible()
    yield win
    if win.manager.is_running():
        win.emergency_stop("test teardown")
        qtbot.waitUntil(lambda: not win.manager.is_running(), timeout=RUN_TIMEOUT_MS)
    win.close()
    win.course_panel.close_store()
    assert root.handlers == handlers_before


def test_a_simulated_front_panel_run_is_recorded_simulated_and_never_counts(qtbot, window,
                                                                           url) -> None:
    from ionto_instruments.procedures.runner import make_procedure

    panel = window.course_panel
    panel.operator_edit.setText("nurse-a")
    window.ask_screening = lambda procedure: screening_all_no()
    values = {"subject_kind": "human", "drug": "bupivacaine", "treatment_time": 1.0,
              "target_current": 1.0}
    assert window.queue(procedure=make_procedure(values)) is not None, window.notice.text()
    qtbot.waitUntil(lambda: panel.history.rowCount() == 1
                    and panel.history.item(0, 2).text() == "completed", timeout=RUN_TIMEOUT_MS)
    with Store(url) as store:
        (session, outcome), = store.sessions(1)
        assert json.loads(session.settings_json)["simulated"] is True and not session.no_drive
        verdict = store.plan_next(1)
        assert verdict.allowed and verdict.no_drive  # still the first treatment, not too soon


def test_a_front_panel_run_is_recorded_and_a_too_soon_run_refused(qtbot, window, url,
                                                                  monkeypatch) -> None:
    from ionto_instruments.procedures.runner import make_procedure

    # recorded as a station with an instrument would (the run itself is simulated)
    monkeypatch.setattr("ionto_instruments.gui.course_panel.run_is_simulated",
                        lambda procedure: False)

    panel = window.course_panel
    panel.operator_edit.setText("nurse-a")
    answers = {**screening_all_no(), "pacemaker": True}
    window.ask_screening = lambda procedure: answers  # a yes: refused, recorded with answers
    values = {"subject_kind": "human", "drug": "bupivacaine", "treatment_time": 1.0,
              "target_current": 1.0}
    window.queue(procedure=make_procedure(values))
    with Store(url) as store:
        (session, outcome), = store.sessions(1)
        assert outcome.outcome == "refused" and "pacemaker" in outcome.reason
        assert json.loads(session.screening_json)["answers"] == answers
    window.acknowledge_trip()
    window.notice.hide()
    answers["pacemaker"] = False
    wrong = window.queue(procedure=make_procedure({**values, "drug": "ketamine"}))
    assert wrong is None and "drug is bupivacaine" in window.notice.text()
    too_dense = make_procedure({**values, "target_current": 4.0, "electrode_area": 2.0})
    assert window.queue(procedure=too_dense) is None
    assert "Run refused before energizing" in window.notice.text()
    assert (panel.history.item(1, 2).text(), panel.history.item(1, 3).text()) == (
        "refused", "pre-flight")
    assert panel.no_drive_label.isVisible()  # nothing delivered: still the first treatment
    experiment = window.queue(procedure=make_procedure(values))
    assert experiment is not None, window.notice.text()
    assert experiment.procedure.subject_id == "S001"
    qtbot.waitUntil(lambda: panel.history.rowCount() == 3
                    and panel.history.item(2, 2).text() == "completed", timeout=RUN_TIMEOUT_MS)
    assert panel.no_drive_label.isVisible()
    with Store(url) as store:
        _, (_, refused), (session, outcome) = store.sessions(1)
        assert refused.rule == "pre-flight" and not refused.output_was_on
        assert session.operator == "nurse-a" and outcome.results_csv_sha256
        assert store.verify().ok
    window.acknowledge_trip()
    assert window.queue(procedure=make_procedure(values)) is None
    assert "too-soon" in window.notice.text()
    assert panel.history.item(3, 2).text() == "refused"
    panel.reason_edit.setText("patient leaves the country tomorrow")
    assert window.queue(procedure=make_procedure(values)) is not None
    qtbot.waitUntil(lambda: panel.history.rowCount() == 5
                    and panel.history.item(4, 2).text() == "completed", timeout=RUN_TIMEOUT_MS)
