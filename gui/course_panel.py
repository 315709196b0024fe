"""The course panel: pick a subject and course, see the plan, the next session's verdict, the
no-driving flag, the history and a course chart, and fill the before/after form.

When a course is selected, a queued run is written to the record as the course's next session
before anything is energized (refused ones too), and its outcome when the run ends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtWidgets

from ionto_instruments.procedures.records import rules

from . import theme

if TYPE_CHECKING:
    from ionto_instruments.procedures.records.store import Store

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

NO_COURSE = "(no course: runs are not recorded)"
NOT_GIVEN = "\u2014"
_RANK = {g: i for i, g in enumerate(rules.GRADES)}
HISTORY_COLUMNS = ("#", "Date", "Outcome", "Rule", "Dose (mA\u00b7min)", "NRS before",
                   "NRS after", "Side effects", "Driving")


class CourseChart(pg.PlotWidget):
    """Delivered dose (bars), pain before/after and a side-effect score over the sessions."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent=parent, background=theme.DISPLAY_BACKGROUND)
        self.setObjectName("courseChart")
        self.setMinimumHeight(160)
        self.addLegend(offset=(5, 5))
        self.setLabel("bottom", "session")
        self.setLabel("left", "dose (mA\u00b7min) \u00b7 NRS \u00b7 side-effect score")
        self.dose = pg.BarGraphItem(x=[], height=[], width=0.6, brush=theme.DOSE, name="dose")
        self.addItem(self.dose)
        self.nrs_before = self.plot([], [], pen=pg.mkPen(theme.VOLTAGE, width=2), symbol="o",
                                    name="NRS before")
        self.nrs_after = self.plot([], [], pen=pg.mkPen(theme.CURRENT, width=2), symbol="t",
                                   name="NRS after")
        self.effects = self.plot([], [], pen=pg.mkPen(theme.LIMIT, width=2, style=QtCore.Qt.
                                                      PenStyle.DashLine), symbol="x",
                                 name="side effects")

    def show_sessions(self, sessions: list[dict[str, Any]]) -> None:
        """Plot one point per session."""
        numbers = [s["number"] for s in sessions]
        self.dose.setOpts(x=numbers, height=[s["delivered_dose_mA_min"] for s in sessions])
        for curve, key in ((self.nrs_before, "nrs_before"), (self.nrs_after, "nrs_after")):
            pts = [(s["number"], s[key]) for s in sessions if s[key] is not None]
            curve.setData([p[0] for p in pts], [p[1] for p in pts])
        self.effects.setData(numbers, [s["effect_score"] for s in sessions])

    def point_counts(self) -> dict[str, int]:
        """How many points each series shows (for tests and the status line)."""
        return {"dose": len(self.dose.opts.get("x") or []),
                "nrs_before": len(self.nrs_before.getData()[0] or []),
                "nrs_after": len(self.nrs_after.getData()[0] or []),
                "effects": len(self.effects.getData()[0] or [])}


