"""The parameter inputs: typed numbers checked against their range, never silently replaced.

PyMeasure's spin boxes drop keystrokes the validator dislikes ("-5" becomes 5), clamp or
revert out-of-range text on focus-out, and change with the mouse wheel while the panel
scrolls. Here a number is a plain text field: what the operator typed stays visible, and a
value that does not parse or is out of range is named under the field and refuses the run.
"""

from __future__ import annotations

import math
from typing import Any

from pymeasure.display.inputs import Input
from pymeasure.display.widgets.inputs_widget import InputsWidget
from pymeasure.experiment import FloatParameter
from pyqtgraph.Qt import QtCore, QtWidgets

from . import theme

#: Units as the panel writes them (files and parameters keep ASCII).
DISPLAY_UNITS = {"mA*min": "mA\u00b7min", "cm^2": "cm\u00b2", "mA/cm^2": "mA/cm\u00b2",
                 "kohm": "k\u03a9"}


def display_unit(unit: str | None) -> str:
    """The unit as shown on the panel ("mA*min" -> "mA·min")."""
    return DISPLAY_UNITS.get(unit or "", unit or "")


def parse_number(text: str) -> float:
    """The number typed (a trailing unit is tolerated); NaN if it is not one finite number."""
    cleaned = text.strip().replace("\u2212", "-")
    if "," in cleaned and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    parts = cleaned.split()
    if len(parts) == 2:
        cleaned = parts[0]
    try:
        value = float(cleaned)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


class FloatTextInput(Input, QtWidgets.QLineEdit):
    """A number field for a FloatParameter: keeps the text typed; `error()` says what is wrong."""

    checked = QtCore.Signal(object)

    def __init__(self, parameter: FloatParameter, parent: QtWidgets.QWidget | None = None,
                 **kwargs: Any) -> None:
        super().__init__(parameter=parameter, parent=parent, **kwargs)
        self.textChanged.connect(lambda _text: self.checked.emit(self.error()))

    def setValue(self, value: float) -> None:  # noqa: N802 (PyMeasure's Input API)
        """Show a value."""
        self.setText(f"{float(value):g}")

    def setSuffix(self, value: str) -> None:  # noqa: N802 (PyMeasure's Input API)
        """Units are in the label, not in the text."""

    def value(self) -> float:
        """The number typed (NaN when it is not a number)."""
        return parse_number(self.text())

    def update_parameter(self) -> None:
        """Copy the typed value into the parameter; raise ValueError naming field and range."""
        message = self.error()
        if message:
            raise ValueError(message)
        self._parameter.value = self.value()

    def range_text(self) -> str:
        """The allowed range with its unit, e.g. '0.05–4 mA'."""
        parameter = self._parameter
        unit = display_unit(getattr(parameter, "units", ""))
        return f"{parameter.minimum:g}\u2013{parameter.maximum:g} {unit}".rstrip()

    def error(self) -> str | None:
        """None if the text is a number within range, else a sentence naming field and range."""
        parameter = self._parameter
        value = self.value()
        if math.isnan(value):
            what = repr(self.text().strip()) if self.text().strip() else "nothing"
            message = f"{parameter.name}: {what} is not a number; allowed {self.range_text()}"
        elif not parameter.minimum <= value <= parameter.maximum:
            message = (f"{parameter.name}: {value:g} is outside the allowed range "
                       f"{self.range_text()}")
        else:
            message = None
        self.setProperty("invalid", message is not None)
        self.style().unpolish(self)
        self.style().polish(self)
        return message


class PanelInputs(InputsWidget):
    """PyMeasure's inputs with text number fields, an error line under each, and no wheel."""

    def _setup_ui(self) -> None:
        super()._setup_ui()
        parameters = self._procedure.parameter_objects()
        for name in self._inputs:
            parameter = parameters[name]
            if isinstance(parameter, FloatParameter) and parameter.ui_class is None:
                setattr(self, name, FloatTextInput(parameter))

    def _layout(self, inputs_in_scrollarea: bool) -> None:
        super()._layout(inputs_in_scrollarea)
        scroll = self.findChild(QtWidgets.QScrollArea)
        if scroll is not None and scroll.widget() is not None:  # as wide as the dock, no wider
            scroll.widget().setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                          QtWidgets.QSizePolicy.Policy.Fixed)
        parameters = self._procedure.parameter_objects()
        self.errors: dict[str, QtWidgets.QLabel] = {}
        self._wheel_guard = WheelGuard(self)
        for name in self._inputs:
            widget = getattr(self, name)
            widget.setObjectName(f"input_{name}")
            widget.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
            widget.installEventFilter(self._wheel_guard)
            if isinstance(widget, QtWidgets.QComboBox):  # narrow: the dock fits 1280x800
                widget.setSizeAdjustPolicy(
                    QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
                widget.setMinimumContentsLength(10)
            units = display_unit(getattr(parameters[name], "units", None))
            if name in self.labels:
                self.labels[name].setText(f"{parameters[name].name}"
                                          + (f" ({units})" if units else "") + ":")
            if isinstance(widget, FloatTextInput):
                label = QtWidgets.QLabel(widget.parentWidget())
                label.setObjectName(f"error_{name}")
                label.setWordWrap(True)
                label.setStyleSheet(f"color: {theme.LIMIT}; font-weight: bold;")
                label.hide()
                layout = widget.parentWidget().layout()
                layout.insertWidget(layout.indexOf(widget) + 1, label)
                self.errors[name] = label
                widget.setToolTip(f"{parameters[name].name}: {widget.range_text()}")
                widget.checked.connect(lambda message, label=label: self._show_error(
                    label, message))

    @staticmethod
    def _show_error(label: QtWidgets.QLabel, message: str | None) -> None:
        label.setText(message or "")
        label.setVisible(bool(message))

    def input_errors(self) -> list[str]:
        """Every typed value that is not acceptable, each naming its field and range."""
        errors = []
        for name in self._inputs:
            widget = getattr(self, name)
            if isinstance(widget, FloatTextInput) and widget.isVisibleTo(self):
                message = widget.error()
                self._show_error(self.errors[name], message)
                if message:
                    errors.append(message)
        return errors

    def get_procedure(self) -> Any:
        """The procedure from the inputs; hidden fields (a disabled dose target) keep defaults."""
        self._procedure = self._procedure_class()
        values = {}
        for name in self._inputs:
            widget = getattr(self, name)
            if isinstance(widget, FloatTextInput) and not widget.isVisibleTo(self):
                continue
            values[name] = widget.parameter.value
        self._procedure.set_parameters(values)
        return self._procedure

    def set_locked(self, locked: bool) -> None:
        """Lock every input while a run is active (the running treatment must not change)."""
        for name in self._inputs:
            getattr(self, name).setEnabled(not locked)


class WheelGuard(QtCore.QObject):
    """Lets the mouse wheel change an input only when it has the keyboard focus.

    Otherwise the wheel event is ignored by the input and passed on, so the panel scrolls.
    """

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802
        """Swallow wheel events for inputs without focus (the parent scrolls instead)."""
        if event.type() == QtCore.QEvent.Type.Wheel and isinstance(watched, QtWidgets.QWidget) \
                and not watched.hasFocus():
            event.ignore()
            return True
        return False
