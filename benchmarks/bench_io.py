"""Round-trip cost of one combined reading: driver + pyvisa + simulator vs bare pyvisa-sim."""

from __future__ import annotations

import statistics
import time
from importlib.resources import files

import pyvisa

from ionto_instruments.clock import VirtualClock
from ionto_instruments.connect import open_source

N = 2000


def _median_us(fn, n: int = N) -> float:
    for _ in range(50):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def bare_pyvisa_sim_us(model: str = "keithley2400") -> float:
    """A static query answered by plain pyvisa-sim from our YAML (no model, no driver)."""
    path = str(files("ionto_instruments.sim_configs") / f"{model}.yaml")
    manager = pyvisa.ResourceManager(f"{path}@sim")
    try:
        name = manager.list_resources()[0]
        inst = manager.open_resource(name, read_termination="\n", write_termination="\n")
        return _median_us(lambda: inst.query("*IDN?"))
    finally:
        manager.close()


def driver_reading_us(model: str = "keithley2400") -> float:
    """One `source.read()` (a single :READ?) through the driver, VISAAdapter and simulator."""
    source = open_source(model=model, clock=VirtualClock())
    try:
        source.configure_current_source(compliance_voltage=40.0)
        source.set_current(2e-3)
        source.output_on()
        return _median_us(source.read)
    finally:
        source.emergency_off()
        source.close()


def run() -> list[tuple[str, float, str]]:
    """Measure both models; return (name, value, unit) rows."""
    rows = []
    for model in ("keithley2400", "keithley2450"):
        floor = bare_pyvisa_sim_us(model)
        ours = driver_reading_us(model)
        rows += [
            (f"{model}: bare pyvisa-sim query (floor)", floor, "us"),
            (f"{model}: driver read() round trip", ours, "us"),
            (f"{model}: ratio driver / floor", ours / floor, "x"),
        ]
    return rows


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:55s} {value:10.1f} {unit}")
