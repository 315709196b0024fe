"""Every example runs in CI against the simulator with the virtual clock (IONTO_FAST=1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TIMEOUT_S = 120


def run_example(name: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run examples/<name> as a subprocess on the simulator (virtual clock, output in tmp)."""
    environment = dict(os.environ, IONTO_FAST="1", IONTO_OUTPUT=str(tmp_path), **env)
    if "IONTO_RESOURCE" not in env:
        environment.pop("IONTO_RESOURCE", None)
    return subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=tmp_path, text=True,
                          capture_output=True, env=environment, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL)


def run_protocol_file(name: str, tmp_path: Path) -> tuple[int, dict]:
    """Run `ionto run examples/<name> --fast --json`; return the exit code and the summary."""
    proc = subprocess.run([sys.executable, "-m", "ionto_instruments.procedures.cli", "run",
                           str(EXAMPLES / name), "--fast", "--json", "--output", str(tmp_path)],
                          cwd=tmp_path, text=True, capture_output=True, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    return proc.returncode, json.loads(proc.stdout)


def test_every_example_is_tested():
    tested = {"real_instrument.py", "simulator_demo.py", "custom_safety_rule.py",
              "course_records.py",  # tests/records/test_records_cli.py
              "dexamethasone_cathode.toml", "bupivacaine_30min.toml"}
    present = {p.name for p in EXAMPLES.iterdir() if p.suffix in (".py", ".toml")}
    assert present == tested


def test_real_instrument_falls_back_to_the_simulator_without_a_resource(tmp_path):
    proc = run_example("real_instrument.py", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SIMULATED SourceMeter" in proc.stdout and "clock virtual" in proc.stdout
    assert "Outcome: completed" in proc.stdout
    assert "output off confirmed: True" in proc.stdout
    assert list(tmp_path.glob("real_instrument_*.csv"))


def test_real_instrument_uses_the_resource_from_the_environment(tmp_path):
    """A resource nobody answers at: exit 4 (instrument fault), nothing energized."""
    proc = run_example("real_instrument.py", tmp_path, IONTO_RESOURCE="GPIB0::29::INSTR")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Running on GPIB0::29::INSTR" in proc.stdout
    assert "instrument-fault" in proc.stdout


def test_simulator_demo_shows_the_impedance_falling(tmp_path):
    proc = run_example("simulator_demo.py", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "last reading of each minute" in proc.stdout
    assert "outcome completed" in proc.stdout
    from_file = proc.stdout.split("last reading of each minute", 1)[1]
    table = [line.split() for line in from_file.splitlines()
             if line.strip().endswith("kOhm") and line.split()[0].isdigit()]
    impedances = [float(parts[-2]) for parts in table]
    assert impedances[0] > 2 * min(impedances[1:-1])


def test_custom_safety_rule_trips_on_drying_skin_only(tmp_path):
    proc = run_example("custom_safety_rule.py", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "completed" in proc.stdout and "rule=None" in proc.stdout
    assert "aborted" in proc.stdout and "rule=impedance-rise" in proc.stdout
    assert "the gel is drying" in proc.stdout


def test_dexamethasone_example_is_cathodal_and_dose_controlled(tmp_path):
    code, summary = run_protocol_file("dexamethasone_cathode.toml", tmp_path)
    assert code == 0, summary["reason"]
    assert summary["drug"] == "dexamethasone"
    assert summary["delivered_dose_mA_min"] == pytest.approx(40.0, rel=0.01)
    rows = pd.read_csv(summary["results_file"], comment="#")
    hold = rows[rows["Phase"] == "hold"]
    assert (hold["Setpoint (mA)"] < 0).all(), "dexamethasone is delivered from the cathode"


def test_bupivacaine_example_is_a_30_minute_anodal_session(tmp_path):
    code, summary = run_protocol_file("bupivacaine_30min.toml", tmp_path)
    assert code == 0, summary["reason"]
    assert summary["drug"] == "bupivacaine"
    assert summary["duration_s"] == pytest.approx(1800.0, abs=1.0)
    rows = pd.read_csv(summary["results_file"], comment="#")
    assert (rows[rows["Phase"] == "hold"]["Setpoint (mA)"] > 0).all()
