"""The 2450 guards itself: a trigger model holds the source only while the host keeps beating.

Before output-on, `Keithley2450DeadManSource` loads this trigger model (block numbers as sent;
2450 Reference Manual 2450-901-01, section 3 "Trigger model", section 6 ":TRIGger:BLOCk";
the design and the citations are in docs/scpi.md, "2450 dead-man"):

    1  BUFF:CLE  "defbuffer1"         empty the reading buffer
    2  SOUR:STAT ON                   output on
    3  BRAN:COUN M, 5                 window M: planned end reached -> 4 (falls through)
    4  BRAN:ALW  9                    -> output off, end
    5  MEAS      "defbuffer1"         one reading (the host fetches the newest)
    6  DEL:CONS  dt
    7  BRAN:COUN K, 5                 K readings make one window of W = T/2
    8  BRAN:EVEN COMM, 3              a *TRG arrived during the window -> next window
    9  SOUR:STAT OFF                  no heartbeat for a whole window: output off; the model ends

The host sends ``*TRG`` at every sample. A heartbeat that stops right after block 8 looked is
seen at the next look (W later), and the window after that has none: the output goes off at
most 2·W = T after the last heartbeat, whatever happened to the host (power, OS freeze, sleep,
cable). Without any host, the model ends on its own after M windows (the planned end). The
host switches off with ``:ABOR;OUTPUT OFF``. While the model runs, readings come from the
buffer (``:FETC?``) and the setpoint still moves with ``:SOUR:CURR:LEV``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from . import limits as L
from .keithley2450 import Keithley2450CurrentSource, parse_reading
from .source import InstrumentError, InstrumentFault, Reading

FETCH_COMMAND = ':FETC? "defbuffer1", READ, SOUR, REL, SOURSTAT'
COUNT_COMMAND = ':TRAC:ACT? "defbuffer1"'
#: Time one measure block may take (1 PLC at 50 Hz plus overhead); subtracted from the delay.
MEASURE_S = L.DEAD_MAN_MEASURE_TIME.value
#: How long output_on waits for the model's first reading.
FIRST_READING_TIMEOUT_S = L.DEAD_MAN_FIRST_READING_TIMEOUT.value
#: Shortest dead-man timeout: two windows of at least one reading each.
MIN_TIMEOUT_S = L.DEAD_MAN_MIN_TIMEOUT.value
#: Longest time between two readings of the model (a new setpoint waits for a fresh one).
READING_PERIOD_MAX_S = L.DEAD_MAN_READING_PERIOD_MAX.value


@dataclass(frozen=True)
class DeadManPlan:
    """The dead-man's numbers: off within `timeout_s` of the last heartbeat; end by itself
    after `planned_s`; a reading every sample interval, at least every READING_PERIOD_MAX_S."""

    timeout_s: float
    planned_s: float
    sample_interval_s: float

    def __post_init__(self) -> None:
        for name in ("timeout_s", "planned_s", "sample_interval_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"dead-man {name} must be a finite number > 0, got {value!r}")
        if self.timeout_s < MIN_TIMEOUT_S:
            raise ValueError(f"dead-man timeout must be >= {MIN_TIMEOUT_S} s")

    @property
    def window_s(self) -> float:
        """W: the instrument looks for a heartbeat once per window."""
        return self.timeout_s / 2.0

    @property
    def readings_per_window(self) -> int:
        """K."""
        return max(1, round(self.window_s / min(self.sample_interval_s, READING_PERIOD_MAX_S)))

    @property
    def delay_s(self) -> float:
        """dt: the delay after each reading, so that K readings take W."""
        return max(0.0, self.window_s / self.readings_per_window - MEASURE_S)

    @property
    def windows(self) -> int:
        """M: block 3 falls through on its M-th visit, after M - 1 windows."""
        return math.ceil(self.planned_s / self.window_s) + 1

    def commands(self) -> list[str]:
        """The SCPI that loads the model (then ``:INIT`` runs it)."""
        return [
            ':TRIG:LOAD "Empty"',
            ':TRIG:BLOC:BUFF:CLE 1, "defbuffer1"',
            ":TRIG:BLOC:SOUR:STAT 2, ON",
            f":TRIG:BLOC:BRAN:COUN 3, {self.windows}, 5",
            ":TRIG:BLOC:BRAN:ALW 4, 9",
            ':TRIG:BLOC:MEAS 5, "defbuffer1"',
            f":TRIG:BLOC:DEL:CONS 6, {self.delay_s:.6g}",
            f":TRIG:BLOC:BRAN:COUN 7, {self.readings_per_window}, 5",
            ":TRIG:BLOC:BRAN:EVEN 8, COMM, 3",
            ":TRIG:BLOC:SOUR:STAT 9, OFF",
        ]

    def describe(self) -> dict[str, Any]:
        return {"timeout_s": self.timeout_s, "planned_end_s": round(self.planned_s, 3),
                "window_s": self.window_s, "readings_per_window": self.readings_per_window,
                "windows": self.windows}


class Keithley2450DeadManSource(Keithley2450CurrentSource):
    """A 2450 whose output is held on by the dead-man trigger model once `arm_dead_man` ran."""

    OUTPUT_OFF_COMMAND = ":ABOR;OUTPUT OFF"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dead_man: DeadManPlan | None = None
        self.dead_man_running = False
        self._fresh_after: int | None = None  # buffer count a fresh reading must exceed

    def arm_dead_man(self, plan: DeadManPlan) -> None:
        """Use the dead-man for the next output-on (no I/O here)."""
        self.dead_man = plan

    def output_on(self) -> None:
        """Load the dead-man model, switch on (refused unless configured), start it (:INIT).

        The model must run and take its first reading, else the output goes off again and
        InstrumentError says why.
        """
        plan = self.dead_man
        if plan is None:
            super().output_on()
            return
        with self.io_lock:
            for command in plan.commands():
                self.write(command)
            errors = self.drain_errors()
            if errors:
                raise InstrumentError(f"{self.resource_name}: the dead-man trigger model was "
                                      f"refused: {'; '.join(errors)}")
            super().output_on()
            self.write(":INIT")
            self.dead_man_running = True
            try:
                self._await_first_reading()
            except BaseException:
                self.emergency_off()
                raise

    def _await_first_reading(self) -> None:
        deadline = time.monotonic() + FIRST_READING_TIMEOUT_S
        while True:
            state = self.ask(":TRIG:STAT?").strip()
            count = self.ask(COUNT_COMMAND).strip()
            if state.startswith("RUNNING") and count not in ("", "0"):
                return
            if not state.startswith("RUNNING") or time.monotonic() > deadline:
                errors = self.drain_errors()
                raise InstrumentError(f"{self.resource_name}: the dead-man trigger model did "
                                      f"not start ({state!r}, {count} reading(s)) "
                                      f"{'; '.join(errors)}".strip())
            time.sleep(0.01)

    def set_current(self, amps: float) -> None:
        """Set the level; while the model runs, the next read waits for a reading begun after."""
        super().set_current(amps)
        if self.dead_man_running:
            with self.io_lock:
                # The reading in progress (if any) completes as count + 1: still the old level.
                self._fresh_after = self._buffer_count() + 1

    def _buffer_count(self) -> int:
        reply = self.ask(COUNT_COMMAND).strip()
        try:
            return int(reply)
        except ValueError:
            raise InstrumentError(f"{self.resource_name}: unparsable reply to "
                                  f"{COUNT_COMMAND!r}: {reply!r}") from None

    def heartbeat(self) -> None:
        """Tell the dead-man the host is alive (*TRG); nothing while it is not running."""
        if self.dead_man_running:
            self.write("*TRG")

    def read(self) -> Reading:
        """The newest reading of the running model (:FETC?), else a :READ? as usual.

        After a setpoint change it waits (at most two sample intervals) for a reading taken
        after the change: a buffer reading from before it would be compared with the new
        setpoint and look like a collapsed current.
        """
        if not self.dead_man_running:
            return super().read()
        with self.io_lock:
            if self._fresh_after is not None:
                deadline = time.monotonic() + FIRST_READING_TIMEOUT_S
                while self._buffer_count() <= self._fresh_after:
                    if time.monotonic() > deadline:
                        raise InstrumentFault(f"{self.resource_name}: the dead-man model "
                                              "took no new reading within "
                                              f"{FIRST_READING_TIMEOUT_S:g} s")
                    time.sleep(0.005)
                self._fresh_after = None
            return parse_reading(self.ask(FETCH_COMMAND).strip())

    def output_off(self) -> None:
        """Stop the model, then OUTPUT OFF."""
        with self.io_lock:
            self.dead_man_running = False
            self.write(":ABOR")
            super().output_off()

    def emergency_off(self, lock_timeout: float = 1.0) -> None:
        """One write, ``:ABOR;OUTPUT OFF`` (stops the model and switches off), from any thread."""
        self.dead_man_running = False
        super().emergency_off(lock_timeout)

    def trigger_state(self) -> str:
        """:TRIG:STAT? (e.g. "RUNNING;RUNNING;6", "IDLE;IDLE;9")."""
        with self.io_lock:
            return self.ask(":TRIG:STAT?").strip()





def open_dead_man_source(resource: str, **serial: Any) -> Keithley2450DeadManSource:
    """Open a 2450 at `resource` with the dead-man driver (VISA library as for hardware)."""
    from .transport import serial_options, visa_library

    try:
        options = serial_options(resource, **serial)
    except ValueError as exc:
        raise InstrumentError(f"{resource!r}: {exc}") from None
    return Keithley2450DeadManSource.open(resource, visa_library(), **options)


def dead_man_timeout(sample_interval_s: float, guard_timeout_s: float) -> float:
    """T: DEAD_MAN_MARGIN after the guard's timeout, so the guard (with its note) acts first."""
    return max(MIN_TIMEOUT_S, guard_timeout_s + L.DEAD_MAN_MARGIN.value, 4 * sample_interval_s)


__all__ = ["COUNT_COMMAND", "FETCH_COMMAND", "DeadManPlan", "Keithley2450DeadManSource",
           "dead_man_timeout", "open_dead_man_source"]
