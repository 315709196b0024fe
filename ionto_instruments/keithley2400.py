"""Keithley 2400 series SourceMeter (2400/2401/2410/2420/2425/2430/2440) as a current source.

PyMeasure's `Keithley2400` with the `CurrentSource` interface mixed in; the SCPI it sends is
docs/scpi.md, section "Keithley 2400 series". Properties redefined here narrow the inherited
API: source current and compliance with strict ceilings, current mode only, strict parsing.
"""

from __future__ import annotations

from typing import Any, NoReturn

from pymeasure.adapters import Adapter
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2400

from .models import models_of
from .source import InstrumentError, Reading, UnparsableReading
from .sourcemeter import (
    COMPLIANCE_LIMITS,
    CURRENT_LIMITS,
    NPLC_LIMITS,
    SOURCE_RANGE_LIMITS,
    SourceMeterMixin,
    compliance_voltage_validator,
    current_mode_only,
    nplc_validator,
    parse_flag,
    parse_number,
    parse_numbers,
    refuse_output_on,
    refuse_voltage_sourcing,
    require_measured,
    source_current_validator,
    source_range_validator,
    strict_range_with_units,
)

_MEASURE_REFUSED = ("{0} is refused on this driver: PyMeasure's Keithley2400.{0} sends "
                    ":MEASURE:...?, which switches the output on without our checks; use "
                    "read() with the output on")

READ_COMMAND = ":READ?"
FORMAT_COMMAND = ":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS"

#: Status word bits (2400 User's Manual §18, :FORMat:ELEMents, STATus element): bit 3 "real
#: compliance", bit 4 over-voltage protection (OVP) limit reached, bit 16 range compliance.
STATUS_COMPLIANCE = 1 << 3
STATUS_OVP = 1 << 4
STATUS_RANGE_COMPLIANCE = 1 << 16
#: Any of these means the source is not delivering the programmed current.
STATUS_LIMITED = STATUS_COMPLIANCE | STATUS_OVP | STATUS_RANGE_COMPLIANCE


def parse_reading(reply: str) -> Reading:
    """Parse the 2400 ``:READ?`` reply ``V,I,R,T,STATUS`` into a Reading (strictly).

    R is not used (9.91e37 when resistance is not measured); V, I and T must be real numbers
    and STATUS a non-negative integer, else UnparsableReading with the raw reply.
    """
    voltage, current, _resistance, time, status = parse_numbers(reply, 5, READ_COMMAND)
    for name, value in (("voltage", voltage), ("current", current), ("time", time)):
        require_measured(value, name, reply, READ_COMMAND)
    if status < 0 or status != int(status) or status >= 2**32:
        raise UnparsableReading(f"reply to {READ_COMMAND!r} has an invalid status word "
                                f"({status:g}): {reply!r}")
    # Compliance from the reading itself: real compliance (bit 3), OVP (bit 4) or range
    # compliance (bit 16) all mean the source is clamped.
    compliance = bool(int(status) & STATUS_LIMITED)
    return Reading(time=time, voltage=voltage, current=current, compliance=compliance)


