"""Scenarios: parsing, the catalogue, and every fault on the wire at its minute, not before."""

from __future__ import annotations

import math
import time

import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

from ionto_instruments.clock import RealClock, ScaledClock, VirtualClock
from ionto_instruments.simulator import SCENARIOS, Fault, SimulatedSourceMeter, parse_scenario
from ionto_instruments.simulator.scenarios import Scenario

MODELS = ["keithley2400", "keithley2450"]
SETUP = {
    "keithley2400": ("*RST", ":SOURCE:FUNCTION CURR", ":SENSE:RESISTANCE:MODE MAN",
                     ":SENSE:FUNCTION:OFF:ALL", ':SENSE:FUNCTION:ON "VOLTAGE","CURRENT"',
                     ":SENSE:VOLTAGE:PROTECTION 40",
                     ":SOURCE:CURRENT {:g}", "OUTPUT 1"),
    "keithley2450": ("*RST", ":SOUR:FUNC CURR", ":SOUR:CURR:VLIM 40",
                     ":SOUR:CURR:LEV {:g}", "OUTPUT ON"),
}
OFF = {"keithley2400": "OUTPUT 0", "keithley2450": "OUTPUT OFF"}
READ = {
    "keithley2400": ":READ?",
    "keithley2450": ':READ? "defbuffer1", READ, SOUR, REL, SOURSTAT',
}


class Wire:
    """A pyvisa session to a fresh simulator, set up to source `amps` with 40 V compliance."""

    def __init__(self, model: str, scenario: str, amps: float = 2e-3, clock=None) -> None:
        self.clock = clock or VirtualClock()
        self.sim = SimulatedSourceMeter(model, scenario=scenario, clock=self.clock)
        self.model = model
        self.inst = self.sim.open_resource()
        for command in SETUP[model]:
            self.inst.write(command.format(amps))

    def read(self) -> tuple[float, float, bool]:
        """Return (V, I, compliance) from one reading query."""
        reply = self.inst.query(READ[self.model])
        if self.model == "keithley2400":
            v, i, _, _, status = (float(x) for x in reply.split(","))
            return v, i, bool(int(status) & 8)
        v, i, _, status = (float(x) for x in reply.split(","))
        return v, i, bool(int(status) & 32)

    def at(self, run_seconds: float) -> None:
        self.clock.sleep_until(self.sim.model.epoch + run_seconds)


# -- parsing and the catalogue -------------------------------------------------------------

@pytest.mark.parametrize("text,fault,minute,name", [
    ("normal", None, 0.0, "normal"),
    ("impedance-drop@12", Fault.IMPEDANCE_DROP, 12.0, "impedance-drop@12"),
    ("contact-loss@0.25", Fault.CONTACT_LOSS, 0.25, "contact-loss@0.25"),
    ("impedance-drop", Fault.IMPEDANCE_DROP, 10.0, "impedance-drop@10"),
    ("high-impedance", Fault.HIGH_IMPEDANCE, 0.0, "high-impedance@0"),
    ("high-impedance@5", Fault.HIGH_IMPEDANCE, 5.0, "high-impedance@5"),
    ("drying@3", Fault.DRYING, 3.0, "drying@3"),
    ("io-timeout", Fault.IO_TIMEOUT, 10.0, "io-timeout@10"),
    (" Garbled@1.5 ", Fault.GARBLED, 1.5, "garbled@1.5"),
    ("disconnect@0", Fault.DISCONNECT, 0.0, "disconnect@0"),
])
def test_parse_scenario(text, fault, minute, name):
    scenario = parse_scenario(text)
    assert scenario.fault == fault
    assert scenario.onset_min == minute
    assert scenario.name == name == str(scenario)
    assert parse_scenario(scenario.name) == scenario


@pytest.mark.parametrize("text", ["", "sunburn", "impedance_drop", "normal@3",
                                  "impedance-drop@", "impedance-drop@x", "contact-loss@-1",
                                  "drying@nan", "drying@inf"])
def test_bad_scenarios_are_refused(text):
    with pytest.raises(ValueError) as info:
        parse_scenario(text)
    if "@" not in text:
        for name in SCENARIOS:
            assert name in str(info.value), "the message lists the valid scenarios"


def test_catalogue_has_normal_and_every_fault_with_one_line():
    assert set(SCENARIOS) == {"normal", *(f.value for f in Fault)}
    for name, line in SCENARIOS.items():
        assert line and "\n" not in line, name
        assert parse_scenario(name)


