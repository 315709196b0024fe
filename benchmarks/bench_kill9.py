"""Data lost when the process is killed with `kill -9` mid-run (no handler can run).

A child runs the 30-minute protocol on the simulator in real time (0.2 s samples) through the
Python API and reports its run-axis origin on CLOCK_MONOTONIC (shared by all processes); the
parent kills it at a random moment and compares: loss = kill time - (origin + last row time).
Goal <= 1 s (the rows are flushed as written and fsynced once a second); the issue's baseline
was 0.2 s. `python benchmarks/bench_kill9.py [N]`, or through run_benchmarks.py.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

CHILD = """
import sys
from ionto_instruments.clock import RealClock
from ionto_instruments.procedures.runner import make_procedure, run_protocol
procedure = make_procedure(treatment_time=30)
said = []
def origin(live):
    if not said and procedure._t0:
        said.append(1)
        print("T0", procedure._t0, flush=True)
run_protocol(procedure, output_dir=sys.argv[1], clock=RealClock(), on_update=origin,
             poll_s=0.05)
"""
BASELINE_S = 0.2
GOAL_S = 1.0


def one_kill(rng: random.Random) -> float:
    """Run, kill -9 after 1.5-3.5 s of treatment; return the seconds of data lost."""
    with tempfile.TemporaryDirectory() as folder:
        child = subprocess.Popen([sys.executable, "-c", CHILD, folder], text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            line = child.stdout.readline().split()
            t0 = float(line[1])
            time.sleep(rng.uniform(1.5, 3.5) + 2.0)  # past the 2 s contact check
            killed_at = time.monotonic()
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
        csv = next(Path(folder).glob("*.csv"))
        rows = pd.read_csv(csv, comment="#")
        return (killed_at - t0) - float(rows["Time (s)"].max())


def run(n: int = 8) -> list[tuple[str, float, str]]:
    """The benchmark's rows: worst and median data lost over `n` kills, with the baseline."""
    rng = random.Random(9)
    losses = [one_kill(rng) for _ in range(n)]
    return [(f"kill -9 data loss, worst of {n} (goal <= {GOAL_S:g} s)", max(losses), "s"),
            (f"kill -9 data loss, median of {n}", statistics.median(losses), "s"),
            ("kill -9 data loss, baseline (issue 9, before)", BASELINE_S, "s")]


if __name__ == "__main__":
    for label, value, unit in run(int(sys.argv[1]) if len(sys.argv) > 1 else 8):
        print(f"{label:62s} {value:8.3f} {unit}")
