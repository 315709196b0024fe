"""`ionto selftest`: qualify a SourceMeter on a known resistor before the first session.

    ionto selftest --resource GPIB0::24::INSTR --model keithley2400 --dummy-load-ohm 1000

Typing the resistance is the confirmation that a resistor (and no person) is across the
leads. The checks, in order: identity and command set, interlock (2450 family), model
limits and the OVP read-back, readings at 0.1 / 1 / 2 mA against Ohm's law, a compliance
trip forced with a low compliance, the output-off latency (write -> read back off), and a
clean error queue. Every path ends with the output off, through `OutputGuard` (written and
read back; unconfirmed: CRITICAL, a failed row, exit 4). Without --resource it runs on the
simulator with a simulated resistor of the stated value (what CI does).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ionto_instruments import limits as L
from ionto_instruments.clock import Clock, RealClock
from ionto_instruments.instrument_lock import InstrumentLock
from ionto_instruments.output import UNCONFIRMED, OutputGuard
from ionto_instruments.source import CurrentSource, InstrumentError

#: Test currents (A): the readings against Ohm's law (limits table, in mA).
TEST_CURRENTS_A = tuple(limit.value * 1e-3 for limit in (
    L.SELFTEST_CURRENT_LOW, L.SELFTEST_CURRENT_MID, L.SELFTEST_CURRENT_HIGH))
#: Source accuracy allowance: fraction of the setting + offset in A (limits table).
CURRENT_TOLERANCE = (L.SELFTEST_CURRENT_GAIN_TOLERANCE.value,
                     L.SELFTEST_CURRENT_OFFSET.value * 1e-6)
#: Voltage measurement allowance added to the resistor's own tolerance (fraction).
VOLTAGE_TOLERANCE = L.SELFTEST_VOLTAGE_TOLERANCE.value
#: The resistor range the check accepts (ohm): 2 mA must fit under the compliance.
MIN_LOAD_OHM, MAX_LOAD_OHM = L.SELFTEST_LOAD.minimum, L.SELFTEST_LOAD.maximum
#: Compliance for the Ohm's-law readings: 2 mA x R with headroom, at least this (V).
MIN_COMPLIANCE_V = L.SELFTEST_MIN_COMPLIANCE.value
#: Longest acceptable time from the off-write to reading back "off" (s).
MAX_OFF_LATENCY_S = L.SELFTEST_MAX_OFF_LATENCY.value
#: Highest compliance used: what a 2450 accepts with its interlock open (the same entry).
MAX_COMPLIANCE_V = L.INTERLOCK_OPEN_MAX.value


@dataclass
class Check:
    """One line of the pass/fail table."""

    name: str
    passed: bool
    detail: str
    value: float | None = None


@dataclass
class SelftestResult:
    """Everything the JSON report holds."""

    resource: str
    model: str
    idn: str = ""
    load_ohm: float = 0.0
    simulated: bool = False
    checks: list[Check] = field(default_factory=list)
    duration_s: float = 0.0
    #: The output read back as off at the end (the OutputGuard's confirmation).
    output_off_confirmed: bool = False

    @property
    def passed(self) -> bool:
        """True when every check passed and the output was read back off at the end."""
        return (bool(self.checks) and all(check.passed for check in self.checks)
                and self.output_off_confirmed)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: checks as a list of objects, plus the overall verdict."""
        data = asdict(self)
        data["passed"] = self.passed
        return data


def run_selftest(source: CurrentSource, load_ohm: float, resistor_tolerance: float = 0.01,
                 clock: Clock | None = None) -> SelftestResult:
    """Run every check on an opened source with `load_ohm` across the leads; output off after."""
    if not (MIN_LOAD_OHM <= load_ohm <= MAX_LOAD_OHM):
        raise ValueError(f"--dummy-load-ohm {load_ohm:g} is outside [{MIN_LOAD_OHM:g}, "
                         f"{MAX_LOAD_OHM:g}] ohm: 2 mA must fit under the compliance")
    clock = clock or RealClock()
    started = clock.now()
    result = SelftestResult(resource=source.resource_name, model=type(source).__name__,
                            load_ohm=load_ohm, simulated=bool(source.simulated))
    checks = result.checks
    guard = OutputGuard(source, may_be_on=True)  # unknown at the start: confirm it off at the end

    def check(name: str, step: Callable[[], tuple[bool, str, float | None]]) -> bool:
        try:
            passed, detail, value = step()
        except (InstrumentError, ValueError, OSError) as exc:
            passed, detail, value = False, f"{type(exc).__name__}: {exc}", None
        checks.append(Check(name, passed, detail, value))
        return passed

    try:
        result.idn = source.identify()
        spec = getattr(source, "spec", None)
        checks.append(Check("identity and command set", True,
                            f"{result.idn} ({spec.name if spec else 'model unknown'})"))
        compliance = min(max(MIN_COMPLIANCE_V, 3.0 * max(TEST_CURRENTS_A) * load_ohm),
                         MAX_COMPLIANCE_V)
        if spec is not None:
            compliance = min(compliance, spec.max_voltage_V * 0.9)
        check("interlock", lambda: _interlock(source))
        if not check("model limits and OVP read-back", lambda: _limits(source, compliance)):
            return result
        for amps in TEST_CURRENTS_A:
            check(f"Ohm's law at {amps * 1e3:g} mA",
                  lambda amps=amps: _ohms_law(source, guard, amps, load_ohm,
                                              resistor_tolerance))
        guard.off_now()
        check("compliance trip (low compliance)",
              lambda: _compliance_trip(source, guard, load_ohm))
        check("output-off latency", lambda: _off_latency(source, guard, clock))
        check("error queue clean", lambda: _errors(source))
    finally:
        result.output_off_confirmed = guard.off_now()  # written, read back, retried; CRITICAL
        checks.append(Check("output off at the end (read back)", result.output_off_confirmed,
                            "confirmed off" if result.output_off_confirmed else UNCONFIRMED))
        result.duration_s = clock.now() - started
    return result


