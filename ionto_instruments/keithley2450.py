"""Keithley 2450 family SourceMeter (2450, 2460, 2461, 2470; native SCPI command set, not
"SCPI 2400" emulation, not TSP) as a current source.

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

from . import limits as L
from .models import PROT_LEVELS_2450, models_of
from .source import InstrumentError, Reading, UnparsableReading, WrongInstrument
from .sourcemeter import (
    COMPLIANCE_LIMITS,
    CURRENT_LIMITS,
    NPLC_LIMITS,
    SOURCE_RANGE_LIMITS,
    VISA_IO_ERRORS,
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
)

#: One query: measured voltage (READ), measured source current (SOUR, with read-back on),
#: relative time (REL) and the source status of that same reading (SOURSTAT) from defbuffer1.
READ_COMMAND = ':READ? "defbuffer1", READ, SOUR, REL, SOURSTAT'

#: Buffer source-status bits (2450 Reference Manual p. 8-29; 2470 p. 14-32): bit 2 OVP was
#: active, bit 5 the source level was limited (compliance).
SOURSTAT_PROTECTION = 4
SOURSTAT_LIMIT = 32

#: With the interlock not asserted the 2450 "limits the nominal output to ±37 V" (2450
#: Reference Manual Rev. B p. 6-33; later manuals: less than ±42 V): a compliance above this
#: cannot be delivered and is refused.
INTERLOCK_OPEN_MAX_V = L.INTERLOCK_OPEN_MAX.value

COMMAND_SET_FIX = ("set the front panel MENU > System > Settings > Command Set to SCPI, "
                   "then switch the instrument off and on")

_ON_OFF = {True: "ON", False: "OFF"}


def parse_reading(reply: str) -> Reading:
    """Parse the 2450 reply ``V,I,T,SOURSTAT`` into a Reading (strictly).

    The limit flag is the reading's own source status, recorded with the measurement, not
    a later :SOUR:CURR:VLIM:TRIP? (docs/scpi.md says why).
    """
    voltage, current, time, status = parse_numbers(reply, 4, READ_COMMAND)
    for name, value in (("voltage", voltage), ("current", current), ("time", time)):
        require_measured(value, name, reply, READ_COMMAND)
    if status < 0 or status != int(status) or status >= 2**16:
        raise UnparsableReading(f"reply to {READ_COMMAND!r} has an invalid source status "
                                f"({status:g}): {reply!r}")
    compliance = bool(int(status) & (SOURSTAT_LIMIT | SOURSTAT_PROTECTION))
    return Reading(time=time, voltage=voltage, current=current, compliance=compliance)


class Keithley2450CurrentSource(SourceMeterMixin, Keithley2450):
    """A Keithley 2450 SourceMeter (native SCPI) used as an iontophoresis current source.

    Open it with :meth:`open` (verifies *IDN? before anything else is sent).
    """

    IDN_MODELS = models_of("2450")
    OUTPUT_OFF_COMMAND = "OUTPUT OFF"
    OUTPUT_ON_COMMAND = "OUTPUT ON"
    ABORT_COMMAND = ":ABOR"
    DEFAULT_MODEL = "2450"

    def __init__(self, adapter: Adapter | str | int,
                 name: str = "Keithley 2450 SourceMeter (current source)",
                 **kwargs: Any) -> None:
        super().__init__(adapter, name, **kwargs)

    def reset(self) -> None:
        """Reset the instrument with *RST only (PyMeasure sends "*RST;:stat:pres;:*CLS;")."""
        self.write("*RST")

    @classmethod
    def _check_command_set(cls, adapter: Adapter, resource_name: str, idn: str) -> None:
        """Refuse a 2450 in TSP or "SCPI 2400" mode: it answers *IDN?, then fails confusingly."""
        try:
            adapter.write("*LANG?")
            language = adapter.read().strip().upper()
        except (*VISA_IO_ERRORS, UnicodeDecodeError) as exc:
            raise WrongInstrument(f"{resource_name!r} did not answer *LANG? ({exc}): it is not "
                                  f"in the SCPI command set; {COMMAND_SET_FIX}") from exc
        if language != "SCPI":
            raise WrongInstrument(f"{resource_name!r} uses the {language or '(empty)'} command "
                                  f"set, this driver needs SCPI: {COMMAND_SET_FIX}")

    interlock_asserted = Instrument.measurement(
        ":OUTP:INT:TRIP?",
        """Measure whether the rear-panel safety interlock is asserted (bool); not asserted,
        the output is limited to about ±37-42 V.""",
        cast=str,
        maxsplit=0,
        get_process=lambda reply: parse_flag(reply, ":OUTP:INT:TRIP?"),
    )

    ovp_setting = Instrument.control(
        ":SOUR:VOLT:PROT?", ":SOUR:VOLT:PROT %s",
        """Control the over-voltage protection (str token PROT2 ... PROT180 or NONE); reset
        by :SOUR:FUNC, so set after it.""",
        validator=strict_discrete_set,
        values=tuple(f"PROT{level:g}" for level in PROT_LEVELS_2450) + ("NONE",),
        cast=str,
        maxsplit=0,
        get_process=lambda reply: reply.strip().upper(),
    )

    def check_limits(self, compliance_voltage: float, max_current: float) -> None:
        """Pre-flight: the model's limits, then the interlock (read from the instrument)."""
        super().check_limits(compliance_voltage, max_current)
        with self.io_lock:
            asserted = self.interlock_asserted
        if not asserted and compliance_voltage > INTERLOCK_OPEN_MAX_V:
            raise ValueError(f"the {self.spec.name}'s interlock is not asserted, so its output "
                             f"is limited to about {INTERLOCK_OPEN_MAX_V:g} V: a compliance of "
                             f"{compliance_voltage:g} V cannot be delivered; set --compliance "
                             f"{INTERLOCK_OPEN_MAX_V:g} or lower, or close the interlock")

    def _set_ovp(self, compliance: float) -> None:
        """Set OVP (PROTn) at the next level above `compliance`, after :SOUR:FUNC; read back."""
        level = self.spec.ovp_for(compliance)
        token = "NONE" if level is None else f"PROT{level:g}"
        self.ovp_setting = token                        # :SOUR:VOLT:PROT PROTn
        actual = self.ovp_setting                       # :SOUR:VOLT:PROT?
        if actual != token:
            raise InstrumentError(f"{self.resource_name}: OVP reads back {actual!r}, {token} "
                                  f"was set for a {compliance:g} V compliance")
        self.ovp_V = level

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
        (PyMeasure's cast=bool reads any non-numeric reply as True). Only False can be
        written: output_on() switches on, after its checks.""",
        validator=refuse_output_on,
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
        """Measure V, I, the relative time and the reading's source status (limited or OVP)
        with one query (Reading); a garbled reply raises UnparsableReading.""",
        cast=str,
        maxsplit=0,
        get_process=parse_reading,
    )

    def _write_configuration(self, compliance: float, source_range: float, nplc: float) -> None:
        """Write the docs/scpi.md 2450 reset + configuration sequence, in the doc's order."""
        self._reset_and_wait()                         # *RST, *OPC?
        self.clear()                                   # *CLS
        self.source_mode = "current"                   # :SOUR:FUNC CURR (resets OVP)
        self._set_ovp(compliance)                      # :SOUR:VOLT:PROT PROTn (+ ?)
        self.source_current_range = source_range      # :SOUR:CURR:RANG:AUTO 0;:SOUR:CURR:RANG
        self.compliance_voltage = compliance           # :SOUR:CURR:VLIM
        self._verify_compliance(compliance)            # :SOUR:CURR:VLIM?
        self.source_readback_enabled = True            # :SOUR:CURR:READ:BACK ON
        self.sense_function = "voltage"                # :SENS:FUNC "VOLT"
        self.voltage_range_auto_enabled = True         # :SENS:VOLT:RANG:AUTO ON
        self.voltage_nplc = nplc                       # :SENS:VOLT:NPLC
        self.current_output_off_state = "HIMP"         # :OUTP:CURR:SMOD HIMP


__all__ = ["Keithley2450CurrentSource", "parse_reading"]
