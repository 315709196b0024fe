"""LabVIEW-style indicators: big numeric displays, phase, safety light, banners, E-stop button.

Pure display widgets: they know nothing of procedures; the window feeds them values.
"""

from __future__ import annotations

import math

from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from . import theme


def format_number(value: float | None, decimals: int, signed: bool = False,
                  max_chars: int | None = None) -> str:
    """Format a reading for a display; '---' when there is no finite value.

    With `max_chars`, drop decimals and then switch to exponent notation so that the text
    always fits the display (e.g. 34329680 in 7 characters shows as 3.4e+07).
    """
    if value is None or not math.isfinite(value):
        return "---"
    if abs(value) < 0.5 * 10.0 ** -decimals:
        value = 0.0  # no "-0.000"
    sign = "+" if signed else ""
    for places in range(decimals, -1, -1):
        text = f"{value:{sign}.{places}f}"
        if max_chars is None or len(text) <= max_chars:
            return text
    for places in range(3, -1, -1):
        text = f"{value:{sign}.{places}e}"
        if len(text) <= max_chars:
            return text
    return text


def display_text(text: str) -> str:
    """A sentence from a file or the procedure, as the panel writes units ("mA·min")."""
    return text.replace("mA*min", "mA\u00b7min").replace("kOhm", "k\u03a9")


def format_duration(seconds: float | None) -> str:
    """Format seconds as mm:ss (minutes keep counting past 59); '--:--' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    minutes, secs = divmod(max(0, int(round(seconds))), 60)
    return f"{minutes:02d}:{secs:02d}"


def _font(point_size: int, bold: bool = True, mono: bool = False) -> QtGui.QFont:
    font = QtGui.QFont(QtWidgets.QApplication.font())
    if mono:
        font.setFamily(theme.MONO_FONT)
        font.setStyleHint(QtGui.QFont.StyleHint.Monospace)
    font.setPointSize(point_size)
    font.setBold(bold)
    return font


def css_font(point_size: int, bold: bool = True, mono: bool = False) -> str:
    """A style-sheet font declaration (style sheets override `setFont`, so use this)."""
    family = f"font-family: '{theme.MONO_FONT}', monospace; " if mono else ""
    return f"{family}font-size: {point_size}pt; font-weight: {'bold' if bold else 'normal'};"


class NumericIndicator(QtWidgets.QFrame):
    """A large numeric display with caption and unit, readable from across the room."""

    DIGIT_PT = 20

    def __init__(self, caption: str, unit: str, color: str, decimals: int = 2,
                 signed: bool = False, object_name: str = "", max_chars: int = 6,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.decimals = decimals
        self.signed = signed
        self.max_chars = max_chars
        self.color = color
        self.unit = unit
        self._color_now = color
        self._painted = color
        if object_name:
            self.setObjectName(object_name)
        self.setStyleSheet(f"NumericIndicator {{ background-color: {theme.DISPLAY_BACKGROUND};"
                           f" border: 1px solid {theme.PANEL_EDGE}; border-radius: 6px; }}")
        self.caption = QtWidgets.QLabel(caption.upper(), self)
        self.caption.setStyleSheet(f"color: {theme.TEXT_DIM}; {css_font(9)}")
        self.value_label = QtWidgets.QLabel("---", self)
        self.value_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight
                                      | QtCore.Qt.AlignmentFlag.AlignVCenter)
        self.value_label.setStyleSheet(f"color: {color}; {css_font(self.DIGIT_PT, mono=True)}")
        # a fixed width for `max_chars` digits: the panel never shifts as values change
        digits = QtGui.QFontMetrics(_font(self.DIGIT_PT, mono=True))
        self.value_label.setMinimumWidth(digits.horizontalAdvance("8" * max_chars) + 4)
        self.value_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                       QtWidgets.QSizePolicy.Policy.Preferred)
        self.unit_label = QtWidgets.QLabel(unit, self)
        self.unit_label.setStyleSheet(f"color: {theme.TEXT_DIM}; {css_font(10)}")
        self.unit_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        self.unit_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                      QtWidgets.QSizePolicy.Policy.Preferred)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(8, 3, 8, 3)
        layout.setSpacing(0)
        layout.addWidget(self.caption)
        layout.addWidget(self.value_label)
        layout.addWidget(self.unit_label)

    def set_value(self, value: float | None) -> None:
        """Show a value (NaN or None shows dashes)."""
        self.set_text(format_number(value, self.decimals, self.signed, self.max_chars))

    def set_text(self, text: str, color: str | None = None, unit: str | None = None) -> None:
        """Show a word instead of a number ("OFF", "OPEN"), in `color`, with a unit note."""
        self.value_label.setText(text)
        self._paint(color or self._color_now)
        note = self.unit if unit is None else unit
        if note != self.unit_label.text():
            size = 10 if note == self.unit else 8
            self.unit_label.setStyleSheet(f"color: {theme.TEXT_DIM}; {css_font(size)}")
            self.unit_label.setText(note)

    def set_alarm(self, alarm: bool) -> None:
        """Show the digits red (e.g. voltage at the compliance limit)."""
        self._color_now = theme.LIMIT if alarm else self.color
        self._paint(self._color_now)

    def _paint(self, color: str) -> None:
        if color != self._painted:
            self._painted = color
            self.value_label.setStyleSheet(f"color: {color}; {css_font(self.DIGIT_PT, mono=True)}")

    def unit_text(self) -> str:
        """The unit (or note) shown under the digits."""
        return self.unit_label.text()

    def text(self) -> str:
        """The digits shown."""
        return self.value_label.text()


class TimeIndicator(NumericIndicator):
    """A large mm:ss display (elapsed or remaining treatment time)."""

    def set_value(self, value: float | None) -> None:
        """Show seconds as mm:ss."""
        self.set_text(format_duration(value))


class PhaseIndicator(QtWidgets.QLabel):
    """The protocol phase in big letters on the phase's chart colour."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("phaseIndicator")
        self._color = ""
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setFont(_font(14))
        self.setMinimumWidth(120)
        self.set_phase("idle")

    def set_phase(self, phase: str, text: str | None = None) -> None:
        """Show a phase name ("hold", "ramp-up", ...) or "idle" (or `text` in its colour)."""
        color = theme.PHASE_COLORS.get(phase, theme.SAFETY_COLORS["idle"])
        if text == "OUTPUT ?":
            color = theme.SAFETY_COLORS["unconfirmed"]
        label = text or phase.upper()
        if label == self.text() and color == self._color:
            return
        self._color = color
        self.setText(label)
        self.setStyleSheet(f"background-color: {color}; color: #0b0e11; border-radius: 6px;"
                           f" padding: 4px 8px;")

    def phase(self) -> str:
        """The phase shown, lower case."""
        return self.text().lower()