class CoursePanel(QtWidgets.QWidget):
    """Subject and course pickers, plan, next-session verdict, history, chart and the form."""

    def __init__(self, db_url: str | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("coursePanel")
        self.db_url = db_url
        self.store: Store | None = None
        self.view: dict[str, Any] | None = None
        self._build()
        self.connect_store()

    # -- widgets ---------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.db_label = QtWidgets.QLabel(self)
        self.db_label.setObjectName("courseDb")
        self.db_label.setWordWrap(True)
        layout.addWidget(self.db_label)
        pick = QtWidgets.QFormLayout()
        self.subject_box = QtWidgets.QComboBox(self)
        self.subject_box.setObjectName("courseSubject")
        self.course_box = QtWidgets.QComboBox(self)
        self.course_box.setObjectName("courseCourse")
        pick.addRow("Subject", self.subject_box)
        pick.addRow("Course", self.course_box)
        layout.addLayout(pick)
        self.plan_label = QtWidgets.QLabel(self)
        self.plan_label.setObjectName("coursePlan")
        self.plan_label.setWordWrap(True)
        layout.addWidget(self.plan_label)
        self.next_label = QtWidgets.QLabel(self)
        self.next_label.setObjectName("courseNext")
        self.next_label.setWordWrap(True)
        layout.addWidget(self.next_label)
        self.no_drive_label = QtWidgets.QLabel(self)
        self.no_drive_label.setObjectName("courseNoDrive")
        self.no_drive_label.setWordWrap(True)
        self.no_drive_label.setStyleSheet(
            f"QLabel#courseNoDrive {{ background-color: {theme.LIMIT}; color: black; "
            f"font-weight: bold; padding: 6px; border-radius: 4px; }}")
        self.no_drive_label.hide()
        layout.addWidget(self.no_drive_label)
        reason_row = QtWidgets.QHBoxLayout()
        self.reason_edit = QtWidgets.QLineEdit(self)
        self.reason_edit.setObjectName("courseReason")
        self.reason_edit.setPlaceholderText("reason for a session sooner than the plan "
                                            "(recorded)")
        self.operator_edit = QtWidgets.QLineEdit(self)
        self.operator_edit.setObjectName("courseOperator")
        self.operator_edit.setPlaceholderText("operator")
        reason_row.addWidget(self.operator_edit, 1)
        reason_row.addWidget(self.reason_edit, 3)
        layout.addLayout(reason_row)
        self.history = QtWidgets.QTableWidget(0, len(HISTORY_COLUMNS), self)
        self.history.setObjectName("courseHistory")
        self.history.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.history.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history.setSelectionBehavior(
            QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.history.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.history.verticalHeader().hide()
        self.history.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.history, 2)
        self.chart = CourseChart(self)
        layout.addWidget(self.chart, 2)
        layout.addWidget(self._build_form())
        self.status_label = QtWidgets.QLabel(self)
        self.status_label.setObjectName("courseStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.subject_box.currentIndexChanged.connect(self._subject_changed)
        self.course_box.currentIndexChanged.connect(lambda *_: self.refresh())
        self.history.itemSelectionChanged.connect(self._update_form_target)

    def _build_form(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Before/after form", self)
        box.setObjectName("courseForm")
        grid = QtWidgets.QGridLayout(box)
        self.form_target = QtWidgets.QLabel(box)
        self.form_target.setObjectName("courseFormTarget")
        grid.addWidget(self.form_target, 0, 0, 1, 4)
        self.phase_box = QtWidgets.QComboBox(box)
        self.phase_box.setObjectName("coursePhase")
        self.phase_box.addItems(rules.PHASES)
        self.nrs_box = QtWidgets.QSpinBox(box)
        self.nrs_box.setObjectName("courseNrs")
        self.nrs_box.setRange(-1, rules.NRS_RANGE[1])
        self.nrs_box.setSpecialValueText(NOT_GIVEN)
        self.nrs_box.setValue(-1)
        grid.addWidget(QtWidgets.QLabel("Phase", box), 1, 0)
        grid.addWidget(self.phase_box, 1, 1)
        grid.addWidget(QtWidgets.QLabel("Pain NRS 0\u201310", box), 1, 2)
        grid.addWidget(self.nrs_box, 1, 3)
        self.grade_boxes: dict[str, QtWidgets.QComboBox] = {}
        labels = {"anode_redness": "redness at the anode", "anode_burn": "burn at the anode",
                  "cathode_redness": "redness at the cathode",
                  "cathode_burn": "burn at the cathode", **rules.SIDE_EFFECTS}
        for i, name in enumerate(rules.GRADED_FIELDS):
            combo = QtWidgets.QComboBox(box)
            combo.setObjectName(f"courseGrade_{name}")
            combo.addItems([NOT_GIVEN, *rules.GRADES])
            self.grade_boxes[name] = combo
            row, col = 2 + i // 2, (i % 2) * 2
            grid.addWidget(QtWidgets.QLabel(labels[name].capitalize(), box), row, col)
            grid.addWidget(combo, row, col + 1)
        self.note_edit = QtWidgets.QLineEdit(box)
        self.note_edit.setObjectName("courseNote")
        self.note_edit.setPlaceholderText("note")
        last = 2 + (len(rules.GRADED_FIELDS) + 1) // 2
        grid.addWidget(self.note_edit, last, 0, 1, 3)
        self.save_button = QtWidgets.QPushButton("Save form", box)
        self.save_button.setObjectName("courseSave")
        self.save_button.clicked.connect(self.save_form)
        grid.addWidget(self.save_button, last, 3)
        return box

    # -- data ------------------------------------------------------------------------------

    def connect_store(self) -> None:
        """Open the record (default or --db/IONTO_DB); say so clearly when it cannot be used."""
        from ionto_instruments.procedures.records import RecordsUnavailable, Store

        try:
            self.store = Store(self.db_url)
        except RecordsUnavailable as exc:
            self.store = None
            self.db_label.setText(f"<b>Records unavailable:</b> {exc}")
            self._set_enabled(False)
            return
        self.db_label.setText(f"Record: {self.store.where}")
        self._set_enabled(True)
        self.reload_subjects()

    def _set_enabled(self, enabled: bool) -> None:
        for widget in (self.subject_box, self.course_box, self.save_button, self.reason_edit):
            widget.setEnabled(enabled)

    def reload_subjects(self, select: str | None = None) -> None:
        """Fill the subject picker from the record."""
        if self.store is None:
            return
        current = select or self.subject_box.currentText()
        self.subject_box.blockSignals(True)
        self.subject_box.clear()
        self.subject_box.addItems([s.code for s in self.store.subjects()])
        index = self.subject_box.findText(current)
        self.subject_box.setCurrentIndex(max(index, 0))
        self.subject_box.blockSignals(False)
        self._subject_changed()

    def _subject_changed(self, *_: object) -> None:
        self.course_box.blockSignals(True)
        self.course_box.clear()
        self.course_box.addItem(NO_COURSE, None)
        code = self.subject_box.currentText()
        if self.store is not None and code:
            for course in self.store.courses(code):
                self.course_box.addItem(f"course {course.id}: {course.drug}", course.id)
            if self.course_box.count() > 1:
                self.course_box.setCurrentIndex(self.course_box.count() - 1)
        self.course_box.blockSignals(False)
        self.refresh()

    def select(self, subject: str, course_id: int | None) -> None:
        """Pick a subject and course programmatically (tests, the command line)."""
        self.reload_subjects(subject)
        index = self.course_box.findData(course_id)
        self.course_box.setCurrentIndex(max(index, 0))
        self.refresh()

    @property
    def course_id(self) -> int | None:
        """The selected course, or None (runs are then not recorded)."""
        data = self.course_box.currentData()
        return int(data) if data is not None else None

    def refresh(self) -> None:
        """Reload the selected course's view from the record and redraw everything."""
        from ionto_instruments.procedures.records.cli import course_view

        if self.store is None or self.course_id is None:
            self.view = None
            self.plan_label.setText("Pick a subject and a course to record runs as sessions."
                                    if self.store is not None else "")
            self.next_label.setText("")
            self.no_drive_label.hide()
            self.history.setRowCount(0)
            self.chart.show_sessions([])
            self._update_form_target()
            return
        view = self.view = course_view(self.store, self.course_id)
        self.plan_label.setText(
            f"<b>Course {view['course']}</b> for {view['subject']}: {view['drug_now']}; trial "
            f"of {view['trial_count']}, at least {view['min_interval_days']} days apart, weekly "
            f"after {view['weekly_after_days']} days; "
            f"{len([s for s in view['sessions'] if s['outcome'] != 'refused'])} session(s) "
            f"run, {len(view['reviews'])} review(s).<br>Schedule: "
            + "; ".join(f"{p['date']} {p['what']}" for p in view["schedule"]))
        nxt = view["next_session"]
        if nxt["allowed"]:
            when = f" (earliest {nxt['earliest']})" if nxt["earliest"] else ""
            self.next_label.setText(f"Next: session {nxt['number']} may start{when}.")
            self.next_label.setStyleSheet("")
        else:
            self.next_label.setText("<br>".join(r["message"] for r in nxt["refusals"]))
            self.next_label.setStyleSheet(f"color: {theme.LIMIT}; font-weight: bold;")
        self.no_drive_label.setText(nxt["no_drive_text"])
        self.no_drive_label.setVisible(bool(nxt["no_drive"]))
        rows = [self._session_row(s) for s in view["sessions"]]
        self.history.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row["cells"]):
                self.history.setItem(r, c, QtWidgets.QTableWidgetItem(value))
        if rows:
            self.history.selectRow(len(rows) - 1)
        self.chart.show_sessions([row["chart"] for row in rows])
        self._update_form_target()

    @staticmethod
    def _session_row(session: dict[str, Any]) -> dict[str, Any]:
        observations = session["observations"]

        def nrs(phase: str) -> int | None:
            values = [o["nrs"] for o in observations if o["phase"] == phase
                      and o["nrs"] is not None]
            return values[-1] if values else None

        effects = [o["effects"] for o in observations if o["effects"]]
        score = sum(_RANK.get(g or "none", 0) for o in observations
                    for g in o["grades"].values())
        before, after = nrs("before"), nrs("after")
        delivered = bool(session["outcome"] and session["outcome"] != "refused")
        return {
            "cells": (str(session["number"]), _short(session["started_at"]),
                      session["outcome"] or "no outcome", session["rule"] or "",
                      f"{session['delivered_dose_mA_min']:.1f}",
                      "" if before is None else str(before), "" if after is None else str(after),
                      "; ".join(effects), "MUST NOT DRIVE" if session["no_drive"] and delivered
                      else ""),
            "chart": {"number": session["number"],
                      "delivered_dose_mA_min": session["delivered_dose_mA_min"],
                      "nrs_before": before, "nrs_after": after, "effect_score": score},
        }

    def _selected_session(self) -> dict[str, Any] | None:
        if not self.view or not self.view["sessions"]:
            return None
        rows = self.history.selectionModel().selectedRows() if self.history.selectionModel() \
            else []
        index = rows[0].row() if rows else len(self.view["sessions"]) - 1
        return self.view["sessions"][index]

    def _update_form_target(self) -> None:
        session = self._selected_session()
        self.save_button.setEnabled(self.store is not None and session is not None)
        self.form_target.setText(f"For session {session['number']} of course "
                                 f"{self.view['course']}" if session and self.view
                                 else "No session to fill the form for yet.")

    def save_form(self) -> bool:
        """Record the form for the selected session; False (and the reason shown) if refused."""
        from ionto_instruments.procedures.records import NotFound, RecordValueError
        from ionto_instruments.procedures.records.store import check_who

        session = self._selected_session()
        if self.store is None or session is None:
            return False
        grades = {name: box.currentText() for name, box in self.grade_boxes.items()
                  if box.currentText() != NOT_GIVEN}
        nrs = self.nrs_box.value()
        try:
            obs = self.store.observe(session["session_id"], self.phase_box.currentText(),
                                     check_who(self.operator_edit.text()),
                                     nrs=None if nrs < 0 else nrs, grades=grades,
                                     note=self.note_edit.text())
        except (RecordValueError, NotFound) as exc:
            self.status_label.setText(f"Not saved: {exc}")
            return False
        self.status_label.setText(f"Saved: {obs.phase} form for session {session['number']}.")
        for box in self.grade_boxes.values():
            box.setCurrentIndex(0)
        self.nrs_box.setValue(-1)
        self.note_edit.clear()
        self.refresh()
        return True

    # -- runs --------------------------------------------------------------------------------

    def before_queue(self, procedure: Any) -> str | None:
        """Write the run as the course's next session before it is queued; return a refusal
        sentence (the session is then recorded as refused) or None to go ahead."""
        from ionto_instruments.procedures.records import NotFound, RecordValueError
        from ionto_instruments.procedures.records.store import check_who, screening_all_no

        if self.course_id is None or self.store is None or self.view is None:
            return None
        drug = self.view["drug_now"]
        if procedure.subject_kind != "human":
            return (f"Course {self.course_id} treats a human subject: set Subject to human "
                    f"(or pick '{NO_COURSE}').")
        if procedure.drug != drug:
            return (f"Course {self.course_id}'s drug is {drug}; the run is set to "
                    f"{procedure.drug}. Set the drug to {drug} (a change is a review "
                    f"decision).")
        procedure.subject_id = self.view["subject"]
        settings = {name: getattr(procedure, name, None)
                    for name in procedure.parameter_objects()}
        try:
            opened = self.store.open_session(
                self.course_id, check_who(self.operator_edit.text()),
                settings={k: v for k, v in settings.items()
                          if isinstance(v, str | int | float | bool)},
                screening=(getattr(procedure, "screening_answers", None)
                           or (screening_all_no() if procedure.screening_confirmed else None)),
                override_reason=self.reason_edit.text() or None,
                simulated=run_is_simulated(procedure))
        except (RecordValueError, NotFound) as exc:
            return f"Not recorded, not started: {exc}"
        procedure.session_id = f"course{self.course_id}-{opened.session.number}"
        procedure.course_session_id = opened.session.id
        self.refresh()
        if opened.refused:
            return " ".join(r.message for r in opened.verdict.refusals)
        self.reason_edit.clear()
        if opened.session.no_drive:
            self.no_drive_label.setText(opened.session.no_drive_reason)
            self.no_drive_label.show()
        return None

    def record_refused(self, procedure: Any, reason: str) -> None:
        """Record a run refused before it was queued (pre-flight) as a refused course session."""
        from ionto_instruments.procedures.records.store import check_who

        if self.course_id is None or self.store is None:
            return
        try:
            operator = check_who(self.operator_edit.text())
            opened = self.store.open_session(self.course_id, operator,
                                             simulated=run_is_simulated(procedure))
            if not opened.refused:
                self.store.record_outcome(opened.session.id, {
                    "outcome": "refused", "rule": "pre-flight",
                    "reason": " ".join(reason.split())}, operator)
        except Exception as exc:  # noqa: BLE001 - shown, the run is refused anyway
            self.status_label.setText(f"Refusal NOT recorded: {exc}")
            return
        self.refresh()

    def after_run(self, procedure: Any) -> None:
        """Record the outcome of a run that was opened as a course session."""
        from ionto_instruments.procedures.records.store import check_who

        session_id = getattr(procedure, "course_session_id", None)
        if session_id is None or self.store is None:
            return
        summary = getattr(procedure, "summary", None) or {
            "outcome": "error", "reason": "the run ended without a summary"}
        try:
            self.store.record_outcome(session_id, summary, check_who(self.operator_edit.text()))
        except Exception as exc:  # noqa: BLE001 - shown, never raised into the Manager
            log.error("The run's outcome could not be recorded: %s", exc)
            self.status_label.setText(f"Outcome NOT recorded: {exc}")
            return
        procedure.course_session_id = None
        self.refresh()
        if self.view and self.view["sessions"]:
            last = self.view["sessions"][-1]
            if last["no_drive"] and last["outcome"] not in (None, "refused"):
                self.no_drive_label.setText(last["no_drive_text"])
                self.no_drive_label.show()

    def close_store(self) -> None:
        """Release the database connections."""
        if self.store is not None:
            self.store.close()


def _short(when: Any) -> str:
    from ionto_instruments.procedures.records.store import to_utc

    return to_utc(when).astimezone().strftime("%Y-%m-%d %H:%M")


def attach(window: Any, db_url: str | None = None) -> CoursePanel:
    """Add the course panel to the front panel (a "Course" tab beside the charts, or a dock
    on a window without tabs), and record each run's outcome."""
    panel = CoursePanel(db_url, window)
    if hasattr(window, "add_panel_tab"):
        window.add_panel_tab(panel, "Course")
    else:
        dock = QtWidgets.QDockWidget("Course", window)
        dock.setObjectName("courseDock")
        dock.setWidget(panel)
        window.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
    for signal in (window.manager.finished, window.manager.abort_returned,
                   window.manager.failed):
        signal.connect(lambda experiment: panel.after_run(experiment.procedure))
    return panel


def run_is_simulated(procedure: Any) -> bool:
    """A run without an instrument resource is on the simulator: its session is recorded as
    SIMULATED and never counts as a treatment."""
    return not getattr(procedure, "resource", "")
