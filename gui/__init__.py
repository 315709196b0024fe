"""The front panel (PyQt5 + pyqtgraph on PyMeasure display)."""
