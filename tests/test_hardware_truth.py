"""The strict simulator behaves like the manuals say, and the drivers are right for it.

Each behaviour of the real instruments (docs/scpi.md cites the manual) has a test here, raw
through pyvisa; then the drivers are run against it. The old, kind simulator's driver
sequence (`:SENSE:FUNCTION:ALL`) is replayed to show it now fails: it puts the auto-ohms
test current into the load instead of the setpoint.
"""

from __future__ import annotations

import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

from ionto_instruments.clock import VirtualClock
from ionto_instruments.connect import open_source
from ionto_instruments.models import MODEL_TABLE
from ionto_instruments.simulator import PhantomParams, SimulatedSourceMeter
from ionto_instruments.source import InstrumentError, InstrumentFault, WrongInstrument
from procedures.runner import make_procedure, run_protocol

QUIET = PhantomParams(v_noise_rel=0, v_noise_abs=0, i_noise_abs=0)

#: What the driver sent before this issue: FUNC:ALL also switches resistance on, in AUTO.
OLD_2400_SEQUENCE = [
    "*RST", "*CLS", ":SOURCE:FUNCTION CURR", ":SOURCE:CURRENT:RANGE 0.004",
    ":SENSE:VOLTAGE:PROTECTION 40", ":SENSE:FUNCTION:ALL", ":SENSE:VOLTAGE:RANGE 40",
    ":SENSE:CURRENT:NPLCYCLES 1", ":OUTPUT:SMODE HIMP", ":SOURCE:CLEAR:AUTO 0",
]


def raw(model: str = "keithley2400", **options):
    """A fresh strict simulator (virtual clock) and a raw pyvisa session to it."""
    options.setdefault("clock", VirtualClock())
    sim = SimulatedSourceMeter(model, **options)
    return sim, sim.open_resource(timeout=200)


def errors(inst) -> list[str]:
    found = []
    while not (reply := inst.query("SYST:ERR?")).startswith("0,"):
        found.append(reply)
        assert len(found) < 12
    return found


def source(model: str = "keithley2400", **options):
    options.setdefault("clock", VirtualClock())
    return open_source(model=model, **options)


# -- 2400: :READ? with the output off ------------------------------------------------------


def test_2400_read_with_the_output_off_is_803_and_no_reply():
    sim, inst = raw()
    inst.write(":READ?")
    with pytest.raises(VisaIOError) as info:
        inst.read()
    assert info.value.error_code == constants.VI_ERROR_TMO
    assert errors(inst)[0] == '+803,"Not permitted with OUTPUT off"'


def test_driver_never_sends_read_with_the_output_off():
    smu = source()
    smu.configure_current_source(40)
    with pytest.raises(InstrumentFault, match="output off"):
        smu.read()
    assert not any(c.text == ":READ?" for c in smu.simulator.model.commands)
    assert smu.drain_errors() == []


# -- 2400: auto ohms -----------------------------------------------------------------------


@pytest.mark.parametrize(("ohms", "amps"), [(150.0, 10e-3), (1.5e3, 1e-3), (15e3, 100e-6)])
def test_auto_ohms_sources_its_test_current_and_rejects_setpoints(ohms, amps):
    sim, inst = raw(load_ohm=ohms)
    for command in OLD_2400_SEQUENCE:
        inst.write(command)
    inst.write(":SOURCE:CURRENT -0.002")  # a dexamethasone setpoint: negative
    inst.write("OUTPUT 1")
    assert sim.model.load_current() == pytest.approx(amps)  # positive, whatever was set
    assert errors(inst) == ['+825,"Invalid with auto-ohms on"']


def test_old_driver_sequence_puts_10_mA_into_150_ohm_on_the_strict_simulator():
    """The sequence that worked on the kind simulator: 2.5x the 4 mA ceiling, in the load."""
    sim, inst = raw(load_ohm=150.0)
    for command in OLD_2400_SEQUENCE:
        inst.write(command)
    inst.write(":SOURCE:CURRENT 0.002")
    inst.write("OUTPUT 1")
    assert sim.model.load_current() == pytest.approx(10e-3)
    assert sim.model.load_current() > 2.5 * 4e-3 - 1e-9


