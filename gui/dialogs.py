"""The contraindication screening dialog shown before a run on a human subject."""

from __future__ import annotations

from pyqtgraph.Qt import QtWidgets

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


__all__ = ["ScreeningDialog"]