def _interlock(source: CurrentSource) -> tuple[bool, str, float | None]:
    state = getattr(type(source), "interlock_asserted", None)
    if state is None:
        return True, "not applicable (2400 family: no output interlock query used)", None
    asserted = source.interlock_asserted  # type: ignore[attr-defined]
    text = ("asserted: all ranges available" if asserted else
            f"NOT asserted: output limited to about 37-42 V; compliance above "
            f"{MAX_COMPLIANCE_V:g} V is refused")
    return True, text, float(asserted)


def _limits(source: CurrentSource, compliance: float) -> tuple[bool, str, float | None]:
    source.check_limits(compliance, max(TEST_CURRENTS_A))
    source.configure_current_source(compliance_voltage=compliance)
    ovp = getattr(source, "ovp_V", None)
    spec = getattr(source, "spec", None)
    limits = (f"{spec.name}: max {spec.max_voltage_V:g} V / {spec.max_current_A:g} A; "
              if spec else "")
    ovp_text = "NONE" if ovp is None else f"{ovp:g} V"
    return True, f"{limits}compliance {compliance:g} V read back, OVP {ovp_text} read back", ovp


def _ohms_law(source: CurrentSource, guard: OutputGuard, amps: float, load_ohm: float,
              resistor_tolerance: float) -> tuple[bool, str, float | None]:
    source.set_current(amps)
    if not guard.was_on or guard.confirmed_off:
        _switch_on(guard)
    reading = source.read()
    current_ok = abs(reading.current - amps) <= amps * CURRENT_TOLERANCE[0] + CURRENT_TOLERANCE[1]
    measured = reading.impedance
    allowed = load_ohm * (resistor_tolerance + VOLTAGE_TOLERANCE) + (
        CURRENT_TOLERANCE[1] / amps) * load_ohm
    ohms_ok = math.isfinite(measured) and abs(measured - load_ohm) <= allowed
    passed = current_ok and ohms_ok and not reading.compliance
    detail = (f"I {reading.current * 1e3:.4f} mA, V {reading.voltage:.4f} V, V/I "
              f"{measured:.1f} ohm (expected {load_ohm:g} ± {allowed:.1f})"
              + ("; IN COMPLIANCE" if reading.compliance else ""))
    return passed, detail, measured


def _switch_on(guard: OutputGuard) -> None:
    if not guard.on():
        raise InstrumentError("output on refused: an emergency stop was requested")


def _compliance_trip(source: CurrentSource, guard: OutputGuard,
                     load_ohm: float) -> tuple[bool, str, float | None]:
    amps = max(TEST_CURRENTS_A)
    low = round(max(0.1, amps * load_ohm / 2.0), 3)
    source.configure_current_source(compliance_voltage=low)
    source.set_current(amps)
    _switch_on(guard)
    reading = source.read()
    off = guard.off_now()
    passed = off and reading.compliance and abs(reading.voltage) <= low * 1.05
    return (passed, f"compliance {low:g} V with {amps * 1e3:g} mA into {load_ohm:g} ohm: "
                    f"flag {'set' if reading.compliance else 'NOT set'}, V {reading.voltage:.3f}",
            reading.voltage)


def _off_latency(source: CurrentSource, guard: OutputGuard,
                 clock: Clock) -> tuple[bool, str, float | None]:
    source.configure_current_source(compliance_voltage=MIN_COMPLIANCE_V)
    source.set_current(min(TEST_CURRENTS_A))
    _switch_on(guard)
    wall = time.perf_counter()
    start = clock.now()
    off = guard.ramped_off()  # one OUTPUT OFF, then the read-back
    latency = max(clock.now() - start, 0.0) if clock.name != "virtual" else (
        time.perf_counter() - wall)
    passed = off and latency <= MAX_OFF_LATENCY_S
    return passed, f"{latency * 1e3:.1f} ms from the off-write to reading back off", latency


