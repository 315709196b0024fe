"""The Python API is safe at every exit of the caller: interrupts, exceptions, reuse, rules.

Ground truth is the simulated SourceMeter's own output state (`simulator.model`), not what
the Procedure believes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import wait_for_phase

from ionto_instruments.clock import ScaledClock, VirtualClock
from ionto_instruments.procedures.results import load_summary, new_results_file
from ionto_instruments.procedures.runner import (
    ProcedureAlreadyRun,
    make_procedure,
    run_protocol,
    start_protocol,
)
from ionto_instruments.procedures.safety import Rule

ROOT = Path(__file__).resolve().parent.parent


class Boom(Exception):
    pass


def _raise_in_hold(error: BaseException, seen: dict):
    """An on_update callback that raises once the run is holding with the output on."""
    def on_update(live):
        if live.phase == "hold":
            sim = seen["procedure"].simulator
            seen["on_when_raised"] = sim.model.output_enabled
            raise error
    return on_update


@pytest.mark.parametrize("error", [Boom("display broke"), KeyboardInterrupt()])
def test_exception_in_the_caller_ends_the_run_with_the_output_off_before_it_propagates(
        tmp_path, error):
    procedure = make_procedure(treatment_time=30.0)
    seen = {"procedure": procedure}
    with pytest.raises(type(error)):
        run_protocol(procedure, output_dir=tmp_path, clock=ScaledClock(600),
                     on_update=_raise_in_hold(error, seen), poll_s=0.02)
    # At the moment the exception reaches the caller the run is over:
    assert seen["on_when_raised"] is True
    assert procedure.simulator.model.output_enabled is False
    summary = load_summary(procedure.results_file)
    assert summary is not None and summary["output_off_confirmed"] is True
    if isinstance(error, KeyboardInterrupt):  # one Ctrl-C: an operator stop, ramped down
        assert (summary["outcome"], summary["rule"]) == ("stopped", None)
        rows = pd.read_csv(procedure.results_file, comment="#")
        assert "ramp-down" in set(rows["Phase"])
    else:  # anything else: an emergency stop, off at once
        assert (summary["outcome"], summary["rule"]) == ("aborted", "emergency-stop")
        assert "Boom" in summary["reason"]


def test_two_interrupts_make_an_emergency_stop(tmp_path, monkeypatch):
    procedure = make_procedure(treatment_time=30.0, ramp_down=600.0)
    run = start_protocol(procedure, output_dir=tmp_path, clock=ScaledClock(600), poll_s=0.02)
    calls = []
    real_wait = run._worker.finished.wait

    def interrupted_wait(timeout=None):
        # The caller's Ctrl-C arrives twice while it waits: once in hold, once in ramp-down.
        if procedure.live.phase == "hold" and not calls:
            calls.append("hold")
            raise KeyboardInterrupt
        if procedure.live.phase == "ramp-down" and calls == ["hold"]:
            calls.append("ramp-down")
            raise KeyboardInterrupt
        return real_wait(timeout)
    monkeypatch.setattr(run._worker.finished, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        run.wait()
    assert calls == ["hold", "ramp-down"]
    assert procedure.simulator.model.output_enabled is False
    summary = load_summary(procedure.results_file)
    assert (summary["outcome"], summary["rule"]) == ("aborted", "emergency-stop")
    assert "twice" in summary["reason"]


def test_context_manager_switches_the_output_off_on_an_exception(tmp_path):
    procedure = make_procedure(treatment_time=30.0)
    with pytest.raises(Boom), start_protocol(procedure, output_dir=tmp_path,
                                             clock=ScaledClock(600)) as run:
        wait_for_phase(run, "hold")
        assert procedure.simulator.model.output_enabled is True
        raise Boom("script failed")
    assert not run.running
    assert procedure.simulator.model.output_enabled is False
    assert (run.summary["outcome"], run.summary["rule"]) == ("aborted", "emergency-stop")
    assert load_summary(procedure.results_file)["outcome"] == "aborted"


def test_context_manager_leaving_early_stops_with_a_ramp_down(tmp_path):
    procedure = make_procedure(treatment_time=30.0)
    with start_protocol(procedure, output_dir=tmp_path, clock=ScaledClock(600)) as run:
        for live in run.updates(every_s=0.01):
            if live.phase == "hold":
                break
    assert procedure.simulator.model.output_enabled is False
    assert run.summary["outcome"] == "stopped"


def test_context_manager_runs_to_the_end_and_yields_updates(tmp_path):
    procedure = make_procedure(treatment_time=1.0)
    with start_protocol(procedure, output_dir=tmp_path, clock=VirtualClock()) as run:
        phases = {live.phase for live in run.updates(every_s=0.001)}
    assert run.summary["outcome"] == "completed"
    assert "off" in phases


def test_a_procedure_runs_once(tmp_path):
    procedure = make_procedure(treatment_time=1.0)
    first = run_protocol(procedure, output_dir=tmp_path, clock=VirtualClock())
    files = sorted(tmp_path.iterdir())
    with pytest.raises(ProcedureAlreadyRun, match="runs once"):
        run_protocol(procedure, output_dir=tmp_path, clock=VirtualClock())
    assert sorted(tmp_path.iterdir()) == files  # no second (empty) CSV, no second summary
    assert first["outcome"] == "completed"
    assert load_summary(first["results_file"])["samples"] == first["samples"] > 0


class _Fine(Rule):
    name = "my-rule"

    def check(self, sample, history):
        return None


@pytest.mark.parametrize("rules, why", [
    (["not a rule"], "is not a safety.Rule"),
    ([_Fine(), _Fine()], "already taken"),
    ([type("Clash", (_Fine,), {"name": "dose-cap"})()], "already taken"),
])
def test_invalid_extra_rules_are_refused_before_energizing(run_protocol_on_sim, rules, why):
    run = run_protocol_on_sim(extra_rules=rules, treatment_time=1.0)
    assert (run.summary["outcome"], run.summary["rule"]) == ("refused", "pre-flight")
    assert why in run.summary["reason"] and "extra_rules" in run.summary["reason"]
    assert run.summary["output_was_on"] is False
    assert run.simulator is None or run.simulator.model.output_off_times == []


def _one_run(directory: str, barrier, queue) -> None:
    procedure = make_procedure(treatment_time=1.0, seed=os.getpid() % 1000)
    barrier.wait()
    summary = run_protocol(procedure, output_dir=directory, clock=VirtualClock())
    queue.put(summary["results_file"])


def test_runs_started_at_the_same_instant_never_share_a_file(tmp_path):
    n = 4
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(n), context.Queue()
    workers = [context.Process(target=_one_run, args=(str(tmp_path), barrier, queue))
               for _ in range(n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    files = [queue.get(timeout=5) for _ in range(n)]
    assert len(set(files)) == n
    for name in files:
        rows = pd.read_csv(name, comment="#")
        assert rows["Time (s)"].is_monotonic_increasing  # one run's rows only
        assert load_summary(name)["results_file"] == name
    assert len(list(tmp_path.glob("*.json"))) == n


def _reserve(directory: str, barrier, queue) -> None:
    barrier.wait()
    queue.put(new_results_file(directory))


def test_results_file_names_are_reserved_exclusively(tmp_path):
    n = 8
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(n), context.Queue()
    workers = [context.Process(target=_reserve, args=(str(tmp_path), barrier, queue))
               for _ in range(n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    names = [queue.get(timeout=5) for _ in range(n)]
    assert len(set(names)) == n
    assert all(Path(name).exists() for name in names)


# -- the README's "From Python" snippet, interrupted with a real SIGINT -------------------------

HARNESS = r"""
import atexit, json, sys
from ionto_instruments.clock import ScaledClock
code = open(sys.argv[1]).read()
ns = {"ScaledClock": ScaledClock}