class SafetyLight(QtWidgets.QFrame):
    """A round status lamp with a caption and the last event's sentence (two lines, fixed).

    The sentence area has a fixed height, so a long sentence never makes the panel jump; the
    full text is in the tooltip (and, after a trip, in the alert above the panel).
    """

    STATES = ("idle", "ok", "warning", "tripped", "paused", "unconfirmed", "past", "refused")
    CAPTIONS = {"idle": "IDLE", "ok": "RUNNING NORMALLY", "warning": "WARNING",
                "tripped": "TRIPPED", "paused": "PAUSED \u2014 OUTPUT OFF",
                "unconfirmed": "OUTPUT NOT CONFIRMED OFF", "past": "PAST RUN",
                "refused": "RUN REFUSED"}
    SENTENCE_LINES = 2

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("safetyLight")
        self._state = "idle"
        self._full_sentence = ""
        self._full_caption = ""
        self.lamp = _Lamp(self)
        self.caption = QtWidgets.QLabel(self)
        self.caption.setObjectName("safetyState")
        self.caption.setFont(_font(13))
        self.caption.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                   QtWidgets.QSizePolicy.Policy.Preferred)
        self.sentence = QtWidgets.QLabel(self)
        self.sentence.setObjectName("safetySentence")
        self.sentence.setWordWrap(True)
        self.sentence.setFont(_font(10, bold=False))
        self.sentence.setAlignment(QtCore.Qt.AlignmentFlag.AlignLeft
                                   | QtCore.Qt.AlignmentFlag.AlignTop)
        lines = QtGui.QFontMetrics(self.sentence.font()).lineSpacing() * self.SENTENCE_LINES
        self.sentence.setFixedHeight(lines + 4)
        self.sentence.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                    QtWidgets.QSizePolicy.Policy.Fixed)
        text = QtWidgets.QVBoxLayout()
        text.setSpacing(1)
        text.addWidget(self.caption)
        text.addWidget(self.sentence)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.lamp)
        layout.addLayout(text, 1)
        self.setStyleSheet(f"SafetyLight {{ background-color: {theme.DISPLAY_BACKGROUND};"
                           f" border: 1px solid {theme.PANEL_EDGE}; border-radius: 6px; }}")
        self.set_state("idle", "")

    def set_state(self, state: str, sentence: str, caption: str | None = None) -> None:
        """Light the lamp for `state` and show the last event's sentence."""
        if state not in self.STATES:
            state = "warning"
        self._state = state
        color = theme.SAFETY_COLORS[state]
        self.lamp.set_color(color)
        self._full_caption = caption or self.CAPTIONS[state]
        self.caption.setToolTip(self._full_caption)
        self._fit_caption()
        self.caption.setStyleSheet(f"color: {color};")
        sentence = display_text(sentence)
        if sentence != self._full_sentence:
            self._full_sentence = sentence
            self.sentence.setToolTip(sentence)
            self._fit_sentence()

    def _fit_caption(self) -> None:
        """A caption wider than the light ends in an ellipsis, never silently cut off."""
        metrics = QtGui.QFontMetrics(self.caption.font())
        self.caption.setText(metrics.elidedText(self._full_caption,
                                                QtCore.Qt.TextElideMode.ElideRight,
                                                max(self.caption.width(), 60)))

    def _fit_sentence(self) -> None:
        """Show as much of the sentence as fits the fixed lines, ending in an ellipsis."""
        text = self._full_sentence
        width = max(self.sentence.width(), 120)
        metrics = QtGui.QFontMetrics(self.sentence.font())
        flags = int(QtCore.Qt.TextFlag.TextWordWrap)
        limit = self.sentence.height()

        def fits(candidate: str) -> bool:
            rect = QtCore.QRect(0, 0, width, 10_000)
            return metrics.boundingRect(rect, flags, candidate).height() <= limit

        if not fits(text):
            words = text.split()
            while words and not fits(" ".join(words) + "\u2026"):
                words.pop()
            text = " ".join(words) + "\u2026"
        self.sentence.setText(text)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._fit_caption()
        self._fit_sentence()

    def state(self) -> str:
        """One of STATES."""
        return self._state

    def full_sentence(self) -> str:
        """The whole sentence (the label may show it shortened)."""
        return self._full_sentence

    def color(self) -> str:
        """The lamp's colour (#rrggbb)."""
        return self.lamp.color


