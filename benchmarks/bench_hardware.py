"""Hardware-truth figures on the strict simulator (real clock where time is the point).

- E-stop latency while a reading is in progress: clear-then-off (the driver's emergency
  path) vs a plain off-write, which the instrument only executes when the reading ends.
- `ionto selftest` duration: wall time on the virtual clock, and the instrument time the
  same checks take (the simulated clock), which is what a real instrument would need.
"""

from __future__ import annotations

import random
import statistics
import time

from ionto_instruments.clock import RealClock, VirtualClock
from ionto_instruments.connect import open_source

TRIALS = 20


def _estop_latency_ms(clear_first: bool, trials: int = TRIALS, seed: int = 1) -> list[float]:
    """Latency (ms) from the e-stop call to the output actually off, during a reading."""
    rng = random.Random(seed)
    smu = open_source(model="keithley2400", clock=RealClock(), load_ohm=1000.0)
    model = smu.simulator.model
    latencies = []
    try:
        for _ in range(trials):
            smu.configure_current_source(compliance_voltage=10.0)
            smu.set_current(1e-3)
            smu.output_on()
            smu.adapter.write(":READ?")  # a reading in progress (about 71 ms at 1 NPLC, 60 Hz)
            time.sleep(rng.uniform(0.0, 0.6) * model.reading_duration())
            called = model.clock.now()
            if clear_first:
                smu.emergency_off()
            else:
                smu.adapter.write("OUTPUT 0")
            off_at = model.epoch + model.output_off_times[-1]
            latencies.append(max(off_at - called, 0.0) * 1e3)
            time.sleep(max(model.busy_until - model.clock.now(), 0.0))
    finally:
        smu.emergency_off()
        smu.close()
    return latencies


def selftest_duration() -> tuple[float, float]:
    """(wall s on the virtual clock, instrument s on the simulated clock) of one selftest."""
    from ionto_instruments.procedures.selftest import run_selftest

    clock = VirtualClock()
    source = open_source(model="keithley2400", clock=clock, load_ohm=1000.0)
    start = time.perf_counter()
    result = run_selftest(source, 1000.0, 0.01, clock)
    wall = time.perf_counter() - start
    source.close()
    assert result.passed, result
    return wall, result.duration_s


def run() -> list[tuple[str, float, str]]:
    """E-stop latency (median and max of both ways) and the selftest duration."""
    plain = _estop_latency_ms(clear_first=False)
    cleared = _estop_latency_ms(clear_first=True)
    wall, instrument = selftest_duration()
    return [
        ("e-stop during a reading: plain OUTPUT 0 (baseline), median", statistics.median(plain),
         "ms"),
        ("e-stop during a reading: plain OUTPUT 0 (baseline), max", max(plain), "ms"),
        ("e-stop during a reading: device clear then off, median", statistics.median(cleared),
         "ms"),
        ("e-stop during a reading: device clear then off, max", max(cleared), "ms"),
        ("selftest on the simulator: wall time (virtual clock)", wall, "s"),
        ("selftest: instrument time the checks take (simulated clock)", instrument, "s"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:62s} {value:10.3f} {unit}")