def test_fault_resistance_rules():
    base = 4e3
    assert Scenario().resistance(base, 1e5) == base
    drop = parse_scenario("impedance-drop@1")
    assert drop.resistance(base, 59.9) == base
    assert drop.resistance(base, 60.0) == pytest.approx(0.2 * base)
    assert parse_scenario("contact-loss@1").resistance(base, 61) == math.inf
    assert parse_scenario("high-impedance").resistance(base, 0.0) == 60e3
    assert parse_scenario("high-impedance@2").resistance(base, 121) == pytest.approx(10 * base)
    drying = parse_scenario("drying@1")
    rising = [drying.resistance(base, 60 + s) for s in range(0, 600, 30)]
    assert rising == sorted(rising) and rising[0] == base
    assert drying.resistance(base, 60 + 180) > 20e3 / 2.5, "compliance within a few minutes"
    assert drying.resistance(base, 1e7) <= 1e9
    assert parse_scenario("garbled@1").wire_fault(59) is None
    assert parse_scenario("garbled@1").wire_fault(60) is Fault.GARBLED
    assert parse_scenario("drying@1").wire_fault(600) is None


def test_describe():
    sim = SimulatedSourceMeter("keithley2400", scenario="impedance-drop@12",
                               clock=ScaledClock(60))
    assert sim.describe() == "simulated Keithley 2400, scenario impedance-drop@12, clock x60"
    sim = SimulatedSourceMeter("keithley2450", clock=VirtualClock())
    assert sim.describe() == "simulated Keithley 2450, scenario normal, clock virtual"
    assert isinstance(SimulatedSourceMeter().clock, RealClock)
    with pytest.raises(ValueError, match="keithley2400"):
        SimulatedSourceMeter("keithley2000")
    with pytest.raises(ValueError, match="normal"):
        SimulatedSourceMeter(scenario="lightning")


# -- faults on the wire --------------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
def test_contact_loss_puts_v_at_the_limit_with_the_flag(model):
    wire = Wire(model, "contact-loss@12")
    wire.at(12 * 60 - 0.5)
    v, i, compliance = wire.read()
    assert not compliance and 2e-3 * 3e3 * 0.9 < v < 12.0 and i == pytest.approx(2e-3, rel=0.01)
    wire.at(12 * 60)
    v, i, compliance = wire.read()
    assert compliance
    assert v == pytest.approx(40.0, rel=0.02)
    assert abs(i) < 1e-7


@pytest.mark.parametrize("model", MODELS)
def test_contact_loss_flag_on_the_secondary_queries_too(model):
    wire = Wire(model, "contact-loss@1")
    query = (":SENSE:VOLTAGE:PROTECTION:TRIPPED?" if model == "keithley2400"
             else ":SOUR:CURR:VLIM:TRIP?")
    assert wire.inst.query(query) == "0"
    wire.at(60)
    assert wire.inst.query(query) == "1"


@pytest.mark.parametrize("model", MODELS)
def test_impedance_drop_makes_v_fall_by_the_step(model):
    wire = Wire(model, "impedance-drop@12")
    wire.at(12 * 60 - 0.001)
    before, i_before, _ = wire.read()
    wire.at(12 * 60)
    after, i_after, compliance = wire.read()
    assert not compliance
    assert after / before == pytest.approx(0.2, rel=0.03)
    assert i_after == pytest.approx(i_before, rel=0.01)


@pytest.mark.parametrize("model", MODELS)
def test_high_impedance_from_the_start(model):
    wire = Wire(model, "high-impedance", amps=50e-6)  # a contact-check current
    v, i, compliance = wire.read()
    assert not compliance
    assert v / i == pytest.approx(60e3, rel=0.02)
    wire.inst.write(SETUP[model][-2].format(2e-3))
    v, _, compliance = wire.read()
    assert compliance and v == pytest.approx(40.0, rel=0.02)


@pytest.mark.parametrize("model", MODELS)
def test_high_impedance_at_a_minute_steps_up_tenfold(model):
    wire = Wire(model, "high-impedance@5", amps=0.5e-3)
    wire.at(5 * 60 - 0.001)
    v_before, i_before, compliance = wire.read()
    assert not compliance
    wire.at(5 * 60)
    v_after, i_after, _ = wire.read()
    assert (v_after / i_after) / (v_before / i_before) == pytest.approx(10, rel=0.03)


