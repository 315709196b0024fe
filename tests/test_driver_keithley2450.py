"""Keithley 2450 driver (native SCPI): every command sequence pinned to docs/scpi.md."""

from __future__ import annotations

import threading
from unittest.mock import MagicMock

import pytest
from pymeasure.adapters import Adapter, ProtocolAdapter
from pymeasure.test import expected_protocol
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

from ionto_instruments.keithley2450 import Keithley2450CurrentSource
from ionto_instruments.source import (
    InstrumentError,
    InstrumentFault,
    Reading,
    UnparsableReading,
    WrongInstrument,
)

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.3c"
READ = ':READ? "defbuffer1", READ, SOUR, REL, SOURSTAT'
NO_ERROR = ("SYST:ERR?", '0,"No error;0;0 0"')
ADDRESS = "USB0::0x05E6::0x2450::04412345::INSTR"


def configure_pairs(compliance: str = "80", compliance_reply: str = "+8.000000E+01",
                    source_range: str = "0.004", nplc: str = "1", prot: str = "PROT100") -> list:
    """The docs/scpi.md 2450 configuration sequence, in the doc's order."""
    return [
        (":OUTP:INT:TRIP?", "1"),
        ("*RST", None),
        ("*OPC?", "1"),
        ("*CLS", None),
        (":SOUR:FUNC CURR", None),
        (f":SOUR:VOLT:PROT {prot}", None),
        (":SOUR:VOLT:PROT?", prot),
        (f":SOUR:CURR:RANG:AUTO 0;:SOUR:CURR:RANG {source_range}", None),
        (f":SOUR:CURR:VLIM {compliance}", None),
        (":SOUR:CURR:VLIM?", compliance_reply),
        (":SOUR:CURR:READ:BACK ON", None),
        (':SENS:FUNC "VOLT"', None),
        (":SENS:VOLT:RANG:AUTO ON", None),
        (f":SENS:VOLT:NPLC {nplc}", None),
        (":OUTP:CURR:SMOD HIMP", None),
        NO_ERROR,
    ]


def k2450(pairs: list):
    """expected_protocol for the 2450 driver; its constructor sends nothing."""
    return expected_protocol(Keithley2450CurrentSource, pairs)


def switched_on(smu):
    """Mark the output as switched on by this driver (pins only the reading exchange)."""
    smu._output_on = True
    return smu


# -- construction, identity, opening ------------------------------------------------------


def test_constructor_sends_nothing():
    with k2450([]) as smu:
        assert smu.current_ceiling == 4e-3


def test_identify():
    with k2450([("*IDN?", IDN)]) as smu:
        assert smu.identify() == IDN


@pytest.mark.parametrize(("idn", "ok"), [
    (IDN, True),
    ("KEITHLEY INSTRUMENTS INC.,MODEL 2400,4109876,C32", False),  # 2400 or 2450 in emulation
    ("KEITHLEY INSTRUMENTS,MODEL 2460,04412345,1.7.3c", True),  # same SCPI dialect
    ("KEITHLEY INSTRUMENTS,MODEL 2470,04412345,1.7.3c", True),
    ("TEKTRONIX,MODEL 2450,1,1", False),
    ("", False),
])
def test_idn_matches(idn, ok):
    assert Keithley2450CurrentSource.idn_matches(idn) is ok


def test_from_adapter_verifies_idn_and_command_set():
    adapter = ProtocolAdapter([("*IDN?", IDN), ("*LANG?", "SCPI")])
    smu = Keithley2450CurrentSource.from_adapter(adapter, ADDRESS)
    assert smu.identity == IDN and smu.resource_name == ADDRESS


@pytest.mark.parametrize("language", ["TSP", "SCPI2400"])
def test_other_command_set_is_refused_with_the_fix(language):
    adapter = ProtocolAdapter([("*IDN?", IDN), ("*LANG?", language)])
    with pytest.raises(WrongInstrument, match=f"{language} command set.*Command Set to SCPI"):
        Keithley2450CurrentSource.from_adapter(adapter, ADDRESS)


def test_wrong_idn_raises_naming_address_and_idn():
    other = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4109876,C32"
    adapter = ProtocolAdapter([("*IDN?", other)])
    with pytest.raises(WrongInstrument) as info:
        Keithley2450CurrentSource.from_adapter(adapter, ADDRESS)
    assert ADDRESS in str(info.value) and other in str(info.value)


