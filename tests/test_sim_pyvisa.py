"""The simulated SourceMeter through real pyvisa: the exact SCPI of docs/scpi.md, both models."""

from __future__ import annotations

import importlib.resources
import statistics
import time

import pytest
import pyvisa
from pymeasure.adapters import VISAAdapter
from pyvisa import constants
from pyvisa.errors import VisaIOError

from ionto_instruments.clock import VirtualClock
from ionto_instruments.simulator import MODELS, PhantomParams, SimulatedSourceMeter
from ionto_instruments.simulator.backend import load_devices

QUIET = PhantomParams(v_noise_rel=0, v_noise_abs=0, i_noise_abs=0)

#: Every command of docs/scpi.md, per model, in the order a driver configures.
CONFIGURE = {
    "keithley2400": [
        "*RST",
        "*CLS",
        ":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS",
        ":SOURCE:FUNCTION CURR",
        ":SENSE:RESISTANCE:MODE MAN",
        ":SENSE:FUNCTION:OFF:ALL",
        ':SENSE:FUNCTION:ON "VOLTAGE","CURRENT"',
        ":SOURCE:CURRENT:RANGE 0.004",
        ":SOURCE:CURRENT 0",
        ":SENSE:VOLTAGE:PROTECTION 40",
        ":SENSE:VOLTAGE:RANGE 40",
        ":SOURCE:VOLTAGE:PROTECTION 60",
        ":SENSE:CURRENT:NPLCYCLES 1",
        ":OUTPUT:SMODE HIMP",
        ":SOURCE:CLEAR:AUTO 0",
        ":SYSTEM:TIME:RESET",
    ],
    "keithley2450": [
        "*RST",
        "*CLS",
        ":SOUR:FUNC CURR",
        ":SOUR:VOLT:PROT PROT60",
        ":SOUR:CURR:RANG:AUTO 0;:SOUR:CURR:RANG 0.004",
        ":SOUR:CURR:LEV 0",
        ":SOUR:CURR:VLIM 40",
        ":SOUR:CURR:READ:BACK ON",
        ':SENS:FUNC "VOLT"',
        ":SENS:VOLT:RANG:AUTO ON",
        ":SENS:VOLT:NPLC 1",
        ":OUTP:CURR:SMOD HIMP",
    ],
}
IDN = {
    "keithley2400": "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4109876,C32   Oct  4 2010 "
                    "14:20:11/A02  /S/K",
    "keithley2450": "KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.3c",
}
LEVEL = {"keithley2400": ":SOURCE:CURRENT {:g}", "keithley2450": ":SOUR:CURR:LEV {:g}"}
LEVEL_READ = {"keithley2400": ":SOURCE:CURRENT?", "keithley2450": ":SOUR:CURR?"}
LIMIT = {"keithley2400": ":SENSE:VOLTAGE:PROTECTION {:g}", "keithley2450": ":SOUR:CURR:VLIM {:g}"}
LIMIT_READ = {"keithley2400": ":SENSE:VOLTAGE:PROTECTION?", "keithley2450": ":SOUR:CURR:VLIM?"}
TRIP = {"keithley2400": ":SENSE:VOLTAGE:PROTECTION:TRIPPED?",
        "keithley2450": ":SOUR:CURR:VLIM:TRIP?"}
ON = {"keithley2400": "OUTPUT 1", "keithley2450": "OUTPUT ON"}
OFF = {"keithley2400": "OUTPUT 0", "keithley2450": "OUTPUT OFF"}
READ = {
    "keithley2400": ":READ?",
    "keithley2450": ':READ? "defbuffer1", READ, SOUR, REL, SOURSTAT',
}
NO_ERROR = {"keithley2400": '0,"No error"', "keithley2450": '0,"No error;0;0 0"'}
UNDEFINED = {"keithley2400": '-113,"Undefined header"',
             "keithley2450": '-113,"Undefined header;1;0 0"'}
MODEL_NAMES = list(CONFIGURE)


