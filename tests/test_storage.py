"""Storage is part of the record: a failed write is a fault (ramp down, off, storage-fault,
exit 4), the summary goes wherever it can, and pre-flight refuses an unusable folder."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ionto_instruments.clock import VirtualClock
from ionto_instruments.procedures import cli
from ionto_instruments.procedures.results import StorageUnusable, check_output_dir
from ionto_instruments.procedures.runner import make_procedure, run_protocol

IONTO = [sys.executable, "-m", "ionto_instruments.procedures.cli"]


def _limit_file_size() -> None:
    """In the child: files may not grow beyond 60 kB (a disk that fills up mid-run)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))


def test_disk_full_mid_run_ramps_down_trips_storage_fault_and_exits_4(tmp_path):
    proc = subprocess.run([*IONTO, "run", "--fast", "--output", "out", "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          preexec_fn=_limit_file_size)
    assert proc.returncode == 4, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["outcome"], summary["rule"]) == ("fault", "storage-fault")
    assert summary["output_off_confirmed"] is True
    phases = [e["message"] for e in summary["events"] if e["kind"] == "phase"]
    assert phases[-2:] == ["Phase: ramp-down", "Phase: off"]  # ramped down, then off
    assert "File too large" in summary["reason"]
    # One clear error, not a flood: no traceback, the cause printed a bounded number of times.
    assert "Traceback" not in proc.stderr and "Logging error" not in proc.stderr
    assert proc.stderr.count("Storage fault") <= 3
    beside = Path(summary["results_file"]).with_suffix(".json")
    assert json.loads(beside.read_text())["rule"] == "storage-fault"


def _remove_folder_in_hold(folder: Path):
    def on_update(live):
        if live.phase == "hold" and folder.exists():
            shutil.rmtree(folder)
    return on_update


def test_folder_removed_mid_run_is_a_storage_fault_with_the_summary_in_the_state_dir(
        tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    out = tmp_path / "runs"
    procedure = make_procedure(treatment_time=30.0)
    from ionto_instruments.clock import ScaledClock
    summary = run_protocol(procedure, output_dir=out, clock=ScaledClock(600),
                           on_update=_remove_folder_in_hold(out), poll_s=0.02)
    assert (summary["outcome"], summary["rule"]) == ("fault", "storage-fault")
    assert procedure.simulator.model.output_enabled is False  # ground truth
    assert "removed" in summary["reason"]
    fallback = Path(summary["summary_file"])
    assert fallback.is_relative_to(tmp_path / "state")
    assert json.loads(fallback.read_text())["rule"] == "storage-fault"
    phases = [e["message"] for e in summary["events"] if e["kind"] == "phase"]
    assert "Phase: ramp-down" in phases


def test_a_summary_that_cannot_go_anywhere_is_printed_whole_on_stderr(tmp_path, monkeypatch,
                                                                       capfd):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))  # the fallback cannot be created
    out = tmp_path / "runs"
    procedure = make_procedure(treatment_time=30.0)
    from ionto_instruments.clock import ScaledClock
    summary = run_protocol(procedure, output_dir=out, clock=ScaledClock(600),
                           on_update=_remove_folder_in_hold(out), poll_s=0.02)
    assert summary["summary_file"] is None
    err = capfd.readouterr().err
    printed = json.loads(err.split("here it is:\n", 1)[1])
    assert printed["rule"] == "storage-fault" and printed["events"] == summary["events"]


def test_a_run_never_reports_completed_when_its_last_rows_were_lost(tmp_path):
    """A write error noted at the very end (the final flush) turns completed into a fault."""
    procedure = make_procedure(treatment_time=1.0)
    original = procedure._write_row

    def failing_last_write(row):
        original(row)
        if row["Phase"] == "off":
            procedure._storage_error = "writing the results failed: No space left on device"
    procedure._write_row = failing_last_write
    summary = run_protocol(procedure, output_dir=tmp_path, clock=VirtualClock())
    assert (summary["outcome"], summary["rule"]) == ("fault", "storage-fault")


# -- pre-flight: exit 2 before anything is energized -------------------------------------------


def test_preflight_refuses_an_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (str(blocker / "sub"), "/proc", str(blocker)):
        code = cli.main(["run", "--fast", "--output", target])
        assert code == 2, target
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--output" in err and "Traceback" not in err


def test_preflight_refuses_a_folder_without_room_for_twice_the_planned_file(tmp_path,
                                                                            monkeypatch, capsys):
    real = shutil.disk_usage

    def tiny(path):
        usage = real(path)
        return usage._replace(free=100_000)  # 100 kB: a 30-min file at 0.2 s needs ~1.8 MB
    monkeypatch.setattr(shutil, "disk_usage", tiny)
    assert cli.main(["run", "--fast", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "MB free" in err and "2x its planned file" in err
    assert list(tmp_path.iterdir()) == []  # nothing was written, nothing energized
    # A short run fits: the estimate scales with the plan.
    check_output_dir(tmp_path, 10_000)
    with pytest.raises(StorageUnusable):
        check_output_dir(tmp_path, 60_000)


def test_the_python_api_refuses_an_unusable_folder_before_energizing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    procedure = make_procedure(treatment_time=1.0)
    with pytest.raises(StorageUnusable, match="cannot create the folder"):
        run_protocol(procedure, output_dir=blocker / "sub", clock=VirtualClock())
    assert procedure.source is None and not procedure.has_started


def test_results_files_are_fsynced_at_least_once_a_second(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    run_protocol(make_procedure(treatment_time=1.0), output_dir=tmp_path, clock=VirtualClock())
    assert synced  # at least the final one


def test_the_free_space_check_reads_the_limits_table(tmp_path, monkeypatch):
    """FREE_SPACE_FACTOR lives in the limits table: changing it there changes the check."""
    from dataclasses import replace

    from ionto_instruments import limits as L

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=100_000))
    check_output_dir(tmp_path, 40_000)  # 2x 40 kB fits in 100 kB
    monkeypatch.setattr(L, "FREE_SPACE_FACTOR", replace(L.FREE_SPACE_FACTOR, value=3.0))
    with pytest.raises(StorageUnusable, match="3x its planned file"):
        check_output_dir(tmp_path, 40_000)
