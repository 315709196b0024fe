"""Colours and the Qt style sheet of the front panel: one dark, high-contrast look everywhere."""

from __future__ import annotations

#: Panel colours.
BACKGROUND = "#1b1f24"
PANEL = "#262b32"
PANEL_EDGE = "#3a414b"
TEXT = "#e8eaed"
TEXT_DIM = "#9aa4af"
DISPLAY_BACKGROUND = "#0b0e11"

#: One colour per quantity, shared by the numeric indicators and the charts.
CURRENT = "#ffd43b"
SETPOINT = "#f8f9fa"
VOLTAGE = "#4dabf7"
IMPEDANCE = "#da77f2"
DOSE = "#69db7c"
TIME = "#e8eaed"
LIMIT = "#ff6b6b"
TARGET = "#a9e34b"

#: Safety light colours.
SAFETY_COLORS = {"ok": "#2fbf4a", "warning": "#ffb020", "tripped": "#e03131", "idle": "#4a525c",
                 "paused": "#4dabf7", "unconfirmed": "#ff2d2d", "past": "#868e96",
                 "refused": "#e67700"}
#: Log tab colours per level (PyMeasure's defaults are for a white page).
LOG_COLORS = {"DEBUG": "#9aa4af", "WARNING": "#ffb020", "ERROR": "#ff6b6b",
              "CRITICAL": "#ff4040"}

#: Words shown on the big displays instead of a stale number.
OFF_TEXT = "OFF"
#: Colour of a display that shows a word (OFF, OPEN) instead of a live number.
WORD = "#adb5bd"

#: Phase colours (chart shading and the phase indicator).
PHASE_COLORS = {
    "pre-flight": "#868e96",
    "contact-check": "#845ef7",
    "ramp-up": "#339af0",
    "hold": "#20c997",
    "ramp-down": "#fd7e14",
    "paused": "#4dabf7",
    "off": "#868e96",
}

#: Shades of the chart background behind each phase (alpha 0-255).
PHASE_ALPHA = 38

MONO_FONT = "DejaVu Sans Mono"

STYLE_SHEET = f"""
QMainWindow, QDialog, QWidget {{
    background-color: {BACKGROUND};
    color: {TEXT};
}}
QDockWidget::title {{
    background: {PANEL};
    padding: 4px;
    font-weight: bold;
}}
QLineEdit, QAbstractSpinBox, QComboBox, QPlainTextEdit, QTreeWidget, QTextEdit {{
    background-color: #11151a;
    color: {TEXT};
    border: 1px solid {PANEL_EDGE};
    border-radius: 3px;
    padding: 2px;
    selection-background-color: #2f5d8a;
}}
QComboBox QAbstractItemView {{
    background-color: #11151a;
    color: {TEXT};
}}
QHeaderView::section {{
    background-color: {PANEL};
    color: {TEXT_DIM};
    border: 1px solid {PANEL_EDGE};
    padding: 2px;
}}
QPushButton {{
    background-color: #343b45;
    color: {TEXT};
    border: 1px solid #4b5563;
    border-radius: 4px;
    padding: 5px 12px;
}}
QPushButton:hover {{ background-color: #3f4752; }}
QPushButton:disabled {{ color: #6b7480; background-color: #2a2f36; }}
QTabWidget::pane {{ border: 1px solid {PANEL_EDGE}; }}
QTabBar::tab {{
    background: {PANEL};
    color: {TEXT_DIM};
    padding: 5px 14px;
    border: 1px solid {PANEL_EDGE};
}}
QTabBar::tab:selected {{ background: #323944; color: {TEXT}; }}
QProgressBar {{
    background-color: {DISPLAY_BACKGROUND};
    border: 1px solid {PANEL_EDGE};
    border-radius: 4px;
    text-align: center;
    color: {TEXT};
    font-weight: bold;
}}
QProgressBar::chunk {{ background-color: #1c7ed6; border-radius: 3px; }}
QMenuBar {{ background-color: {PANEL}; color: {TEXT}; }}
QMenuBar::item:selected {{ background: #3f4752; }}
QMenu {{ background-color: {PANEL}; color: {TEXT}; }}
QMenu::item:selected {{ background: #3f4752; }}
QStatusBar {{ background-color: {PANEL}; color: {TEXT_DIM}; }}
QCheckBox, QRadioButton, QLabel {{ background: transparent; }}
QCheckBox::indicator, QRadioButton::indicator {{
    width: 15px;
    height: 15px;
    border: 2px solid #c9d1d9;
    background-color: #0b0e11;
}}
QCheckBox::indicator {{ border-radius: 3px; }}
QRadioButton::indicator {{ border-radius: 9px; }}
QCheckBox::indicator:checked, QRadioButton::indicator:checked {{
    background-color: #4dabf7;
    border: 3px solid #ffffff;
}}
QCheckBox::indicator:disabled, QRadioButton::indicator:disabled {{ border-color: #5c6570; }}
QLineEdit[invalid="true"] {{ border: 2px solid {LIMIT}; }}
QLineEdit:disabled, QComboBox:disabled {{ color: #8a939e; background-color: #1f242b; }}
QScrollArea {{ border: none; }}
QSplitter::handle {{ background-color: {PANEL_EDGE}; }}
"""
