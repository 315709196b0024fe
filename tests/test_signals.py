"""Every catchable signal that would end the process passes the emergency-stop path; Ctrl-Z
switches the output off before the process suspends. CLI and Python API, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from ionto_instruments.procedures import terminal
from ionto_instruments.procedures.results import load_summary

IONTO = [sys.executable, "-m", "ionto_instruments.procedures.cli"]
TIMEOUT_S = 120


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.pop("IONTO_RESOURCE", None)
    return env


def _wait_for_hold(directory: Path, timeout: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for csv in directory.glob("*.csv"):
            if ",hold," in csv.read_text(errors="replace"):
                return csv
        time.sleep(0.05)
    pytest.fail("the run never reached the hold phase")


def test_the_terminating_set_holds_every_signal_the_issue_names():
    names = {terminal.signal_name(s) for s in terminal.TERMINATING_SIGNALS}
    assert {"SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGXCPU",
            "SIGVTALRM", "SIGPROF"} <= names
    assert any(n.startswith("SIGRTMIN") for n in names)  # real-time signals end a process too
    assert not names & {"SIGKILL", "SIGSTOP", "SIGCHLD", "SIGWINCH", "SIGINT", "SIGTSTP",
                        "SIGSEGV"}


def test_every_terminating_signal_is_an_emergency_stop_and_handlers_are_restored():
    reasons: list[str] = []
    done = threading.Event()
    fake = SimpleNamespace(summary=None, request_stop=lambda: None,
                           emergency_stop=lambda reason: (reasons.append(reason), done.set()))
    before = {s: signal.getsignal(s) for s in terminal.TERMINATING_SIGNALS}
    with terminal.StopSignals(fake):  # type: ignore[arg-type]
        for signum in terminal.TERMINATING_SIGNALS:
            done.clear()
            os.kill(os.getpid(), signum)
            assert done.wait(5), terminal.signal_name(signum)
    assert reasons == [f"Emergency stop ({terminal.signal_name(s)})"
                       for s in terminal.TERMINATING_SIGNALS]
    assert {s: signal.getsignal(s) for s in terminal.TERMINATING_SIGNALS} == before


def _cli_run(tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen([*IONTO, "run", "--speed", "300", "--duration", "10",
                             "--interval", "1", "--output", ".", "--json"],
                            cwd=tmp_path, env=_env(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("signum", [signal.SIGQUIT, signal.SIGUSR1, signal.SIGRTMIN + 2])
def test_the_cli_turns_a_terminating_signal_into_an_emergency_stop_and_exits_5(tmp_path,
                                                                              signum):
    proc = _cli_run(tmp_path)
    try:
        _wait_for_hold(tmp_path)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 5, err
    summary = json.loads(out)
    assert (summary["outcome"], summary["rule"]) == ("aborted", "emergency-stop")
    assert terminal.signal_name(signum) in summary["reason"]
    assert summary["output_off_confirmed"] is True
    rows = pd.read_csv(summary["results_file"], comment="#")
    assert "ramp-down" not in set(rows["Phase"])  # off at once, never ramped
    assert "Traceback" not in err


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see 'stopped'")
def test_ctrl_z_switches_the_output_off_before_the_process_suspends(tmp_path):
    proc = _cli_run(tmp_path)
    try:
        csv = _wait_for_hold(tmp_path)
        proc.send_signal(signal.SIGTSTP)
        deadline = time.monotonic() + 30
        while _state(proc.pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _state(proc.pid) == "T", "Ctrl-Z must still suspend the process"
        # Suspended now: the output was already off and the summary on disk before that.
        summary = load_summary(csv)
        assert summary is not None, "the summary must be written before suspending"
        assert (summary["outcome"], summary["rule"]) == ("aborted", "emergency-stop")
        assert "Ctrl-Z" in summary["reason"] and summary["output_off_confirmed"] is True
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 5, err
    assert "switched off at once (emergency stop) before suspending" in err


SCRIPT = """
import sys
from ionto_instruments.clock import ScaledClock
from ionto_instruments.procedures.runner import make_procedure, run_protocol
procedure = make_procedure(treatment_time=30)
try:
    run_protocol(procedure, output_dir="runs", clock=ScaledClock(60))
finally:
    sim = procedure.simulator
    print("OUTPUT-ON", None if sim is None else sim.model.output_enabled, flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGQUIT])
def test_a_python_script_killed_by_a_signal_ends_off_with_its_summary(tmp_path, signum):
    (tmp_path / "script.py").write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, "script.py"], cwd=tmp_path, env=_env(),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        csv = _wait_for_hold(tmp_path / "runs") if _runs_dir(tmp_path) else None
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err
    assert "OUTPUT-ON False" in out, err  # the simulator's own state, after the signal
    summary = load_summary(csv)
    assert (summary["outcome"], summary["rule"]) == ("aborted", "emergency-stop")
    assert terminal.signal_name(signum) in summary["reason"]


def _runs_dir(tmp_path: Path) -> bool:
    deadline = time.monotonic() + 60
    while not (tmp_path / "runs").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return (tmp_path / "runs").exists()
