"""Dialogs: the contraindication screening (before a run) and the results list (non-modal)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from pyqtgraph.Qt import QtCore, QtWidgets

from ionto_instruments.procedures.screening import CONTRAINDICATIONS, evaluate_screening

from . import theme


class ScreeningDialog(QtWidgets.QDialog):
    """Ask each of the leaflet's contraindications yes/no; OK stays disabled until all answered.

    `answers()` maps each key to True (the contraindication applies) or False. A "yes" is
    shown at once with the refusal sentence; the window refuses the run on it.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None, subject: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("screeningDialog")
        self.setWindowTitle("Contraindication screening")
        self.setModal(True)
        self.groups: dict[str, QtWidgets.QButtonGroup] = {}
        self.yes_buttons: dict[str, QtWidgets.QRadioButton] = {}
        self.no_buttons: dict[str, QtWidgets.QRadioButton] = {}

        intro = QtWidgets.QLabel(
            "Before treating a patient, ask every question of the leaflet and answer it. "
            "Any <b>yes</b> means the treatment must not start." +
            (f"<br>Subject: <b>{subject}</b>" if subject else ""), self)
        intro.setWordWrap(True)
        grid = QtWidgets.QGridLayout()
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(8)
        for row, item in enumerate(CONTRAINDICATIONS):
            question = QtWidgets.QLabel(item.question, self)
            question.setWordWrap(True)
            why = getattr(item, "rationale", None) or getattr(item, "reason", "")
            if why:
                question.setToolTip(str(why))
            yes = QtWidgets.QRadioButton("Yes", self)
            no = QtWidgets.QRadioButton("No", self)
            yes.setObjectName(f"screening_{item.key}_yes")
            no.setObjectName(f"screening_{item.key}_no")
            group = QtWidgets.QButtonGroup(self)
            group.setExclusive(True)
            group.addButton(yes)
            group.addButton(no)
            group.buttonToggled.connect(self._update)
            self.groups[item.key] = group
            self.yes_buttons[item.key] = yes
            self.no_buttons[item.key] = no
            grid.addWidget(question, row, 0)
            grid.addWidget(yes, row, 1)
            grid.addWidget(no, row, 2)
        grid.setColumnStretch(0, 1)

        self.verdict = QtWidgets.QLabel(self)
        self.verdict.setObjectName("screeningVerdict")
        self.verdict.setWordWrap(True)
        self.buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel, self)
        self.ok_button = self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setObjectName("screeningOk")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addSpacing(6)
        layout.addLayout(grid)
        layout.addSpacing(6)
        layout.addWidget(self.verdict)
        layout.addWidget(self.buttons)
        self.resize(720, 420)
        self._update()

    def answers(self) -> dict[str, bool]:
        """The answers given so far: key -> True for yes, False for no (unanswered omitted)."""
        result = {}
        for key in self.groups:
            if self.yes_buttons[key].isChecked():
                result[key] = True
            elif self.no_buttons[key].isChecked():
                result[key] = False
        return result

    def all_answered(self) -> bool:
        """True when every question has a yes or a no."""
        return len(self.answers()) == len(self.groups)

    def answer(self, key: str, yes: bool) -> None:
        """Answer one question (as a click would)."""
        (self.yes_buttons if yes else self.no_buttons)[key].setChecked(True)

    def _update(self, *_: object) -> None:
        answered = self.all_answered()
        self.ok_button.setEnabled(answered)
        if not answered:
            missing = len(self.groups) - len(self.answers())
            self.verdict.setText(f"{missing} question(s) still to answer.")
            self.verdict.setStyleSheet(f"color: {theme.TEXT_DIM};")
            return
        result = evaluate_screening(self.answers())
        if result.passed:
            self.verdict.setText(result.reason)
            self.verdict.setStyleSheet(f"color: {theme.SAFETY_COLORS['ok']}; font-weight: bold;")
        else:
            self.verdict.setText(result.reason)
            self.verdict.setStyleSheet(f"color: {theme.LIMIT}; font-weight: bold;")
        self.ok_button.setText("OK" if result.passed else "OK (run will be refused)")


