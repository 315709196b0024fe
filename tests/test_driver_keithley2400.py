"""Keithley 2400 driver: every command sequence pinned to docs/scpi.md with expected_protocol."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from pymeasure.adapters import Adapter, ProtocolAdapter
from pymeasure.test import expected_protocol
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

from ionto_instruments.keithley2400 import Keithley2400CurrentSource
from ionto_instruments.source import (
    InstrumentError,
    InstrumentFault,
    Reading,
    UnparsableReading,
    WrongInstrument,
)

IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4109876,C32   Oct  4 2010 14:20:11/A02  /S/K"
FORMAT = ":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS"
READ = ":READ?"
NO_ERROR = ("SYST:ERR?", '0,"No error"')
ADDRESS = "GPIB0::24::INSTR"


def configure_pairs(compliance: str = "80", compliance_reply: str = "+8.000000E+01",
                    source_range: str = "0.004", nplc: str = "1", ovp: str = "100",
                    ovp_reply: str = "+1.000000E+02") -> list:
    """The docs/scpi.md 2400 configuration sequence, in the doc's order."""
    return [
        ("*RST", None),
        ("*OPC?", "1"),
        ("*CLS", None),
        (FORMAT, None),
        (":SOURCE:FUNCTION CURR", None),
        (":SENSE:RESISTANCE:MODE MAN", None),
        (":SENSE:FUNCTION:OFF:ALL", None),
        (':SENSE:FUNCTION:ON "VOLTAGE","CURRENT"', None),
        (f":SOURCE:CURRENT:RANGE {source_range}", None),
        (f":SENSE:VOLTAGE:PROTECTION {compliance}", None),
        (":SENSE:VOLTAGE:PROTECTION?", compliance_reply),
        (f":SENSE:VOLTAGE:RANGE {compliance}", None),
        (f":SOURCE:VOLTAGE:PROTECTION {ovp}", None),
        (":SOURCE:VOLTAGE:PROTECTION?", ovp_reply),
        (f":SENSE:CURRENT:NPLCYCLES {nplc}", None),
        (":OUTPUT:SMODE HIMP", None),
        (":SOURCE:CLEAR:AUTO 0", None),
        (":SYSTEM:TIME:RESET", None),
        NO_ERROR,
    ]


def k2400(pairs: list):
    """expected_protocol for the 2400 driver; its constructor writes FORMAT first."""
    return expected_protocol(Keithley2400CurrentSource, [(FORMAT, None), *pairs])


def switched_on(smu):
    """Mark the output as switched on by this driver (pins only the reading exchange)."""
    smu._output_on = True
    return smu


# -- construction, identity, opening ------------------------------------------------------


def test_constructor_writes_only_the_format_command():
    with k2400([]) as smu:  # expected_protocol fails on any further command
        assert smu.current_ceiling == 4e-3


def test_identify():
    with k2400([("*IDN?", IDN)]) as smu:
        assert smu.identify() == IDN


@pytest.mark.parametrize("model", ["2400", "2401", "2410", "2420", "2425", "2430", "2440"])
def test_idn_matches_the_2400_series(model):
    assert Keithley2400CurrentSource.idn_matches(f"KEITHLEY INSTRUMENTS INC.,MODEL {model},1,A")


@pytest.mark.parametrize("idn", [
    "KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.3c",  # "MODEL 24..", other command set
    "KEITHLEY INSTRUMENTS,MODEL 2460,04412345,1.7.3c",
    "KEITHLEY INSTRUMENTS INC.,MODEL 2000,1,A",
    "Agilent Technologies,34401A,0,11-5-2",
    "ACME,MODEL 2400,1,A",  # right model number, wrong manufacturer
    "",
    "KEITHLEY INSTRUMENTS INC.,MODEL 24000,1,A",
])
def test_idn_rejects_other_instruments(idn):
    assert not Keithley2400CurrentSource.idn_matches(idn)


def test_from_adapter_asks_idn_before_anything_else():
    adapter = ProtocolAdapter([("*IDN?", IDN), (FORMAT, None)])
    smu = Keithley2400CurrentSource.from_adapter(adapter, ADDRESS)
    assert adapter._index == 2
    assert smu.identity == IDN
    assert smu.resource_name == ADDRESS