def open_sim(model: str, **options):
    clock = options.pop("clock", None) or VirtualClock()
    sim = SimulatedSourceMeter(model, clock=clock, **options)
    inst = pyvisa.ResourceManager(sim.visa_library).open_resource(
        sim.resource_name, read_termination="\n", write_termination="\n")
    return sim, inst


def configure(inst, model: str, amps: float = 0.0, limit: float = 40.0) -> None:
    for command in CONFIGURE[model]:
        inst.write(command)
    inst.write(LIMIT[model].format(limit))
    inst.write(LEVEL[model].format(amps))


def reading(inst, model: str) -> dict[str, float]:
    """One reading query, parsed: V, I, T and the compliance flag (and the 2400 status)."""
    reply = inst.query(READ[model])
    if model == "keithley2400":
        v, i, r, t, status = (float(x) for x in reply.split(","))
        assert r == 9.91e37
        return {"V": v, "I": i, "T": t, "status": int(status),
                "compliance": bool(int(status) & 8)}
    v, i, t, status = (float(x) for x in reply.split(","))
    return {"V": v, "I": i, "T": t, "status": int(status),
            "compliance": bool(int(status) & 32)}


def drain(inst, model: str) -> list[str]:
    errors = []
    while (reply := inst.query("SYST:ERR?")) != NO_ERROR[model]:
        errors.append(reply)
        assert len(errors) < 20
    return errors


# -- package data and addresses ------------------------------------------------------------

@pytest.mark.parametrize("model", MODEL_NAMES)
def test_yaml_loads_from_package_data(model):
    resource = importlib.resources.files("ionto_instruments.sim_configs") / f"{model}.yaml"
    assert resource.is_file()
    devices = load_devices(model)
    assert len(devices.list_resources()) == 1
    assert pyvisa.rname.to_canonical_name(MODELS[model][1]) in devices.list_resources()


def test_resource_names():
    assert SimulatedSourceMeter("keithley2400").resource_name == "GPIB0::24::INSTR"
    assert (SimulatedSourceMeter("keithley2450").resource_name
            == "USB0::0x05E6::0x2450::04412345::INSTR")


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_bare_yaml_answers_every_command_on_its_own(model):
    path = importlib.resources.files("ionto_instruments.sim_configs") / f"{model}.yaml"
    with importlib.resources.as_file(path) as yaml_path:
        manager = pyvisa.ResourceManager(f"{yaml_path}@sim")
        inst = manager.open_resource(MODELS[model][1], read_termination="\n",
                                     write_termination="\n")
        for command in CONFIGURE[model] + [LIMIT[model].format(40), LEVEL[model].format(1e-5),
                                           ON[model], OFF[model]]:
            inst.write(command)
        assert inst.query("*IDN?") == IDN[model]
        assert inst.query(LEVEL_READ[model]) == "1e-05"
        assert inst.query("SYST:ERR?") == NO_ERROR[model]
        manager.close()


# -- the contract --------------------------------------------------------------------------

@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_documented_command_is_answered(model):
    sim, inst = open_sim(model)
    assert inst.query("*IDN?") == IDN[model]
    configure(inst, model, amps=2e-3)
    inst.write(ON[model])
    assert inst.query("OUTPUT?") == "1"
    assert float(inst.query(LEVEL_READ[model])) == 2e-3
    assert float(inst.query(LIMIT_READ[model])) == 40.0
    assert inst.query(TRIP[model]) == "0"
    reading(inst, model)
    inst.write(OFF[model])
    assert inst.query("OUTPUT?") == "0"
    assert drain(inst, model) == []
    assert [c.text for c in sim.model.commands][1:4] == CONFIGURE[model][:3]


