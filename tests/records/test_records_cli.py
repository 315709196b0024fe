"""The record's command line through `ionto` itself: verbs, --json, exit codes, and
`ionto run --course` recording real simulator runs (refused ones too)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ionto_instruments.procedures.cli import main
from ionto_instruments.procedures.records import Store
from ionto_instruments.procedures.records.audit import file_sha256


def ionto(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def ionto_json(capsys, *argv: str) -> tuple[int, dict]:
    code, out, _ = ionto(capsys, *argv, "--json")
    return code, json.loads(out)


@pytest.fixture
def db(db_url: str) -> list[str]:
    Store(db_url).close()  # an explicit --db must name an existing record
    return ["--db", db_url]


@pytest.fixture
def course(capsys, db) -> str:
    assert ionto(capsys, "subject", "add", "S001", *db)[0] == 0
    code, data = ionto_json(capsys, "course", "start", "S001", "--drug", "bupivacaine",
                            "--set", "current_mA=1.0", "--set", "duration_min=2", *db)
    assert code == 0
    return str(data["course"])


RUN = ("--fast", "--screening-confirmed", "--operator", "nurse-a")


@pytest.fixture
def as_hardware(monkeypatch) -> None:
    """Record the runs as a station with an instrument would, so that the course rules count
    them; the run itself still goes to the simulator. Only the real/simulated verdict of the
    (otherwise fully checked) request is replaced."""
    from ionto_instruments.procedures import cli

    check = cli.check_run_request
    monkeypatch.setattr(cli, "check_run_request", lambda args: check(args) and False)


def test_subject_and_course_verbs_with_json(capsys, db, course) -> None:
    code, subjects = ionto_json(capsys, "subject", "list", *db)
    assert code == 0 and subjects[0]["subject"] == "S001" and subjects[0]["courses"] == 1
    code, shown = ionto_json(capsys, "subject", "show", "S001", *db)
    assert shown["courses"][0]["settings"] == {"current_mA": 1.0, "duration_min": 2.0}
    code, courses = ionto_json(capsys, "course", "list", "--subject", "S001", *db)
    assert [c["course"] for c in courses] == [int(course)]
    code, view = ionto_json(capsys, "course", "show", course, *db)
    assert view["next_session"]["allowed"] and view["next_session"]["no_drive"]
    assert "MUST NOT DRIVE HOME" in view["next_session"]["no_drive_text"]
    assert [p["what"] for p in view["schedule"]] == [
        *(f"treatment {n} of 6" for n in range(1, 7)),
        "review by the pain specialist (trial complete)"]
    code, out, _ = ionto(capsys, "course", "show", course, *db)
    assert "MUST NOT DRIVE HOME (first treatment)" in out and "Next: session 1 may start" in out


@pytest.mark.parametrize("argv, field, words", [
    (("subject", "show", "S404"), "subject", "unknown subject 'S404'"),
    (("course", "show", "404"), "course", "unknown course 404"),
    (("course", "start", "S001", "--drug", "aspirin"), "drug", "unknown drug"),
    (("course", "start", "S001", "--drug", "ketamine", "--trial-count", "10"), "trial-count",
     "range 4-8"),
    (("course", "start", "S001", "--drug", "ketamine", "--start", "2999-01-01"), "start",
     "in the future"),
    (("course", "review", "1", "--decision", "maybe"), "decision", "not one of continue"),
    (("session", "observe", "1", "--phase", "after", "--nrs", "11"), "nrs", "range 0-10"),
    (("session", "observe", "1", "--phase", "after", "--fatigue", "bad"), "fatigue",
     "unknown grade 'bad'"),
    (("session", "observe", "1", "--phase", "after", "--date", "2999-01-01"), "date",
     "in the future"),
    (("session", "observe", "1", "--session", "9", "--phase", "after"), "session",
     "no session 9"),
])
def test_bad_values_exit_2_naming_the_field(capsys, db, db_url, course, argv, field,
                                            words) -> None:
    with Store(db_url) as store:  # one recorded session to observe (no run needed here)
        opened = store.open_session(course, "nurse-a")
        store.record_outcome(opened.session.id, {"outcome": "completed"}, "nurse-a")
    code, out, err = ionto(capsys, *argv, *db, "--json")
    assert code == 2, err
    assert json.loads(out)["field"] == field
    assert words in err


def test_run_course_records_the_session_with_file_hashes(capsys, db, course, tmp_path,
                                                         as_hardware) -> None:
    out_dir = tmp_path / "runs"
    code, out, err = ionto(capsys, "run", "--course", course, *RUN, "--output", str(out_dir),
                           *db)
    assert code == 0, err
    assert "MUST NOT DRIVE HOME (first treatment)" in out
    assert "Recorded as session 1 of course" in out
    code, view = ionto_json(capsys, "course", "show", course, *db)
    session = view["sessions"][0]
    assert session["outcome"] == "completed" and session["operator"] == "nurse-a"
    assert session["drug"] == "bupivacaine" and session["no_drive"]
    assert session["screening"]["answers"]["pacemaker"] is False
    csv = Path(session["results_csv"])
    assert csv.parent == out_dir and session["results_csv_sha256"] == file_sha256(csv)
    summary = json.loads(Path(session["summary_json"]).read_text())
    assert summary["subject_id"] == "S001" and summary["subject_kind"] == "human"
    assert session["delivered_dose_mA_min"] == pytest.approx(summary["delivered_dose_mA_min"])
    assert ionto(capsys, "audit", "verify", *db)[0] == 0
    csv.write_text(csv.read_text() + "0,hold,1,1,1,1,1,1,False,\n")
    code, report = ionto_json(capsys, "audit", "verify", *db)
    assert code == 3 and [p["kind"] for p in report["problems"]] == ["changed-file"]


def test_run_course_too_soon_is_refused_recorded_and_not_energized(capsys, db, course,
                                                                   tmp_path, as_hardware,
                                                                   ) -> None:
    out_dir = tmp_path / "runs"
    assert ionto(capsys, "run", "--course", course, *RUN, "--output", str(out_dir), *db)[0] == 0
    files = set(out_dir.iterdir())
    code, out, err = ionto(capsys, "run", "--course", course, *RUN, "--output", str(out_dir),
                           *db, "--json")
    assert code == 3
    assert "Refused by the course rule 'too-soon'" in err and "--reason" in err
    assert json.loads(out)["rule"] == "too-soon"
    assert set(out_dir.iterdir()) == files  # nothing ran
    code, out, err = ionto(capsys, "run", "--course", course, *RUN, "--output", str(out_dir),
                           "--reason", "clinic closed next week", *db)
    assert code == 0, err
    code, view = ionto_json(capsys, "course", "show", course, *db)
    assert [(s["number"], s["outcome"], s["rule"]) for s in view["sessions"]] == [
        (1, "completed", None), (2, "refused", "too-soon"), (3, "completed", None)]
    assert view["sessions"][2]["override_reason"] == "clinic closed next week"


def test_simulated_course_runs_are_marked_and_never_count(capsys, db, course,
                                                          tmp_path) -> None:
    out_dir = tmp_path / "runs"
    for _ in range(2):  # the second would be too soon if the first counted
        code, out, err = ionto(capsys, "run", "--course", course, *RUN, "--output",
                               str(out_dir), *db)
        assert code == 0, err
        assert "MUST NOT DRIVE HOME" not in out + err
        assert "recorded as SIMULATED" in out and "Recorded as SIMULATED session" in out
    code, view = ionto_json(capsys, "course", "show", course, *db)
    assert [(s["number"], s["outcome"], s["simulated"], s["treatment"], s["no_drive"])
            for s in view["sessions"]] == [(1, "completed", True, False, False),
                                           (2, "completed", True, False, False)]
    assert view["next_session"]["allowed"] and view["next_session"]["no_drive"]
    assert view["schedule"][0]["what"].startswith("treatment 1 of 6")
    code, out, _ = ionto(capsys, "course", "show", course, *db)
    assert out.count("SIMULATED (not a treatment)") == 2
    assert ionto(capsys, "audit", "verify", *db)[0] == 0


def test_a_mistyped_course_run_is_exit_2_and_records_nothing(capsys, db, course,
                                                             tmp_path) -> None:
    code, out, err = ionto(capsys, "run", "--course", course, *RUN, "--current", "9",
                           "--output", str(tmp_path / "runs"), *db)
    assert code == 2 and "current" in err
    assert "DRIVE" not in out + err and "SIMULATED" not in out + err
    code, view = ionto_json(capsys, "course", "show", course, *db)
    assert view["sessions"] == []


def test_run_course_preflight_refusal_is_recorded(capsys, db, course, tmp_path) -> None:
    code, _, err = ionto(capsys, "run", "--course", course, "--fast", "--output",
                         str(tmp_path), *db)
    assert code == 2 and "screening" in err
    code, view = ionto_json(capsys, "course", "show", course, *db)
    assert [(s["outcome"], s["rule"]) for s in view["sessions"]] == [("refused", "pre-flight")]
    assert view["next_session"]["no_drive"]  # nothing was delivered: still the first


def test_run_course_with_an_unreachable_database_does_not_start(capsys, course, tmp_path,
                                                                db) -> None:
    out_dir = tmp_path / "runs"
    code, _, err = ionto(capsys, "run", "--course", course, *RUN, "--output", str(out_dir),
                         "--db", f"postgresql://x@/none?host={tmp_path}&port=5999")
    assert code == 4
    assert "cannot reach the records database" in err and "was not started" in err
    assert not out_dir.exists()
    code, _, err = ionto(capsys, "course", "list", "--db",
                         f"postgresql://x@/none?host={tmp_path}&port=5999")
    assert code == 4


def test_burn_observation_holds_the_course_until_review(capsys, db, course, tmp_path,
                                                        as_hardware) -> None:
    ionto(capsys, "run", "--course", course, *RUN, "--output", str(tmp_path), *db)
    code, out, _ = ionto(capsys, "session", "observe", course, "--phase", "after", "--nrs", "2",
                         "--anode-burn", "mild", "--note", "blister 5 mm", *db)
    assert code == 0 and "burn-hold" in out
    code, view = ionto_json(capsys, "course", "show", course, *db)
    assert [r["rule"] for r in view["next_session"]["refusals"]][0] == "burn-hold"
    code, _ = ionto_json(capsys, "course", "review", course, "--decision", "continue",
                         "--note", "healed", "--operator", "dr-b", *db)
    assert code == 0
    code, view = ionto_json(capsys, "course", "show", course, *db)
    assert "burn-hold" not in [r["rule"] for r in view["next_session"]["refusals"]]


def test_export_writes_csv_json_and_a_sidecar_per_session(capsys, db, course,
                                                          tmp_path) -> None:
    ionto(capsys, "run", "--course", course, *RUN, "--output", str(tmp_path / "runs"), *db)
    ionto(capsys, "session", "observe", course, "--phase", "before", "--nrs", "6", *db)
    ionto(capsys, "session", "observe", course, "--phase", "after", "--nrs", "3",
          "--dizziness", "mild", "--anode-redness", "moderate", *db)
    code, data = ionto_json(capsys, "export", course, "-o", str(tmp_path / "export"), *db)
    assert code == 0
    names = sorted(Path(p).name for p in data["files"])
    assert names == [f"course-{course}.json", f"course-{course}_sessions.csv",
                     f"sub-S001_course-{course}_ses-1_stim.json"]
    import pandas as pd

    table = pd.read_csv(tmp_path / "export" / f"course-{course}_sessions.csv")
    row = table.iloc[0]
    assert (row["nrs_before"], row["nrs_after"], row["dizziness"]) == (6, 3, "mild")
    assert bool(row["results_verified"]) is True
    stim = json.loads((tmp_path / "export" / names[2]).read_text())
    assert stim["ElectrodeSize"] == {"Area": 10.0, "Units": "cm^2"}
    assert stim["StimulationParameters"]["TargetCurrent"] == 1.0
    assert stim["StimulationParameters"]["RampUp"] == 30.0
    assert stim["MeasuredCurrent"]["Mean"] == pytest.approx(1.0, abs=0.02)
    assert 0.5 < stim["Impedance"]["End"] < stim["Impedance"]["Start"]
    assert stim["SideEffects"]["anode_redness"] == "moderate"
    assert stim["PainNRS"] == {"Before": 6, "After": 3}
    assert stim["ActiveElectrode"].startswith("anode") and stim["ResultsFileVerified"]


def test_audit_verify_names_an_edited_row_by_exit_3(capsys, db, course, db_url) -> None:
    from sqlalchemy import text

    ionto(capsys, "subject", "add", "S002", *db)
    with Store(db_url) as store, store.engine.begin() as conn:
        if store.engine.dialect.name == "postgresql":
            conn.execute(text("SET session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER subjects_no_update"))
        conn.execute(text("UPDATE subjects SET note = 'edited' WHERE code = 'S002'"))
    code, out, _ = ionto(capsys, "audit", "verify", *db)
    assert code == 3
    assert "PROBLEM edited-row: subjects row 2 was edited after audit entry" in out


def test_gui_db_flag_points_the_course_panel_at_that_database(monkeypatch) -> None:
    from ionto_instruments.procedures.cli import build_parser
    from ionto_instruments.procedures.records import cli as records_cli

    args = build_parser().parse_args(["gui", "--db", "postgresql://station@server/clinic"])
    seen = []
    assert records_cli._with_db_env(args, lambda a: seen.append(os.environ["IONTO_DB"]) or 0) == 0
    assert seen == ["postgresql://station@server/clinic"]


def test_run_course_uses_its_protocol_file_and_refuses_a_changed_one(capsys, db,
                                                                     tmp_path) -> None:
    protocol = tmp_path / "course.toml"
    protocol.write_text("[protocol]\ndrug = \"dexamethasone\"\ncurrent_mA = 1.0\n"
                        "duration_min = 2.0\n")
    ionto(capsys, "subject", "add", "S009", *db)
    code, data = ionto_json(capsys, "course", "start", "S009", "--drug", "dexamethasone",
                            "--protocol", str(protocol), *db)
    assert code == 0 and data["protocol_sha256"]
    course = str(data["course"])
    code, out, err = ionto(capsys, "run", "--course", course, *RUN, "--output",
                           str(tmp_path / "runs"), *db, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["target_current_mA"], summary["drug"]) == (1.0, "dexamethasone")
    protocol.write_text(protocol.read_text().replace("1.0", "3.0"))
    code, out, err = ionto(capsys, "run", "--course", course, *RUN, "--reason", "x", *db)
    assert code == 2 and "changed since the course started" in err


def test_the_course_records_example_runs(tmp_path) -> None:
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[2] / "examples" / "course_records.py"
    env = {k: v for k, v in os.environ.items() if k != "IONTO_DB"}
    proc = subprocess.run([sys.executable, str(example)], cwd=tmp_path, text=True,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**env, "IONTO_OUTPUT": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MUST NOT DRIVE HOME (first treatment)" in proc.stdout
    assert "Refused by the course rule 'too-soon'" in proc.stdout
    assert "Session 3: completed" in proc.stdout
    assert "Audit trail: intact, 12 entries, 4 results files checked" in proc.stdout
    assert "Exported sub-S101_course-1_ses-3_stim.json" in proc.stdout


def test_the_records_cli_shares_ionto_run_s_exit_codes_and_help_formatter() -> None:
    from ionto_instruments.procedures import cli, cli_shared
    from ionto_instruments.procedures.records import cli as records_cli

    assert records_cli._Formatter is cli._Formatter is cli_shared.Formatter
    assert (records_cli.EXIT_INVALID, records_cli.EXIT_REFUSED, records_cli.EXIT_UNAVAILABLE) \
        == (cli.EXIT_INVALID, cli.EXIT_SAFETY, cli.EXIT_INSTRUMENT)


def test_an_explicit_db_that_does_not_exist_is_exit_4_and_creates_nothing(capsys,
                                                                          tmp_path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    url = f"sqlite:///{missing}"
    for argv in (("subject", "list"), ("course", "list"), ("db", "status"),
                 ("run", "--course", "1", *RUN, "--output", str(tmp_path / "runs"))):
        code, _, err = ionto(capsys, *argv, "--db", url)
        assert code == 4, (argv, err)
        assert "no records database" in err and f"ionto db upgrade --db {url}" in err
        assert not (tmp_path / "no").exists() and not (tmp_path / "runs").exists()
    code, _, err = ionto(capsys, "db", "upgrade", "--db", url)
    assert code == 0, err
    assert missing.exists() and ionto(capsys, "subject", "list", "--db", url)[0] == 0
    code, _, err = ionto(capsys, "subject", "list")  # the default record: made on first use
    assert code == 0, err