def _errors(source: CurrentSource) -> tuple[bool, str, float | None]:
    errors = source.drain_errors()
    return not errors, "empty" if not errors else "; ".join(errors), float(len(errors))


def format_table(result: SelftestResult) -> str:
    """The pass/fail table people read."""
    width = max(len(check.name) for check in result.checks) if result.checks else 10
    lines = [f"Selftest of {result.idn or result.resource} on {result.load_ohm:g} ohm"
             + (" (SIMULATED)" if result.simulated else "")]
    for check in result.checks:
        lines.append(f"  {'PASS' if check.passed else 'FAIL'}  {check.name:<{width}}  "
                     f"{check.detail}")
    lines.append(f"{'PASSED' if result.passed else 'FAILED'} in {result.duration_s:.2f} s")
    return "\n".join(lines)


def register(commands: Any) -> None:
    """Add `ionto selftest` to the command line."""
    parser = commands.add_parser(
        "selftest", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="qualify a SourceMeter on a known resistor (no person attached)",
        description="Check a SourceMeter with a known resistor across the leads and no person "
                    "attached: identity, command set, interlock, model limits and OVP, Ohm's "
                    "law at 0.1/1/2 mA, a forced compliance trip, output-off latency, a clean "
                    "error queue. Typing the resistance confirms the resistor is connected.",
        epilog="examples:\n  ionto selftest --resource GPIB0::24::INSTR --model keithley2400 "
               "--dummy-load-ohm 1000\n  ionto selftest --sim --dummy-load-ohm 1000 "
               "--json-file selftest.json")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--resource", metavar="VISA", help="VISA resource of the instrument")
    where.add_argument("--sim", action="store_true",
                       help="the simulator, with a simulated resistor of --dummy-load-ohm")
    parser.add_argument("--model", default="keithley2400",
                        choices=("keithley2400", "keithley2450"), help="driver family")
    parser.add_argument("--instrument", metavar="NNNN",
                        help="simulator only: the model number to simulate (e.g. 2401, 2470)")
    parser.add_argument("--dummy-load-ohm", type=float, required=True, metavar="R",
                        help=f"the resistor across the leads, ohm ({MIN_LOAD_OHM:g} to "
                             f"{MAX_LOAD_OHM:g})")
    parser.add_argument("--resistor-tolerance", type=float, default=1.0, metavar="PCT",
                        help="the resistor's tolerance in percent (default 1)")
    parser.add_argument("--json-file", metavar="FILE",
                        help="write the JSON report here (default: selftest_<time>.json)")
    parser.set_defaults(handler=cmd_selftest)


def cmd_selftest(args: argparse.Namespace) -> int:
    """`ionto selftest`: run the checks, print the table, write the JSON; 0 when all pass."""
    from ionto_instruments.clock import VirtualClock
    from ionto_instruments.connect import open_source

    from .cli import EXIT_INSTRUMENT, EXIT_OK, EXIT_SAFETY, UsageError

    load = args.dummy_load_ohm
    if not (math.isfinite(load) and MIN_LOAD_OHM <= load <= MAX_LOAD_OHM):
        raise UsageError(f"--dummy-load-ohm {load:g}: must be in [{MIN_LOAD_OHM:g}, "
                         f"{MAX_LOAD_OHM:g}] ohm", "dummy-load-ohm")
    tolerance = args.resistor_tolerance / 100.0
    if not (0 < tolerance <= 0.1):
        raise UsageError("--resistor-tolerance must be in (0, 10] percent", "resistor-tolerance")
    if args.instrument and not args.sim:
        raise UsageError("--instrument is for the simulator only; a real instrument says its "
                         "model in *IDN?", "instrument")
    clock: Clock = VirtualClock() if args.sim else RealClock()
    options: dict[str, Any] = {"load_ohm": load, "clock": clock} if args.sim else {}
    if args.sim and args.instrument:
        options["instrument"] = args.instrument
    lock = InstrumentLock(args.resource) if args.resource else None
    try:
        if lock is not None:
            lock.acquire()  # one instrument, one controller: never beside a run on it
        source = open_source(args.resource, model=args.model, **options)
    except (InstrumentError, ValueError, OSError) as exc:
        if lock is not None:
            lock.release()
        print(f"ionto selftest: {exc}", file=sys.stderr)
        return EXIT_INSTRUMENT
    try:
        result = run_selftest(source, load, tolerance, clock)
    finally:
        source.close()
        if lock is not None:
            lock.release()
    print(format_table(result))
    target = Path(args.json_file or time.strftime("selftest_%Y%m%d_%H%M%S.json"))
    target.write_text(json.dumps(result.as_dict(), indent=2) + "\n", encoding="utf-8")
    print(f"JSON: {target}", file=sys.stderr)
    if not result.output_off_confirmed:
        return EXIT_INSTRUMENT  # as a run whose off is unconfirmed: a fault, not a mere fail
    return EXIT_OK if result.passed else EXIT_SAFETY


__all__ = ["Check", "SelftestResult", "cmd_selftest", "format_table", "register",
           "run_selftest"]
