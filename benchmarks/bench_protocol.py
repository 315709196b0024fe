"""Protocol figures: abort and e-stop latency, 30-minute wall time vs the I/O floor, drift.

Latencies run on the real clock (they are about milliseconds); wall time and drift on the
virtual and a scaled clock. Printed, never asserted.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time

from ionto_instruments.clock import RealClock, ScaledClock, VirtualClock
from ionto_instruments.connect import open_source
from ionto_instruments.procedures.runner import make_procedure, run_protocol

INTERVAL = 0.2


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def abort_latency_ms(runs: int = 20, seed: int = 1) -> list[float]:
    """Fault onset -> OUTPUT 0 at the simulated instrument, real clock, contact loss in ramp-up."""
    rng = random.Random(seed)
    latencies = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(runs):
            onset_s = rng.uniform(2.3, 3.5)
            procedure = make_procedure(treatment_time=0.5, ramp_up=5.0, ramp_down=5.0,
                                       scenario=f"contact-loss@{onset_s / 60:.6f}",
                                       seed=rng.randrange(1 << 30))
            run_protocol(procedure, output_dir=out, clock=RealClock(), poll_s=0.05)
            model = procedure.simulator.model
            latencies.append((model.output_off_times[0] - onset_s) * 1e3)
    return latencies


def stock_shutdown_ms() -> float:
    """PyMeasure's stock shutdown path (ramp_to_current(0): 30 x 20 ms, then OUTPUT 0)."""
    from pymeasure.instruments.keithley import Keithley2400

    source = open_source(clock=RealClock())
    source.configure_current_source(compliance_voltage=40.0)
    source.set_current(2e-3)
    source.output_on()
    model = source.simulator.model
    start = source.simulator.clock.now() - model.epoch
    Keithley2400.ramp_to_current(source, 0.0)
    Keithley2400.disable_source(source)
    latency = (model.output_off_times[-1] - start) * 1e3
    source.close()
    return latency


def estop_latency_ms(presses: int = 20, io_latency: float = 0.05, seed: int = 2) -> list[float]:
    """emergency_stop() while the loop is mid-read (each query takes `io_latency` s)."""
    rng = random.Random(seed)
    latencies = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(presses):
            clock = RealClock()
            procedure = make_procedure(treatment_time=0.5, ramp_up=5.0, ramp_down=5.0)
            procedure.source = open_source(clock=clock, io_latency=io_latency)
            pressed = {}

            def press(p=procedure, c=clock, pressed=pressed):
                pressed["t"] = c.now() - p.simulator.model.epoch
                p.emergency_stop()

            timer = threading.Timer(rng.uniform(2.5, 3.5), press)
            timer.start()
            run_protocol(procedure, output_dir=out, clock=clock, poll_s=0.05)
            timer.join()
            model = procedure.simulator.model
            latencies.append((model.output_off_times[0] - pressed["t"]) * 1e3)
            procedure.source.close()
    return latencies


def protocol_wall_time_s() -> tuple[float, float, int]:
    """A full 30-minute protocol on the virtual clock, and the I/O floor for as many ticks."""
    with tempfile.TemporaryDirectory() as out:
        procedure = make_procedure()
        start = time.perf_counter()
        summary = run_protocol(procedure, output_dir=out, clock=VirtualClock())
        wall = time.perf_counter() - start
    ticks = summary["samples"]
    source = open_source(clock=VirtualClock())
    source.configure_current_source(compliance_voltage=40.0)
    source.output_on()
    start = time.perf_counter()
    for k in range(ticks):
        source.set_current(2e-3 * (k % 100) / 100)
        source.read()
    floor = time.perf_counter() - start
    source.emergency_off()
    source.close()
    return wall, floor, ticks


def schedule_drift_ms(speed: float = 60.0) -> tuple[float, float]:
    """Last sample's time vs its ideal deadline over 30 simulated minutes at `speed`x."""
    with tempfile.TemporaryDirectory() as out:
        procedure = make_procedure()
        summary = run_protocol(procedure, output_dir=out, clock=ScaledClock(speed))
        import pandas as pd

        rows = pd.read_csv(summary["results_file"], comment="#")
    times = rows["Time (s)"].to_numpy()[:-1]
    ideal = times[0] + INTERVAL * round((times[-1] - times[0]) / INTERVAL)
    return (times[-1] - ideal) * 1e3, summary["max_schedule_lateness_s"] * 1e3


def run() -> list[tuple[str, float, str]]:
    """All protocol figures as (name, value, unit) rows."""
    rows = []
    aborts = abort_latency_ms()
    rows += [
        ("abort latency p50 (fault onset -> OUTPUT 0)", statistics.median(aborts), "ms"),
        ("abort latency p99", _percentile(aborts, 99), "ms"),
        ("abort latency p99 in sample intervals", _percentile(aborts, 99) / 1e3 / INTERVAL,
         "intervals"),
        ("baseline: PyMeasure Keithley2400.shutdown() -> OUTPUT 0", stock_shutdown_ms(), "ms"),
    ]
    estops = estop_latency_ms()
    rows += [
        ("e-stop latency p50 (mid-read, 50 ms I/O)", statistics.median(estops), "ms"),
        ("e-stop latency p99 (mid-read, 50 ms I/O)", _percentile(estops, 99), "ms"),
    ]
    wall, floor, ticks = protocol_wall_time_s()
    rows += [
        ("30-min protocol wall time, virtual clock", wall, "s"),
        (f"I/O floor: {ticks} x (set + read) through the driver", floor, "s"),
        ("ratio protocol / I/O floor", wall / floor, "x"),
    ]
    drift, lateness = schedule_drift_ms()
    rows += [
        ("schedule drift after 30 simulated min (x60 clock)", drift, "ms"),
        ("max sample lateness (x60 clock)", lateness, "ms"),
    ]
    return rows


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:60s} {value:10.2f} {unit}")
