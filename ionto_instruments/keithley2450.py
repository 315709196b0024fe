"""Keithley 2450 SourceMeter (native SCPI command set, not "SCPI 2400" emulation) as a
current source.

PyMeasure's `Keithley2450` with the `CurrentSource` interface mixed in; the SCPI it sends is
docs/scpi.md, section "Keithley 2450". PyMeasure's 2450 validates with `truncated_range`
(silently clamps: a 500 V compliance would become 210 V) or not at all (source current and
voltage); every property that matters here is redefined with strict validation.
"""

from __future__ import annotations

from typing import Any

from pymeasure.adapters import Adapter
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2450
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

#: One compound message: measured voltage (READ), measured source current (SOUR, with
#: read-back on), relative time (REL) from defbuffer1, then the voltage-limit trip flag.
READ_COMMAND = ':READ? "defbuffer1", READ, SOUR, REL;:SOUR:CURR:VLIM:TRIP?'

_ON_OFF = {True: "ON", False: "OFF"}


def parse_reading(reply: str) -> Reading:
    """Parse the 2450 compound reply ``V,I,T;TRIP`` into a Reading (strictly).

    :READ? with READ, SOUR, REL: 2450 Reference Manual 2450-901-01 p. 6-6;
    :SOUR:CURR:VLIM:TRIP? (1 when clamped at the voltage limit): same manual p. 6-72.
    """
    parts = reply.split(";")
    if len(parts) != 2:
        raise UnparsableReading(f"reply to {READ_COMMAND!r} has {len(parts)} part(s) separated "
                                f"by ';', expected 2 (V,I,T;TRIP): {reply!r}")
    voltage, current, time = parse_numbers(parts[0], 3, READ_COMMAND, reply)
    for name, value in (("voltage", voltage), ("current", current), ("time", time)):
        require_measured(value, name, reply, READ_COMMAND)
    compliance = parse_flag(parts[1], READ_COMMAND, reply)
    return Reading(time=time, voltage=voltage, current=current, compliance=compliance)


class Keithley2450CurrentSource(SourceMeterMixin, Keithley2450):
    """A Keithley 2450 SourceMeter (native SCPI) used as an iontophoresis current source.

    Open it with :meth:`open` (verifies *IDN? before anything else is sent).
    """

    IDN_MODELS = frozenset({"2450"})
    OUTPUT_OFF_COMMAND = "OUTPUT OFF"

    def __init__(self, adapter: Adapter | str | int,
                 name: str = "Keithley 2450 SourceMeter (current source)",
                 **kwargs: Any) -> None:
        super().__init__(adapter, name, **kwargs)

    def reset(self) -> None:
        """Reset the instrument with *RST only (PyMeasure sends "*RST;:stat:pres;:*CLS;")."""
        self.write("*RST")

    source_mode = Instrument.control(
        ":SOUR:FUNC?", ":SOUR:FUNC %s",
        """Control the source mode (str); only 'current' can be set, 'voltage' raises.""",
        validator=current_mode_only,
        values={"current": "CURR", "voltage": "VOLT"},
        map_values=True,
    )

    source_enabled = Instrument.control(
        "OUTPUT?", "OUTPUT %s",
        """Control whether the output is on (bool); the read-back must be exactly 0 or 1
        (PyMeasure's cast=bool reads any non-numeric reply as True).""",
        validator=strict_discrete_set,
        values=(True, False),
        set_process=lambda on: _ON_OFF[bool(on)],
        cast=str,
        maxsplit=0,
        get_process=lambda reply: parse_flag(reply, "OUTPUT?"),
    )

    source_current = Instrument.control(
        ":SOUR:CURR?", ":SOUR:CURR:LEV %g",
        """Control the source current in A (float, strictly within the session's ceiling,
        never beyond ±4 mA).""",
        validator=source_current_validator,
        values=CURRENT_LIMITS,
        dynamic=True,
        cast=str,
        maxsplit=0,
        get_process=lambda reply: parse_number(reply, ":SOUR:CURR?"),
    )

    source_current_range = Instrument.control(
        ":SOUR:CURR:RANG?", ":SOUR:CURR:RANG:AUTO 0;:SOUR:CURR:RANG %g",
        """Control the source current range in A (float, strictly in (0, 4 mA]); disables
        source auto-range.""",
        validator=source_range_validator,
        values=SOURCE_RANGE_LIMITS,
    )

    compliance_voltage = Instrument.control(
        ":SOUR:CURR:VLIM?", ":SOUR:CURR:VLIM %g",
        """Control the compliance (voltage limit) in V (float, strictly in (0, 80] V).""",
        validator=compliance_voltage_validator,
        values=COMPLIANCE_LIMITS,
        cast=str,
        maxsplit=0,
        get_process=lambda reply: parse_number(reply, ":SOUR:CURR:VLIM?"),
    )

    source_readback_enabled = Instrument.setting(
        ":SOUR:CURR:READ:BACK %s",
        """Set whether SOUR in a reading is the measured current rather than the programmed
        one (bool).""",
        validator=strict_discrete_set,
        values=_ON_OFF,
        map_values=True,
    )

    sense_function = Instrument.setting(
        ':SENS:FUNC "%s"',
        """Set the measure function (str, strictly 'voltage').""",
        validator=strict_discrete_set,
        values={"voltage": "VOLT"},
        map_values=True,
    )

    voltage_range_auto_enabled = Instrument.setting(
        ":SENS:VOLT:RANG:AUTO %s",
        """Set whether the voltage measurement range is automatic (bool).""",
        validator=strict_discrete_set,
        values=_ON_OFF,
        map_values=True,
    )

    voltage_nplc = Instrument.control(
        ":SENS:VOLT:NPLC?", ":SENS:VOLT:NPLC %g",
        """Control the voltage integration time in power-line cycles (float, strictly 0.01 to
        10).""",
        validator=nplc_validator,
        values=NPLC_LIMITS,
    )

    source_voltage = Instrument.control(
        ":SOUR:VOLT?", ":SOUR:VOLT:LEV %g",
        """Control the source voltage in V: may be read, setting raises ValueError
        (this driver never sources voltage).""",
        validator=refuse_voltage_sourcing,
    )

    reading = Instrument.measurement(
        READ_COMMAND,
        """Measure V, I, the relative time and the voltage-limit trip flag with one compound
        query (Reading); a garbled reply raises UnparsableReading.""",
        cast=str,
        maxsplit=0,
        get_process=parse_reading,
    )

    def _write_configuration(self, compliance: float, source_range: float, nplc: float) -> None:
        """Write the docs/scpi.md 2450 reset + configuration sequence, in the doc's order."""
        self.reset()                                   # *RST: output off, 0 A
        self.clear()                                   # *CLS
        self.source_mode = "current"                   # :SOUR:FUNC CURR
        self.source_current_range = source_range      # :SOUR:CURR:RANG:AUTO 0;:SOUR:CURR:RANG
        self.compliance_voltage = compliance           # :SOUR:CURR:VLIM
        self._verify_compliance(compliance)            # :SOUR:CURR:VLIM?
        self.source_readback_enabled = True            # :SOUR:CURR:READ:BACK ON
        self.sense_function = "voltage"                # :SENS:FUNC "VOLT"
        self.voltage_range_auto_enabled = True         # :SENS:VOLT:RANG:AUTO ON
        self.voltage_nplc = nplc                       # :SENS:VOLT:NPLC
        self.current_output_off_state = "HIMP"         # :OUTP:CURR:SMOD HIMP


__all__ = ["Keithley2450CurrentSource", "parse_reading"]