@pytest.mark.parametrize("model", MODELS)
def test_drying_rises_slowly_to_compliance_within_minutes(model):
    wire = Wire(model, "drying@5")
    wire.at(5 * 60)
    v_onset, _, _ = wire.read()
    wire.at(5 * 60 + 10)
    v_soon, _, compliance = wire.read()
    assert not compliance and v_onset < v_soon < 1.3 * v_onset, "a slow rise, not a step"
    tripped_at = None
    for second in range(5 * 60, 10 * 60, 5):
        wire.at(second)
        if wire.read()[2]:
            tripped_at = second
            break
    assert tripped_at is not None and tripped_at - 5 * 60 <= 4 * 60


@pytest.mark.parametrize("model", MODELS)
def test_io_timeout_is_instant_on_the_virtual_clock(model):
    wire = Wire(model, "io-timeout@12")
    wire.inst.timeout = 60_000
    wire.at(12 * 60 - 0.5)
    wire.read()
    wire.at(12 * 60)
    started_clock, started_wall = wire.clock.now(), time.perf_counter()
    with pytest.raises(VisaIOError) as info:
        wire.read()
    assert info.value.error_code == constants.VI_ERROR_TMO
    assert wire.clock.now() - started_clock == pytest.approx(60.0)
    assert time.perf_counter() - started_wall < 0.5
    with pytest.raises(VisaIOError):
        wire.inst.query("*IDN?")
    wire.inst.write(OFF[model])  # the hung instrument still executes what it receives
    assert not wire.sim.model.output_enabled
    assert wire.sim.model.output_off_times[-1] >= 12 * 60


def test_io_timeout_waits_in_real_time_on_the_real_clock():
    wire = Wire("keithley2400", "io-timeout@0", clock=RealClock())
    wire.inst.timeout = 50
    started = time.perf_counter()
    with pytest.raises(VisaIOError) as info:
        wire.read()
    assert info.value.error_code == constants.VI_ERROR_TMO
    assert 0.045 <= time.perf_counter() - started < 1.0


def _parses_as_floats(reply: str) -> bool:
    try:
        [float(x) for part in reply.split(";") for x in part.split(",")]
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("model", MODELS)
def test_garbled_reading_reply(model):
    wire = Wire(model, "garbled@12")
    wire.at(12 * 60 - 0.5)
    assert _parses_as_floats(wire.inst.query(READ[model]))
    wire.at(12 * 60)
    for _ in range(3):
        reply = wire.inst.query(READ[model])
        assert reply and not _parses_as_floats(reply)
        assert not any(char.isdigit() for char in reply)
    assert wire.inst.query("OUTPUT?") == "1", "other queries still answer"
    wire.inst.write(OFF[model])
    assert wire.inst.query("OUTPUT?") == "0"


@pytest.mark.parametrize("model", MODELS)
def test_disconnect_fails_every_read_and_write(model):
    wire = Wire(model, "disconnect@12")
    wire.at(12 * 60 - 0.5)
    wire.read()
    wire.at(12 * 60)
    for action in (lambda: wire.inst.write(OFF[model]), wire.inst.read, wire.read):
        with pytest.raises(VisaIOError) as info:
            action()
        assert info.value.error_code == constants.VI_ERROR_CONN_LOST
    assert wire.sim.model.output_enabled, "nothing reaches the instrument: the output stays on"
    assert wire.sim.model.output_off_times == []


@pytest.mark.parametrize("model", MODELS)
def test_a_session_opened_after_a_disconnect_reaches_the_instrument(model):
    wire = Wire(model, "disconnect@12")
    wire.at(12 * 60 + 1)
    with pytest.raises(VisaIOError):
        wire.inst.query("OUTPUT?")
    fresh = wire.sim.open_resource()
    fresh.write(OFF[model])
    assert fresh.query("OUTPUT?") == "0"
    assert not wire.sim.model.output_enabled
    with pytest.raises(VisaIOError):
        wire.inst.query("OUTPUT?"), "the lost session stays lost"


@pytest.mark.parametrize("scenario", ["contact-loss@1", "impedance-drop@1", "garbled@1",
                                      "io-timeout@1"])
def test_rst_restarts_the_run_axis(scenario):
    wire = Wire("keithley2400", scenario)
    wire.inst.timeout = 100
    wire.at(61)
    assert wire.sim.scenario.active(wire.sim.model.run_time())
    for command in SETUP["keithley2400"]:
        wire.inst.write(command.format(2e-3))
    v, i, compliance = wire.read()
    assert not compliance and v / i == pytest.approx(15e3, rel=0.02)