@pytest.mark.parametrize("model", MODEL_NAMES)
@pytest.mark.parametrize("amps", [0.0, 1e-05, -0.002, 0.004])
def test_setpoint_round_trips_small_and_zero_values(model, amps):
    sim, inst = open_sim(model)
    inst.write(LEVEL[model].format(amps))
    assert float(inst.query(LEVEL_READ[model])) == amps
    assert sim.model.setpoint == amps
    assert drain(inst, model) == []


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_reading_formats(model):
    _, inst = open_sim(model)
    configure(inst, model, amps=2e-3)
    inst.write(ON[model])
    reply = inst.query(READ[model])
    fields = reply.replace(";", ",").split(",")
    numbers = fields if model == "keithley2400" else fields[:3]
    assert all(len(x) == 13 and x[0] in "+-" and x[9] == "E" for x in numbers), reply
    if model == "keithley2450":  # V, I, T, source status (128 output on + 8 read-back)
        assert len(fields) == 4 and fields[3] == "136"
    else:
        assert len(fields) == 5


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_v_equals_i_times_r(model):
    sim, inst = open_sim(model, phantom=QUIET)
    configure(inst, model, amps=1.5e-3)
    inst.write(ON[model])
    sim.clock.sleep(200)
    r = sim.model.resistance()
    got = reading(inst, model)
    assert got["I"] == pytest.approx(1.5e-3, rel=1e-6)
    assert got["V"] == pytest.approx(1.5e-3 * r, rel=1e-6)
    assert not got["compliance"]
    if model == "keithley2400":
        assert got["status"] == (1 << 11) | (1 << 12) | (1 << 15)


@pytest.mark.parametrize("model", MODEL_NAMES)
@pytest.mark.parametrize("sign", [1, -1])
def test_compliance_clamps_v_and_sets_the_flag(model, sign):
    sim, inst = open_sim(model, phantom=QUIET)
    configure(inst, model, amps=sign * 4e-3, limit=40.0)  # 4 mA into 15 kOhm wants 60 V
    inst.write(ON[model])
    got = reading(inst, model)
    assert got["V"] == pytest.approx(sign * 40.0)
    assert got["I"] == pytest.approx(sign * 40.0 / 15e3, rel=1e-6)
    assert abs(got["I"]) < 4e-3
    assert got["compliance"]
    assert inst.query(TRIP[model]) == "1"
    if model == "keithley2400":
        assert got["status"] & 8
    inst.write(LEVEL[model].format(sign * 2e-3))
    assert not reading(inst, model)["compliance"]
    assert inst.query(TRIP[model]) == "0"


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_output_off_reads_zero_current(model):
    """2450: a reading with the output off is zero current (the 2400 refuses: see below)."""
    sim, inst = open_sim(model)
    configure(inst, model, amps=2e-3)
    if model == "keithley2450":
        got = reading(inst, model)
        assert got["I"] == 0.0 and abs(got["V"]) < 0.01 and not got["compliance"]
    inst.write(ON[model])
    assert reading(inst, model)["I"] == pytest.approx(2e-3, rel=0.01)
    sim.clock.sleep(42)
    start = sim.model.run_time()
    inst.write(OFF[model])
    assert sim.model.output_off_times == [pytest.approx(start)]
    assert not sim.model.output_enabled


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_rst_resets_everything(model):
    sim, inst = open_sim(model)
    configure(inst, model, amps=3e-3, limit=60)
    inst.write(ON[model])
    sim.clock.sleep(100)
    assert reading(inst, model)["T"] == pytest.approx(100.0)
    inst.write("*RST")
    assert inst.query("OUTPUT?") == "0"
    assert float(inst.query(LEVEL_READ[model])) == 0.0
    assert float(inst.query(LIMIT_READ[model])) == 21.0
    assert sim.model.run_time() == 0.0
    configure(inst, model, amps=1e-3)
    inst.write(ON[model])
    sim.clock.sleep(5)
    assert reading(inst, model)["T"] == pytest.approx(5.0)


def test_2400_time_reset_zeroes_the_timestamp_only():
    sim, inst = open_sim("keithley2400")
    configure(inst, "keithley2400", amps=1e-3)
    inst.write(ON["keithley2400"])
    sim.clock.sleep(30)
    inst.write(":SYSTEM:TIME:RESET")
    assert reading(inst, "keithley2400")["T"] == 0.0
    assert sim.model.run_time() == pytest.approx(30.0 + sim.model.reading_duration())


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_errors_go_to_the_queue(model):
    sim, inst = open_sim(model)
    inst.write(":SOURCE:VOLTAGE 5")
    inst.write(LEVEL[model].format(2.0))  # beyond 1.05 A
    inst.write(LEVEL[model].replace("{:g}", "lots"))
    assert sim.model.setpoint == 0.0
    errors = drain(inst, model)
    assert errors[0] == UNDEFINED[model]
    assert [e.split(",")[0] for e in errors] == ["-113", "-222", "-104"]
    inst.write("BOGUS")
    inst.write("*CLS")
    assert drain(inst, model) == []