def report():
    procedure = ns.get("procedure")
    sim = procedure.simulator if procedure is not None else None
    print("GROUND-TRUTH " + json.dumps({
        "output_on": None if sim is None else sim.model.output_enabled,
        "results_file": getattr(procedure, "results_file", None)}), flush=True)

atexit.register(report)
exec(compile(code, "README From Python snippet", "exec"), ns)
"""


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.parametrize("interrupts", [1, 2])
def test_readme_snippet_interrupted_by_sigint_ends_off_with_its_summary(tmp_path, interrupts):
    code = readme_snippet()
    assert code.count("clock=VirtualClock()") == 1
    # The same snippet on a clock fast enough for a test but real enough to be interrupted.
    (tmp_path / "snippet.py").write_text(code.replace("clock=VirtualClock()",
                                                      "clock=ScaledClock(60)"))
    (tmp_path / "harness.py").write_text(HARNESS)
    child = subprocess.Popen([sys.executable, "harness.py", "snippet.py"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        csv = None
        while time.monotonic() < deadline:  # wait until the treatment is under way
            found = list((tmp_path / "runs").glob("*.csv")) if (tmp_path / "runs").exists() \
                else []
            if found and ",hold," in found[0].read_text():
                csv = found[0]
                break
            time.sleep(0.05)
        assert csv is not None, "the snippet did not reach the hold phase"
        for _ in range(interrupts):
            child.send_signal(signal.SIGINT)
            time.sleep(0.05)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    truth = json.loads(out.split("GROUND-TRUTH ", 1)[1])
    assert truth["output_on"] is False, err
    summary = load_summary(csv)
    assert summary is not None, err
    expected = ("stopped", None) if interrupts == 1 else ("aborted", "emergency-stop")
    assert (summary["outcome"], summary["rule"]) == expected
    assert summary["output_off_confirmed"] is True
    assert "KeyboardInterrupt" in err  # the interrupt still reaches the script, afterwards


def test_readme_context_manager_snippet_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### From Python", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[1]
    assert code.count('output_dir="runs")') == 1
    code = code.replace('output_dir="runs")', 'output_dir="runs", clock=VirtualClock())')
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README snippet 2", "exec"), {"VirtualClock": VirtualClock})
    assert capsys.readouterr().out.strip().splitlines()[-1] == "completed"