def test_open_verifies_idn_through_the_visa_adapter(monkeypatch):
    monkeypatch.setattr("ionto_instruments.sourcemeter.VISAAdapter",
                        lambda *args, **kwargs: ProtocolAdapter([("*IDN?", "ACME,X,1,1")]))
    with pytest.raises(WrongInstrument, match="ACME"):
        Keithley2450CurrentSource.open(ADDRESS)


# -- configuration ------------------------------------------------------------------------


def test_configure_sends_the_documented_sequence():
    with k2450(configure_pairs()) as smu:
        smu.configure_current_source(80)


def test_configure_with_other_values():
    pairs = configure_pairs(compliance="12.5", compliance_reply="12.5", source_range="0.0001",
                            nplc="10", prot="PROT20")
    with k2450(pairs) as smu:
        smu.configure_current_source(12.5, source_range=1e-4, nplc=10)


def test_configure_fails_when_compliance_is_clamped():
    pairs = configure_pairs(compliance="40", compliance_reply="+2.000000E+01",
                            prot="PROT60")[:10]
    with k2450(pairs) as smu:
        with pytest.raises(InstrumentError, match="reads back 20 V"):
            smu.configure_current_source(40)
        with pytest.raises(InstrumentError, match="refusing"):
            smu.output_on()


def test_reset_is_plain_rst():
    with k2450([("*RST", None)]) as smu:
        smu.reset()


# -- source, output -----------------------------------------------------------------------


@pytest.mark.parametrize(("amps", "sent"), [
    (0.002, "0.002"), (-0.003, "-0.003"), (0.0, "0"), (4e-3, "0.004"), (-4e-3, "-0.004"),
])
def test_set_current(amps, sent):
    with k2450([(f":SOUR:CURR:LEV {sent}", None), NO_ERROR]) as smu:
        smu.set_current(amps)


def test_source_current_read_back():
    with k2450([(":SOUR:CURR?", "-1.500000E-03")]) as smu:
        assert smu.source_current == pytest.approx(-1.5e-3)


def test_output_on_refused_before_configuration():
    with k2450([]) as smu, pytest.raises(InstrumentError, match="configure_current_source"):
        smu.output_on()


def test_output_on_off_after_configuration():
    with k2450([*configure_pairs(), ("OUTPUT ON", None), NO_ERROR,
                ("OUTPUT OFF", None)]) as smu:
        smu.configure_current_source(80)
        smu.output_on()
        smu.output_off()


@pytest.mark.parametrize(("reply", "state"), [("1", True), ("0", False)])
def test_output_read_back(reply, state):
    with k2450([("OUTPUT?", reply)]) as smu:
        assert smu.output_enabled() is state


@pytest.mark.parametrize("reply", ["ON", "x", "2", "", "0;1"])
def test_output_read_back_garbled(reply):
    # PyMeasure's Keithley2450.source_enabled (cast=bool) would return a truthy string here.
    with k2450([("OUTPUT?", reply)]) as smu, pytest.raises(UnparsableReading):
        smu.output_enabled()


# -- readings -----------------------------------------------------------------------------


def test_read_normal():
    with k2450([(READ, "+3.012000E+01,+2.000000E-03,+1.234000E+01,136")]) as smu:
        assert switched_on(smu).read() == Reading(time=12.34, voltage=30.12, current=2e-3,
                                                  compliance=False)


@pytest.mark.parametrize(("status", "limited"), [
    (136 + 32, True), (136 + 4, True), (136, False), (8, False), (128 + 64, False)])
def test_read_limit_from_the_source_status(status, limited):
    with k2450([(READ, f"+8.000000E+01,+3.000000E-06,+6.000000E+01,{status}")]) as smu:
        reading = switched_on(smu).read()
    assert reading == Reading(time=60.0, voltage=80.0, current=3e-6, compliance=limited)


@pytest.mark.parametrize("reply", [
    "+3.012000E+01,+2.000000E-03,+1.234000E+01",  # source status missing
    "+3.0E+01,+2.0E-03,136",  # three numbers
    "+3.0E+01,+2.0E-03,+1.2E+01,+5.0E+00,136",  # five numbers
    "+3.0E+01;+2.0E-03;+1.2E+01;136",  # wrong separators
    "+3.0E+01,+2.0E-03,+1.2E+01;0",  # the old compound reply
    "+3.0E+01,+2.0E-03,+1.2E+01,1.5",  # status not an integer
    "+3.0E+01,+2.0E-0X,+1.2E+01,136",  # non-numeric byte
    "+9.91E+37,+2.0E-03,+1.2E+01,136",  # NaN marker as the voltage
    "",
    b"\x80\x81\x82",  # undecodable bytes
])
def test_read_garbled_raises_with_the_raw_reply(reply):
    with k2450([(READ, reply)]) as smu, pytest.raises(UnparsableReading) as info:
        switched_on(smu).read()
    raw = reply if isinstance(reply, str) else repr(reply)[2:-1]
    assert raw in str(info.value)


