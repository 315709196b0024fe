"""The source-measure unit model: what a Keithley 2400 or 2450 answers on a skin phantom.

The model owns the dynamic part of the SCPI contract in docs/scpi.md (source level,
compliance, output, readings, *RST, *CLS, the error queue); every other command goes to a
`static` lookup (the pyvisa-sim YAML device). Headers are matched exactly as spelled in
docs/scpi.md: a different spelling is an undefined header (-113), so contract drift shows up
in the error queue. Not thread-safe by itself: the pyvisa backend serializes access.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Literal, NamedTuple

from ..clock import Clock
from .phantom import PhantomParams, SkinPhantom
from .scenarios import Scenario

Dialect = Literal["2400", "2450"]

#: Answers a command the model does not own: the reply, None for no reply; KeyError if unknown.
StaticAnswer = Callable[[str], str | None]

#: Both instruments source at most 1.05 A and limit voltage to 210 V.
MAX_CURRENT_A = 1.05
MAX_VOLTAGE_LIMIT_V = 210.0
#: Compliance (2400) / voltage limit (2450) after *RST.
DEFAULT_COMPLIANCE_V = 21.0
#: Both keep at most this many errors; the last slot becomes -350 "Queue overflow".
ERROR_QUEUE_SIZE = 10
#: Commands kept in the log (a day at 1 Hz fits; older entries drop off).
COMMAND_LOG_SIZE = 100_000

#: 2400 status word bits (2400 manual §18, :FORMat:ELEMents STATus).
STATUS_COMPLIANCE = 1 << 3
STATUS_V_MEAS = 1 << 11
STATUS_I_MEAS = 1 << 12
STATUS_I_SOURCE = 1 << 15
#: The 2400 reports "not measured" (resistance here) as 9.91e37, its NaN.
NOT_A_NUMBER = 9.91e37

READ_2450 = ':READ? "defbuffer1", READ, SOUR, REL'


class Command(NamedTuple):
    """One SCPI message unit as it arrived: absolute clock time, run-axis time, text."""

    time: float
    run_time: float
    text: str


class Reply(NamedTuple):
    """The reply to one program message (None: nothing to read) and whether it is a reading."""

    text: str | None
    reading: bool


class ScpiError(Exception):
    """A command the instrument rejects: goes to the error queue as (code, message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


def split_units(message: str) -> list[str]:
    """Split a program message at ';' outside quotes; each unit is taken as a full path."""
    if ";" not in message:
        unit = message.strip()
        return [unit] if unit else []
    units: list[str] = []
    start = 0
    quote = ""
    for k, char in enumerate(message):
        if char in "\"'" and (not quote or char == quote):
            quote = "" if quote else char
        elif char == ";" and not quote:
            units.append(message[start:k])
            start = k + 1
    units.append(message[start:])
    return [unit for unit in (u.strip() for u in units) if unit]


def _number(text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ScpiError(-104, "Data type error") from None
    if not (low <= value <= high):
        raise ScpiError(-222, "Data out of range")
    return value


def _boolean(text: str) -> bool:
    value = text.strip().upper()
    if value in ("1", "ON"):
        return True
    if value in ("0", "OFF"):
        return False
    raise ScpiError(-104, "Data type error")


class SourceMeterModel:
    """A current-sourcing SMU on a skin phantom, speaking the 2400 or the 2450 dialect."""

    def __init__(self, dialect: Dialect, clock: Clock, scenario: Scenario | None = None,
                 phantom: PhantomParams | None = None, seed: int = 0,
                 io_latency: float = 0.0, static: StaticAnswer | None = None) -> None:
        if dialect not in ("2400", "2450"):
            raise ValueError(f"unknown dialect {dialect!r}: choose '2400' or '2450'")
        if not (math.isfinite(io_latency) and io_latency >= 0):
            raise ValueError(f"io_latency must be a finite number >= 0, got {io_latency!r}")
        self.dialect: Dialect = dialect
        self.clock = clock
        self.scenario = scenario or Scenario()
        self.phantom = SkinPhantom(phantom, seed)
        self.io_latency = float(io_latency)
        self.static = static
        #: Every message unit received, with its clock and run-axis arrival times.
        self.commands: deque[Command] = deque(maxlen=COMMAND_LOG_SIZE)
        #: Run-axis times (s since the last *RST) at which an output-off command arrived.
        self.output_off_times: list[float] = []
        self._errors: deque[tuple[int, str]] = deque()
        self._reading_asked = False
        self._plain, self._with_argument = self._command_table()
        self.reset()

    # -- state ----------------------------------------------------------------------------

    def reset(self) -> None:
        """*RST: output off, source 0 A, default compliance, run axis and timestamps to 0."""
        now = self.clock.now()
        self.output_enabled = False
        self.setpoint = 0.0
        self.compliance_voltage = DEFAULT_COMPLIANCE_V
        self.epoch = now
        self._time_origin = now
        self._first_on: float | None = None

    def run_time(self) -> float:
        """Seconds of clock time since the last *RST: the axis fault minutes refer to."""
        return self.clock.now() - self.epoch

    def timestamp(self) -> float:
        """The instrument's timestamp: seconds since *RST or :SYSTEM:TIME:RESET."""
        return self.clock.now() - self._time_origin

    def resistance(self) -> float:
        """The true (noise-free) resistance between the electrodes now, faults included."""
        now = self.clock.now()
        time_on = None if self._first_on is None else now - self._first_on
        return self.scenario.resistance(self.phantom.resistance(time_on), now - self.epoch)

    def source_state(self) -> tuple[float, float, bool]:
        """Return the true (V, I, in compliance) now: V = I·R clamped at the compliance."""
        if not self.output_enabled or self.setpoint == 0:
            return 0.0, 0.0, False
        r = self.resistance()
        v = self.setpoint * r
        if abs(v) <= self.compliance_voltage:
            return v, self.setpoint, False
        v = math.copysign(self.compliance_voltage, self.setpoint)
        return v, v / r, True

    def in_compliance(self) -> bool:
        """True when the source is clamped at the compliance voltage."""
        return self.source_state()[2]

    def push_error(self, code: int, message: str) -> None:
        """Queue an error as the instrument does (overflow replaces the last with -350)."""
        if len(self._errors) >= ERROR_QUEUE_SIZE:
            self._errors[-1] = (-350, "Queue overflow")
            return
        self._errors.append((code, message))

    @property
    def errors(self) -> list[tuple[int, str]]:
        """The queued errors, oldest first (inspection only; SYST:ERR? pops them)."""
        return list(self._errors)

    # -- messages -------------------------------------------------------------------------

    def process(self, message: str) -> Reply:
        """Execute one program message; return the reply (units' replies joined by ';')."""
        units = split_units(message)
        now = self.clock.now()
        for unit in units:
            self.commands.append(Command(now, now - self.epoch, unit))
        if self.io_latency and any(unit.partition(" ")[0].endswith("?") for unit in units):
            self.clock.sleep(self.io_latency)
        self._reading_asked = False
        replies = []
        for unit in units:
            try:
                reply = self._execute(unit)
            except ScpiError as error:
                self.push_error(error.code, error.message)
                continue
            if reply is not None:
                replies.append(reply)
        return Reply(";".join(replies) if replies else None, self._reading_asked)

    def _execute(self, unit: str) -> str | None:
        handler = self._plain.get(unit)
        if handler is not None:
            return handler()
        header, space, argument = unit.partition(" ")
        setter = self._with_argument.get(header) if space else None
        if setter is not None:
            setter(argument)
            return None
        if self.static is not None:
            try:
                return self.static(unit)
            except KeyError:
                pass
        raise ScpiError(-113, "Undefined header")

    def _command_table(self) -> tuple[dict[str, Callable[[], str | None]],
                                      dict[str, Callable[[str], None]]]:
        plain: dict[str, Callable[[], str | None]] = {
            "*RST": self._reset_command,
            "*CLS": self._clear_status,
            "SYST:ERR?": self._next_error,
            "OUTPUT?": lambda: "1" if self.output_enabled else "0",
        }
        with_argument: dict[str, Callable[[str], None]] = {"OUTPUT": self._set_output}
        if self.dialect == "2400":
            plain |= {
                ":SOURCE:CURRENT?": lambda: f"{self.setpoint:g}",
                ":SENSE:VOLTAGE:PROTECTION?": lambda: f"{self.compliance_voltage:g}",
                ":SENSE:VOLTAGE:PROTECTION:TRIPPED?": self._tripped,
                ":READ?": self._read_2400,
                ":SYSTEM:TIME:RESET": self._reset_time,
            }
            with_argument |= {
                ":SOURCE:CURRENT": self._set_current,
                ":SENSE:VOLTAGE:PROTECTION": self._set_compliance,
            }
        else:
            plain |= {
                ":SOUR:CURR?": lambda: f"{self.setpoint:g}",
                ":SOUR:CURR:VLIM?": lambda: f"{self.compliance_voltage:g}",
                ":SOUR:CURR:VLIM:TRIP?": self._tripped,
                READ_2450: self._read_2450,
            }
            with_argument |= {
                ":SOUR:CURR:LEV": self._set_current,
                ":SOUR:CURR:VLIM": self._set_compliance,
            }
        return plain, with_argument

    # -- command handlers -----------------------------------------------------------------

    def _reset_command(self) -> None:
        self.reset()

    def _clear_status(self) -> None:
        self._errors.clear()

    def _reset_time(self) -> None:
        self._time_origin = self.clock.now()

    def _next_error(self) -> str:
        code, message = self._errors.popleft() if self._errors else (0, "No error")
        if self.dialect == "2400":
            return f'{code},"{message}"'
        kind = 1 if code else 0
        return f'{code},"{message};{kind};0 0"'

    def _set_output(self, argument: str) -> None:
        on = _boolean(argument)
        now = self.clock.now()
        if on and self._first_on is None:
            self._first_on = now
        if not on:
            self.output_off_times.append(now - self.epoch)
        self.output_enabled = on

    def _set_current(self, argument: str) -> None:
        self.setpoint = _number(argument, -MAX_CURRENT_A, MAX_CURRENT_A)

    def _set_compliance(self, argument: str) -> None:
        low = -MAX_VOLTAGE_LIMIT_V if self.dialect == "2400" else 0.02
        self.compliance_voltage = abs(_number(argument, low, MAX_VOLTAGE_LIMIT_V))

    def _tripped(self) -> str:
        return "1" if self.in_compliance() else "0"

    def _measured(self) -> tuple[float, float, bool]:
        v, i, compliance = self.source_state()
        if not self.output_enabled:
            return self.phantom.voltage_noise(), 0.0, False
        v, i = self.phantom.measure(v, i)
        return v, i, compliance

    def _read_2400(self) -> str:
        self._reading_asked = True
        v, i, compliance = self._measured()
        status = STATUS_V_MEAS | STATUS_I_MEAS | STATUS_I_SOURCE
        if compliance:
            status |= STATUS_COMPLIANCE
        values = (v, i, NOT_A_NUMBER, self.timestamp(), float(status))
        return ",".join(f"{x:+.6E}" for x in values)

    def _read_2450(self) -> str:
        self._reading_asked = True
        v, i, _ = self._measured()
        return f"{v:+.6E},{i:+.6E},{self.timestamp():+.6E}"
