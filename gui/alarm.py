"""The audible alarm: repeats until the operator acknowledges (trip, output not confirmed off).

Qt's own QSoundEffect plays a short generated tone when audio is available; otherwise the
system bell rings. Every request is counted, so tests assert the alarm was requested offscreen.
"""

from __future__ import annotations

import logging
import math
import struct
import tempfile
import wave
from pathlib import Path

from pyqtgraph.Qt import QtCore, QtWidgets

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: Seconds between two alarm tones.
REPEAT_S = 2.0
_TONE: Path | None = None


def _tone_file() -> Path:
    """A 0.4 s 880 Hz tone as WAV (written once per process)."""
    global _TONE
    if _TONE is None or not _TONE.exists():
        path = Path(tempfile.gettempdir()) / "ionto_alarm_tone.wav"
        rate = 22050
        frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * 880 * i / rate)))
                          for i in range(int(0.4 * rate)))
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(frames)
        _TONE = path
    return _TONE


class AudibleAlarm(QtCore.QObject):
    """Sound a tone now and every REPEAT_S seconds until `stop()`."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.requests = 0
        self.reason = ""
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(int(REPEAT_S * 1000))
        self._timer.timeout.connect(self._ring)
        self._effect = None
        try:
            from PyQt5.QtMultimedia import QSoundEffect  # optional: Qt's own sound
            from pyqtgraph.Qt import QtCore as _Qt

            effect = QSoundEffect(self)
            effect.setSource(_Qt.QUrl.fromLocalFile(str(_tone_file())))
            effect.setVolume(0.9)
            self._effect = effect
        except Exception as exc:  # no QtMultimedia or no writable temp: the bell remains
            log.debug("QSoundEffect unavailable (%s); using the system bell", exc)

    def start(self, reason: str) -> None:
        """Start (or keep) sounding for `reason`."""
        self.reason = reason
        if not self._timer.isActive():
            self._ring()
            self._timer.start()

    def stop(self) -> None:
        """Silence the alarm (the operator acknowledged)."""
        self._timer.stop()
        self.reason = ""

    def is_active(self) -> bool:
        """True while the alarm repeats."""
        return self._timer.isActive()

    def _ring(self) -> None:
        self.requests += 1
        played = False
        if self._effect is not None and self._effect.status() != self._effect.Error:
            self._effect.play()
            played = True
        if not played:
            QtWidgets.QApplication.beep()
