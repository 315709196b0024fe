"""The fault matrix: every simulator scenario at every moment of a run ends with the output
off (the simulator's own state is the ground truth), names an acceptable rule when it trips,
trips wherever a trip is possible, and the results file reaches the trip.

A 2-minute protocol on the virtual clock (contact check 0-2 s, ramp-up 2-32 s, hold 32-92 s,
ramp-down 92-122 s): 7 faults x 7 onsets, each a real Procedure through pyvisa.
"""

from __future__ import annotations

import math

import pytest

from ionto_instruments.procedures.iontophoresis import CONTACT_CHECK_S

RAMP_S = 30.0
TOTAL_S = 120.0
END_S = CONTACT_CHECK_S + TOTAL_S
INTERVAL_S = 0.2

#: onset name -> run-axis seconds
ONSETS: dict[str, float] = {
    "at-0": 0.0,
    "contact-check": 1.0,
    "first-second-of-ramp": CONTACT_CHECK_S + 0.5,
    "ramp-hold-boundary": CONTACT_CHECK_S + RAMP_S,
    "mid-hold": CONTACT_CHECK_S + TOTAL_S / 2,
    "ramp-down": END_S - RAMP_S / 2,
    "last-sample": END_S - INTERVAL_S,
}

WIRE = {"instrument-fault", "stale-data"}
#: scenario -> (rules that may name it, onsets at which a trip is required)
MATRIX: dict[str, tuple[set[str], set[str]]] = {
    "impedance-drop": ({"impedance-drop", "impedance-low"},
                       {"contact-check", "first-second-of-ramp", "ramp-hold-boundary",
                        "mid-hold", "ramp-down"}),
    "contact-loss": ({"impedance-high", "contact-check", "compliance"},
                     {"at-0", "contact-check", "first-second-of-ramp", "ramp-hold-boundary",
                      "mid-hold", "ramp-down"}),
    "high-impedance": ({"contact-check", "impedance-high", "compliance"},
                       {"at-0", "contact-check", "first-second-of-ramp", "ramp-hold-boundary",
                        "mid-hold", "ramp-down"}),
    "drying": ({"compliance", "impedance-high", "contact-check"},
               {"at-0", "contact-check", "first-second-of-ramp"}),
    "io-timeout": (WIRE, set(ONSETS)),
    "garbled": (WIRE, set(ONSETS)),
    "disconnect": (WIRE, set(ONSETS)),
}

CASES = [(scenario, onset) for scenario in MATRIX for onset in ONSETS]


@pytest.mark.parametrize(("scenario", "onset"), CASES, ids=[f"{s}@{o}" for s, o in CASES])
def test_fault_matrix(run_protocol_on_sim, scenario, onset):
    onset_s = ONSETS[onset]
    run = run_protocol_on_sim(treatment_time=TOTAL_S / 60,
                              scenario=f"{scenario}@{onset_s / 60:.9f}")
    summary = run.summary
    sim = run.simulator
    # 1. Ground truth: the simulated instrument's output is off at the end (or the session
    #    could not even be opened, and nothing was ever switched on).
    if sim is None:
        assert summary["output_was_on"] is False and summary["rule"] == "instrument-fault"
    else:
        assert sim.model.output_enabled is False, summary
    # An instrument that stops answering takes the off command but cannot confirm it: the
    # summary says so honestly (the operator is told to switch off by hand).
    assert summary["output_off_confirmed"] is (scenario != "io-timeout"
                                               or not summary["output_was_on"])
    rules, required = MATRIX[scenario]
    tripped = summary["outcome"] in ("aborted", "fault", "refused")
    # 2. A trip wherever one is possible, and only ever an acceptable rule.
    if onset in required:
        assert tripped, f"{scenario}@{onset}: {summary['outcome']}: {summary['reason']}"
    if tripped:
        assert summary["rule"] in rules, (summary["rule"], summary["reason"])
    else:
        assert summary["outcome"] == "completed", summary["reason"]
    # 3. The results file reaches the trip: its last event row is the trip, at/after onset.
    if tripped and summary["output_was_on"]:
        rows = run.rows
        events = rows[rows["Event"].fillna("").str.contains("TRIP")]
        assert not events.empty, "the trip is not in the results file"
        t_trip = float(events["Time (s)"].iloc[0])
        assert t_trip >= onset_s - 1e-6 or math.isclose(t_trip, onset_s, abs_tol=1e-6)
        assert float(rows["Time (s)"].max()) >= t_trip
        assert rows["Phase"].iloc[-1] in ("off", "contact-check", "ramp-up", "hold",
                                          "ramp-down")
