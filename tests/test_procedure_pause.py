"""Pause and resume in the Procedure (virtual clock): ramp to zero, output off, dose and
treatment time kept, contact check again, ramp back up; stops work while paused."""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
import pytest

from ionto_instruments.clock import VirtualClock
from ionto_instruments.limits import PAUSE_RAMP
from ionto_instruments.procedures.runner import make_procedure, run_protocol

PAUSE_AT_S = 300.0
PAUSE_FOR_S = 300.0


def run_with_pause(tmp_path, while_paused=None, pause_for_s: float = PAUSE_FOR_S,
                   **values: Any) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Run on the virtual clock; pause at PAUSE_AT_S of run time; resume after `pause_for_s`.

    `while_paused(procedure)` runs while the output is off for the pause (instead of resuming
    when it returns "no-resume"). Returns the summary, the procedure and what was seen.
    """
    procedure = make_procedure(values)
    clock = VirtualClock()
    seen: dict[str, Any] = {}
    original = procedure._take_sample

    def sample_then_maybe_pause(phase, setpoint):
        sample = original(phase, setpoint)
        if sample.t >= PAUSE_AT_S and "asked" not in seen:
            seen["asked"] = sample.t
            procedure.pause()
        return sample

    procedure._take_sample = sample_then_maybe_pause

    def operator() -> None:
        for _ in range(4000):  # up to 20 s of real time
            if procedure.paused or procedure.summary is not None:
                break
            threading.Event().wait(0.005)
        if not procedure.paused:
            return
        seen["output_on_while_paused"] = procedure.simulator.model.output_enabled
        seen["phase"] = procedure.live.phase
        before = (procedure.live.elapsed_s, procedure.live.dose_mA_min)
        clock.advance(pause_for_s)
        threading.Event().wait(0.2)  # the worker keeps waiting (real time) and records nothing
        seen["kept"] = before == (procedure.live.elapsed_s, procedure.live.dose_mA_min)
        if while_paused is not None and while_paused(procedure) == "no-resume":
            return
        procedure.resume()

    helper = threading.Thread(target=operator, daemon=True)
    helper.start()
    summary = run_protocol(procedure, output_dir=tmp_path, clock=clock)
    helper.join(5)
    return summary, procedure, seen


def test_pause_keeps_dose_and_treatment_time_and_resumes(tmp_path):
    summary, procedure, seen = run_with_pause(tmp_path, treatment_time=10.0)
    assert summary["outcome"] == "completed", summary["reason"]
    assert seen["output_on_while_paused"] is False and seen["phase"] == "paused"
    assert seen["kept"] is True  # while paused, neither the dose nor the elapsed time moves
    [pause] = summary["pauses"]
    assert pause["duration_s"] == pytest.approx(PAUSE_FOR_S + 2.0, abs=1.0)  # + contact check
    assert summary["paused_s"] == pytest.approx(pause["duration_s"], abs=1e-3)
    # the treatment ran its full 10 minutes of current: only the pause ramp and re-ramp lose
    ramp_loss = 2.0 * (PAUSE_RAMP.value + 30.0) / 2.0 / 60.0
    planned = summary["planned_dose_mA_min"]
    assert summary["delivered_dose_mA_min"] == pytest.approx(planned - ramp_loss, abs=0.3)
    assert summary["duration_s"] == pytest.approx(600.0 + pause["duration_s"], abs=2.0)
    kinds = [e["kind"] for e in summary["events"]]
    assert kinds.count("pause") == 1 and kinds.count("resume") == 1
    assert kinds.index("pause") < kinds.index("resume")
    rows = pd.read_csv(summary["results_file"], comment="#")
    assert rows["Event"].fillna("").str.contains("PAUSE: Paused by the operator").any()
    assert rows["Event"].fillna("").str.contains("RESUME: Resumed by the operator").any()
    assert (rows["Phase"] == "paused").sum() == 1  # a marker row; no samples while off
    gap = rows[(rows["Time (s)"] > pause["start_s"]) & (rows["Time (s)"] < pause["end_s"] - 3)]
    assert gap["Current (mA)"].dropna().empty
    ramp = rows[(rows["Time (s)"] >= seen["asked"])
                & (rows["Time (s)"] <= pause["start_s"]) & (rows["Phase"] == "ramp-down")]
    assert len(ramp) >= PAUSE_RAMP.value / 0.2 - 1  # ramped to zero, sampled and checked
    assert ramp["Setpoint (mA)"].iloc[-1] == 0.0
    checks = rows[(rows["Phase"] == "contact-check") & (rows["Time (s)"] > pause["start_s"])]
    assert len(checks) >= 9  # the contact check again before the current comes back
    marker = rows[rows["Phase"] == "paused"]["Dose (mA*min)"].iloc[0]
    assert checks["Dose (mA*min)"].iloc[0] == pytest.approx(marker, abs=1e-3)  # no area across
    assert summary["max_schedule_lateness_s"] < 1.0  # the pause is not counted as lateness


def test_dose_controlled_pause_extends_the_hold_to_deliver_the_dose(tmp_path):
    summary, _, _ = run_with_pause(tmp_path, treatment_time=30.0, dose_controlled=True,
                                   dose_target=20.0)
    assert summary["outcome"] == "completed", summary["reason"]
    assert summary["delivered_dose_mA_min"] >= 20.0 * 0.99
    assert summary["duration_s"] > PAUSE_FOR_S + 20.0 / 2.0 * 60.0


def test_a_failed_contact_check_on_resume_trips(tmp_path):
    summary, procedure, _ = run_with_pause(tmp_path, treatment_time=10.0,
                                           scenario="contact-loss@6")
    assert summary["outcome"] == "aborted" and summary["rule"] == "contact-check"
    assert summary["output_off_confirmed"] is True
    assert procedure.simulator.model.output_enabled is False


def test_stop_while_paused_ends_the_run_stopped_with_the_output_off(tmp_path):
    def stop(procedure):
        procedure.request_stop()
        return "no-resume"

    summary, procedure, _ = run_with_pause(tmp_path, while_paused=stop, treatment_time=10.0)
    assert summary["outcome"] == "stopped" and summary["output_off_confirmed"] is True
    assert len(summary["pauses"]) == 1
    assert procedure.simulator.model.output_enabled is False


def test_emergency_stop_while_paused_trips(tmp_path):
    def estop(procedure):
        procedure.emergency_stop("Emergency stop while paused")
        return "no-resume"

    summary, procedure, _ = run_with_pause(tmp_path, while_paused=estop, treatment_time=10.0)
    assert summary["outcome"] == "aborted" and summary["rule"] == "emergency-stop"
    assert procedure.simulator.model.output_enabled is False


def test_safety_rules_trip_after_a_resume(tmp_path):
    summary, _, _ = run_with_pause(tmp_path, treatment_time=20.0, scenario="impedance-drop@12")
    assert len(summary["pauses"]) == 1 and summary["pauses"][0]["end_s"] < 12 * 60
    assert summary["outcome"] == "aborted" and summary["rule"] == "impedance-drop"