def test_wrong_idn_raises_and_sends_nothing_else():
    other = "KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.3c"
    adapter = ProtocolAdapter([("*IDN?", other)])  # a FORMAT write would fail: no pair left
    with pytest.raises(WrongInstrument) as info:
        Keithley2400CurrentSource.from_adapter(adapter, ADDRESS)
    assert ADDRESS in str(info.value) and other in str(info.value)
    assert adapter._index == 1


class SilentAdapter(Adapter):
    """Accepts writes; every read times out like an instrument that does not answer."""

    def __init__(self, error: StatusCode = StatusCode.error_timeout):
        super().__init__()
        self.connection = MagicMock()
        self.writes: list[str] = []
        self.error = error

    def _write(self, command, **kwargs):
        self.writes.append(command)

    def _read(self, **kwargs):
        raise VisaIOError(self.error)


def test_nothing_answering_idn_raises_instrument_error_naming_the_address():
    adapter = SilentAdapter()
    with pytest.raises(InstrumentError) as info:
        Keithley2400CurrentSource.from_adapter(adapter, ADDRESS)
    assert ADDRESS in str(info.value)
    assert isinstance(info.value.__cause__, VisaIOError)
    assert adapter.writes == ["*IDN?"]
    adapter.connection.close.assert_called()


def test_open_uses_visa_adapter_and_verifies(monkeypatch):
    created = {}

    def fake_visa_adapter(resource_name, visa_library, **kwargs):
        created.update(resource_name=resource_name, visa_library=visa_library, **kwargs)
        return ProtocolAdapter([("*IDN?", IDN), (FORMAT, None)])

    monkeypatch.setattr("ionto_instruments.sourcemeter.VISAAdapter", fake_visa_adapter)
    smu = Keithley2400CurrentSource.open(ADDRESS, visa_library="@lib", timeout=3000)
    assert created == {"resource_name": ADDRESS, "visa_library": "@lib", "timeout": 3000,
                       "write_termination": "\n", "read_termination": "\n"}
    assert smu.resource_name == ADDRESS and smu.identity == IDN


SIM_YAML = """
spec: "1.1"
devices:
  smu2400:
    eom:
      GPIB INSTR: {{q: "\\n", r: "\\n"}}
    error: ERROR
    dialogues:
      - q: "*IDN?"
        r: "{idn}"
      - q: "{fmt}"
      - q: "OUTPUT?"
        r: "0"
  mute:
    eom:
      GPIB INSTR: {{q: "\\n", r: "\\n"}}
    dialogues: []
resources:
  GPIB0::24::INSTR:
    device: smu2400
  GPIB0::25::INSTR:
    device: mute
"""


@pytest.fixture
def sim_library(tmp_path: Path) -> str:
    """A pyvisa-sim library with a 2400 at GPIB0::24 and a mute device at GPIB0::25."""
    path = tmp_path / "k2400.yaml"
    path.write_text(SIM_YAML.format(idn=IDN, fmt=FORMAT))
    return f"{path}@sim"


def test_open_through_pyvisa_sim(sim_library):
    smu = Keithley2400CurrentSource.open(ADDRESS, visa_library=sim_library)
    try:
        assert smu.identity == IDN
        assert smu.output_enabled() is False
    finally:
        smu.close()


@pytest.mark.filterwarnings("ignore:read string doesn't end with termination")
def test_open_missing_resource_raises_instrument_error(sim_library):
    # pyvisa-sim opens unknown names and answers nothing; real VISA raises on open (below).
    with pytest.raises(InstrumentError, match="GPIB0::99::INSTR") as info:
        Keithley2400CurrentSource.open("GPIB0::99::INSTR", visa_library=sim_library,
                                       timeout=50)
    assert not isinstance(info.value, WrongInstrument)


def test_open_raises_instrument_error_when_visa_cannot_open(monkeypatch):
    def no_such_resource(resource_name, visa_library, **kwargs):
        raise VisaIOError(StatusCode.error_resource_not_found)

    monkeypatch.setattr("ionto_instruments.sourcemeter.VISAAdapter", no_such_resource)
    with pytest.raises(InstrumentError, match="GPIB0::7::INSTR") as info:
        Keithley2400CurrentSource.open("GPIB0::7::INSTR")
    assert isinstance(info.value.__cause__, VisaIOError)


def test_open_mute_resource_raises_instrument_error(sim_library):
    with pytest.raises(InstrumentError, match="GPIB0::25::INSTR") as info:
        Keithley2400CurrentSource.open("GPIB0::25::INSTR", visa_library=sim_library,
                                       timeout=50)
    assert not isinstance(info.value, WrongInstrument)


