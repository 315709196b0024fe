"""A scripted protocol run on a real Keithley SourceMeter, through the Python API.

The instrument's VISA address is set in ONE place, `RESOURCE` below; the environment variable
IONTO_RESOURCE overrides it. When neither names an instrument (as in CI), the script runs the
same protocol on the simulated SourceMeter with the virtual clock, so it finishes in seconds:

    IONTO_RESOURCE=GPIB0::24::INSTR python examples/real_instrument.py   # the real instrument
    python examples/real_instrument.py                                   # simulator, virtual

Ctrl-C once stops the run (ramp down, then off); twice switches the output off at once. The
exit code is the one `ionto run` would give (0 completed, 3 safety trip, 4 instrument, ...).
"""

from __future__ import annotations

import os
import signal
import sys

from ionto_instruments.clock import RealClock, VirtualClock
from ionto_instruments.procedures.cli import exit_code
from ionto_instruments.procedures.runner import make_procedure, run_protocol

#: The one place for the instrument's address, e.g. "GPIB0::24::INSTR"; "" means the simulator.
RESOURCE = os.environ.get("IONTO_RESOURCE", "")
MODEL = os.environ.get("IONTO_MODEL", "keithley2400")


def main() -> int:
    """Run a 10-minute, 1 mA bench protocol on a phantom and print its summary."""
    procedure = make_procedure(
        target_current=1.0, treatment_time=10.0, ramp_up=30.0, ramp_down=30.0,
        electrode_area=10.0, compliance_voltage=40.0, drug="none",
        subject_kind="phantom", subject_id="bench-phantom", session_id="scripted-example",
        resource=RESOURCE, instrument_model=MODEL)
    clock = RealClock() if RESOURCE else VirtualClock()
    where = RESOURCE or "the SIMULATED SourceMeter (IONTO_RESOURCE is not set)"
    print(f"Running on {where}, clock {clock.name}")

    presses = {"n": 0}

    def on_interrupt(signum: int, frame: object) -> None:
        presses["n"] += 1
        if presses["n"] == 1:
            procedure.request_stop()
        else:
            procedure.emergency_stop("Emergency stop (Ctrl-C twice)")

    shown = {"minute": -1}

    def on_update(live) -> None:
        minute = int(live.elapsed_s // 60)
        if live.phase in ("ramp-up", "hold", "ramp-down") and minute > shown["minute"]:
            shown["minute"] = minute
            print(f"  {live.phase:<9} min {minute:>2}  {live.current_mA:+.3f} mA  "
                  f"{live.voltage_V:6.2f} V  dose {live.dose_mA_min:5.2f} mA*min")

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        summary = run_protocol(procedure, output_dir=os.environ.get("IONTO_OUTPUT", "runs"),
                               prefix="real_instrument", clock=clock, on_update=on_update)
    finally:
        signal.signal(signal.SIGINT, previous)

    print(f"Instrument: {summary['instrument']}")
    print(f"Outcome: {summary['outcome']} ({summary['rule'] or 'no rule'}): {summary['reason']}")
    print(f"Dose: {summary['delivered_dose_mA_min']:.2f} of "
          f"{summary['planned_dose_mA_min']:.2f} mA*min; output off confirmed: "
          f"{summary['output_off_confirmed']}")
    print(f"Results: {summary['results_file']}")
    return exit_code(summary)


if __name__ == "__main__":
    sys.exit(main())