def test_driver_sources_the_setpoint_into_150_ohm():
    smu = source(load_ohm=150.0)
    smu.configure_current_source(40)
    smu.set_current(2e-3)
    smu.output_on()
    assert smu.simulator.model.load_current() == pytest.approx(2e-3)
    assert smu.read().current == pytest.approx(2e-3, rel=1e-3)
    assert smu.simulator.model.sense_functions == {"VOLT", "CURR"}
    assert smu.simulator.model.resistance_mode == "MAN"


def test_current_through_the_load_equals_the_setpoint_at_every_step(tmp_path):
    """A whole run on the strict 2400: the true current equals the setpoint at each reading."""
    clock = VirtualClock()
    smu = source(clock=clock, phantom=QUIET)
    model = smu.simulator.model
    seen: list[tuple[float, float]] = []
    process = model.process

    def spy(message: str):
        reply = process(message)
        if message == ":READ?":
            seen.append((model.setpoint, model.load_current()))
        return reply

    model.process = spy
    procedure = make_procedure(drug="dexamethasone", treatment_time=3.0)
    procedure.source = smu
    summary = run_protocol(procedure, output_dir=tmp_path, clock=clock)
    assert summary["outcome"] == "completed", summary
    assert len(seen) > 500
    assert all(load == pytest.approx(setpoint, abs=1e-12) for setpoint, load in seen)
    assert min(setpoint for setpoint, _ in seen) == pytest.approx(-2e-3)  # cathode: negative


def test_a_rejected_setpoint_is_a_fault_at_once():
    smu = source(load_ohm=1e3)
    smu.configure_current_source(40)
    smu.write(":SENSE:FUNCTION:ON:ALL")  # someone enables resistance, and AUTO ohms
    smu.write(":SENSE:RESISTANCE:MODE AUTO")
    with pytest.raises(InstrumentFault, match=r"\+825"):
        smu.set_current(1e-3)


# -- 2400: one command at a time, a reading takes its NPLC time ----------------------------


@pytest.mark.parametrize(("nplc", "hz", "expected"), [(1, 60, 0.071), (1, 50, 0.084),
                                                      (10, 50, 0.786)])
def test_reading_duration_from_nplc_and_line_frequency(nplc, hz, expected):
    sim, inst = raw(line_frequency=hz, load_ohm=1e3)
    inst.write(':SENSE:FUNCTION:ON "VOLTAGE","CURRENT"')
    inst.write(f":SENSE:CURRENT:NPLCYCLES {nplc}")
    inst.write("OUTPUT 1")
    start = sim.clock.now()
    inst.timeout = 2000
    inst.query(":READ?")
    assert sim.clock.now() - start == pytest.approx(expected, abs=0.001)


def test_commands_queue_behind_a_reading_and_a_device_clear_cuts_it_short():
    sim, inst = raw(load_ohm=1e3)
    inst.write(':SENSE:FUNCTION:ON "VOLTAGE","CURRENT"')
    inst.write("OUTPUT 1")
    duration = sim.model.reading_duration()
    start = sim.model.run_time()
    inst.write(":READ?")  # a reading in progress; the reply is not read
    inst.write("OUTPUT 0")  # queued: takes effect when the reading ends
    assert sim.model.output_off_times[-1] == pytest.approx(start + duration)
    inst.write("OUTPUT 1")
    start = sim.model.run_time()
    inst.write(":READ?")
    inst.clear()  # device clear aborts the reading
    inst.write("OUTPUT 0")
    assert sim.model.output_off_times[-1] == pytest.approx(start)


def test_driver_emergency_off_during_a_reading_is_immediate():
    smu = source(load_ohm=1e3)
    smu.configure_current_source(40)
    smu.set_current(1e-3)
    smu.output_on()
    model = smu.simulator.model
    smu.adapter.write(":READ?")  # another thread's reading, still in progress
    start = model.run_time()
    smu.emergency_off()
    assert model.output_off_times[-1] == pytest.approx(start)
    assert not model.output_enabled


# -- over-voltage protection ---------------------------------------------------------------


