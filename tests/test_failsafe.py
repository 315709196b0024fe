"""Fail-safe beyond the process, on the simulator server with the real clock (each bounded).

The run is a real `ionto run` process (or a real Procedure on a thread), the instrument is
`SimServer` (it outlives the run), the guard is the real guard process. Times are measured
at the instrument: the server's record of when the output went off.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from ionto_instruments.clock import RealClock
from ionto_instruments.deadman2450 import dead_man_timeout
from ionto_instruments.procedures.guard import heartbeat_timeout
from ionto_instruments.procedures.runner import make_procedure, run_protocol
from ionto_instruments.simulator.polling import poll_until
from ionto_instruments.simulator.server import ControlClient, SimServer

HOLD_MA = 2.0
RUN_ARGS = ["--subject", "phantom", "--current", str(HOLD_MA), "--duration", "0.5",
            "--ramp-up", "1", "--ramp-down", "2", "--interval", "0.2", "--json"]
TIMEOUT_S = heartbeat_timeout(0.2)


@pytest.fixture
def server():
    with SimServer("keithley2400", port=0) as srv:
        yield srv


def wait_for(condition, timeout: float, step: float = 0.02):
    """Poll `condition` until it returns something truthy; fail after `timeout` s."""
    value = poll_until(condition, timeout, step)
    if not value:
        raise AssertionError(f"condition not met within {timeout} s")
    return value


def holding(srv: SimServer) -> bool:
    state = srv.state()
    return state["output"] and abs(state["setpoint_A"]) == pytest.approx(HOLD_MA * 1e-3)


def off_change_after(srv: SimServer, since: float) -> dict | None:
    """The first output-off change at the instrument after monotonic time `since`."""
    state = srv.state()
    if state["output"]:
        return None
    return next((c for c in state["changes"] if not c["on"] and c["monotonic"] >= since), None)


def start_run(srv: SimServer, out: Path, model: str = "keithley2400") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ionto_instruments.procedures.cli", "run", "--resource",
         srv.resource_name, "--model", model, "--output", str(out), *RUN_ARGS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def only(pattern: str, out: Path) -> Path:
    (path,) = out.glob(pattern)
    return path


def test_kill_9_mid_hold_the_guard_switches_off_within_2_s(server, tmp_path):
    run = start_run(server, tmp_path)
    try:
        wait_for(lambda: holding(server), 30)
        killed = time.monotonic()
        run.send_signal(signal.SIGKILL)
        change = wait_for(lambda: off_change_after(server, killed), 5)
        assert change["monotonic"] - killed <= 2.0
        note = json.loads(wait_for(lambda: list(tmp_path.glob("*.guard.json")), 5)[0]
                          .read_text())
        assert note["off_confirmed"] is True and note["read_back"] == "0"
        assert "ended" in note["reason"]
        rows = pd.read_csv(only("*.csv", tmp_path), comment="#")
        assert rows["Event"].iloc[-1].startswith("GUARD:")
        assert rows["Phase"].iloc[-1] == "guard"
    finally:
        run.kill()
        run.wait()


def test_sigstop_mid_hold_off_within_the_timeout_and_the_run_ends_as_fault(server, tmp_path):
    run = start_run(server, tmp_path)
    try:
        wait_for(lambda: holding(server), 30)
        stopped = time.monotonic()
        run.send_signal(signal.SIGSTOP)
        change = wait_for(lambda: off_change_after(server, stopped), TIMEOUT_S + 3)
        assert change["monotonic"] - stopped <= TIMEOUT_S + 1.0
        note = wait_for(lambda: list(tmp_path.glob("*.guard.json")), 5)[0]
        assert json.loads(note.read_text())["off_confirmed"]
        run.send_signal(signal.SIGCONT)
        stdout, _ = run.communicate(timeout=20)
    finally:
        run.send_signal(signal.SIGCONT)
        run.kill()
        run.wait()
    summary = json.loads(stdout)
    assert run.returncode == 4
    assert (summary["outcome"], summary["rule"]) == ("fault", "guard")
    assert summary["output_off_confirmed"] is True and summary["guard"]["tripped"] is True
    inhibitor = summary["sleep_inhibitor"]  # recorded whether or not the OS allowed it
    assert inhibitor["held"] or inhibitor["warning"]
    assert server.state()["output"] is False


def run_in_thread(srv: SimServer, out: Path, model: str = "keithley2400"):
    procedure = make_procedure(resource=srv.resource_name, instrument_model=model,
                               subject_kind="phantom", target_current=HOLD_MA,
                               treatment_time=0.5, ramp_up=1, ramp_down=2, sample_interval=0.2)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(
        run_protocol(procedure, output_dir=out, clock=RealClock())), daemon=True)
    thread.start()
    return procedure, thread, result


def test_guard_killed_the_run_ramps_down_and_ends_as_fault(server, tmp_path):
    procedure, thread, summary = run_in_thread(server, tmp_path)
    wait_for(lambda: holding(server), 30)
    os.kill(procedure.guard.pid, signal.SIGKILL)
    killed = time.monotonic()
    thread.join(20)
    assert not thread.is_alive()
    assert (summary["outcome"], summary["rule"]) == ("fault", "guard")
    assert summary["output_off_confirmed"] is True
    assert "guard process ended" in summary["reason"]  # seen dead, not only silent
    change = off_change_after(server, killed)
    # Ramped down (2 s), not switched off at once; noticed at the next sample, not after a
    # heartbeat timeout.
    assert 1.5 <= change["monotonic"] - killed <= 2.0 + 1.2
    rows = pd.read_csv(summary["results_file"], comment="#")
    after = rows[rows["Time (s)"] >= rows.loc[rows["Event"].fillna("").str.contains(
        "Guard lost"), "Time (s)"].iloc[0]]
    assert (after["Phase"] == "ramp-down").sum() >= 5
    assert after["Setpoint (mA)"].is_monotonic_decreasing
    assert not list(tmp_path.glob("*.guard.json"))  # the guard never acted


def test_lan_drop_the_run_reconnects_switches_off_and_ends_as_fault(server, tmp_path):
    procedure, thread, summary = run_in_thread(server, tmp_path)
    wait_for(lambda: holding(server), 30)
    with ControlClient(server.control_port) as control:
        assert control.request("drop")["dropped"] >= 2  # the run's and the guard's sessions
    dropped = time.monotonic()
    thread.join(20)
    assert not thread.is_alive()
    assert summary["outcome"] == "fault" and summary["rule"] == "instrument-fault"
    assert summary["output_off_confirmed"] is True
    assert off_change_after(server, dropped) is not None
    assert server.state()["output"] is False


def test_a_guard_that_cannot_arm_refuses_the_run_before_anything_is_energized(tmp_path):
    """A one-session transport: the guard cannot open its own session, so the run refuses."""
    with SimServer("keithley2400", port=0, max_connections=1) as srv:
        procedure, thread, summary = run_in_thread(srv, tmp_path)
        thread.join(30)
        assert (summary["outcome"], summary["rule"]) == ("fault", "guard")
        assert summary["output_was_on"] is False and summary["samples"] == 0
        assert "did not arm" in summary["reason"]
        assert srv.state()["changes"] == []


def guard_pid_of(run_pid: int) -> int:
    """The guard process started by the run `run_pid` (its command line names the run)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ionto_instruments.procedures.guard" in args and str(run_pid).encode() in args:
            return int(entry.name)
    raise AssertionError("no guard process found")


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs procfs (Linux)")
def test_2450_dead_man_switches_off_within_t_when_run_and_guard_both_die(tmp_path):
    timeout = dead_man_timeout(0.2, TIMEOUT_S)
    with SimServer("keithley2450", port=0) as srv:
        run = start_run(srv, tmp_path, model="keithley2450")
        try:
            wait_for(lambda: holding(srv), 30)
            assert srv.state()["trigger_model"]["state"] == "RUNNING"
            guard = guard_pid_of(run.pid)
            run.send_signal(signal.SIGSTOP)  # no heartbeat from here on, and no ramp-down
            last_beat = time.monotonic()
            os.kill(guard, signal.SIGKILL)
            run.kill()
            change = wait_for(lambda: off_change_after(srv, last_beat), timeout + 3)
        finally:
            run.kill()
            run.wait()
        assert change["cause"] == "trigger-model"
        assert change["monotonic"] - last_beat <= timeout
        assert srv.state()["trigger_model"]["state"] == "IDLE"
        assert not list(tmp_path.glob("*.guard.json"))  # the guard was dead: the meter did it


def test_a_long_pause_is_no_false_trip_and_the_2450_dead_man_is_rearmed(tmp_path):
    with SimServer("keithley2450", port=0) as srv:
        procedure, thread, summary = run_in_thread(srv, tmp_path, model="keithley2450")
        wait_for(lambda: holding(srv), 30)
        procedure.pause()
        wait_for(lambda: procedure.paused, 10)
        time.sleep(dead_man_timeout(0.2, TIMEOUT_S) + 0.5)  # longer than the guard's timeout
        assert procedure.guard.problem() is None and not srv.state()["output"]
        procedure.resume()
        wait_for(lambda: holding(srv), 30)  # contact check, ramp up: the dead-man runs again
        assert srv.state()["trigger_model"]["state"] == "RUNNING"
        procedure.request_stop()
        thread.join(20)
    assert (summary["outcome"], summary["rule"]) == ("stopped", None)
    assert summary["guard"]["tripped"] is False and not list(tmp_path.glob("*.guard.json"))
    assert len(summary["pauses"]) == 1