class _Lamp(QtWidgets.QWidget):
    """A filled circle with a highlight, like a panel lamp."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.color = theme.SAFETY_COLORS["idle"]
        self.setFixedSize(48, 48)

    def set_color(self, color: str) -> None:
        self.color = color
        self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt API)
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        rect = QtCore.QRectF(4, 4, self.width() - 8, self.height() - 8)
        gradient = QtGui.QRadialGradient(rect.center() - QtCore.QPointF(6, 6), rect.width() * 0.7)
        base = QtGui.QColor(self.color)
        gradient.setColorAt(0.0, base.lighter(170))
        gradient.setColorAt(0.6, base)
        gradient.setColorAt(1.0, base.darker(160))
        painter.setBrush(QtGui.QBrush(gradient))
        painter.setPen(QtGui.QPen(QtGui.QColor("#000000"), 2))
        painter.drawEllipse(rect)
        painter.end()


class EmergencyStopButton(QtWidgets.QPushButton):
    """The big red EMERGENCY STOP (Esc): output off at once, never a ramp."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("EMERGENCY\nSTOP\n[ Esc ]", parent)
        self.setObjectName("emergencyStop")
        self.setToolTip("Switch the output off at once (no ramp). Shortcut: Esc")
        self.setMinimumSize(160, 110)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed,
                           QtWidgets.QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.setStyleSheet(
            "QPushButton#emergencyStop { background-color: #d00000; color: white;"
            " font-size: 15pt; font-weight: bold; border: 4px solid #ffd43b;"
            " border-radius: 14px; padding: 6px; }"
            "QPushButton#emergencyStop:hover { background-color: #f01010; }"
            "QPushButton#emergencyStop:pressed { background-color: #8b0000; }"
            "QPushButton#emergencyStop:disabled { background-color: #6b1d1d; color: #d8a0a0;"
            " border-color: #7a6a2a; }")


