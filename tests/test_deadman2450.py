"""The 2450 dead-man: the trigger-model blocks it uses (emulated, virtual clock) and its plan."""

from __future__ import annotations

import pytest

from ionto_instruments.clock import VirtualClock
from ionto_instruments.deadman2450 import DeadManPlan
from ionto_instruments.simulator.model import SourceMeterModel
from ionto_instruments.simulator.trigger_model import TriggerModel


@pytest.fixture
def smu():
    clock = VirtualClock()
    model = SourceMeterModel("2450", clock)
    model.static = lambda unit: (_ for _ in ()).throw(KeyError(unit))
    engine = TriggerModel(model)
    engine.install()
    model.process(":SOUR:CURR:LEV 0.001")
    return clock, model, engine


def load(model, plan: DeadManPlan) -> None:
    for command in plan.commands():
        model.process(command)
    assert model.errors == []


def run_until_off(clock, model, engine, step: float, beat_until: float, limit: float) -> float:
    """Advance in `step`s, sending *TRG until `beat_until`; return when the output went off."""
    start = clock.now()
    while clock.now() - start < limit:
        if clock.now() - start < beat_until:
            model.process("*TRG")
        clock.advance(step)
        engine.advance()
        if not model.output_enabled:
            return clock.now() - start
    raise AssertionError("the output stayed on")


@pytest.mark.parametrize("timeout", [1.0, 3.4])
@pytest.mark.parametrize("stop_at", [2.0, 2.05, 2.13, 2.37])
def test_off_within_t_of_the_last_heartbeat_wherever_it_falls(smu, timeout, stop_at):
    clock, model, engine = smu
    load(model, DeadManPlan(timeout_s=timeout, planned_s=600, sample_interval_s=0.2))
    model.process(":INIT")
    assert model.output_enabled and engine.running
    off = run_until_off(clock, model, engine, step=0.01, beat_until=stop_at, limit=60)
    last_beat = max(t for t in (k * 0.01 for k in range(int(stop_at / 0.01) + 1)) if t < stop_at)
    assert off - last_beat <= timeout + 0.02
    assert engine.state == "IDLE"


def test_heartbeats_hold_the_output_until_the_planned_end(smu):
    clock, model, engine = smu
    plan = DeadManPlan(timeout_s=2.0, planned_s=30.0, sample_interval_s=0.2)
    load(model, plan)
    model.process(":INIT")
    off = run_until_off(clock, model, engine, step=0.2, beat_until=10_000, limit=120)
    assert 30.0 <= off <= 30.0 + plan.window_s + 0.5  # ends on its own, not before the plan
    assert len(engine.buffer) >= 30 / 0.2 * 0.8  # about one reading per sample interval


def test_readings_come_from_the_buffer(smu):
    clock, model, engine = smu
    load(model, DeadManPlan(timeout_s=2.0, planned_s=30.0, sample_interval_s=0.2))
    model.process(":INIT")
    clock.advance(0.5)
    reply = model.process(':FETC? "defbuffer1", READ, SOUR, REL, SOURSTAT').text
    v, i, t, status = (float(x) for x in reply.split(","))
    assert status == 136  # output on, measured source read back, not limited
    assert i == pytest.approx(1e-3, abs=1e-6) and v == pytest.approx(15.0, rel=0.05)
    assert 0.3 <= t <= 0.5
    assert model.process(':TRAC:ACT? "defbuffer1"').text == str(len(engine.buffer))


def test_abort_stops_the_model_and_a_running_model_refuses_changes(smu):
    clock, model, engine = smu
    load(model, DeadManPlan(timeout_s=2.0, planned_s=30.0, sample_interval_s=0.2))
    model.process(":INIT")
    model.process(":TRIG:BLOC:BRAN:ALW 4, 1")
    assert model.errors and model.errors[-1][0] == -200
    model.process(":ABOR;OUTPUT OFF")
    assert engine.state == "ABORTED" and not model.output_enabled
    clock.advance(100)
    engine.advance()
    assert not model.output_enabled  # nothing switches it on again


def test_blocks_outside_the_dead_man_are_undefined_headers(smu):
    _, model, engine = smu
    model.process(':TRIG:BLOC:WAIT 1, COMM')
    model.process(":TRIG:BLOC:BRAN:EVEN 1, DISP, 3")
    assert [code for code, _ in model.errors] == [-113, -113]
    model.process(":TRIG:BLOC:BRAN:ALW 2, 1")
    model.process(":INIT")  # block 1 missing: refused
    assert model.errors[-1][0] == -200 and not engine.running


def test_the_plan_keeps_the_bound():
    plan = DeadManPlan(timeout_s=3.4, planned_s=1810, sample_interval_s=0.2)
    assert plan.readings_per_window * (plan.delay_s + 0.025) == pytest.approx(plan.window_s)
    assert 2 * plan.window_s == pytest.approx(3.4)
    assert (plan.windows - 1) * plan.window_s >= 1810
    with pytest.raises(ValueError, match="timeout"):
        DeadManPlan(timeout_s=0.1, planned_s=10, sample_interval_s=0.2)
