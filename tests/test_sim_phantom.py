"""The skin phantom: R(t) = R∞ + (R0 − R∞)·exp(−t/τ), seeded noise, seen through pyvisa."""

from __future__ import annotations

import math
import statistics

import pytest

from ionto_instruments.clock import VirtualClock
from ionto_instruments.simulator import PhantomParams, SimulatedSourceMeter, SkinPhantom

SETUP = {
    "keithley2400": ("*RST", ":SOURCE:FUNCTION CURR", ":SENSE:RESISTANCE:MODE MAN",
                     ":SENSE:FUNCTION:OFF:ALL", ':SENSE:FUNCTION:ON "VOLTAGE","CURRENT"',
                     ":SENSE:VOLTAGE:PROTECTION 40",
                     ":SOURCE:CURRENT 0.002", "OUTPUT 1"),
    "keithley2450": ("*RST", ":SOUR:FUNC CURR", ":SOUR:CURR:VLIM 40",
                     ":SOUR:CURR:LEV 0.002", "OUTPUT ON"),
}
READ = {
    "keithley2400": ":READ?",
    "keithley2450": ':READ? "defbuffer1", READ, SOUR, REL, SOURSTAT',
}
MODELS = list(SETUP)


def expected_r(p: PhantomParams, t: float) -> float:
    return p.r_inf + (p.r0 - p.r_inf) * math.exp(-t / p.tau)


def measured_r(inst, model: str) -> float:
    fields = inst.query(READ[model]).split(";")[0].split(",")
    return float(fields[0]) / float(fields[1])


def test_defaults_follow_the_domain_facts():
    p = PhantomParams()
    assert (p.r0, p.r_inf, p.tau) == (15e3, 3e3, 120.0)
    assert 10e3 <= p.r0 <= 20e3 and 2e3 <= p.r_inf <= 5e3 and 60 <= p.tau <= 180


@pytest.mark.parametrize("field,value", [("r0", 0), ("r_inf", -1), ("tau", math.nan),
                                         ("v_noise_rel", -0.1), ("i_noise_abs", math.inf)])
def test_bad_parameters_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        PhantomParams(**{field: value})


def test_resistance_curve():
    phantom = SkinPhantom()
    p = phantom.params
    assert phantom.resistance(None) == p.r0
    assert phantom.resistance(0.0) == p.r0
    assert phantom.resistance(p.tau) == pytest.approx(p.r_inf + (p.r0 - p.r_inf) / math.e)
    assert phantom.resistance(3 * p.tau) == pytest.approx(expected_r(p, 3 * p.tau))
    assert phantom.resistance(1e6) == pytest.approx(p.r_inf)
    values = [phantom.resistance(t) for t in range(0, 1200, 10)]
    assert values == sorted(values, reverse=True)


def test_noise_is_seeded_and_small():
    a, b, c = SkinPhantom(seed=1), SkinPhantom(seed=1), SkinPhantom(seed=2)
    run_a = [a.measure(30.0, 2e-3) for _ in range(2000)]
    assert run_a == [b.measure(30.0, 2e-3) for _ in range(2000)]
    assert run_a != [c.measure(30.0, 2e-3) for _ in range(2000)]
    v_sd = statistics.stdev(v for v, _ in run_a)
    i_sd = statistics.stdev(i for _, i in run_a)
    assert v_sd == pytest.approx(math.hypot(0.003 * 30.0, 1e-3), rel=0.1)
    assert i_sd == pytest.approx(10e-9, rel=0.1)
    assert statistics.fmean(v for v, _ in run_a) == pytest.approx(30.0, abs=0.01)


def test_zero_noise_is_exact():
    quiet = SkinPhantom(PhantomParams(v_noise_rel=0, v_noise_abs=0, i_noise_abs=0))
    assert quiet.measure(12.5, 1e-3) == (12.5, 1e-3)
    assert quiet.voltage_noise() == 0.0


@pytest.mark.parametrize("model", MODELS)
def test_resistance_on_the_wire_at_0_tau_3tau(model):
    clock = VirtualClock()
    sim = SimulatedSourceMeter(model, clock=clock, seed=7)
    inst = sim.open_resource()
    for command in SETUP[model]:
        inst.write(command)
    p = sim.model.phantom.params
    for t in (0.0, p.tau, 3 * p.tau):
        clock.sleep_until(sim.model.epoch + t)
        assert measured_r(inst, model) == pytest.approx(expected_r(p, t), rel=0.02)


@pytest.mark.parametrize("model", MODELS)
def test_skin_changes_only_once_current_flows(model):
    clock = VirtualClock()
    quiet = PhantomParams(v_noise_rel=0, v_noise_abs=0, i_noise_abs=0)
    sim = SimulatedSourceMeter(model, clock=clock, phantom=quiet)
    inst = sim.open_resource()
    *setup, switch_on = SETUP[model]
    for command in setup:
        inst.write(command)
    clock.sleep(600)
    assert sim.model.resistance() == quiet.r0
    inst.write(switch_on)
    assert measured_r(inst, model) == pytest.approx(quiet.r0, rel=2e-6)
    clock.sleep(quiet.tau)
    since_on = quiet.tau + sim.model.reading_duration()  # the first reading took its time
    assert measured_r(inst, model) == pytest.approx(expected_r(quiet, since_on), rel=2e-6)
    for command in SETUP[model]:  # *RST first: the skin model starts again
        inst.write(command)
    assert measured_r(inst, model) == pytest.approx(quiet.r0, rel=2e-6)


def test_switching_off_and_on_again_does_not_restart_the_skin():
    clock = VirtualClock()
    sim = SimulatedSourceMeter("keithley2450", clock=clock, phantom=PhantomParams(
        v_noise_rel=0, v_noise_abs=0, i_noise_abs=0))
    inst = sim.open_resource()
    for command in SETUP["keithley2450"]:
        inst.write(command)
    clock.sleep(120)
    inst.write("OUTPUT OFF")
    clock.sleep(60)
    inst.write("OUTPUT ON")
    p = sim.model.phantom.params
    assert measured_r(inst, "keithley2450") == pytest.approx(expected_r(p, 180), rel=2e-6)


def test_custom_phantom_reaches_the_wire():
    clock = VirtualClock()
    custom = PhantomParams(r0=18e3, r_inf=5e3, tau=60.0, v_noise_rel=0, v_noise_abs=0,
                           i_noise_abs=0)
    sim = SimulatedSourceMeter("keithley2400", clock=clock, phantom=custom)
    inst = sim.open_resource()
    for command in SETUP["keithley2400"]:
        inst.write(command)
    assert measured_r(inst, "keithley2400") == pytest.approx(18e3, rel=2e-6)
    clock.sleep(600)
    assert measured_r(inst, "keithley2400") == pytest.approx(expected_r(custom, 600), rel=2e-6)