def test_2400_ovp_selects_the_level_at_or_below_and_clamps_with_status_bit_4():
    sim, inst = raw(load_ohm=100e3)
    inst.write(":SOURCE:VOLTAGE:PROTECTION 50")
    assert float(inst.query(":SOURCE:VOLTAGE:PROTECTION?")) == 40.0  # 2400 manual p. 18-81
    inst.write(":SOURCE:VOLTAGE:PROTECTION 20")
    inst.write(':SENSE:FUNCTION:ON "VOLTAGE","CURRENT"')
    inst.write(":SENSE:VOLTAGE:PROTECTION 40")
    inst.write(":SOURCE:CURRENT 0.001")
    inst.write("OUTPUT 1")
    v, _, _, _, status = (float(x) for x in inst.query(":READ?").split(","))
    assert v == pytest.approx(20.0, rel=0.01)
    assert int(status) & (1 << 4) and not int(status) & (1 << 3)


def test_driver_sets_ovp_above_the_compliance_and_reads_it_back():
    smu = source()
    smu.configure_current_source(40)
    assert smu.ovp_V == 60.0 and smu.simulator.model.ovp_level == 60.0
    smu2450 = source("keithley2450")
    smu2450.configure_current_source(40)
    assert smu2450.ovp_V == 60.0 and smu2450.simulator.model.ovp_level == 60.0


def test_driver_reading_reports_an_ovp_clamp_as_compliance():
    smu = source(load_ohm=100e3)
    smu.configure_current_source(30)  # OVP 40 V
    smu.write(":SOURCE:VOLTAGE:PROTECTION 20")  # someone lowers it (front panel)
    smu.set_current(1e-3)
    smu.output_on()
    reading = smu.read()
    assert reading.compliance and reading.voltage == pytest.approx(20.0, rel=0.01)


def test_2450_prot_is_reset_by_sour_func_and_tokens_are_checked():
    sim, inst = raw("keithley2450")
    inst.write(":SOUR:VOLT:PROT PROT40")
    assert inst.query(":SOUR:VOLT:PROT?") == "PROT40"
    inst.write(":SOUR:FUNC CURR")
    assert inst.query(":SOUR:VOLT:PROT?") == "NONE"
    inst.write(":SOUR:VOLT:PROT PROT45")
    assert errors(inst) == ['-224,"Illegal parameter value;1;0 0"']


# -- 2450: command set, interlock ----------------------------------------------------------


@pytest.mark.parametrize("language", ["TSP", "SCPI2400"])
def test_2450_in_another_command_set_is_refused_with_the_fix(language):
    with pytest.raises(WrongInstrument, match="Command Set to SCPI, then switch"):
        source("keithley2450", language=language)


def test_2450_lang_takes_effect_after_a_power_cycle():
    sim, inst = raw("keithley2450", language="TSP")
    assert inst.query("*LANG?") == "TSP"
    inst.write(":SOUR:FUNC CURR")  # ignored in TSP mode: no SCPI state changes
    inst.write("*LANG SCPI")
    assert inst.query("*LANG?") == "TSP"
    sim.model.power_cycle()
    assert inst.query("*LANG?") == "SCPI"


def test_2450_interlock_open_clamps_near_42_V():
    sim, inst = raw("keithley2450", interlock=False, load_ohm=100e3)
    assert inst.query(":OUTP:INT:TRIP?") == "0"
    inst.write(":SOUR:CURR:VLIM 60")
    inst.write(":SOUR:CURR:LEV 0.001")
    inst.write("OUTPUT ON")
    assert sim.model.source_state()[0] == pytest.approx(42.0)


def test_driver_refuses_a_compliance_the_open_interlock_cannot_deliver():
    smu = source("keithley2450", interlock=False)
    with pytest.raises(ValueError, match="interlock is not asserted.*--compliance 37"):
        smu.check_limits(40.0, 2e-3)
    smu.check_limits(30.0, 2e-3)
    smu.configure_current_source(30.0)
    assert smu.compliance_voltage == 30.0  # what is recorded is what is applied


# -- per-model limits and IDN --------------------------------------------------------------


