"""The Procedure end to end on the simulator with the virtual clock (30 minutes in seconds)."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest
from helpers import OUTPUT_OFF, SET_CURRENT
from pymeasure.experiment import Results

from ionto_instruments.clock import ScaledClock, VirtualClock
from ionto_instruments.procedures.iontophoresis import ConstantCurrentIontophoresis
from ionto_instruments.procedures.plan import InvalidParameter
from ionto_instruments.procedures.results import DATA_COLUMNS, IontoResults, load_summary
from ionto_instruments.procedures.runner import make_procedure, run_protocol

SUMMARY_FIELDS = {"outcome", "rule", "reason", "planned_dose_mA_min", "delivered_dose_mA_min",
                  "duration_s", "samples", "output_off_confirmed", "instrument", "simulated",
                  "results_file", "software_version", "events"}


def test_full_30_minute_protocol_completes_on_plan(run_protocol_on_sim):
    wall = time.perf_counter()
    run = run_protocol_on_sim()
    wall = time.perf_counter() - wall
    summary = run.summary

    assert summary["outcome"] == "completed", summary["reason"]
    assert summary["rule"] is None
    assert summary.keys() >= SUMMARY_FIELDS
    assert summary["delivered_dose_mA_min"] == pytest.approx(summary["planned_dose_mA_min"],
                                                             rel=0.01)
    assert summary["duration_s"] == pytest.approx(1800.0, abs=1.0)
    assert summary["output_off_confirmed"] is True
    assert summary["simulated"] is True
    assert "MODEL 2400" in summary["instrument"]
    assert wall < 120, "a 30-minute protocol must cost seconds on the virtual clock"

    rows = run.rows
    assert list(rows.columns) == DATA_COLUMNS
    phases = list(dict.fromkeys(rows["Phase"]))
    assert phases == ["contact-check", "ramp-up", "hold", "ramp-down", "off"]
    assert len(rows) == summary["samples"] + 1  # plus the final "off" marker row
    assert rows["Setpoint (mA)"].max() == pytest.approx(2.0)
    hold = rows[rows["Phase"] == "hold"]
    assert (hold["Current (mA)"] - 2.0).abs().max() < 0.05
    # the phantom's impedance falls from ~15 kOhm towards ~3 kOhm during the run
    assert hold["Impedance (kohm)"].iloc[0] > 2 * hold["Impedance (kohm)"].iloc[-1]
    assert not run.simulator.model.output_enabled
    assert json.loads(run.results_file.with_suffix(".json").read_text()) == summary


def test_samples_follow_absolute_deadlines_without_drift(run_protocol_on_sim):
    run = run_protocol_on_sim(treatment_time=5.0)
    times = run.rows["Time (s)"].to_numpy()[:-1]
    steps = times[1:] - times[:-1]
    # A reading takes its NPLC time on the strict simulator: only the treatment's first
    # sample, right after the contact check's last, comes one reading duration late.
    reading = run.simulator.model.reading_duration()
    off_grid = steps[abs(steps - 0.2) > 1e-6]
    assert len(off_grid) <= 1 and (off_grid <= 0.2 + reading + 1e-6).all()
    assert steps.min() == pytest.approx(0.2, abs=1e-6)
    assert run.summary["max_schedule_lateness_s"] == 0.0


def test_anion_is_delivered_with_negative_current_from_the_cathode(run_protocol_on_sim):
    run = run_protocol_on_sim(drug="dexamethasone", treatment_time=3.0)
    hold = run.rows[run.rows["Phase"] == "hold"]
    assert (hold["Setpoint (mA)"] < 0).all()
    assert (hold["Current (mA)"] < 0).all()
    assert run.summary["delivered_dose_mA_min"] > 0


def test_dose_controlled_run_ends_the_hold_on_the_measured_dose(run_protocol_on_sim):
    run = run_protocol_on_sim(dose_controlled=True, dose_target=40.0, target_current=4.0,
                              compliance_voltage=80.0, electrode_area=10.0, max_density=0.5)
    summary = run.summary
    assert summary["outcome"] == "completed", summary["reason"]
    assert summary["planned_dose_mA_min"] == 40.0
    assert summary["delivered_dose_mA_min"] == pytest.approx(40.0, rel=0.01)
    assert summary["duration_s"] == pytest.approx(630.0, abs=2.0)


def test_results_load_back_with_pymeasure_and_pandas_even_with_commas(run_protocol_on_sim):
    run = run_protocol_on_sim(treatment_time=1.0, operator_note="left forearm, 2nd session",
                              subject_id="P-007", scenario="contact-loss@0.5")
    events = run.rows["Event"].dropna()
    assert any("," in e for e in events), "trip sentences carry commas"
    loaded = Results.load(str(run.results_file))
    assert isinstance(loaded.procedure, ConstantCurrentIontophoresis)
    assert loaded.procedure.operator_note == "left forearm, 2nd session"
    assert loaded.procedure.subject_id == "P-007"
    data = loaded.data
    assert list(data.columns) == DATA_COLUMNS
    assert len(data) == len(run.rows)
    assert pd.api.types.is_float_dtype(data["Current (mA)"])


def test_human_subject_without_screening_is_refused_before_energizing(run_protocol_on_sim):
    run = run_protocol_on_sim(subject_kind="human")
    assert run.summary["outcome"] == "refused"
    assert run.summary["rule"] == "pre-flight"
    assert "screening" in run.summary["reason"]
    assert run.summary["samples"] == 0
    assert load_summary(run.results_file) == run.summary
    assert run.procedure.source is None, "nothing was even connected"
    assert run.summary["output_was_on"] is False
    assert run.summary["output_off_confirmed"] is True


def test_confirmed_screening_lets_a_human_run_proceed(run_protocol_on_sim):
    run = run_protocol_on_sim(subject_kind="human", screening_confirmed=True,
                              treatment_time=1.0, subject_id="P-001")
    assert run.summary["outcome"] == "completed"


def test_screening_with_a_contraindication_is_refused():
    procedure = ConstantCurrentIontophoresis()
    from ionto_instruments.procedures.screening import CONTRAINDICATIONS

    answers = {c.key: False for c in CONTRAINDICATIONS}
    answers[CONTRAINDICATIONS[-1].key] = True
    with pytest.raises(InvalidParameter) as info:
        procedure.confirm_screening(answers)
    assert info.value.field == "screening"
    assert procedure.screening_confirmed is False


@pytest.mark.parametrize(("values", "field", "fragment"), [
    ({"target_current": 5.0}, "Target current", "[0.05, 4] mA"),
    ({"compliance_voltage": 100.0}, "Compliance voltage", "[1, 80] V"),
    ({"max_density": 3.0}, "Maximum current density", "[0.01, 2] mA/cm^2"),
    ({"drug": "morphine"}, "Drug", "bupivacaine"),
    ({"no_such_thing": 1}, "no_such_thing", "unknown parameter"),
])
def test_invalid_parameters_name_the_field_and_the_range(values, field, fragment):
    with pytest.raises(InvalidParameter) as info:
        make_procedure(values)
    assert info.value.field == field
    assert fragment in str(info.value)


def test_inconsistent_parameters_are_refused_in_preflight(run_protocol_on_sim):
    run = run_protocol_on_sim(target_current=4.0, electrode_area=4.0)  # 1 mA/cm^2 > 0.5
    assert run.summary["outcome"] == "refused"
    assert "maximum current density" in run.summary["reason"]
    assert run.summary["samples"] == 0


@pytest.mark.slow  # real (scaled) time: about a second
def test_operator_stop_ramps_down_then_switches_off(tmp_path):
    procedure = make_procedure(treatment_time=30.0)
    clock = ScaledClock(600.0)
    stopper = threading.Timer(0.5, procedure.request_stop)  # ~5 simulated minutes in
    stopper.start()
    summary = run_protocol(procedure, output_dir=tmp_path, clock=clock)
    stopper.join()
    assert summary["outcome"] == "stopped"
    rows = pd.read_csv(summary["results_file"], comment="#")
    ramp = rows[rows["Phase"] == "ramp-down"]
    assert len(ramp) >= 10, "the stop ramps down over the ramp-down time"
    assert ramp["Setpoint (mA)"].is_monotonic_decreasing
    assert ramp["Setpoint (mA)"].iloc[-1] == 0.0
    assert summary["output_off_confirmed"] is True
    assert not procedure.simulator.model.output_enabled
    assert any(e["kind"] == "stop" for e in summary["events"])


@pytest.mark.slow  # real (scaled) time: about a second
def test_emergency_stop_from_another_thread_switches_off_at_once(tmp_path):
    procedure = make_procedure(treatment_time=30.0)
    clock = ScaledClock(600.0)
    hit = {}

    def press():
        hit["t"] = clock.now()
        procedure.emergency_stop()

    timer = threading.Timer(0.5, press)
    timer.start()
    summary = run_protocol(procedure, output_dir=tmp_path, clock=clock)
    timer.join()
    sim = procedure.simulator
    assert summary["outcome"] == "aborted"
    assert summary["rule"] == "emergency-stop"
    assert not sim.model.output_enabled
    off_at = sim.model.output_off_times[0]
    # no ramp: the first output-off reaches the instrument within one sample interval
    assert off_at - (hit["t"] - sim.model.epoch) <= 0.2 * 2 + 0.05 * 600
    rows = pd.read_csv(summary["results_file"], comment="#")
    assert rows["Event"].dropna().str.contains("Emergency stop").any()
    # No ramp of any length: after the press, no setpoint is written before the first off,
    # and the current sourced up to that off is still the full hold current.
    pressed = hit["t"] - sim.model.epoch
    commands = list(sim.model.commands)
    first_off = next(i for i, c in enumerate(commands)
                     if c.run_time >= pressed and OUTPUT_OFF.match(c.text))
    setpoints = [(c.run_time, float(m.group(1))) for c in commands[:first_off]
                 if (m := SET_CURRENT.match(c.text))]
    assert not [t for t, _ in setpoints if t >= pressed], "a setpoint was written after the press"
    assert setpoints[-1][1] == pytest.approx(2.0e-3), "the output was not at the hold current"
    assert commands[first_off].run_time == pytest.approx(off_at, abs=1.0)


class Boom(RuntimeError):
    """An injected failure."""


@pytest.mark.parametrize("method", ["_contact_check", "_treatment", "_take_sample",
                                    "_emit_row", "_event", "_make_summary"])
def test_an_exception_in_any_method_leaves_the_output_off(tmp_path, monkeypatch, method):
    procedure = make_procedure(treatment_time=2.0)
    original = getattr(ConstantCurrentIontophoresis, method)
    calls = {"n": 0}

    def explode(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5 or method in ("_contact_check", "_treatment", "_make_summary"):
            raise Boom(f"injected in {method}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ConstantCurrentIontophoresis, method, explode)
    results = IontoResults(procedure, tmp_path / "boom.csv")
    procedure.clock = VirtualClock()
    from pymeasure.experiment import Worker

    worker = Worker(results)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "an exception must never leave the worker hanging"
    sim = procedure.simulator
    assert sim is not None
    assert not sim.model.output_enabled
    if method != "_make_summary":
        summary = json.loads((tmp_path / "boom.json").read_text())
        assert summary["outcome"] == "fault"
        assert summary["output_off_confirmed"] is True


def test_an_exception_in_startup_after_connecting_leaves_the_output_off(tmp_path, monkeypatch):
    procedure = make_procedure(treatment_time=2.0)

    def explode(self):
        raise Boom("injected in _safety_config")

    monkeypatch.setattr(ConstantCurrentIontophoresis, "_safety_config", explode)
    summary = run_protocol(procedure, output_dir=tmp_path, clock=VirtualClock())
    assert summary["outcome"] == "fault"
    assert not procedure.simulator.model.output_enabled