# -- configuration ------------------------------------------------------------------------


def test_configure_sends_the_documented_sequence():
    with k2400(configure_pairs()) as smu:
        smu.configure_current_source(80)


def test_configure_with_other_values():
    pairs = configure_pairs(compliance="30.5", compliance_reply="+3.050000E+01",
                            source_range="0.001", nplc="0.1", ovp="40", ovp_reply="+4.0E+01")
    with k2400(pairs) as smu:
        smu.configure_current_source(30.5, source_range=1e-3, nplc=0.1)


def test_configure_fails_when_compliance_does_not_read_back():
    pairs = configure_pairs(compliance="40", compliance_reply="+2.100000E+01")[:11]
    with k2400(pairs) as smu:
        with pytest.raises(InstrumentError, match="reads back 21 V, 40 V was set"):
            smu.configure_current_source(40)
        with pytest.raises(InstrumentError, match="refusing to switch the output on"):
            smu.output_on()


def test_configure_fails_on_instrument_errors():
    pairs = configure_pairs()[:-1] + [("SYST:ERR?", '-222,"Data out of range"'), NO_ERROR]
    with k2400(pairs) as smu, pytest.raises(InstrumentError, match="-222"):
        smu.configure_current_source(80)


# -- source, output -----------------------------------------------------------------------


@pytest.mark.parametrize(("amps", "sent"), [
    (0.002, "0.002"), (-0.0015, "-0.0015"), (0, "0"), (4e-3, "0.004"), (-4e-3, "-0.004"),
    (1.23456789e-3, "0.00123457"),
])
def test_set_current(amps, sent):
    with k2400([(f":SOURCE:CURRENT {sent}", None), NO_ERROR]) as smu:
        smu.set_current(amps)


def test_rejected_setpoint_is_an_instrument_fault_at_once():
    pairs = [(":SOURCE:CURRENT 0.002", None), ("SYST:ERR?", '+825,"Invalid with auto-ohms on"'),
             NO_ERROR]
    with k2400(pairs) as smu, pytest.raises(InstrumentFault, match=r"\+825"):
        smu.set_current(2e-3)


def test_source_current_read_back():
    with k2400([(":SOURCE:CURRENT?", "+2.000000E-03")]) as smu:
        assert smu.source_current == pytest.approx(2e-3)


def test_output_on_refused_before_configuration():
    with k2400([]) as smu, pytest.raises(InstrumentError, match="configure_current_source"):
        smu.output_on()


def test_output_on_off_after_configuration():
    pairs = [*configure_pairs(), ("OUTPUT 1", None), NO_ERROR, ("OUTPUT 0", None)]
    with k2400(pairs) as smu:
        smu.configure_current_source(80)
        smu.output_on()
        smu.output_off()


@pytest.mark.parametrize(("reply", "state"), [("1", True), ("0", False)])
def test_output_read_back(reply, state):
    with k2400([("OUTPUT?", reply)]) as smu:
        assert smu.output_enabled() is state


@pytest.mark.parametrize("reply", ["2", "ON", "1,0", "", "+3.0E+01,+2.0E-03,+9.91E+37,+1,+0"])
def test_output_read_back_garbled(reply):
    with k2400([("OUTPUT?", reply)]) as smu, pytest.raises(UnparsableReading):
        smu.output_enabled()


# -- readings -----------------------------------------------------------------------------


def test_read_normal():
    reply = "+3.012000E+01,+2.000000E-03,+9.910000E+37,+1.234000E+01,+3.686400E+04"
    with k2400([(READ, reply)]) as smu:
        assert switched_on(smu).read() == Reading(time=12.34, voltage=30.12, current=2e-3,
                                                  compliance=False)


def test_read_compliance_from_status_bit_3():
    reply = "+8.000000E+01,+1.000000E-05,+9.910000E+37,+2.000000E+00,+3.687200E+04"  # 36864+8
    with k2400([(READ, reply)]) as smu:
        reading = switched_on(smu).read()
    assert reading.compliance is True
    assert reading.voltage == 80.0 and reading.current == 1e-5


@pytest.mark.parametrize(("bit", "limited"), [
    (3, True), (4, True), (16, True),  # real compliance, OVP, range compliance
    (0, False), (1, False), (2, False), (5, False), (11, False), (15, False)])
