"""The source-measure unit model: what a Keithley 2400 or 2450 family SMU answers on a load.

Strict like the hardware (docs/scpi.md cites the manual for each behaviour):

- 2400: `:READ?` with the output off is error +803 and NO reply (the host times out);
  resistance sensing in AUTO ohms (the *RST default) sources the auto-ohms test current,
  positive, whatever the programmed level, and every setpoint is rejected with +825;
  commands queue behind a reading in progress (its duration from NPLC and line frequency),
  only a device clear cuts it short; OVP clamps at the selected level (status bit 4).
- 2450 family: `*LANG?` (TSP / SCPI2400 modes answer nothing but *IDN? and *LANG);
  the interlock: not asserted, the output is clamped near 42 V; OVP tokens PROTn, reset by
  `:SOUR:FUNC`; the reading's source status (bit 5: the source was limited).
- both: per-model IDN and limits (`ionto_instruments.models`), -113 undefined header,
  -222 data out of range, -224 illegal parameter value.

Every other command goes to a `static` lookup (the pyvisa-sim YAML device). Headers are
matched exactly as spelled in docs/scpi.md: a different spelling is an undefined header
(-113), so contract drift shows up in the error queue. Not thread-safe by itself: the pyvisa
backend serializes access.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Literal, NamedTuple

from ..clock import Clock
from ..models import MODEL_TABLE, PROT_LEVELS_2450, ModelSpec
from .phantom import PhantomParams, SkinPhantom
from .scenarios import Scenario

Dialect = Literal["2400", "2450"]

#: Answers a command the model does not own: the reply, None for no reply; KeyError if unknown.
StaticAnswer = Callable[[str], str | None]

#: Compliance (2400) / voltage limit (2450) after *RST.
DEFAULT_COMPLIANCE_V = 21.0
#: The 2450 family with the interlock not asserted: "less than ±42 V" (2461/2470 Reference
#: Manuals, :OUTPut:INTerlock:TRIPped?); the 2450 Rev. B manual says ±37 V nominal.
INTERLOCK_CLAMP_V = 42.0
#: Reading duration = overhead + factor x functions x NPLC / line frequency: 71 ms at 60 Hz
#: and 84 ms at 50 Hz for V+I at 1 NPLC with autozero (docs/evidence.md "Instruments", from
#: the 2400 manual's speed specifications).
READING_OVERHEAD_S = 0.006
READING_FACTOR = 1.95
#: Languages of the 2450 family (*LANG, 2450 Reference Manual p. B-5).
LANGUAGES = ("SCPI", "TSP", "SCPI2400")
#: Both keep at most this many errors; the last slot becomes -350 "Queue overflow".
ERROR_QUEUE_SIZE = 10
#: Commands kept in the log (a day at 1 Hz fits; older entries drop off).
COMMAND_LOG_SIZE = 100_000

#: 2400 status word bits (2400 manual §18, :FORMat:ELEMents STATus).
STATUS_COMPLIANCE = 1 << 3
STATUS_OVP = 1 << 4
STATUS_RANGE_COMPLIANCE = 1 << 16
STATUS_V_MEAS = 1 << 11
STATUS_I_MEAS = 1 << 12
STATUS_I_SOURCE = 1 << 15
#: The 2400 reports "not measured" (resistance here) as 9.91e37, its NaN.
NOT_A_NUMBER = 9.91e37

READ_2450 = ':READ? "defbuffer1", READ, SOUR, REL, SOURSTAT'
#: 2450 buffer source-status bits (2450 Reference Manual p. 8-29, 2470 p. 14-32).
SOURSTAT_PROTECTION = 4
SOURSTAT_READBACK = 8
SOURSTAT_LIMIT = 32
SOURSTAT_OUTPUT = 128
#: IDN replies per family (serial numbers and firmware as on real units).
IDN_2400 = "KEITHLEY INSTRUMENTS INC.,MODEL {},4109876,C32   Oct  4 2010 14:20:11/A02  /S/K"
IDN_2450 = "KEITHLEY INSTRUMENTS,MODEL {},04412345,1.7.3c"


class Command(NamedTuple):
    """One SCPI message unit as it arrived: absolute clock time, run-axis time, text."""

    time: float
    run_time: float
    text: str


class Reply(NamedTuple):
    """The reply to one program message (None: nothing to read), whether it is a reading,
    and the clock time it is ready (a reading takes time; a queued command waits)."""

    text: str | None
    reading: bool
    ready_at: float = 0.0


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
    """A current-sourcing SMU of one model on a load (skin phantom or fixed resistor)."""

    def __init__(self, dialect: Dialect, clock: Clock, scenario: Scenario | None = None,
                 phantom: PhantomParams | None = None, seed: int = 0,
                 io_latency: float = 0.0, static: StaticAnswer | None = None,
                 instrument: str | None = None, line_frequency: float = 60.0,
                 load_ohm: float | None = None, language: str = "SCPI",
                 interlock: bool = True) -> None:
        if dialect not in ("2400", "2450"):
            raise ValueError(f"unknown dialect {dialect!r}: choose '2400' or '2450'")
        if not (math.isfinite(io_latency) and io_latency >= 0):
            raise ValueError(f"io_latency must be a finite number >= 0, got {io_latency!r}")
        number = instrument or dialect
        spec = MODEL_TABLE.get(number)
        if spec is None or spec.family != dialect:
            raise ValueError(f"model {number!r} is not of the {dialect} family")
        if line_frequency not in (50.0, 60.0):
            raise ValueError(f"line frequency must be 50 or 60 Hz, got {line_frequency!r}")
        if load_ohm is not None and not (math.isfinite(load_ohm) and load_ohm > 0):
            raise ValueError(f"load resistance must be a finite number > 0, got {load_ohm!r}")
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
        self.dialect: Dialect = dialect
        self.spec: ModelSpec = spec
        self.clock = clock
        self.scenario = scenario or Scenario()
        self.phantom = SkinPhantom(phantom, seed)
        self.io_latency = float(io_latency)
        self.static = static
        self.line_frequency = float(line_frequency)
        #: A fixed resistor across the leads instead of the skin phantom (selftest, tests).
        self.load_ohm = load_ohm
        #: 2450 family: the command set in use (*LANG takes effect at the next power cycle).
        self.language = language
        self.pending_language = language
        #: 2450 family: True when the rear-panel safety interlock is asserted (closed).
        self.interlock = interlock
        #: Every message unit received, with its clock and run-axis arrival times.
        self.commands: deque[Command] = deque(maxlen=COMMAND_LOG_SIZE)
        #: Run-axis times (s since the last *RST) at which an output-off command took effect.
        self.output_off_times: list[float] = []
        #: Clock time until which a reading is in progress (commands queue behind it).
        self.busy_until = float("-inf")
        self._errors: deque[tuple[int, str]] = deque()
        self._reading_asked = False
        self._exec_time = 0.0
        self._plain, self._with_argument = self._command_table()
        self.reset()

    # -- state ----------------------------------------------------------------------------

    def reset(self) -> None:
        """*RST: output off, source 0 A, default compliance, run axis and timestamps to 0.

        2400: sense function CURR only, ohms mode AUTO, OVP NONE; 2450: OVP NONE.
        """
        now = self.clock.now()
        self.output_enabled = False
        self.setpoint = 0.0
        self.compliance_voltage = DEFAULT_COMPLIANCE_V
        self.sense_functions: set[str] = {"CURR"}
        self.resistance_mode = "AUTO"
        self.ovp_level: float | None = None
        self.nplc = 1.0
        self.epoch = now
        self._time_origin = now
        self._first_on: float | None = None

    def power_cycle(self) -> None:
        """Switch the instrument off and on: a pending *LANG takes effect, state is reset."""
        self.language = self.pending_language
        self.busy_until = float("-inf")
        self._errors.clear()
        self.reset()

    def run_time(self) -> float:
        """Seconds of clock time since the last *RST: the axis fault minutes refer to."""
        return self.clock.now() - self.epoch

    def timestamp(self) -> float:
        """The instrument's timestamp: seconds since *RST or :SYSTEM:TIME:RESET."""
        return self.clock.now() - self._time_origin

    def resistance(self) -> float:
        """The true (noise-free) resistance between the electrodes now, faults included."""
        now = self.clock.now()
        if self.load_ohm is not None:
            return self.scenario.resistance(self.load_ohm, now - self.epoch)
        time_on = None if self._first_on is None else now - self._first_on
        return self.scenario.resistance(self.phantom.resistance(time_on), now - self.epoch)

    def auto_ohms_active(self) -> bool:
        """2400: resistance is sensed in AUTO ohms, so the instrument sources its test current."""
        return (self.dialect == "2400" and "RES" in self.sense_functions
                and self.resistance_mode == "AUTO")

    def voltage_limit(self) -> tuple[float, str]:
        """The voltage the source is clamped at now and what sets it (compliance, ovp, ...)."""
        limits = [(self.compliance_voltage, "compliance")]
        if self.ovp_level is not None:
            limits.append((self.ovp_level, "ovp"))
        if self.dialect == "2450" and not self.interlock:
            limits.append((INTERLOCK_CLAMP_V, "interlock"))
        limits.append((self.spec.max_voltage_V, "model"))
        return min(limits)

    def source_state(self) -> tuple[float, float, bool]:
        """Return the true (V, I, clamped) now: V = I·R clamped at the voltage limit."""
        if not self.output_enabled:
            return 0.0, 0.0, False
        r = self.resistance()
        amps = self.spec.auto_ohms_current(r) if self.auto_ohms_active() else self.setpoint
        if amps == 0:
            return 0.0, 0.0, False
        v = amps * r
        limit, _ = self.voltage_limit()
        if abs(v) <= limit:
            return v, amps, False
        v = math.copysign(limit, amps)
        return v, v / r, True

    def load_current(self) -> float:
        """The true current through the load now (A): what the skin receives."""
        return self.source_state()[1]

    def in_compliance(self) -> bool:
        """True when the source is clamped at its voltage limit (compliance, OVP, interlock)."""
        return self.source_state()[2]

    def reading_duration(self) -> float:
        """Seconds one reading takes: NPLC and line frequency, per measured function."""
        functions = len(self.sense_functions) if self.dialect == "2400" else 1
        return (READING_OVERHEAD_S
                + READING_FACTOR * max(1, functions) * self.nplc / self.line_frequency)

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

    def add_commands(self, plain: dict[str, Callable[[], str | None]] | None = None,
                     with_argument: dict[str, Callable[[str], None]] | None = None) -> None:
        """Teach the model more commands (exact unit text, or header + argument) without
        editing it: the hook for features modelled in their own module."""
        self._plain.update(plain or {})
        self._with_argument.update(with_argument or {})

    def device_clear(self) -> None:
        """Device clear (VISA clear / GPIB SDC): abort the reading in progress at once."""
        self.busy_until = min(self.busy_until, self.clock.now())

    # -- messages -------------------------------------------------------------------------

    def process(self, message: str) -> Reply:
        """Execute one program message; return the reply (units' replies joined by ';').

        The message executes when the reading in progress ends (commands queue behind it);
        its reply is ready when its own reading, if any, has been taken.
        """
        units = split_units(message)
        now = self.clock.now()
        for unit in units:
            self.commands.append(Command(now, now - self.epoch, unit))
        if self.io_latency and any(unit.partition(" ")[0].endswith("?") for unit in units):
            self.clock.sleep(self.io_latency)
            now = self.clock.now()
        self._exec_time = max(now, self.busy_until)
        self._reading_asked = False
        replies = []
        for unit in units:
            if self.dialect == "2450" and self.language != "SCPI" and not unit.startswith(
                    ("*IDN?", "*LANG")):
                continue  # another command set: nothing a SCPI program sends makes sense
            try:
                reply = self._execute(unit)
            except ScpiError as error:
                self.push_error(error.code, error.message)
                continue
            if reply is not None:
                replies.append(reply)
        ready = max(self._exec_time, self.busy_until if self._reading_asked else 0.0)
        return Reply(";".join(replies) if replies else None, self._reading_asked, ready)

    def _execute(self, unit: str) -> str | None:
        handler = self._plain.get(unit)
        if handler is not None:
            return handler()
        header, space, argument = unit.partition(" ")
        setter = self._with_argument.get(header) if space else None
        if setter is not None:
            setter(argument.strip())
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
            "*OPC?": lambda: "1",
            "*IDN?": self._idn,
            "SYST:ERR?": self._next_error,
            "OUTPUT?": lambda: "1" if self.output_enabled else "0",
        }
        with_argument: dict[str, Callable[[str], None]] = {"OUTPUT": self._set_output}
        if self.dialect == "2400":
            nr3 = _nr3
            plain |= {
                ":SOURCE:CURRENT?": lambda: nr3(self.setpoint),
                ":SENSE:VOLTAGE:PROTECTION?": lambda: nr3(self.compliance_voltage),
                ":SENSE:VOLTAGE:PROTECTION:TRIPPED?": self._tripped,
                ":SOURCE:VOLTAGE:PROTECTION?": lambda: nr3(
                    self.ovp_level if self.ovp_level is not None else self.spec.max_voltage_V),
                ":SENSE:FUNCTION:ALL": self._sense_all,
                ":SENSE:FUNCTION:ON:ALL": self._sense_all,
                ":SENSE:FUNCTION:OFF:ALL": self._sense_none,
                ":SENSE:FUNCTION:ON?": self._sense_query,
                ":SENSE:RESISTANCE:MODE?": lambda: "MAN" if self.resistance_mode == "MAN"
                else "AUTO",
                ":READ?": self._read_2400,
                ":MEASURE:VOLTAGE?": lambda: self._measure("VOLT"),
                ":MEASURE:CURRENT?": lambda: self._measure("CURR"),
                ":MEASURE:RESISTANCE?": lambda: self._measure("RES"),
                ":SYSTEM:TIME:RESET": self._reset_time,
                ":SYSTEM:LFREQUENCY?": lambda: f"{self.line_frequency:g}",
                ":ABORT": lambda: None,
            }
            with_argument |= {
                ":SOURCE:CURRENT": self._set_current,
                ":SENSE:VOLTAGE:PROTECTION": self._set_compliance,
                ":SOURCE:VOLTAGE:PROTECTION": self._set_ovp_2400,
                ":SENSE:FUNCTION:ON": self._sense_on,
                ":SENSE:RESISTANCE:MODE": self._set_resistance_mode,
                ":SENSE:CURRENT:NPLCYCLES": self._set_nplc,
            }
        else:
            plain |= {
                "*LANG?": lambda: self.language,
                ":SOUR:CURR?": lambda: f"{self.setpoint:g}",
                ":SOUR:CURR:VLIM?": lambda: f"{self.compliance_voltage:g}",
                ":SOUR:CURR:VLIM:TRIP?": self._tripped,
                ":SOUR:VOLT:PROT?": lambda: _prot_token(self.ovp_level),
                ":SOUR:VOLT:PROT:TRIP?": lambda: "1" if self._clamped_by("ovp") else "0",
                ":OUTP:INT:TRIP?": lambda: "1" if self.interlock else "0",
                ":SOUR:FUNC CURR": self._source_function_current,
                READ_2450: self._read_2450,
            }
            with_argument |= {
                "*LANG": self._set_language,
                ":SOUR:CURR:LEV": self._set_current,
                ":SOUR:CURR:VLIM": self._set_compliance,
                ":SOUR:VOLT:PROT": self._set_ovp_2450,
                ":SENS:VOLT:NPLC": self._set_nplc,
            }
        return plain, with_argument

    # -- command handlers -----------------------------------------------------------------

    def _idn(self) -> str:
        template = IDN_2400 if self.dialect == "2400" else IDN_2450
        return template.format(self.spec.number)

    def _reset_command(self) -> None:
        self.reset()

    def _clear_status(self) -> None:
        self._errors.clear()

    def _reset_time(self) -> None:
        self._time_origin = self._exec_time

    def _next_error(self) -> str:
        code, message = self._errors.popleft() if self._errors else (0, "No error")
        if self.dialect == "2400":
            return f'{code:+d},"{message}"' if code else '0,"No error"'
        kind = 1 if code else 0
        return f'{code},"{message};{kind};0 0"'

    def _set_output(self, argument: str) -> None:
        on = _boolean(argument)
        at = self._exec_time
        if on and self._first_on is None:
            self._first_on = at
        if not on and self.output_enabled:
            self.output_off_times.append(at - self.epoch)
        self.output_enabled = on

    def _set_current(self, argument: str) -> None:
        value = _number(argument, -self.spec.max_current_A, self.spec.max_current_A)
        if self.auto_ohms_active():
            raise ScpiError(825, "Invalid with auto-ohms on")
        self.setpoint = value

    def _set_compliance(self, argument: str) -> None:
        top = self.spec.max_voltage_V
        low = -top if self.dialect == "2400" else 0.02
        self.compliance_voltage = abs(_number(argument, low, top))

    def _set_nplc(self, argument: str) -> None:
        self.nplc = _number(argument, 0.01, 10.0)

    def _set_ovp_2400(self, argument: str) -> None:
        """2400 manual p. 18-81: below the lowest level -> lowest, between -> the lower,
        above the highest -> NONE."""
        if argument.upper() == "NONE":
            self.ovp_level = None
            return
        value = abs(_number(argument, -self.spec.max_voltage_V, self.spec.max_voltage_V))
        levels = self.spec.ovp_levels_V
        if value > levels[-1]:
            self.ovp_level = None
            return
        self.ovp_level = max([lv for lv in levels if lv <= value] or [levels[0]])

    def _set_ovp_2450(self, argument: str) -> None:
        token = argument.upper()
        if token == "NONE":
            self.ovp_level = None
            return
        if not token.startswith("PROT"):
            raise ScpiError(-224, "Illegal parameter value")
        try:
            level = float(token[4:])
        except ValueError:
            raise ScpiError(-224, "Illegal parameter value") from None
        if level not in PROT_LEVELS_2450 or level not in self.spec.ovp_levels_V:
            raise ScpiError(-224, "Illegal parameter value")
        self.ovp_level = level

    def _source_function_current(self) -> None:
        """:SOUR:FUNC CURR: also resets the overvoltage protection (PROTn) to NONE."""
        self.ovp_level = None

    def _set_language(self, argument: str) -> None:
        token = argument.strip().upper()
        if token not in LANGUAGES:
            raise ScpiError(-224, "Illegal parameter value")
        self.pending_language = token

    def _sense_all(self) -> None:
        self.sense_functions = {"VOLT", "CURR", "RES"}

    def _sense_none(self) -> None:
        self.sense_functions = set()

    def _sense_on(self, argument: str) -> None:
        names = {"VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR",
                 "RES": "RES", "RESISTANCE": "RES"}
        wanted = set()
        for item in argument.split(","):
            key = item.strip().strip("\"'").upper().removesuffix(":DC")
            if key not in names:
                raise ScpiError(-224, "Illegal parameter value")
            wanted.add(names[key])
        self.sense_functions |= wanted

    def _sense_query(self) -> str:
        order = [("VOLT", '"VOLT:DC"'), ("CURR", '"CURR:DC"'), ("RES", '"RES"')]
        return ",".join(text for key, text in order if key in self.sense_functions)

    def _set_resistance_mode(self, argument: str) -> None:
        token = argument.upper()
        if token in ("MAN", "MANUAL"):
            self.resistance_mode = "MAN"
        elif token == "AUTO":
            self.resistance_mode = "AUTO"
        else:
            raise ScpiError(-224, "Illegal parameter value")

    def _tripped(self) -> str:
        return "1" if self._clamped_by("compliance") else "0"

    def _clamped_by(self, what: str) -> bool:
        return self.in_compliance() and self.voltage_limit()[1] == what

    def _measured(self) -> tuple[float, float, bool]:
        v, i, compliance = self.source_state()
        if not self.output_enabled:
            return self.phantom.voltage_noise(), 0.0, False
        v, i = self.phantom.measure(v, i)
        return v, i, compliance

    def _start_reading(self) -> None:
        self._reading_asked = True
        self.busy_until = self._exec_time + self.reading_duration()

    def _read_2400(self) -> str | None:
        if not self.output_enabled:
            raise ScpiError(803, "Not permitted with OUTPUT off")
        self._start_reading()
        v, i, clamped = self._measured()
        status = STATUS_V_MEAS | STATUS_I_MEAS | STATUS_I_SOURCE
        if clamped:
            status |= STATUS_OVP if self.voltage_limit()[1] == "ovp" else STATUS_COMPLIANCE
        r = v / i if ("RES" in self.sense_functions and i) else NOT_A_NUMBER
        # A function not sensed reads as NaN, except the source function, which reads as its
        # programmed level (2400 manual §18, :FORMat:ELEMents).
        values = (v if "VOLT" in self.sense_functions else NOT_A_NUMBER,
                  i if "CURR" in self.sense_functions else self.setpoint,
                  r, self.timestamp(), float(status))
        return ",".join(f"{x:+.6E}" for x in values)

    def _measure(self, function: str) -> str | None:
        """:MEASure:<function>?: CONFigure (that function only) + output ON + :READ?."""
        self.sense_functions = {function}
        self._set_output("1")
        return self._read_2400()

    def _read_2450(self) -> str:
        self._start_reading()
        v, i, clamped = self._measured()
        status = SOURSTAT_READBACK
        if self.output_enabled:
            status |= SOURSTAT_OUTPUT
        if clamped:
            status |= SOURSTAT_PROTECTION if self.voltage_limit()[1] == "ovp" else SOURSTAT_LIMIT
        return f"{v:+.6E},{i:+.6E},{self.timestamp():+.6E},{status:d}"


def _nr3(value: float) -> str:
    """A number as the 2400 sends it (<NR3>, e.g. +4.000000E+01)."""
    return f"{value:+.6E}"


def _prot_token(level: float | None) -> str:
    return "NONE" if level is None else f"PROT{level:g}"