# -- errors, emergency, shutdown ----------------------------------------------------------


def test_drain_errors():
    pairs = [("SYST:ERR?", '-113,"Undefined header;1;2024/01/01 12:00:00.000"'), NO_ERROR]
    with k2450(pairs) as smu:
        assert smu.drain_errors() == ['-113,"Undefined header;1;2024/01/01 12:00:00.000"']


def test_emergency_off_is_one_write():
    with k2450([("OUTPUT OFF", None)]) as smu:
        smu.emergency_off()


def test_emergency_off_matches_the_output_setter():
    with k2450([("OUTPUT OFF", None)]) as smu:
        smu.source_enabled = False
        with pytest.raises(ValueError, match="call output_on()"):
            smu.source_enabled = True  # nothing written: output_on() checks first
    assert Keithley2450CurrentSource.OUTPUT_OFF_COMMAND == "OUTPUT OFF"


def test_shutdown_switches_off_at_once_without_ramp():
    with k2450([("OUTPUT OFF", None)]) as smu:  # no :SOUR:CURR? query, no ramp, no :ABOR
        smu.shutdown()
        assert smu.isShutdown is True


# -- the inherited API, narrowed ----------------------------------------------------------


def test_voltage_sourcing_refused_and_nothing_written():
    with k2450([]) as smu:
        with pytest.raises(ValueError, match="only sources 'current'"):
            smu.source_mode = "voltage"
        with pytest.raises(ValueError, match="voltage sourcing is disabled"):
            smu.source_voltage = 0.5
        with pytest.raises(ValueError, match="voltage sourcing is disabled"):
            smu.apply_voltage(voltage_range=1, compliance_current=1e-3)
        with pytest.raises(ValueError, match="voltage sourcing is disabled"):
            smu.ramp_to_voltage(1.0)


def test_compliance_is_strict_not_truncated():
    # PyMeasure's Keithley2450 would silently send ":SOUR:CURR:VLIM 210" for 500 V.
    with k2450([]) as smu, pytest.raises(ValueError, match="compliance voltage 500 V"):
        smu.compliance_voltage = 500


def test_ramp_to_current_checks_the_target_first():
    with k2450([]) as smu, pytest.raises(ValueError, match="source current"):
        smu.ramp_to_current(5e-3)


def test_ramp_to_current_within_the_ceiling():
    steps = [(":SOUR:CURR?", "0"), (":SOUR:CURR:LEV 0", None), (":SOUR:CURR:LEV 0.001", None),
             (":SOUR:CURR:LEV 0.002", None)]
    with k2450(steps) as smu:
        smu.ramp_to_current(2e-3, steps=3, pause=0)


# -- VISA errors, threads -----------------------------------------------------------------


class FailingAdapter(Adapter):
    """Every exchange fails with the given VISA status (timeout, connection lost)."""

    def __init__(self, code: StatusCode):
        super().__init__()
        self.connection = MagicMock()
        self.code = code

    def _write(self, command, **kwargs):
        raise VisaIOError(self.code)

    def _read(self, **kwargs):
        raise VisaIOError(self.code)


@pytest.mark.parametrize("code", [StatusCode.error_timeout, StatusCode.error_connection_lost])
def test_visa_errors_become_instrument_fault(code):
    smu = switched_on(Keithley2450CurrentSource(FailingAdapter(code)))
    calls = [smu.read, smu.output_enabled, smu.output_off, smu.emergency_off, smu.drain_errors,
             lambda: smu.set_current(1e-3), lambda: smu.configure_current_source(40)]
    for call in calls:
        with pytest.raises(InstrumentFault) as info:
            call()
        assert isinstance(info.value.__cause__, VisaIOError)


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


def test_emergency_off_clears_and_writes_during_an_exchange_without_waiting():
    adapter = GatedAdapter("+3.0E+01,+2.0E-03,+1.0E+00,136")
    adapter.connection.clear.side_effect = lambda: adapter.writes.append("<device clear>")
    smu = switched_on(Keithley2450CurrentSource(adapter))
    reader = threading.Thread(target=smu.read, daemon=True)
    reader.start()
    assert adapter.in_read.wait(5)
    smu.emergency_off(lock_timeout=5)
    assert adapter.writes == [READ, "<device clear>", "OUTPUT OFF"]
    adapter.release.set()
    reader.join(5)