def test_error_queue_overflows_like_the_instrument():
    sim, inst = open_sim("keithley2400")
    for _ in range(15):
        inst.write("BOGUS")
    errors = drain(inst, "keithley2400")
    assert len(errors) == 10 and errors[-1] == '-350,"Queue overflow"'


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_unread_reply_and_empty_read_are_errors_not_hangs(model):
    sim, inst = open_sim(model)
    inst.timeout = 5_000
    inst.write("*IDN?")
    inst.write("*IDN?")  # the first reply is discarded: -410
    assert inst.read() == IDN[model]
    started = sim.clock.now()
    with pytest.raises(VisaIOError) as info:
        inst.read()
    assert info.value.error_code == constants.VI_ERROR_TMO
    assert sim.clock.now() - started == pytest.approx(5.0)
    assert [e.split(",")[0] for e in drain(inst, model)] == ["-410", "-420"]


def test_clear_discards_an_unread_reply():
    sim, inst = open_sim("keithley2400")
    inst.write("*IDN?")
    inst.clear()
    inst.write("OUTPUT?")
    assert inst.read() == "0"
    assert drain(inst, "keithley2400") == []


# -- isolation, the PyMeasure path, timing -------------------------------------------------

def test_two_simulators_do_not_share_state():
    a, inst_a = open_sim("keithley2400")
    b, inst_b = open_sim("keithley2400")
    assert a.visa_library is not b.visa_library
    configure(inst_a, "keithley2400", amps=2e-3)
    inst_a.write(ON["keithley2400"])
    inst_a.write("BOGUS")
    assert inst_b.query("OUTPUT?") == "0"
    assert float(inst_b.query(":SOURCE:CURRENT?")) == 0.0
    assert drain(inst_b, "keithley2400") == []
    assert inst_a.query("OUTPUT?") == "1"
    assert b.model.commands[-1].text == "SYST:ERR?"
    assert all(c.text != "BOGUS" for c in b.model.commands)


def test_state_persists_across_resource_managers_of_one_simulator():
    sim, inst = open_sim("keithley2450")
    inst.write(ON["keithley2450"])
    inst.close()
    pyvisa.ResourceManager(sim.visa_library).close()
    again = sim.open_resource()
    assert again.query("OUTPUT?") == "1"


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_pymeasure_visa_adapter_reaches_the_simulator(model):
    sim = SimulatedSourceMeter(model, clock=VirtualClock())
    adapter = VISAAdapter(sim.resource_name, visa_library=sim.visa_library,
                          read_termination="\n", write_termination="\n")
    adapter.write(ON[model])
    adapter.write(LEVEL[model].format(1e-3))
    adapter.write(READ[model])
    assert adapter.read().count(",") >= 2
    assert sim.model.output_enabled and sim.model.setpoint == 1e-3
    adapter.close()


def test_io_latency_is_charged_per_query_in_clock_time():
    sim, inst = open_sim("keithley2450", io_latency=0.02)
    start = sim.clock.now()
    inst.write(ON["keithley2450"])
    assert sim.clock.now() == start
    inst.query("OUTPUT?")
    assert sim.clock.now() - start == pytest.approx(0.02)
    inst.query(READ["keithley2450"])  # plus the reading's own duration
    assert sim.clock.now() - start == pytest.approx(0.04 + sim.model.reading_duration())


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_a_normal_reply_does_not_pay_pyvisa_sims_polling_sleep(model):
    _, inst = open_sim(model)
    inst.write(ON[model])
    durations = []
    for _ in range(200):
        started = time.perf_counter()
        inst.query(READ[model])
        durations.append(time.perf_counter() - started)
    assert statistics.median(durations) < 0.002, "pyvisa-sim polls with 10 ms sleeps"
