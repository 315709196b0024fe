"""Add your own safety rule: an impedance rise that means the gel is drying out.

A rule subclasses `ionto_instruments.procedures.safety.Rule`: it has a unique `name`, a
`level` (ABORT switches the output off at once; WARN records an event) and `check(sample,
history)` returning `self.trip(sample, sentence)` or None. Pass instances to the Procedure as
`procedure.extra_rules = [MyRule()]`; the monitor runs them after the built-in rules.

The demo runs the protocol twice on the simulator: on normal skin the rule stays quiet, and
with the "drying" scenario (resistance doubles every minute from minute 5) it trips long
before the voltage reaches the compliance limit. 60x clock; IONTO_FAST=1: virtual clock (CI).

    python examples/custom_safety_rule.py
"""

from __future__ import annotations

import math
import os
import sys
import tempfile

from ionto_instruments.clock import ScaledClock, VirtualClock
from ionto_instruments.procedures.runner import make_procedure, run_protocol
from ionto_instruments.procedures.safety import History, Level, Rule, Sample, Verdict


class ImpedanceRiseRule(Rule):
    """Abort when the skin impedance rises `factor` times above its lowest value (drying).

    The monitor's `history` covers only the last few seconds, so a rule that needs a longer
    memory keeps its own (small) state and forgets it in `reset()`.
    """

    name = "impedance-rise"
    level = Level.ABORT
    phases = frozenset({"hold"})

    def __init__(self, factor: float = 1.5, min_current_mA: float = 0.1) -> None:
        self.factor = factor
        self.min_current_mA = min_current_mA
        self._lowest = math.inf

    def reset(self) -> None:
        """Forget the lowest impedance (a new run starts)."""
        self._lowest = math.inf

    def check(self, sample: Sample, history: History) -> Verdict | None:
        """Compare this impedance with the lowest one of the hold so far."""
        impedance = sample.impedance_kohm
        if abs(sample.current_mA) < self.min_current_mA or not math.isfinite(impedance):
            return None
        self._lowest = min(self._lowest, impedance)
        if impedance > self.factor * self._lowest:
            return self.trip(sample, (
                f"Skin impedance rose from {self._lowest:.1f} to {impedance:.1f} kOhm "
                f"(more than {self.factor:g}x): the gel is drying. Output switched off; "
                f"re-wet the electrode before going on."))
        return None


def run(scenario: str, clock_factory) -> dict:
    """Run a 15-minute 2 mA protocol on `scenario` with the custom rule; return the summary."""
    procedure = make_procedure(target_current=2.0, treatment_time=15.0, scenario=scenario,
                               subject_kind="phantom")
    procedure.extra_rules = [ImpedanceRiseRule()]
    output = os.environ.get("IONTO_OUTPUT") or tempfile.mkdtemp(prefix="ionto-rule-")
    return run_protocol(procedure, output_dir=output, prefix="custom_rule",
                        clock=clock_factory())


def main() -> int:
    """Show the rule quiet on normal skin and tripping on drying skin; exit 0 if it did."""
    fast = os.environ.get("IONTO_FAST", "") not in ("", "0")
    factory = VirtualClock if fast else (lambda: ScaledClock(60.0))
    normal = run("normal", factory)
    print(f"normal skin:       {normal['outcome']:<9} rule={normal['rule']}  "
          f"{normal['delivered_dose_mA_min']:.1f} mA*min")
    drying = run("drying@5", factory)
    print(f"drying from 5 min: {drying['outcome']:<9} rule={drying['rule']}  "
          f"{drying['delivered_dose_mA_min']:.1f} mA*min after {drying['duration_s']:.0f} s")
    print(f"  {drying['reason']}")
    print(f"  results: {drying['results_file']}")
    ok = normal["outcome"] == "completed" and drying["rule"] == ImpedanceRiseRule.name
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