class Keithley2400CurrentSource(SourceMeterMixin, Keithley2400):
    """A Keithley 2400 series SourceMeter used as an iontophoresis current source.

    Open it with :meth:`open` (verifies *IDN? before anything else is sent). Constructing it
    directly on an adapter skips the IDN check and, like PyMeasure's Keithley2400, writes the
    ``:FORMAT:ELEMENTS`` command first.
    """

    IDN_MODELS = models_of("2400")
    OUTPUT_OFF_COMMAND = "OUTPUT 0"
    OUTPUT_ON_COMMAND = "OUTPUT 1"
    ABORT_COMMAND = ":ABORT"
    DEFAULT_MODEL = "2400"

    def __init__(self, adapter: Adapter | str | int,
                 name: str = "Keithley 2400 SourceMeter (current source)",
                 **kwargs: Any) -> None:
        super().__init__(adapter, name, **kwargs)

    source_mode = Instrument.control(
        ":SOURCE:FUNCTION?", ":SOURCE:FUNCTION %s",
        """Control the source mode (str); only 'current' can be set, 'voltage' raises.""",
        validator=current_mode_only,
        values={"current": "CURR", "voltage": "VOLT"},
        map_values=True,
    )

    source_enabled = Instrument.control(
        "OUTPUT?", "OUTPUT %d",
        """Control whether the output is on (bool); the read-back must be exactly 0 or 1.
        Only False can be written: output_on() switches on, after its checks.""",
        validator=refuse_output_on,
        values=(True, False),
        set_process=int,
        cast=str,
        maxsplit=0,
        get_process=lambda reply: parse_flag(reply, "OUTPUT?"),
    )

    source_current = Instrument.control(
        ":SOURCE:CURRENT?", ":SOURCE:CURRENT %g",
        """Control the source current in A (float, strictly within the session's ceiling,
        never beyond ±4 mA).""",
        validator=source_current_validator,
        values=CURRENT_LIMITS,
        dynamic=True,
        cast=str,
        maxsplit=0,
        get_process=lambda reply: parse_number(reply, ":SOURCE:CURRENT?"),
    )

    source_current_range = Instrument.control(
        ":SOURCE:CURRENT:RANGE?", ":SOURCE:CURRENT:RANGE %g",
        """Control the source current range in A (float, strictly in (0, 4 mA]); the
        instrument selects the smallest range that holds it.""",
        validator=source_range_validator,
        values=SOURCE_RANGE_LIMITS,
    )

    compliance_voltage = Instrument.control(
        ":SENSE:VOLTAGE:PROTECTION?", ":SENSE:VOLTAGE:PROTECTION %g",
        """Control the compliance voltage in V (float, strictly in (0, 80] V).""",
        validator=compliance_voltage_validator,
        values=COMPLIANCE_LIMITS,
        cast=str,
        maxsplit=0,
        get_process=lambda reply: parse_number(reply, ":SENSE:VOLTAGE:PROTECTION?"),
    )

    current_nplc = Instrument.control(
        ":SENSE:CURRENT:NPLCYCLES?", ":SENSE:CURRENT:NPLCYCLES %g",
        """Control the integration time in power-line cycles (float, strictly 0.01 to 10);
        global on the 2400, so it also sets the voltage NPLC.""",
        validator=nplc_validator,
        values=NPLC_LIMITS,
    )

    source_voltage = Instrument.control(
        ":SOURCE:VOLTAGE?", ":SOURCE:VOLTAGE %g",
        """Control the source voltage in V: may be read, setting raises ValueError
        (this driver never sources voltage).""",
        validator=refuse_voltage_sourcing,
    )

    compliance_tripped = Instrument.measurement(
        ":SENSE:VOLTAGE:PROTECTION:TRIPPED?",
        """Measure whether the source is clamped at the compliance voltage (bool); the
        reading's status bit is the primary compliance signal, this is a secondary check.""",
        cast=str,
        maxsplit=0,
        get_process=lambda reply: parse_flag(reply, ":SENSE:VOLTAGE:PROTECTION:TRIPPED?"),
    )

    reading = Instrument.measurement(
        READ_COMMAND,
        """Measure V, I, the instrument's timestamp and the compliance flag with one
        ``:READ?`` (Reading); a garbled reply raises UnparsableReading.""",
        cast=str,
        maxsplit=0,
        get_process=parse_reading,
    )

    ovp_setting = Instrument.control(
        ":SOURCE:VOLTAGE:PROTECTION?", ":SOURCE:VOLTAGE:PROTECTION %g",
        """Control the over-voltage protection level in V (float): the hardware clamp
        independent of the compliance; the instrument selects the level at or below it.""",
        validator=strict_range_with_units("OVP level", "V", hard_limits=(0.0, 1100.0)),
        values=(0.0, 1100.0),
        cast=str,
        maxsplit=0,
        get_process=lambda reply: parse_number(reply, ":SOURCE:VOLTAGE:PROTECTION?"),
    )

    @property
    def voltage(self) -> NoReturn:
        """Measure nothing: refused, PyMeasure sends :MEASURE:VOLTAGE?, which switches the
        output on and reconfigures the instrument; use read()."""
        raise RuntimeError(_MEASURE_REFUSED.format("voltage"))

    @property
    def current(self) -> NoReturn:
        """Measure nothing: refused, PyMeasure sends :MEASURE:CURRENT?, which switches the
        output on and reconfigures the instrument; use read()."""
        raise RuntimeError(_MEASURE_REFUSED.format("current"))

    @property
    def resistance(self) -> NoReturn:
        """Measure nothing: refused, PyMeasure sends :MEASURE:RESISTANCE?, which switches the
        output on and may source the auto-ohms test current; use read()."""
        raise RuntimeError(_MEASURE_REFUSED.format("resistance"))

    def measure_all(self) -> NoReturn:
        """Refuse: PyMeasure's measure_all() senses resistance and reads with :READ?."""
        raise RuntimeError("measure_all() is refused: it senses resistance; use read()")

    def _set_ovp(self, compliance: float) -> None:
        """Set OVP at the next level above `compliance` (NONE if there is none); read back."""
        level = self.spec.ovp_for(compliance)
        wanted = self.spec.max_voltage_V if level is None else level
        self.ovp_setting = wanted                       # :SOURCE:VOLTAGE:PROTECTION
        actual = self.ovp_setting                       # :SOURCE:VOLTAGE:PROTECTION?
        if level is None:  # NONE: no clamp below the model's own maximum
            ok = actual > self.spec.ovp_levels_V[-1]
        else:
            ok = abs(actual - level) < 1e-3 and actual * 0.95 > compliance
        if not ok:
            raise InstrumentError(f"{self.resource_name}: OVP reads back {actual:g} V, "
                                  f"{wanted:g} V was set for a {compliance:g} V compliance")
        self.ovp_V = None if level is None else actual

    def _write_configuration(self, compliance: float, source_range: float, nplc: float) -> None:
        """Write the docs/scpi.md 2400 reset + configuration sequence, in the doc's order.

        Only V and I are sensed: resistance sensing in AUTO ohms (the *RST default) would
        source the instrument's own test current whatever the setpoint.
        """
        self._reset_and_wait()                         # *RST, *OPC?
        self.clear()                                   # *CLS
        self.write(FORMAT_COMMAND)                     # reply format, again after *RST
        self.source_mode = "current"                   # :SOURCE:FUNCTION CURR
        self.write(":SENSE:RESISTANCE:MODE MAN")       # never auto ohms, even if enabled
        self.write(":SENSE:FUNCTION:OFF:ALL")          # then sense V and I only
        self.write(':SENSE:FUNCTION:ON "VOLTAGE","CURRENT"')
        self.source_current_range = source_range       # :SOURCE:CURRENT:RANGE
        self.compliance_voltage = compliance           # :SENSE:VOLTAGE:PROTECTION
        self._verify_compliance(compliance)            # :SENSE:VOLTAGE:PROTECTION?
        self.voltage_range = compliance                # :SENSE:VOLTAGE:RANGE = compliance
        self._set_ovp(compliance)                      # :SOURCE:VOLTAGE:PROTECTION (+ ?)
        self.current_nplc = nplc                       # :SENSE:CURRENT:NPLCYCLES
        self.output_off_state = "disconnected"         # :OUTPUT:SMODE HIMP
        self.auto_output_off_enabled = False           # :SOURCE:CLEAR:AUTO 0
        self.write(":SYSTEM:TIME:RESET")               # timestamp to zero


__all__ = ["Keithley2400CurrentSource", "parse_reading"]
