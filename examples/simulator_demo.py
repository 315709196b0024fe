"""The simulated SourceMeter on its skin phantom: watch the impedance fall as current flows.

Healthy skin starts near 15 kOhm and falls towards 3 kOhm once current flows (time constant
about 2 minutes), so at a constant 2 mA the voltage needed falls with it. The demo runs a
10-minute protocol on a 60x clock (10 s), prints a reading per simulated minute, then a
per-minute table from the results file. IONTO_FAST=1 uses the virtual clock (CI).

    python examples/simulator_demo.py
    IONTO_FAST=1 python examples/simulator_demo.py
"""

from __future__ import annotations

import os
import sys
import tempfile

import pandas as pd

from ionto_instruments.clock import ScaledClock, VirtualClock
from ionto_instruments.procedures.runner import make_procedure, run_protocol


def main() -> int:
    """Run the demo; exit 0 when the phantom's impedance fell as expected."""
    fast = os.environ.get("IONTO_FAST", "") not in ("", "0")
    clock = VirtualClock() if fast else ScaledClock(60.0)
    procedure = make_procedure(target_current=2.0, treatment_time=10.0, ramp_up=30.0,
                               ramp_down=30.0, scenario="normal", subject_kind="phantom")
    print(f"Simulated SourceMeter, scenario normal, clock {clock.name}")
    print("  min  phase       current      voltage   impedance")
    seen = {"minute": -1}

    def on_update(live) -> None:
        minute = int(live.t // 60)
        if live.phase in ("ramp-up", "hold", "ramp-down") and minute > seen["minute"]:
            seen["minute"] = minute
            print(f"  {minute:>3}  {live.phase:<9} {live.current_mA:+8.3f} mA "
                  f"{live.voltage_V:8.2f} V {live.impedance_kohm:8.2f} kOhm")

    output = os.environ.get("IONTO_OUTPUT") or tempfile.mkdtemp(prefix="ionto-demo-")
    summary = run_protocol(procedure, output_dir=output, prefix="simulator_demo", clock=clock,
                           on_update=on_update, poll_s=0.05)

    rows = pd.read_csv(summary["results_file"], comment="#")
    rows = rows[rows["Phase"].isin(["ramp-up", "hold", "ramp-down"])]
    per_minute = rows.groupby((rows["Time (s)"] // 60).astype(int)).last()
    print("\nFrom the results file, the last reading of each minute:")
    print("  min    current    voltage   impedance")
    for minute, row in per_minute.iterrows():
        print(f"  {minute:>3} {row['Current (mA)']:+8.3f} mA {row['Voltage (V)']:7.2f} V "
              f"{row['Impedance (kohm)']:7.2f} kOhm")
    hold = rows[rows["Phase"] == "hold"]["Impedance (kohm)"]
    first, last = float(hold.iloc[0]), float(hold.iloc[-1])
    print(f"\nImpedance during the hold: {first:.1f} kOhm -> {last:.1f} kOhm; outcome "
          f"{summary['outcome']}, {summary['delivered_dose_mA_min']:.2f} mA*min delivered")
    print(f"Results: {summary['results_file']}")
    return 0 if summary["outcome"] == "completed" and last < first / 2 else 1


if __name__ == "__main__":
    sys.exit(main())