def describe_results_file(path: Path) -> tuple[str, str, str, str]:
    """(started, drug, subject, outcome) of a results file, from the JSON summary beside it."""
    started = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    try:
        summary = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return started, "?", "?", "no summary"
    subject = " ".join(str(part) for part in (summary.get("subject_kind"),
                                              summary.get("subject_id")) if part)
    outcome = str(summary.get("outcome") or "?")
    if summary.get("rule"):
        outcome += f" ({summary['rule']})"
    if not summary.get("output_off_confirmed", True):
        outcome += " — OUTPUT NOT CONFIRMED OFF"
    return started, str(summary.get("drug") or "?"), subject or "?", outcome


class ResultsDialog(QtWidgets.QDialog):
    """The runs in a directory with drug, subject and outcome; never modal.

    `chosen(path)` is emitted for the file the operator opens. "Other file..." opens a
    non-modal file dialog for results elsewhere.
    """

    chosen = QtCore.Signal(str)
    COLUMNS = ("File", "Started", "Drug", "Subject", "Outcome")

    def __init__(self, directory: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("resultsDialog")
        self.setWindowTitle("Open results")
        self.setModal(False)
        self.setWindowModality(QtCore.Qt.WindowModality.NonModal)
        self.directory = str(directory)
        self.place = QtWidgets.QLabel(self)
        self.table = QtWidgets.QTreeWidget(self)
        self.table.setObjectName("resultsList")
        self.table.setHeaderLabels(list(self.COLUMNS))
        self.table.setRootIsDecorated(False)
        self.table.setSortingEnabled(True)
        self.table.itemDoubleClicked.connect(lambda item, _col: self._choose(item))
        buttons = QtWidgets.QHBoxLayout()
        self.open_button = QtWidgets.QPushButton("Open", self)
        self.open_button.setObjectName("resultsOpen")
        self.open_button.clicked.connect(lambda: self._choose(self.table.currentItem()))
        other = QtWidgets.QPushButton("Other file\u2026", self)
        other.clicked.connect(self.browse)
        refresh = QtWidgets.QPushButton("Refresh", self)
        refresh.clicked.connect(self.reload)
        close = QtWidgets.QPushButton("Close", self)
        close.clicked.connect(self.close)
        for button in (self.open_button, other, refresh):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.place)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.resize(760, 380)
        self.reload()

    def set_directory(self, directory: str) -> None:
        """List another directory."""
        self.directory = str(directory)
        self.reload()

    def reload(self) -> None:
        """Re-read the directory (newest first)."""
        self.table.clear()
        folder = Path(self.directory)
        self.place.setText(f"Runs in <b>{folder}</b> (double-click to open)")
        files = sorted(folder.glob("*.csv"), key=lambda p: p.stat().st_mtime, reverse=True) \
            if folder.is_dir() else []
        for path in files:
            item = QtWidgets.QTreeWidgetItem([path.name, *describe_results_file(path)])
            item.setData(0, QtCore.Qt.ItemDataRole.UserRole, str(path))
            self.table.addTopLevelItem(item)
        for column in range(len(self.COLUMNS)):
            self.table.resizeColumnToContents(column)

    def rows(self) -> list[list[str]]:
        """The rows shown (for tests and screen readers)."""
        return [[self.table.topLevelItem(i).text(c) for c in range(len(self.COLUMNS))]
                for i in range(self.table.topLevelItemCount())]

    def browse(self) -> QtWidgets.QFileDialog:
        """Pick a results file anywhere, in a non-modal file dialog."""
        dialog = QtWidgets.QFileDialog(self, "Open results", self.directory,
                                       "Results (*.csv);;All files (*)")
        dialog.setOption(QtWidgets.QFileDialog.Option.DontUseNativeDialog, True)
        dialog.setWindowModality(QtCore.Qt.WindowModality.NonModal)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda path: self.chosen.emit(os.fspath(path)))
        dialog.show()
        return dialog

    def _choose(self, item: QtWidgets.QTreeWidgetItem | None) -> None:
        if item is not None:
            self.chosen.emit(str(item.data(0, QtCore.Qt.ItemDataRole.UserRole)))


__all__ = ["ResultsDialog", "ScreeningDialog", "describe_results_file"]
