"""Low currents and the early ramp: a hot spot trips from the first ramp sample on, at every
allowed target (0.05 mA up), and a plan exactly at the dose cap completes with its ramp-down.

Real Procedures on the simulator (virtual clock); the simulator's own state is the truth.
"""

from __future__ import annotations

import pandas as pd
import pytest

from ionto_instruments.procedures.iontophoresis import CONTACT_CHECK_S


def _onset_minute(seconds_into_ramp: float) -> float:
    """The scenario minute (run axis) that falls `seconds_into_ramp` after the ramp starts."""
    return (CONTACT_CHECK_S + seconds_into_ramp) / 60.0


def _assert_tripped_off(run, rule: str, not_before_s: float) -> None:
    summary = run.summary
    assert (summary["outcome"], summary["rule"]) == ("aborted", rule), summary["reason"]
    assert run.simulator.model.output_enabled is False
    rows = run.rows
    trip = rows[rows["Event"].fillna("").str.contains("TRIP")]
    assert not trip.empty and trip["Time (s)"].iloc[0] >= not_before_s - 1e-9


@pytest.mark.parametrize("into_ramp_s", [0.1, 0.5, 2.0, 3.5])
def test_a_hot_spot_early_in_the_default_ramp_trips_impedance_drop(run_protocol_on_sim,
                                                                   into_ramp_s):
    onset = _onset_minute(into_ramp_s)
    run = run_protocol_on_sim(scenario=f"impedance-drop@{onset:.6f}")
    _assert_tripped_off(run, "impedance-drop", onset * 60)
    trip_t = run.rows[run.rows["Event"].fillna("").str.contains("TRIP")]["Time (s)"].iloc[0]
    assert trip_t - onset * 60 <= 0.4 + 1e-9   # within two samples of the onset
    assert run.summary["delivered_dose_mA_min"] < 0.1


def test_the_issue_example_no_longer_delivers_59_mA_min_over_a_hot_spot(run_protocol_on_sim):
    run = run_protocol_on_sim(scenario="impedance-drop@0.05")  # 3 s: 1 s into the ramp
    _assert_tripped_off(run, "impedance-drop", 3.0)
    assert run.summary["delivered_dose_mA_min"] < 0.1


@pytest.mark.parametrize("into_ramp_s", [0.5, 5.0, 20.0, 31.0, 120.0])
def test_a_hot_spot_early_in_a_600_s_ramp_trips(run_protocol_on_sim, into_ramp_s):
    onset = _onset_minute(into_ramp_s)
    run = run_protocol_on_sim(ramp_up=600.0, scenario=f"impedance-drop@{onset:.6f}")
    _assert_tripped_off(run, "impedance-drop", onset * 60)


@pytest.mark.parametrize("target", [0.05, 0.07, 0.1])
def test_targets_from_0_05_mA_run_clean_on_normal_skin(run_protocol_on_sim, target):
    run = run_protocol_on_sim(target_current=target, treatment_time=5.0, ramp_up=600.0 / 20)
    assert run.summary["outcome"] == "completed", run.summary["reason"]


@pytest.mark.parametrize("target", [0.05, 0.07, 0.1])
@pytest.mark.parametrize("into_ramp_s", [1.0, 120.0])
def test_targets_from_0_05_mA_are_protected_by_the_impedance_rules(run_protocol_on_sim, target,
                                                                   into_ramp_s):
    onset = _onset_minute(into_ramp_s)
    run = run_protocol_on_sim(target_current=target, treatment_time=5.0,
                              scenario=f"impedance-drop@{onset:.6f}")
    _assert_tripped_off(run, "impedance-drop", onset * 60)


@pytest.mark.parametrize("target", [0.05, 0.1])
def test_contact_loss_at_low_current_trips_impedance_high(run_protocol_on_sim, target):
    run = run_protocol_on_sim(target_current=target, treatment_time=5.0,
                              scenario=f"contact-loss@{_onset_minute(60.0):.6f}")
    _assert_tripped_off(run, "impedance-high", CONTACT_CHECK_S + 60.0)


# -- the dose cap, exactly at 80 mA·min -------------------------------------------------------


def test_a_plan_exactly_at_the_dose_cap_completes_with_its_ramp_down(run_protocol_on_sim):
    run = run_protocol_on_sim(target_current=2.0, treatment_time=40.5)
    summary = run.summary
    assert summary["planned_dose_mA_min"] == pytest.approx(80.0)
    assert summary["outcome"] == "completed", summary["reason"]
    phases = list(pd.unique(run.rows["Phase"]))
    assert phases[-2:] == ["ramp-down", "off"]
    assert summary["delivered_dose_mA_min"] == pytest.approx(80.0, rel=0.02)


def test_a_dose_target_of_80_completes(run_protocol_on_sim):
    run = run_protocol_on_sim(target_current=2.0, dose_controlled=True, dose_target=80.0,
                              treatment_time=60.0)
    assert run.summary["outcome"] == "completed", run.summary["reason"]
    assert list(pd.unique(run.rows["Phase"]))[-2:] == ["ramp-down", "off"]


def test_a_real_overdose_still_trips_dose_cap(run_protocol_on_sim, monkeypatch):
    """The instrument delivers 4 % more than set, inside every current rule's tolerance, for
    a plan at the cap: the measured dose passes 80 mA·min + 2 % and dose-cap trips."""
    from ionto_instruments.simulator.model import SourceMeterModel

    real = SourceMeterModel.source_state

    def generous(self):
        v, i, flag = real(self)
        return v * 1.04, i * 1.04, flag
    monkeypatch.setattr(SourceMeterModel, "source_state", generous)
    run = run_protocol_on_sim(target_current=2.0, treatment_time=40.5)
    assert (run.summary["outcome"], run.summary["rule"]) == ("aborted", "dose-cap")
    assert run.simulator.model.output_enabled is False
    reason = run.summary["reason"]
    delivered = float(reason.split("Dose cap: ", 1)[1].split(" mA")[0])
    assert delivered > 81.6 and "80 mA·min delivered" not in reason
