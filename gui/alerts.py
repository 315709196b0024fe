"""In-window alerts: a trip, an output not confirmed off, a refused run, a close request.

None of them is modal: they sit in the panel's layout above the indicators (laid out from
the first frame, no floating geometry), and the EMERGENCY STOP stays reachable beside them.
"""

from __future__ import annotations

from pyqtgraph.Qt import QtCore, QtWidgets

from .indicators import _font, display_text

#: The instruction shown when the output could not be read back as off.
NOT_CONFIRMED_OFF = ("OUTPUT NOT CONFIRMED OFF \u2014 switch the SourceMeter off at its OUTPUT "
                     "key and disconnect the patient leads")


#: A compact alert's sentence is cut to about this many characters (two lines at 1280 px).
COMPACT_CHARS = 150


class AlertBanner(QtWidgets.QFrame):
    """A banner with an icon, a bold title, a wrapped message and action buttons."""

    def __init__(self, object_name: str, style: str, icon: str = "\u26a0",
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setStyleSheet(style)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred,
                           QtWidgets.QSizePolicy.Policy.Minimum)
        self.icon = QtWidgets.QLabel(icon, self)
        self.icon.setFont(_font(22))
        self.icon.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.title = QtWidgets.QLabel(self)
        self.title.setObjectName(f"{object_name}Title")
        self.title.setWordWrap(True)
        self.title.setFont(_font(13))
        self.message = QtWidgets.QLabel(self)
        self.message.setObjectName(f"{object_name}Text")
        self.message.setWordWrap(True)
        self.message.setFont(_font(11, bold=False))
        self.message.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QtWidgets.QHBoxLayout()
        text = QtWidgets.QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.title)
        text.addWidget(self.message)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.icon)
        layout.addLayout(text, 1)
        layout.addLayout(self.buttons)
        self.hide()

    def add_button(self, text: str, object_name: str, style: str) -> QtWidgets.QPushButton:
        """Add an action button on the right."""
        button = QtWidgets.QPushButton(text, self)
        button.setObjectName(object_name)
        button.setMinimumHeight(40)
        button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        button.setStyleSheet(style)
        self.buttons.addWidget(button)
        return button

    def is_active(self) -> bool:
        """True while the banner is shown."""
        return not self.isHidden()

    def text(self) -> str:
        """The message shown."""
        return self.message.text()

    def title_text(self) -> str:
        """The title shown."""
        return self.title.text()


class TripAlert(AlertBanner):
    """Red: a rule tripped, an emergency stop or a fault; stays until acknowledged."""

    acknowledged = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("tripAlert", "QFrame#tripAlert { background-color: #c92a2a;"
                         " border: 3px solid #ffd43b; border-radius: 6px; }"
                         " QLabel { color: white; }", parent=parent)
        self.button = self.add_button(
            "Acknowledge", "acknowledgeTrip",
            "QPushButton { background-color: white; color: #c92a2a; font-weight: bold;"
            " font-size: 12pt; border-radius: 6px; padding: 4px 14px; }")
        self.button.clicked.connect(self._acknowledge)

    def raise_alert(self, sentence: str, title: str, compact: bool = False) -> None:
        """Show the alert with a title and the rule's sentence (replacing any earlier one).

        `compact` shortens a long sentence to about two lines (the whole one is the tooltip),
        when a louder alert above needs the room.
        """
        text = display_text(sentence)
        self.title.setText(title)
        self.message.setToolTip(text)
        if compact and len(text) > COMPACT_CHARS:
            text = text[:COMPACT_CHARS].rsplit(" ", 1)[0] + " \u2026"
        self.message.setText(text)
        self.show()

    def _acknowledge(self) -> None:
        self.hide()
        self.acknowledged.emit()


class OutputAlert(AlertBanner):
    """The loudest state: the output could not be read back as off. Stays until acknowledged."""

    acknowledged = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("outputAlert", "QFrame#outputAlert { background-color: #111;"
                         " border: 6px solid #ffd43b; border-radius: 4px; }"
                         " QLabel { color: #ffd43b; }"
                         " QLabel#outputAlertTitle { color: #ff4040; }",
                         icon="\u26a1", parent=parent)
        self.title.setFont(_font(14))
        self.title.setText(NOT_CONFIRMED_OFF)
        self.button = self.add_button(
            "Output is off at the\ninstrument \u2014 Acknowledge", "acknowledgeOutput",
            "QPushButton { background-color: #ffd43b; color: #111; font-weight: bold;"
            " font-size: 11pt; border-radius: 6px; padding: 4px 12px; }")
        self.button.clicked.connect(self._acknowledge)

    def raise_alert(self, detail: str) -> None:
        """Show the instruction, with what happened below it."""
        self.message.setText(display_text(detail))
        self.show()

    def _acknowledge(self) -> None:
        self.hide()
        self.acknowledged.emit()


class NoticeBanner(AlertBanner):
    """An amber notice (a refused run, a rejected value) with a Dismiss button."""

    def __init__(self, object_name: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(object_name, f"QFrame#{object_name} {{ background-color: #e67700;"
                         " border-radius: 6px; } QLabel { color: #111; }",
                         icon="!", parent=parent)
        self.icon.setFont(_font(16))
        self.title.hide()
        button = self.add_button("Dismiss", f"{object_name}Dismiss",
                                 "QPushButton { background-color: #fff4e6; color: #111;"
                                 " padding: 4px 12px; }")
        button.clicked.connect(self.hide)

    def show_message(self, text: str) -> None:
        """Show the notice."""
        self.message.setText(display_text(text))
        self.show()


class ConfirmBanner(AlertBanner):
    """A question in the panel (never a modal dialog) with a yes and a no button."""

    accepted = QtCore.Signal()
    rejected = QtCore.Signal()

    def __init__(self, object_name: str, yes: str, no: str,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(object_name, f"QFrame#{object_name} {{ background-color: #343b45;"
                         " border: 3px solid #ffa94d; border-radius: 6px; }"
                         " QLabel { color: white; }", icon="?", parent=parent)
        self.yes = self.add_button(yes, f"{object_name}Yes",
                                   "QPushButton { background-color: #c92a2a; color: white;"
                                   " font-weight: bold; padding: 4px 12px; }")
        self.no = self.add_button(no, f"{object_name}No", "QPushButton { padding: 4px 12px; }")
        self.yes.clicked.connect(self._yes)
        self.no.clicked.connect(self._no)

    def ask(self, title: str, message: str) -> None:
        """Show the question."""
        self.title.setText(title)
        self.message.setText(message)
        self.show()

    def _yes(self) -> None:
        self.hide()
        self.accepted.emit()

    def _no(self) -> None:
        self.hide()
        self.rejected.emit()


def label_fits(label: QtWidgets.QLabel) -> bool:
    """True when a visible label is at least as large as the text needs (no squeezed sliver)."""
    needed_height = (label.heightForWidth(label.width()) if label.wordWrap()
                     else label.sizeHint().height())
    return (label.isVisible() and label.height() >= needed_height
            and label.width() >= label.minimumSizeHint().width())


__all__ = ["NOT_CONFIRMED_OFF", "AlertBanner", "ConfirmBanner", "NoticeBanner", "OutputAlert",
           "TripAlert", "label_fits"]