def test_read_status_bits(bit, limited):
    reply = f"+1.0E+01,+1.0E-03,+9.91E+37,+1.0E+00,{float(1 << bit):+.6E}"
    with k2400([(READ, reply)]) as smu:
        assert switched_on(smu).read().compliance is limited


def test_read_is_refused_with_the_output_off():
    with k2400([]) as smu, pytest.raises(InstrumentFault, match="output off"):
        smu.read()  # nothing is sent: a 2400 would answer +803 and no reply


@pytest.mark.parametrize("reply", [
    "+3.012000E+01,+2.000000E-03,+9.910000E+37,+1.234000E+01",  # 4 fields
    "+3.0E+01,+2.0E-03,+9.91E+37,+1.2E+01,+3.6E+04,+1.0E+00",  # 6 fields
    "+3.0E+01;+2.0E-03;+9.91E+37;+1.2E+01;+3.6E+04",  # wrong separator
    "+3.0E+01,+2.0E-03,+9.91E+37,+1.2E+01,+3.6E+0#",  # non-numeric byte
    "+3.0E+01,nan,+9.91E+37,+1.2E+01,+3.6E+04",  # float() would accept this
    "+3.0E+01,1_0,+9.91E+37,+1.2E+01,+3.6E+04",  # and this
    "+9.91E+37,+2.0E-03,+9.91E+37,+1.2E+01,+3.6E+04",  # NaN marker as the voltage
    "+3.0E+01,+2.0E-03,+9.91E+37,+1.2E+01,+3.5E+00",  # status word not an integer
    "",
    b"\xff\xfe\x00\x80garbage",  # undecodable bytes
])
def test_read_garbled_raises_with_the_raw_reply(reply):
    with k2400([(READ, reply)]) as smu, pytest.raises(UnparsableReading) as info:
        switched_on(smu).read()
    raw = reply if isinstance(reply, str) else repr(reply)[2:-1]
    assert raw in str(info.value)


@pytest.mark.parametrize(("reply", "tripped"), [("1", True), ("0", False)])
def test_compliance_tripped(reply, tripped):
    with k2400([(":SENSE:VOLTAGE:PROTECTION:TRIPPED?", reply)]) as smu:
        assert smu.compliance_tripped is tripped


# -- errors, emergency, shutdown ----------------------------------------------------------


def test_drain_errors():
    pairs = [("SYST:ERR?", '-113,"Undefined header"'), ("SYST:ERR?", '-222,"Data out of range"'),
             NO_ERROR]
    with k2400(pairs) as smu:
        assert smu.drain_errors() == ['-113,"Undefined header"', '-222,"Data out of range"']


def test_drain_errors_empty():
    with k2400([NO_ERROR]) as smu:
        assert smu.drain_errors() == []


def test_drain_errors_is_bounded():
    with k2400([("SYST:ERR?", '-100,"Command error"')] * 3) as smu:
        smu.max_error_reads = 3
        errors = smu.drain_errors()
    assert errors[:3] == ['-100,"Command error"'] * 3
    assert "not empty after 3 reads" in errors[3]


def test_drain_errors_garbled_reply():
    with k2400([("SYST:ERR?", "garbage")]) as smu, pytest.raises(InstrumentFault,
                                                                match="garbage"):
        smu.drain_errors()


def test_emergency_off_is_clear_then_one_write():
    with k2400([("OUTPUT 0", None)]) as smu:
        smu.emergency_off()
        smu.adapter.connection.clear.assert_called_once()


def test_emergency_off_writes_abort_when_there_is_no_device_clear():
    smu = Keithley2400CurrentSource(ProtocolAdapter([(FORMAT, None), (":ABORT", None),
                                                     ("OUTPUT 0", None)]))
    smu.adapter.connection = None
    smu.emergency_off()
    assert smu.adapter._index == 3


def test_emergency_off_disarms_output_on():
    with k2400([*configure_pairs(), ("OUTPUT 1", None), NO_ERROR, ("OUTPUT 0", None)]) as smu:
        smu.configure_current_source(80)
        smu.output_on()
        smu.emergency_off()
        with pytest.raises(InstrumentError):
            smu.output_on()


def test_emergency_off_matches_the_output_setter():
    with k2400([("OUTPUT 0", None)]) as smu:
        smu.source_enabled = False
    assert Keithley2400CurrentSource.OUTPUT_OFF_COMMAND == "OUTPUT 0"


