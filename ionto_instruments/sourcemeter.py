"""The `CurrentSource` interface implemented once on top of a PyMeasure SourceMeter driver.

`SourceMeterMixin` is mixed in *before* the PyMeasure class
(``class Keithley2400CurrentSource(SourceMeterMixin, Keithley2400)``) so that its safety
overrides win over the inherited API: strict ceilings with units in the message, strict reply
parsing, one I/O lock around every exchange, VISA errors as `InstrumentFault`, an interlock
that refuses to switch the output on before the source is configured, and a shutdown that
switches the output off at once instead of ramping.

PyMeasure quirks handled here (see the model modules for the per-model ones):

- ``Instrument.read()`` (read a raw message) collides with ``CurrentSource.read()`` (take a
  reading) and ``CommonBase.ask`` calls ``self.read()``; `ask` is therefore overridden to read
  the raw reply from the adapter.
- ``CurrentSource.__init__`` does not chain to ``super().__init__``; the mixin calls it and
  then the PyMeasure constructor explicitly.
- ``CurrentSource.__exit__`` precedes ``Instrument.__exit__`` (shutdown) in the MRO: leaving a
  ``with`` block writes the output off at once (``OUTPUT_OFF_COMMAND``, through
  `OutputGuard.off_now`, confirmed by read-back), then closes the session.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, NoReturn, Self

import pyvisa.errors
from pymeasure.adapters import Adapter, VISAAdapter
from pymeasure.instruments import Instrument
from pymeasure.instruments.common_base import DynamicProperty

from . import limits
from .models import MODEL_TABLE, ModelSpec, spec_for_idn
from .source import (
    MAX_COMPLIANCE_V,
    MAX_CURRENT_A,
    CurrentSource,
    InstrumentError,
    InstrumentFault,
    Reading,
    UnparsableReading,
    WrongInstrument,
    check_range,
)

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: VISA timeout for every exchange (`limits.INSTRUMENT_TIMEOUT`): a hung instrument is a fault
#: within a second (a 2400 reading at 1 NPLC takes tens of ms).
DEFAULT_TIMEOUT_MS = round(limits.INSTRUMENT_TIMEOUT.value * 1000)

#: VISA-layer exceptions that mean "the I/O failed" (timeout, connection lost, closed session,
#: socket errors). Raised inside the driver they become `InstrumentFault`, chained.
VISA_IO_ERRORS: tuple[type[BaseException], ...] = (pyvisa.errors.Error, OSError)

#: Allowed values (the PyMeasure ``values`` of the declarative properties), SI units.
CURRENT_LIMITS = (-MAX_CURRENT_A, MAX_CURRENT_A)
COMPLIANCE_LIMITS = (0.0, MAX_COMPLIANCE_V)
SOURCE_RANGE_LIMITS = (0.0, MAX_CURRENT_A)
NPLC_LIMITS = (0.01, 10.0)

#: *RST takes longer than an ordinary exchange: *OPC? after it waits up to this long.
RESET_TIMEOUT_MS = 10_000

#: Keithley replies 9.91e37 for "not a number" and 9.9e37 for overflow; neither is a reading.
SCPI_NOT_A_NUMBER = 9.9e37

# A SCPI <NR1>/<NR2>/<NR3> number; stricter than float(), which accepts "nan", "inf", "1_0".
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_ERROR_REPLY = re.compile(r"\s*([+-]?\d+)\s*,(.*)", re.DOTALL)


# -- validators ---------------------------------------------------------------------------


def strict_range_with_units(quantity: str, unit: str, *, low_open: bool = False,
                            hard_limits: tuple[float, float] | None = None,
                            ) -> Callable[[Any, Sequence[float]], float]:
    """Return a PyMeasure validator rejecting values outside ``values`` (and `hard_limits`).

    The ValueError names the quantity, the value and the allowed range with units (PyMeasure's
    strict_range message has no units); NaN, infinities, bools and non-numbers are rejected.
    `hard_limits` cannot be widened through the property's (dynamic) ``values``.
    """

    def validator(value: Any, values: Sequence[float]) -> float:
        low, high = float(min(values)), float(max(values))
        if hard_limits is not None:
            low, high = max(low, hard_limits[0]), min(high, hard_limits[1])
        allowed = f"{'(' if low_open else '['}{low:g}, {high:g}] {unit}"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{quantity} must be a number in {allowed}, got {value!r}")
        number = float(value)
        too_low = number <= low if low_open else number < low
        if math.isnan(number) or too_low or number > high:
            raise ValueError(f"{quantity} {number:g} {unit} is outside the allowed range "
                             f"{allowed}")
        return number

    validator.__doc__ = f"Validate the {quantity} in {unit}."
    return validator


#: Signed source current: within ±MAX_CURRENT (limits table) whatever the dynamic ``values`` say.
source_current_validator = strict_range_with_units("source current", "A",
                                                   hard_limits=CURRENT_LIMITS)
compliance_voltage_validator = strict_range_with_units("compliance voltage", "V", low_open=True,
                                                       hard_limits=COMPLIANCE_LIMITS)
source_range_validator = strict_range_with_units("source current range", "A", low_open=True,
                                                 hard_limits=SOURCE_RANGE_LIMITS)
nplc_validator = strict_range_with_units("integration time", "PLC", hard_limits=NPLC_LIMITS)


def current_mode_only(value: Any, values: Any) -> str:
    """Validate the source mode: only 'current'; this driver never sources voltage."""
    if value != "current":
        raise ValueError(f"source mode {value!r} is not allowed: this driver is an "
                         "iontophoresis current source and only sources 'current'")
    return value


def refuse_output_on(value: Any, values: Any = ()) -> bool:
    """Validate an output-state write: only False (off) may be written as a property.

    Switching on goes through output_on(), which checks the configuration first.
    """
    if value is not False and value not in (0,):
        raise ValueError("switching the output on through source_enabled is refused: call "
                         "output_on(), which checks that the source was configured first")
    return False


def refuse_voltage_sourcing(value: Any, values: Any = ()) -> NoReturn:
    """Refuse any voltage-source setting: a voltage source has no current limit on skin."""
    raise ValueError(f"voltage sourcing is disabled in this driver (refused: {value!r}); "
                     "it is an iontophoresis current source, use set_current()")


# -- reply parsing ------------------------------------------------------------------------


def parse_numbers(reply: str, count: int, command: str, raw: str | None = None) -> list[float]:
    """Parse exactly `count` comma-separated SCPI numbers; raise UnparsableReading otherwise.

    `raw` is the whole reply when `reply` is only a part of it; the message quotes it.
    """
    whole = reply if raw is None else raw
    fields = reply.split(",")
    if len(fields) != count:
        raise UnparsableReading(f"reply to {command!r} has {len(fields)} field(s) where "
                                f"{count} were expected: {whole!r}")
    values = []
    for field in fields:
        text = field.strip()
        if not _NUMBER.fullmatch(text):
            raise UnparsableReading(f"reply to {command!r} is not numeric ({text!r}): {whole!r}")
        values.append(float(text))
    return values


def parse_number(reply: str, command: str) -> float:
    """Parse one finite SCPI number (a setting read back); raise UnparsableReading otherwise."""
    (value,) = parse_numbers(reply, 1, command)
    return require_measured(value, "value", reply, command)


def parse_flag(reply: str, command: str, raw: str | None = None) -> bool:
    """Parse a 0/1 reply (output state, compliance trip) strictly; anything else raises."""
    (value,) = parse_numbers(reply, 1, command, raw)
    if value not in (0.0, 1.0):
        raise UnparsableReading(f"reply to {command!r} is not 0 or 1 ({reply!r}): "
                                f"{reply if raw is None else raw!r}")
    return value == 1.0


def require_measured(value: float, name: str, reply: str, command: str) -> float:
    """Return `value` if it is a real measurement, not Keithley's NaN/overflow marker."""
    if not math.isfinite(value) or abs(value) >= SCPI_NOT_A_NUMBER:
        raise UnparsableReading(f"reply to {command!r} has no valid {name} ({value:g}): "
                                f"{reply!r}")
    return value