@pytest.mark.parametrize(("number", "model", "volts"), [
    ("2401", "keithley2400", 21.0), ("2420", "keithley2400", 63.0),
    ("2440", "keithley2400", 42.0), ("2460", "keithley2450", 105.0),
    ("2470", "keithley2450", 1100.0)])
def test_model_table_from_idn(number, model, volts):
    smu = source(model, instrument=number)
    assert f"MODEL {number}" in smu.identify()
    assert smu.spec.number == number and smu.spec.max_voltage_V == volts
    assert MODEL_TABLE[number].max_voltage_V == volts


def test_compliance_above_the_model_limit_is_refused_naming_the_model():
    smu = source(instrument="2401")
    with pytest.raises(ValueError, match="Keithley 2401.*21 V max"):
        smu.check_limits(40.0, 2e-3)
    with pytest.raises(ValueError, match="Keithley 2401"):
        smu.configure_current_source(40.0)
    assert not any(c.text == "*RST" for c in smu.simulator.model.commands)


def test_2401_rejects_a_compliance_above_21_V_on_the_wire():
    sim, inst = raw(instrument="2401")
    inst.write(":SENSE:VOLTAGE:PROTECTION 40")
    assert errors(inst) == ['-222,"Data out of range"']


def test_procedure_preflight_refuses_a_compliance_the_model_cannot_deliver(tmp_path):
    clock = VirtualClock()
    procedure = make_procedure(compliance_voltage=40.0, treatment_time=3.0)
    procedure.source = source(instrument="2401", clock=clock)
    summary = run_protocol(procedure, output_dir=tmp_path, clock=clock)
    assert summary["outcome"] == "refused"
    assert "Keithley 2401" in summary["reason"]
    assert not procedure.source.simulator.model.output_enabled
    assert procedure.source.simulator.model.output_off_times == []


def test_undefined_header_is_113():
    _, inst = raw()
    inst.write(":SENSE:FUNCTION:EVERYTHING")
    inst.write(":SENSE:RESISTANCE:MODE SOMETIMES")
    assert errors(inst) == ['-113,"Undefined header"', '-224,"Illegal parameter value"']


# -- the inherited PyMeasure API cannot bypass the checks ----------------------------------


@pytest.mark.parametrize("model", ["keithley2400", "keithley2450"])
def test_inherited_output_on_goes_through_the_checks(model):
    smu = source(model)
    with pytest.raises(InstrumentError, match="configure_current_source"):
        smu.enable_source()
    with pytest.raises(ValueError, match="call output_on"):
        smu.source_enabled = True
    assert smu.simulator.model.output_off_times == [] and not smu.simulator.model.output_enabled
    smu.configure_current_source(40)
    smu.enable_source()
    assert smu.simulator.model.output_enabled
    smu.disable_source()
    assert not smu.simulator.model.output_enabled


@pytest.mark.parametrize("name", ["voltage", "current", "resistance"])
def test_2400_measure_properties_are_refused_and_send_nothing(name):
    smu = source()
    before = len(smu.simulator.model.commands)
    with pytest.raises(RuntimeError, match="switches the output on"):
        getattr(smu, name)
    assert len(smu.simulator.model.commands) == before
    assert not smu.simulator.model.output_enabled


def test_check_errors_has_pymeasures_shape():
    smu = source()
    smu.write(":NOT:A:COMMAND")
    assert smu.check_errors() == [(-113, "Undefined header")]
    assert smu.check_errors() == []


def test_reset_waits_for_opc():
    smu = source()
    smu.configure_current_source(40)
    texts = [c.text for c in smu.simulator.model.commands]
    assert texts[texts.index("*RST") + 1] == "*OPC?"
    assert texts.count(":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS") == 2


def test_the_model_can_learn_commands_from_another_module():
    sim, inst = raw("keithley2450")
    seen = []
    sim.model.add_commands(plain={":TRIG:STATE?": lambda: "IDLE;IDLE;"},
                           with_argument={":TRIG:LOAD": seen.append})
    inst.write(':TRIG:LOAD "Empty"')
    assert inst.query(":TRIG:STATE?") == "IDLE;IDLE;" and seen == ['"Empty"']
