"""Keithley 2400 series SourceMeter (2400/2401/2410/2420/2425/2430/2440) as a current source.

PyMeasure's `Keithley2400` with the `CurrentSource` interface mixed in; the SCPI it sends is
docs/scpi.md, section "Keithley 2400 series". Properties redefined here narrow the inherited
API: source current and compliance with strict ceilings, current mode only, strict parsing.
"""

from __future__ import annotations

from typing import Any

from pymeasure.adapters import Adapter
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2400
from pymeasure.instruments.validators import strict_discrete_set

from .source import Reading, UnparsableReading
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
    refuse_voltage_sourcing,
    require_measured,
    source_current_validator,
    source_range_validator,
)

READ_COMMAND = ":READ?"

#: Status word bit 3 (value 8): "set if in real compliance" (2400 User's Manual §18,
#: :FORMat:ELEMents, STATus element).
STATUS_COMPLIANCE = 8


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
    # Compliance from the reading itself: 2400 User's Manual §18 :FORMat:ELEMents STATus,
    # bit 3 (value 8) "set if in real compliance".
    compliance = bool(int(status) & STATUS_COMPLIANCE)
    return Reading(time=time, voltage=voltage, current=current, compliance=compliance)


class Keithley2400CurrentSource(SourceMeterMixin, Keithley2400):
    """A Keithley 2400 series SourceMeter used as an iontophoresis current source.

    Open it with :meth:`open` (verifies *IDN? before anything else is sent). Constructing it
    directly on an adapter skips the IDN check and, like PyMeasure's Keithley2400, writes the
    ``:FORMAT:ELEMENTS`` command first.
    """

    IDN_MODELS = frozenset({"2400", "2401", "2410", "2420", "2425", "2430", "2440"})
    OUTPUT_OFF_COMMAND = "OUTPUT 0"

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
        """Control whether the output is on (bool); the read-back must be exactly 0 or 1.""",
        validator=strict_discrete_set,
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

    def _write_configuration(self, compliance: float, source_range: float, nplc: float) -> None:
        """Write the docs/scpi.md 2400 reset + configuration sequence, in the doc's order."""
        self.reset()                                   # *RST: output off, 0 A
        self.clear()                                   # *CLS
        self.source_mode = "current"                   # :SOURCE:FUNCTION CURR
        self.source_current_range = source_range       # :SOURCE:CURRENT:RANGE
        self.compliance_voltage = compliance           # :SENSE:VOLTAGE:PROTECTION
        self._verify_compliance(compliance)            # :SENSE:VOLTAGE:PROTECTION?
        self.write(":SENSE:FUNCTION:ALL")              # measure V and I
        self.voltage_range = compliance                # :SENSE:VOLTAGE:RANGE = compliance
        self.current_nplc = nplc                       # :SENSE:CURRENT:NPLCYCLES
        self.output_off_state = "disconnected"         # :OUTPUT:SMODE HIMP
        self.auto_output_off_enabled = False           # :SOURCE:CLEAR:AUTO 0
        self.write(":SYSTEM:TIME:RESET")               # timestamp to zero


__all__ = ["Keithley2400CurrentSource", "parse_reading"]