class StopRampDownButton(QtWidgets.QPushButton):
    """The operator stop: ramp down over the ramp-down time, then off."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("STOP\nramp down", parent)
        self.setObjectName("stopRampDown")
        self.setToolTip("Ramp the current down over the ramp-down time, then switch off")
        self.setMinimumSize(90, 36)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed,
                           QtWidgets.QSizePolicy.Policy.Expanding)
        self.setStyleSheet(
            "QPushButton#stopRampDown { background-color: #e8590c; color: white;"
            " font-size: 10pt; font-weight: bold; border: 2px solid #ffa94d; padding: 4px;"
            " border-radius: 10px; }"
            "QPushButton#stopRampDown:disabled { background-color: #3a2a20; color: #8a7a6a;"
            " border-color: #4a3a2a; }")


#: Speed choices of the simulation banner: label -> clock speed (inf = virtual clock).
SPEEDS: dict[str, float] = {"1x (real time)": 1.0, "10x": 10.0, "60x": 60.0, "600x": 600.0,
                            "max (virtual clock)": math.inf}


def speed_label(speed: float) -> str:
    """The banner's label for a clock speed."""
    if math.isinf(speed):
        return "max (virtual clock)"
    for label, value in SPEEDS.items():
        if value == speed:
            return label
    return f"{speed:g}x"


class SimulationBanner(QtWidgets.QFrame):
    """A striped banner saying the instrument is SIMULATED, with scenario and speed choices."""

    def __init__(self, scenarios: dict[str, str], scenario: str = "normal",
                 speed: float = 60.0, instrument: str = "Keithley 2400",
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("simBanner")
        self.setStyleSheet(
            "QFrame#simBanner { background: qlineargradient(x1:0, y1:0, x2:1, y2:0,"
            " stop:0 #5f3dc4, stop:1 #364fc7); border: 2px solid #b197fc;"
            " border-radius: 6px; }"
            "QLabel { color: white; }"
            "QComboBox { background-color: #1b1f24; color: white; min-width: 90px; }")
        self.title = QtWidgets.QLabel(f"SIMULATED \u2014 {instrument}, skin phantom", self)
        self.title.setToolTip("No real SourceMeter and no patient: readings come from the "
                              "simulator's skin model")
        self.title.setFont(_font(11))
        self.scenario_combo = QtWidgets.QComboBox(self)
        self.scenario_combo.setObjectName("scenarioCombo")
        self.scenario_combo.setEditable(True)
        self.scenario_combo.setInsertPolicy(QtWidgets.QComboBox.InsertPolicy.NoInsert)
        for name, description in scenarios.items():
            self.scenario_combo.addItem(str(name))
            self.scenario_combo.setItemData(self.scenario_combo.count() - 1, description,
                                            QtCore.Qt.ItemDataRole.ToolTipRole)
        self.scenario_combo.setToolTip("Scenario for the next run; 'name@minute' sets the "
                                       "fault's minute, e.g. contact-loss@1")
        self.speed_combo = QtWidgets.QComboBox(self)
        self.speed_combo.setObjectName("speedCombo")
        for combo, length in ((self.scenario_combo, 14), (self.speed_combo, 7)):
            combo.setSizeAdjustPolicy(
                QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(length)
        for label in SPEEDS:
            self.speed_combo.addItem(label)
        self.running_label = QtWidgets.QLabel(self)
        self.running_label.setObjectName("simRunning")
        self.running_label.setFont(_font(10, bold=False))
        self.set_scenario(scenario)
        self.set_speed(speed)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 8, 2)
        layout.addWidget(self.title)
        layout.addStretch(1)
        layout.addWidget(self.running_label)
        layout.addSpacing(12)
        layout.addWidget(QtWidgets.QLabel("Next run:", self))
        layout.addWidget(self.scenario_combo)
        layout.addWidget(QtWidgets.QLabel("speed", self))
        layout.addWidget(self.speed_combo)

    def scenario(self) -> str:
        """The scenario text for the next run."""
        return self.scenario_combo.currentText().strip() or "normal"

    def set_scenario(self, scenario: str) -> None:
        """Select (or type) a scenario."""
        index = self.scenario_combo.findText(scenario)
        if index >= 0:
            self.scenario_combo.setCurrentIndex(index)
        else:
            self.scenario_combo.setEditText(scenario)

    def speed(self) -> float:
        """The clock speed for the next run (inf for the virtual clock)."""
        label = self.speed_combo.currentText()
        if label in SPEEDS:
            return SPEEDS[label]
        return float(label.rstrip("x"))

    def set_speed(self, speed: float) -> None:
        """Select a speed, adding it to the list when it is not a standard one."""
        label = speed_label(speed)
        if self.speed_combo.findText(label) < 0:
            self.speed_combo.addItem(label)
        self.speed_combo.setCurrentText(label)

    def set_running(self, text: str) -> None:
        """Show what the running simulation is (scenario and clock of the active run)."""
        self.running_label.setText(text)