def test_shutdown_switches_off_at_once_without_ramp():
    with k2400([("OUTPUT 0", None)]) as smu:  # no :SOURCE:CURRENT? / ramp steps / :ABOR
        smu.shutdown()
        assert smu.isShutdown is True


def test_shutdown_bookkeeping_runs_even_if_the_write_fails():
    smu = Keithley2400CurrentSource(ProtocolAdapter([(FORMAT, None)]))
    smu.adapter = SilentAdapter()
    smu.adapter._write = MagicMock(side_effect=VisaIOError(StatusCode.error_connection_lost))
    with pytest.raises(InstrumentFault):
        smu.shutdown()
    assert smu.isShutdown is True


def test_close_closes_the_adapter_and_switches_nothing():
    with k2400([]) as smu:
        smu.close()
        smu.adapter.connection.close.assert_called_once()


# -- voltage sourcing is not available ----------------------------------------------------


def test_voltage_sourcing_refused_and_nothing_written():
    with k2400([]) as smu:
        with pytest.raises(ValueError, match="only sources 'current'"):
            smu.source_mode = "voltage"
        with pytest.raises(ValueError, match="voltage sourcing is disabled"):
            smu.source_voltage = 1.0
        with pytest.raises(ValueError, match="voltage sourcing is disabled"):
            smu.apply_voltage()
        with pytest.raises(ValueError, match="voltage sourcing is disabled"):
            smu.ramp_to_voltage(5.0)


def test_source_mode_current_is_allowed():
    with k2400([(":SOURCE:FUNCTION CURR", None), (":SOURCE:FUNCTION?", "VOLT")]) as smu:
        smu.source_mode = "current"
        assert smu.source_mode == "voltage"  # a front-panel change is still visible


# -- VISA errors become InstrumentFault ----------------------------------------------------


@pytest.mark.parametrize("code", [StatusCode.error_timeout, StatusCode.error_connection_lost])
def test_visa_errors_become_instrument_fault(code):
    smu = Keithley2400CurrentSource(ProtocolAdapter([(FORMAT, None)]))
    smu.adapter = SilentAdapter(code)
    with pytest.raises(InstrumentFault) as info:
        switched_on(smu).read()
    assert isinstance(info.value.__cause__, VisaIOError)
    assert ":READ?" in str(info.value)
    for call in (smu.output_enabled, smu.drain_errors, smu.identify):
        with pytest.raises(InstrumentFault):
            call()
    smu.adapter._write = MagicMock(side_effect=VisaIOError(code))
    for call in (lambda: smu.set_current(1e-3), smu.output_off, smu.emergency_off,
                 lambda: smu.configure_current_source(40)):
        with pytest.raises(InstrumentFault) as info:
            call()
        assert isinstance(info.value.__cause__, VisaIOError)


# -- thread safety ------------------------------------------------------------------------


class GatedAdapter(Adapter):
    """Records writes; a read blocks until `release` is set (a slow instrument)."""

    def __init__(self, reply: str):
        super().__init__()
        self.connection = MagicMock()
        self.reply = reply
        self.writes: list[str] = []
        self.in_read = threading.Event()
        self.release = threading.Event()

    def _write(self, command, **kwargs):
        self.writes.append(command)

    def _read(self, **kwargs):
        self.in_read.set()
        assert self.release.wait(5), "test did not release the read"
        return self.reply


READ_REPLY = "+3.0E+01,+2.0E-03,+9.91E+37,+1.0E+00,+0.0E+00"


def _reader(smu, results):
    def run():
        results.append(smu.read())
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert smu.adapter.in_read.wait(5)
    return thread


def test_emergency_off_clears_and_writes_during_an_exchange_without_waiting():
    """A reading in progress holds the instrument: clear it, then switch off, at once."""
    adapter = GatedAdapter(READ_REPLY)
    adapter.connection.clear.side_effect = lambda: adapter.writes.append("<device clear>")
    smu = switched_on(Keithley2400CurrentSource(adapter))
    results: list = []
    reader = _reader(smu, results)
    start = time.monotonic()
    smu.emergency_off(lock_timeout=5)
    assert time.monotonic() - start < 0.5, "emergency_off waited for the reading"
    assert adapter.writes == [FORMAT, READ, "<device clear>", "OUTPUT 0"]
    adapter.release.set()
    reader.join(5)