# -- the mixin ----------------------------------------------------------------------------


class SourceMeterMixin(CurrentSource):
    """`CurrentSource` on top of a PyMeasure SourceMeter class (mix in first).

    A model class provides, besides its declarative properties (``source_current`` with
    ``dynamic=True``, ``source_enabled``, ``compliance_voltage``, ``reading``): `IDN_MODELS`,
    `OUTPUT_OFF_COMMAND` and `_write_configuration`.
    """

    #: Model numbers this class drives, as in the IDN's "MODEL nnnn" field.
    IDN_MODELS: ClassVar[frozenset[str]] = frozenset()
    #: The one write that switches the output off (emergency_off, shutdown), and on.
    OUTPUT_OFF_COMMAND: ClassVar[str] = ""
    OUTPUT_ON_COMMAND: ClassVar[str] = ""
    #: Written when a VISA device clear is not available (RS-232, test adapters).
    ABORT_COMMAND: ClassVar[str] = ""
    #: The model assumed until *IDN? names one (direct construction on an adapter).
    DEFAULT_MODEL: ClassVar[str] = ""
    #: Bound on SYST:ERR? reads in drain_errors (2400 queue: 10 entries).
    max_error_reads: int = 50

    def __init__(self, adapter: Adapter | str | int, name: str,
                 resource_name: str | None = None, **kwargs: Any) -> None:
        # CurrentSource.__init__ (lock, ceiling) does not chain, so both are called here;
        # the lock must exist before the PyMeasure constructor writes its first command.
        CurrentSource.__init__(self)
        self._resource_name = resource_name or (adapter if isinstance(adapter, str) else name)
        self._armed = False  # configure_current_source succeeded since the last emergency off
        self._open_args: tuple[Any, dict[str, Any]] | None = None  # for reopen()
        self.identity = ""  # the *IDN? reply seen by open()
        self.spec: ModelSpec = MODEL_TABLE[self.DEFAULT_MODEL]
        self.ovp_V: float | None = None  # the OVP read back by the last configuration
        self._output_on = False  # this driver switched the output on and not yet off
        super(CurrentSource, self).__init__(adapter, name, **kwargs)
        if resource_name is None:
            self._resource_name = (getattr(self.adapter, "resource_name", None)
                                   or self._resource_name)
        if not isinstance(getattr(type(self), "source_current", None), DynamicProperty):
            raise TypeError(f"{type(self).__name__}.source_current must be dynamic=True so "
                            "that the session's current ceiling can narrow it")
        self._apply_current_ceiling(self.current_ceiling)

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, resource_name: str, visa_library: Any = "", **kwargs: Any) -> Self:
        """Connect to `resource_name`, verify *IDN? first, then create the driver.

        *IDN? is asked on the bare adapter before the driver exists, so a wrong instrument
        receives nothing else (not even the 2400's FORMAT command). Nothing is energized.
        Raises InstrumentError naming the address if nothing is there or nothing answers,
        WrongInstrument if the IDN is not a supported model. `visa_library` is pyvisa's
        (path, "@py", "file.yaml@sim" or a VisaLibrary); `kwargs` go to the pyvisa resource.
        """
        kwargs.setdefault("write_termination", "\n")
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("timeout", DEFAULT_TIMEOUT_MS)
        try:
            adapter = VISAAdapter(resource_name, visa_library, **kwargs)
        except (*VISA_IO_ERRORS, ValueError) as exc:
            raise InstrumentError(f"cannot open {resource_name!r}: {exc}") from exc
        instrument = cls.from_adapter(adapter, resource_name)
        instrument._open_args = (visa_library, kwargs)
        return instrument

    def reopen(self) -> None:
        """Replace a lost VISA session by a fresh one to the same address (e.g. after a drop).

        Used by the shutdown path to switch the output off when the old session is gone.
        """
        if self._open_args is None:
            raise InstrumentFault(f"{self.resource_name}: cannot reopen a session that was "
                                  "not made by open()")
        visa_library, kwargs = self._open_args
        with self.io_lock:
            _close_quietly(self.adapter, self.resource_name)
            try:
                self.adapter = VISAAdapter(self.resource_name, visa_library, **kwargs)
            except (*VISA_IO_ERRORS, ValueError) as exc:
                raise InstrumentFault(f"cannot reopen {self.resource_name!r}: {exc}") from exc
        log.warning("%s: session reopened", self.resource_name)

    @classmethod
    def from_adapter(cls, adapter: Adapter, resource_name: str) -> Self:
        """Verify *IDN? through `adapter` and create the driver on it (closes it on failure)."""
        try:
            try:
                adapter.write("*IDN?")
                idn = adapter.read().strip()
            except (*VISA_IO_ERRORS, UnicodeDecodeError) as exc:
                raise InstrumentError(f"nothing answered *IDN? at {resource_name!r}: "
                                      f"{exc}") from exc
            if not idn:
                raise InstrumentError(f"nothing answered *IDN? at {resource_name!r} "
                                      "(empty reply)")
            cls.check_identity(idn, resource_name)
            cls._check_command_set(adapter, resource_name, idn)
            try:
                instrument = cls(adapter, resource_name=resource_name)
            except InstrumentFault as exc:
                raise InstrumentError(f"{resource_name!r} stopped answering after *IDN?: "
                                      f"{exc}") from exc
        except BaseException:
            _close_quietly(adapter, resource_name)
            raise
        instrument._set_identity(idn)
        log.info("%s: opened %s (%s)", resource_name, cls.__name__, idn)
        return instrument

    @classmethod
    def _check_command_set(cls, adapter: Adapter, resource_name: str, idn: str) -> None:
        """Hook: raise WrongInstrument if the instrument speaks another command set."""

    def _set_identity(self, idn: str) -> None:
        self.identity = idn
        spec = spec_for_idn(idn)
        if spec is not None:
            self.spec = spec

    @classmethod
    def idn_matches(cls, idn: str) -> bool:
        """Return True if `idn` is a Keithley of one of this class's models."""
        spec = spec_for_idn(idn)
        return spec is not None and spec.number in cls.IDN_MODELS

    @classmethod
    def check_identity(cls, idn: str, resource_name: str) -> None:
        """Raise WrongInstrument naming the address and the IDN unless `idn_matches`."""
        if not cls.idn_matches(idn):
            models = "/".join(sorted(cls.IDN_MODELS))
            raise WrongInstrument(f"the instrument at {resource_name!r} is not a Keithley "
                                  f"{models} SourceMeter: *IDN? answered {idn!r}")

    # -- I/O: one lock, VISA errors as InstrumentFault ------------------------------------

    @contextmanager
    def _visa_faults(self, command: str) -> Iterator[None]:
        try:
            yield
        except VISA_IO_ERRORS as exc:
            raise InstrumentFault(f"{self.resource_name}: I/O error on {command!r}: "
                                  f"{exc}") from exc

    def write(self, command: str, **kwargs: Any) -> None:
        """Write `command` holding the I/O lock; VISA errors become InstrumentFault."""
        with self.io_lock, self._visa_faults(command):
            super().write(command, **kwargs)

    def ask(self, command: str, query_delay: float | None = None) -> str:
        """Write `command` and read the raw reply as one locked exchange.

        Reads from the adapter because ``read()`` here is the interface's reading; undecodable
        bytes raise UnparsableReading with the raw bytes.
        """
        with self.io_lock, self._visa_faults(command):
            self.write(command)
            self.wait_for(query_delay)
            try:
                return self.adapter.read()
            except UnicodeDecodeError as exc:
                raise UnparsableReading(f"{self.resource_name}: undecodable reply to "
                                        f"{command!r}: {exc.object!r}") from exc

    # -- ceilings -------------------------------------------------------------------------

    def _apply_current_ceiling(self, amps: float) -> None:
        """Narrow the dynamic ``source_current`` values to ±`amps` (never above MAX_CURRENT)."""
        ceiling = check_range("current ceiling", amps, 0.0, MAX_CURRENT_A, "A")
        self.source_current_values = (-ceiling, ceiling)

    def _check_current(self, amps: Any) -> float:
        """Validate `amps` against the session ceiling without any I/O."""
        ceiling = self.current_ceiling
        return source_current_validator(amps, (-ceiling, ceiling))

    # -- the CurrentSource interface ------------------------------------------------------

    @property
    def resource_name(self) -> str:
        """Get the VISA address this source is connected to (str)."""
        return self._resource_name

    def identify(self) -> str:
        """Return the instrument's identification string (*IDN?); learns the model from it."""
        with self.io_lock:
            idn = self.id
        self._set_identity(idn)
        return idn

    def check_limits(self, compliance_voltage: float, max_current: float) -> None:
        """Pre-flight: ValueError naming the model if it cannot deliver these limits."""
        spec = self.spec
        if compliance_voltage > spec.max_voltage_V:
            raise ValueError(f"compliance {compliance_voltage:g} V is above what the "
                             f"{spec.name} can deliver ({spec.max_voltage_V:g} V max); set "
                             f"--compliance {spec.max_voltage_V:g} or lower")
        if abs(max_current) > spec.max_current_A:
            raise ValueError(f"current {abs(max_current) * 1e3:g} mA is above what the "
                             f"{spec.name} can source ({spec.max_current_A:g} A max)")

    def _reset_and_wait(self) -> None:
        """*RST, then *OPC? with a timeout long enough for a real reset."""
        self.write("*RST")
        connection = getattr(self.adapter, "connection", None)
        old = getattr(connection, "timeout", None)
        try:
            if old is not None:
                connection.timeout = RESET_TIMEOUT_MS
            reply = self.ask("*OPC?").strip()
        finally:
            if old is not None:
                connection.timeout = old
        if reply != "1":
            raise InstrumentFault(f"{self.resource_name}: *OPC? after *RST answered "
                                  f"{reply!r}, expected '1'")

    def _set_ovp(self, compliance: float) -> None:
        """Set OVP at the next level above `compliance` and read it back (hook per family)."""

    def configure_current_source(self, compliance_voltage: float,
                                 source_range: float = MAX_CURRENT_A,
                                 nplc: float = 1.0) -> None:
        """Reset and configure as a current source (docs/scpi.md order); output stays off.

        All arguments are validated before anything is written; the compliance is read back
        and the error queue must be empty afterwards, else InstrumentError.
        """
        compliance = compliance_voltage_validator(compliance_voltage, COMPLIANCE_LIMITS)
        current_range = source_range_validator(source_range, SOURCE_RANGE_LIMITS)
        speed = nplc_validator(nplc, NPLC_LIMITS)
        self.check_limits(compliance, current_range)
        with self.io_lock:
            self._armed = False
            self._output_on = False
            self._write_configuration(compliance, current_range, speed)
            errors = self.drain_errors()
            if errors:
                raise InstrumentError(f"{self.resource_name}: configuration rejected: "
                                      f"{'; '.join(errors)}")
            self._armed = True

    @abstractmethod
    def _write_configuration(self, compliance: float, source_range: float, nplc: float) -> None:
        """Write the model's reset + configuration sequence (validated arguments)."""

    def _verify_compliance(self, compliance: float) -> None:
        """Read the compliance back; a different value means the instrument did not take it."""
        actual = self.compliance_voltage
        if not math.isclose(actual, compliance, rel_tol=1e-4, abs_tol=1e-3):
            raise InstrumentError(f"{self.resource_name}: compliance voltage reads back "
                                  f"{actual:g} V, {compliance:g} V was set")

    def set_current(self, amps: float) -> None:
        """Set the source current in A (signed); ValueError beyond the ceiling, nothing sent.

        The error queue is read right after: a setpoint the instrument rejected (e.g. +825 in
        auto ohms) is an InstrumentFault now, not a surprise at shutdown.
        """
        self._check_current(amps)
        with self.io_lock:
            self.source_current = amps
            self._raise_on_errors(f"setpoint {amps:g} A rejected")

    def _raise_on_errors(self, what: str) -> None:
        errors = self.drain_errors()
        if errors:
            raise InstrumentFault(f"{self.resource_name}: {what}: {'; '.join(errors)}")

    def output_on(self) -> None:
        """Switch the output on; refused until configure_current_source() has succeeded.

        The error queue is read right after (e.g. 2400 +802: output blocked by output enable).
        """
        with self.io_lock:
            if not self._armed:
                raise InstrumentError(f"{self.resource_name}: refusing to switch the output on: "
                                      "configure_current_source() has not succeeded since "
                                      "opening or since the last emergency off")
            self.write(self.OUTPUT_ON_COMMAND)
            self._output_on = True
            self._raise_on_errors("output on rejected")

    def output_off(self) -> None:
        """Switch the output off (the protocol ramps to zero first when it can)."""
        with self.io_lock:
            self.source_enabled = False
            self._output_on = False

    def enable_source(self) -> None:
        """Switch the output on through output_on() (PyMeasure's API, with our checks)."""
        self.output_on()

    def disable_source(self) -> None:
        """Switch the output off (PyMeasure's API)."""
        self.output_off()

    def emergency_off(self, lock_timeout: float = 1.0) -> None:
        """Clear the device, then switch the output off: no ramp, no query, any thread.

        The instrument runs one command at a time: an off-write sent while a reading is in
        progress waits for it. A device clear (VISA clear; else the abort command) cuts the
        reading short, so the off-write takes effect at once. When another thread is in an
        exchange, the clear and the write go out without waiting for it (`lock_timeout` is
        kept for callers; it no longer delays the off-write). Disarms output_on().
        """
        del lock_timeout
        acquired = self.io_lock.acquire(blocking=False)
        try:
            self._armed = False
            self._output_on = False
            if not acquired:
                log.warning("%s: EMERGENCY OFF during an exchange: clearing the device and "
                            "writing %r without waiting", self.resource_name,
                            self.OUTPUT_OFF_COMMAND)
            self._device_clear()
            try:
                self.adapter.write(self.OUTPUT_OFF_COMMAND)
            except VISA_IO_ERRORS as exc:
                log.critical("%s: EMERGENCY OFF FAILED: %r not written: %s",
                             self.resource_name, self.OUTPUT_OFF_COMMAND, exc)
                raise InstrumentFault(f"{self.resource_name}: emergency off "
                                      f"{self.OUTPUT_OFF_COMMAND!r} failed: {exc}") from exc
            log.warning("%s: emergency off: %r written", self.resource_name,
                        self.OUTPUT_OFF_COMMAND)
        finally:
            if acquired:
                self.io_lock.release()

    def _device_clear(self) -> None:
        """VISA device clear (aborts a reading in progress); else write the abort command.

        Raw LAN sockets and RS-232 have no device clear: pyvisa-py's "clear" there only
        drains the input (and spins on a dropped socket), so they get the abort command.
        """
        connection = getattr(self.adapter, "connection", None)
        name = self.resource_name.strip().upper()
        if name.endswith("::SOCKET") or name.startswith("ASRL"):
            connection = None
        try:
            if connection is not None and hasattr(connection, "clear"):
                connection.clear()
                return
        except VISA_IO_ERRORS as exc:
            log.warning("%s: device clear failed (%s); writing %r", self.resource_name, exc,
                        self.ABORT_COMMAND)
        try:
            self.adapter.write(self.ABORT_COMMAND)
        except VISA_IO_ERRORS as exc:
            log.error("%s: %r failed: %s", self.resource_name, self.ABORT_COMMAND, exc)

    def read(self) -> Reading:
        """Take one combined reading with a single query (the model's ``reading``).

        Refused with the output off: a 2400 answers :READ? then with +803 and no reply at
        all, so the host would only see a timeout.
        """
        with self.io_lock:
            if not self._output_on:
                raise InstrumentFault(f"{self.resource_name}: refusing to take a reading with "
                                      "the output off (the 2400 answers +803 and no reply)")
            return self.reading

    def output_enabled(self) -> bool:
        """Read back from the instrument whether the output is on (OUTPUT?)."""
        with self.io_lock:
            return self.source_enabled

    def drain_errors(self) -> list[str]:
        """Read SYST:ERR? until code 0 (at most `max_error_reads` times); return the errors."""
        errors, complete = self._read_error_queue()
        texts = [raw for _, _, raw in errors]
        if not complete:
            texts.append(f"(error queue not empty after {self.max_error_reads} reads)")
            log.error("%s: %s", self.resource_name, texts[-1])
        return texts

    def _read_error_queue(self) -> tuple[list[tuple[int, str, str]], bool]:
        """[(code, message, raw reply)] until code 0, and whether the queue was emptied."""
        errors: list[tuple[int, str, str]] = []
        with self.io_lock:
            for _ in range(self.max_error_reads):
                reply = self.ask("SYST:ERR?").strip()
                match = _ERROR_REPLY.fullmatch(reply)
                if match is None:
                    raise InstrumentFault(f"{self.resource_name}: unparsable reply to "
                                          f"'SYST:ERR?': {reply!r}")
                code = int(match.group(1))
                if code == 0:
                    return errors, True
                log.error("%s: instrument error %s", self.resource_name, reply)
                errors.append((code, match.group(2).strip().strip('"'), reply))
        return errors, False

    def close(self) -> None:
        """Close the session (switches nothing); I/O errors while closing are only logged."""
        with self.io_lock:
            try:
                self.adapter.close()
            except VISA_IO_ERRORS as exc:
                log.warning("%s: error while closing: %s", self.resource_name, exc)

    # -- the inherited PyMeasure API, narrowed --------------------------------------------

    def check_errors(self) -> list[tuple[int, str]]:
        """Get the errors (code, message) from the queue, as PyMeasure's check_errors does,
        but bounded (PyMeasure's loop is unbounded)."""
        errors, _ = self._read_error_queue()
        return [(code, message) for code, message, _ in errors]

    def shutdown(self) -> None:
        """Switch the output off at once (no ramp), then do PyMeasure's shutdown bookkeeping.

        PyMeasure's own shutdown ramps for ~0.6 s first and leaves the output on if that I/O
        fails; here the single off-write comes first and the bookkeeping always runs.
        """
        log.info("Shutting down %s.", self.name)
        try:
            self.emergency_off()
        finally:
            Instrument.shutdown(self)

    def ramp_to_current(self, target_current: float, steps: int = 30,
                        pause: float = 20e-3) -> None:
        """Ramp to `target_current` in A (PyMeasure's ramp) after checking it against the
        ceiling, so that an out-of-range target sends nothing at all."""
        self._check_current(target_current)
        super().ramp_to_current(target_current, steps, pause)

    def apply_voltage(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refuse: voltage sourcing is disabled in this driver."""
        refuse_voltage_sourcing("apply_voltage()")

    def ramp_to_voltage(self, target_voltage: float, *args: Any, **kwargs: Any) -> NoReturn:
        """Refuse: voltage sourcing is disabled in this driver."""
        refuse_voltage_sourcing(f"ramp_to_voltage({target_voltage!r})")


def _close_quietly(adapter: Adapter, resource_name: str) -> None:
    try:
        adapter.close()
    except Exception as exc:  # closing a dead session must not hide the real error
        log.warning("%s: error while closing after a failed open: %s", resource_name, exc)


__all__ = [
    "COMPLIANCE_LIMITS",
    "CURRENT_LIMITS",
    "NPLC_LIMITS",
    "SOURCE_RANGE_LIMITS",
    "VISA_IO_ERRORS",
    "SourceMeterMixin",
    "compliance_voltage_validator",
    "current_mode_only",
    "nplc_validator",
    "parse_flag",
    "parse_number",
    "parse_numbers",
    "refuse_output_on",
    "refuse_voltage_sourcing",
    "require_measured",
    "source_current_validator",
    "source_range_validator",
    "strict_range_with_units",
]
