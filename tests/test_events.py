"""Events travel with their kind as data: Procedure -> summary -> report; old files still load."""

from __future__ import annotations

import json

import pandas as pd

from ionto_instruments.procedures.contracts import EventKind, Outcome, Phase, SafetyState
from ionto_instruments.procedures.events import (
    RunEvent,
    events_from_cells,
    events_from_summary,
    load_events,
)
from ionto_instruments.procedures.report import run_marks
from ionto_instruments.procedures.results import summary_path


def test_enum_values_on_disk_are_unchanged():
    assert [o.value for o in Outcome] == ["completed", "aborted", "refused", "fault", "stopped"]
    assert [p.value for p in Phase] == ["pre-flight", "contact-check", "ramp-up", "hold",
                                        "ramp-down", "paused", "off"]
    assert {k.value for k in EventKind} == {"phase", "info", "warning", "trip", "stop",
                                            "pause", "resume", "instrument-error"}
    assert [s.value for s in SafetyState] == ["ok", "warning", "tripped"]
    assert json.dumps({"outcome": Outcome.COMPLETED}) == '{"outcome": "completed"}'


def test_the_procedure_records_events_with_their_kind(run_protocol_on_sim):
    run = run_protocol_on_sim(treatment_time=2.0, scenario="impedance-drop@1")
    events = run.procedure.events
    assert all(isinstance(e.kind, EventKind) for e in events)
    trips = [e for e in events if e.kind == EventKind.TRIP]
    assert len(trips) == 1 and trips[0].message == run.summary["reason"]
    assert [e.as_dict() for e in events] == run.summary["events"]
    assert load_events(str(run.results_file)) == sorted(events, key=lambda e: e.t)


def test_kinds_come_from_the_summary_not_the_text(run_protocol_on_sim):
    run = run_protocol_on_sim(treatment_time=1.0)
    path = summary_path(run.results_file)
    summary = json.loads(path.read_text())
    # A sentence that looks like another kind stays what the summary says it is.
    summary["events"].append({"t": 1.0, "kind": "info", "message": "TRIP: not a trip | x"})
    path.write_text(json.dumps(summary))
    events = load_events(str(run.results_file))
    assert [e.kind for e in events if e.message.startswith("TRIP")] == [EventKind.INFO]
    marks = run_marks(run.rows, summary)
    assert [m.kind for m in marks if m.message.startswith("TRIP")] == ["info"]
    assert not [m for m in marks if m.kind == "trip"]


def test_a_file_without_summary_still_yields_its_events(run_protocol_on_sim):
    run = run_protocol_on_sim(treatment_time=2.0, scenario="impedance-drop@1")
    summary_path(run.results_file).unlink()
    events = load_events(str(run.results_file))
    kinds = {e.kind for e in events}
    assert {EventKind.PHASE, EventKind.TRIP} <= kinds
    assert [e.message for e in events if e.kind == EventKind.TRIP] == [run.summary["reason"]]
    marks = run_marks(run.rows, None)
    assert [m.kind for m in marks].count("trip") == 1


def test_legacy_cells_and_summary_dicts_parse():
    cells = pd.Series(["TRIP: a | WARNING: b", "", "Contact check passed",
                       "INSTRUMENT-ERROR: -113"])
    events = events_from_cells([1.0, 2.0, 3.0, 4.0], cells)
    assert [(e.t, e.kind) for e in events] == [
        (1.0, EventKind.TRIP), (1.0, EventKind.WARNING), (3.0, EventKind.INFO),
        (4.0, EventKind.INSTRUMENT_ERROR)]
    assert events_from_summary({"events": [{"t": "x"}, {"t": 2, "kind": "bogus"},
                                           {"t": 1, "kind": "stop", "message": "m"}]}) == [
        RunEvent(1.0, EventKind.STOP, "m")]
    assert events_from_summary({}) is None
    assert RunEvent(1.0, EventKind.TRIP, "x").cell_text() == "TRIP: x"
    assert RunEvent(1.0, EventKind.INFO, "x").cell_text() == "x"
