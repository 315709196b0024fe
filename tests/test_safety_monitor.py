"""The safety monitor over whole runs: silent on normal skin, trips on every fault profile.

The skin phantom is generated here (not taken from the simulator) so these tests judge the
rules against an independent model: R(t) = R∞ + (R0 − R∞)·exp(−t/τ), relative noise on V and I
(Gaussian, clipped at 4σ), a little absolute noise, and the instrument's compliance clamp.
"""

from __future__ import annotations

import ast
import builtins
import math
import random
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ionto_instruments.procedures import safety
from ionto_instruments.procedures.safety import (
    History,
    Level,
    Rule,
    SafetyConfig,
    SafetyMonitor,
    Sample,
    Verdict,
    evaluate_contact_check,
)

DT = 0.2
RAMP_S = 30.0


def normal_skin(r0: float = 15.0, r_inf: float = 3.0, tau: float = 120.0) -> Callable[
        [float], float]:
    """The phantom's skin impedance in kΩ as a function of run time."""
    return lambda t: r_inf + (r0 - r_inf) * math.exp(-t / tau)


def phantom_run(target_mA: float, compliance_V: float, *, hold_s: float, seed: int = 0,
                noise: float = 0.003, skin: Callable[[float], float] | None = None,
                start_s: float = 0.0) -> Iterator[Sample]:
    """Yield the samples of one ramped run: 30 s up from 0, hold, 30 s down to 0.

    `skin(t)` gives R in kΩ; a current source clamps |V| at the compliance voltage.
    """
    skin = skin or normal_skin()
    rng = random.Random(seed)

    def jitter() -> float:
        return max(-4.0, min(4.0, rng.gauss(0.0, 1.0)))

    total = 2 * RAMP_S + hold_s
    dose = 0.0
    previous: tuple[float, float] | None = None
    for k in range(round(total / DT) + 1):
        t = start_s + k * DT
        run_t = k * DT
        if run_t < RAMP_S:
            phase, setpoint = "ramp-up", target_mA * run_t / RAMP_S
        elif run_t <= RAMP_S + hold_s:
            phase, setpoint = "hold", target_mA
        else:
            phase, setpoint = "ramp-down", target_mA * max(0.0, total - run_t) / RAMP_S
        r = skin(t)
        current, voltage, flag = setpoint, setpoint * r, False
        if abs(voltage) > compliance_V:
            voltage = math.copysign(compliance_V, setpoint)
            current, flag = voltage / r, True
        current = current * (1 + noise * jitter()) + 2e-4 * jitter()
        voltage = voltage * (1 + noise * jitter()) + 1e-3 * jitter()
        if previous is not None:
            dose += (abs(previous[1]) + abs(current)) / 2 * (t - previous[0]) / 60
        previous = (t, current)
        yield Sample(t, phase, setpoint, current, voltage, flag, dose)


def run_monitor(monitor: SafetyMonitor, samples: Iterator[Sample],
                stop_at_abort: bool = True) -> list[Verdict]:
    """Feed samples in the documented order (staleness at the tick, then the sample)."""
    out: list[Verdict] = []
    for s in samples:
        verdicts = monitor.check_staleness(s.t) + monitor.check(s)
        out.extend(verdicts)
        if stop_at_abort and any(v.level is Level.ABORT for v in verdicts):
            break
    return out


def first_abort(verdicts: list[Verdict]) -> Verdict | None:
    return next((v for v in verdicts if v.level is Level.ABORT), None)


# -- normal skin never trips -----------------------------------------------------------------

TARGETS = [(2.0, 40.0), (2.0, 80.0), (0.5, 80.0), (4.0, 80.0)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(TARGETS), sign=st.sampled_from([1, -1]),
       seed=st.integers(0, 2**32 - 1), noise=st.floats(0.0, 0.004),
       hold_s=st.floats(0.0, 240.0), at_density_limit=st.booleans())
def test_normal_skin_never_trips_or_warns(case: tuple[float, float], sign: int, seed: int,
                                          noise: float, hold_s: float,
                                          at_density_limit: bool) -> None:
    target, compliance = case
    area = target / 0.5 if at_density_limit else 10.0     # the target exactly at the limit
    config = SafetyConfig(target_mA=sign * target, compliance_V=compliance,
                          electrode_area_cm2=area)
    monitor = SafetyMonitor(config)
    verdicts = run_monitor(monitor, phantom_run(sign * target, compliance, hold_s=hold_s,
                                                seed=seed, noise=noise), stop_at_abort=False)
    assert verdicts == []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.floats(0.1, 4.0), compliance=st.floats(20.0, 80.0),
       r0=st.floats(10.0, 20.0), r_inf=st.floats(2.0, 5.0), tau=st.floats(60.0, 180.0),
       seed=st.integers(0, 2**32 - 1), noise=st.floats(0.0, 0.004),
       hold_s=st.floats(0.0, 120.0))
def test_any_skin_the_contact_check_accepts_runs_without_an_abort(
        target: float, compliance: float, r0: float, r_inf: float, tau: float, seed: int,
        noise: float, hold_s: float) -> None:
    config = SafetyConfig(target_mA=target, compliance_V=compliance)
    assume(evaluate_contact_check(r0 * 1e3, False, config) is None)
    verdicts = run_monitor(SafetyMonitor(config), phantom_run(
        target, compliance, hold_s=hold_s, seed=seed, noise=noise,
        skin=normal_skin(r0, r_inf, tau)), stop_at_abort=False)
    assert first_abort(verdicts) is None
    assert all(v.rule == "near-compliance" for v in verdicts)   # a warning is allowed


@pytest.mark.parametrize(("target", "compliance", "hold_min"),
                         [(2.0, 40.0, 29.0), (0.5, 80.0, 29.0), (-4.0, 80.0, 18.5)])
def test_a_full_treatment_on_normal_skin_is_silent(target: float, compliance: float,
                                                   hold_min: float) -> None:
    """30 minutes (at 4 mA the 80 mA·min cap limits the treatment to about 20 minutes)."""
    monitor = SafetyMonitor(SafetyConfig(target_mA=target, compliance_V=compliance))
    samples = list(phantom_run(target, compliance, hold_s=hold_min * 60, seed=7))
    assert run_monitor(monitor, iter(samples), stop_at_abort=False) == []
    assert samples[-1].dose_mA_min < 80.0


def test_four_milliamps_for_thirty_minutes_hits_the_dose_cap_at_twenty() -> None:
    monitor = SafetyMonitor(SafetyConfig(target_mA=4.0, compliance_V=80.0))
    verdict = first_abort(run_monitor(monitor, phantom_run(4.0, 80.0, hold_s=29 * 60)))
    assert verdict is not None and verdict.rule == "dose-cap"
    assert 19.5 * 60 < verdict.t < 21 * 60  # 80 mA·min + 2 % measurement tolerance at 4 mA


# -- every fault profile trips, naming the right rule ----------------------------------------


def with_fault(onset: float, fault: Callable[[float, float], float],
               skin: Callable[[float], float] | None = None) -> Callable[[float], float]:
    """Normal skin until `onset`, then fault(t, r_normal(t))."""
    base = skin or normal_skin()
    return lambda t: base(t) if t < onset else fault(t, base(t))


@settings(max_examples=30, deadline=None)
@given(onset=st.floats(35.0, 200.0), target=st.sampled_from([0.5, 2.0, -2.0, 4.0]),
       leak_kohm=st.sampled_from([1e4, 1e9]), seed=st.integers(0, 2**16))
def test_open_circuit_is_named_impedance_high_not_compliance(
        onset: float, target: float, leak_kohm: float, seed: int) -> None:
    """Lead off: I -> ~0, V at the limit, compliance flag set; reported as lost contact."""
    monitor = SafetyMonitor(SafetyConfig(target_mA=target, compliance_V=80.0))
    samples = phantom_run(target, 80.0, hold_s=300.0, seed=seed,
                          skin=with_fault(onset, lambda t, r: leak_kohm))
    verdicts = run_monitor(monitor, samples)
    abort = first_abort(verdicts)
    assert abort is not None and abort.rule == "impedance-high"
    assert onset <= abort.t <= onset + DT + 1e-9
    assert "compliance" in [v.rule for v in verdicts]     # also true, but ranked lower
    assert "Contact lost" in abort.message


@settings(max_examples=30, deadline=None)
@given(onset=st.floats(35.0, 200.0), fraction=st.floats(0.05, 0.55),
       target=st.sampled_from([0.5, 2.0, -4.0]), seed=st.integers(0, 2**16))
def test_step_drop_trips_within_one_sample(onset: float, fraction: float, target: float,
                                           seed: int) -> None:
    monitor = SafetyMonitor(SafetyConfig(target_mA=target, compliance_V=80.0))
    samples = phantom_run(target, 80.0, hold_s=300.0, seed=seed,
                          skin=with_fault(onset, lambda t, r: fraction * r))
    abort = first_abort(run_monitor(monitor, samples))
    assert abort is not None and abort.rule in ("impedance-drop", "impedance-low")
    assert onset <= abort.t <= onset + DT + 1e-9


def test_step_drop_to_twenty_percent_is_an_impedance_drop() -> None:
    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0))
    samples = phantom_run(2.0, 40.0, hold_s=600.0, skin=with_fault(300.0, lambda t, r: 0.2 * r))
    abort = first_abort(run_monitor(monitor, samples))
    assert abort is not None and abort.rule == "impedance-drop"
    assert abort.t == pytest.approx(300.0, abs=DT)


def test_short_circuit_is_named_impedance_low() -> None:
    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0))
    samples = phantom_run(2.0, 40.0, hold_s=600.0, skin=with_fault(300.0, lambda t, r: 0.05))
    abort = first_abort(run_monitor(monitor, samples))
    assert abort is not None and abort.rule == "impedance-low"


@settings(max_examples=20, deadline=None)
@given(rate=st.floats(0.02, 1.0), onset=st.floats(40.0, 150.0), seed=st.integers(0, 2**16))
def test_drying_warns_then_trips_compliance(rate: float, onset: float, seed: int) -> None:
    """Gel drying: R rises steadily (kΩ/s) until the voltage runs into compliance."""
    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0))
    samples = phantom_run(2.0, 40.0, hold_s=1200.0, seed=seed,
                          skin=with_fault(onset, lambda t, r: r + rate * (t - onset)))
    verdicts = run_monitor(monitor, samples)
    abort = first_abort(verdicts)
    assert abort is not None and abort.rule == "compliance"
    warnings = [v for v in verdicts if v.level is Level.WARN]
    assert [v.rule for v in warnings] == ["near-compliance"]
    assert warnings[0].t < abort.t


def test_high_impedance_is_named_impedance_high() -> None:
    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0))
    samples = phantom_run(2.0, 40.0, hold_s=600.0, skin=with_fault(200.0, lambda t, r: 150.0))
    abort = first_abort(run_monitor(monitor, samples))
    assert abort is not None and abort.rule == "impedance-high"
    measured = re.search(r"rose to ([0-9.]+) kΩ \(limit 100 kΩ\)", abort.message)
    assert measured is not None and float(measured.group(1)) == pytest.approx(150.0, rel=0.02)


def test_source_runaway_is_overcurrent() -> None:
    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0))
    samples = [s if s.t < 100 else Sample(s.t, s.phase, s.setpoint_mA, 2.5, 2.5 * 4,
                                          False, s.dose_mA_min)
               for s in phantom_run(2.0, 40.0, hold_s=200.0)]
    abort = first_abort(run_monitor(monitor, iter(samples)))
    assert abort is not None and abort.rule == "overcurrent" and abort.t == pytest.approx(100.0)


def test_a_stalled_loop_is_stale_data_when_staleness_is_checked_first() -> None:
    """The loop stalls 1 s (no reading, no I/O error); the next tick names the gap."""
    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0))
    samples = [s for s in phantom_run(2.0, 40.0, hold_s=120.0) if not 100.0 < s.t < 101.0]
    abort = first_abort(run_monitor(monitor, iter(samples)))
    assert abort is not None and abort.rule == "stale-data"
    assert abort.t == pytest.approx(101.0) and "1 s (limit 0.6 s)" in abort.message


# -- priority and phases ---------------------------------------------------------------------


def test_open_circuit_sample_ranks_impedance_high_before_compliance() -> None:
    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0))
    monitor.check(Sample(99.8, "hold", 2.0, 2.0, 8.0, False, 3.0))
    verdicts = monitor.check(Sample(100.0, "hold", 2.0, 1e-5, 40.0, True, 3.0))
    rules = [v.rule for v in verdicts]
    assert rules[0] == "impedance-high"
    assert rules.index("impedance-high") < rules.index("compliance")
    assert rules[-1] == "near-compliance" and verdicts[-1].level is Level.WARN
    assert all(v.level is Level.ABORT for v in verdicts[:-1])


def test_only_overcurrent_applies_during_the_contact_check() -> None:
    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0))
    open_circuit = Sample(1.0, "contact-check", 0.05, 0.0, 40.0, True, 0.0)
    assert monitor.check(open_circuit) == []
    short = Sample(1.2, "contact-check", 0.05, 0.05, 0.001, False, 0.0)
    assert monitor.check(short) == []
    runaway = Sample(1.4, "contact-check", 0.05, 3.0, 30.0, False, 0.0)
    assert [v.rule for v in monitor.check(runaway)] == ["overcurrent"]


# -- purity ----------------------------------------------------------------------------------


def fault_sequence() -> list[Sample]:
    """A run with a drop, a warning and a compliance excursion, to exercise every state."""
    skin = with_fault(100.0, lambda t, r: (0.3 * r) if t < 110 else r + 2.0 * (t - 110))
    return list(phantom_run(2.0, 40.0, hold_s=200.0, seed=3, skin=skin))


def verdict_trace(monitor: SafetyMonitor, samples: list[Sample]) -> list[list[Verdict]]:
    return [monitor.check_staleness(s.t) + monitor.check(s) for s in samples]


def test_same_inputs_give_same_verdicts_and_reset_starts_over() -> None:
    config = SafetyConfig(target_mA=2.0, compliance_V=40.0)
    samples = fault_sequence()
    first = verdict_trace(SafetyMonitor(config), samples)
    assert any(first)                                       # the sequence does trip
    monitor = SafetyMonitor(config)
    assert verdict_trace(monitor, samples) == first
    monitor.reset()
    assert verdict_trace(monitor, samples) == first


def test_monitor_reads_no_clock_and_does_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    config = SafetyConfig(target_mA=2.0, compliance_V=40.0)
    samples = fault_sequence()
    expected = verdict_trace(SafetyMonitor(config), samples)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the safety monitor must not read a clock or do I/O")

    for name in ("time", "monotonic", "perf_counter", "time_ns", "monotonic_ns", "sleep"):
        monkeypatch.setattr(time, name, forbidden)
    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(builtins, "print", forbidden)
    monkeypatch.setattr(socket, "socket", forbidden)
    monitor = SafetyMonitor(config)
    assert verdict_trace(monitor, samples) == expected
    assert monitor.no_reading(5.0, "timeout")[0].rule == "instrument-fault"


def test_safety_module_imports_nothing_that_does_io_or_tells_time() -> None:
    tree = ast.parse(Path(safety.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    allowed = {"__future__", "enum", "math", "abc", "collections", "dataclasses", "typing",
               "ionto_instruments"}
    assert imported <= allowed, imported - allowed


def test_history_stays_bounded_over_a_long_run() -> None:
    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0))
    run_monitor(monitor, phantom_run(2.0, 40.0, hold_s=300.0), stop_at_abort=False)
    assert 0 < len(monitor.history) == monitor.history.maxlen <= 200


def test_two_monitors_do_not_share_rule_state() -> None:
    config = SafetyConfig(target_mA=2.0, compliance_V=40.0)
    a, b = SafetyMonitor(config), SafetyMonitor(config)
    assert all(x is not y for x, y in zip(a.rules, b.rules, strict=True))
    for k in range(5):                                  # a regulation streak in `a` only
        a.check(Sample(10 + 0.2 * k, "hold", 2.0, 1.5, 6.0, False, 1.0))
    assert b.check(Sample(11.2, "hold", 2.0, 1.5, 6.0, False, 1.0)) == []
    assert [v.rule for v in a.check(Sample(11.2, "hold", 2.0, 1.5, 6.0, False, 1.0))] == [
        "regulation"]


# -- custom rules ----------------------------------------------------------------------------


class VoltageCeiling(Rule):
    """An example custom rule: abort when |V| exceeds a fixed ceiling."""

    name = "voltage-ceiling"

    def __init__(self, limit_V: float) -> None:
        self.limit_V = limit_V
        self.resets = 0

    def check(self, sample: Sample, history: History) -> Verdict | None:
        if abs(sample.voltage_V) > self.limit_V:
            return self.trip(sample, f"Voltage {sample.voltage_V:g} V is above "
                                     f"{self.limit_V:g} V.\nCheck the patch.")
        return None

    def reset(self) -> None:
        self.resets += 1


def test_custom_rule_runs_after_built_ins_and_before_warnings() -> None:
    custom = VoltageCeiling(30.0)
    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0), [custom])
    assert monitor.rules[-1] is custom
    assert monitor.check(Sample(10.0, "hold", 2.0, 2.0, 25.0, False, 1.0)) == []
    verdicts = monitor.check(Sample(10.2, "hold", 2.0, 2.0, 39.0, False, 1.0))
    assert [v.rule for v in verdicts] == ["compliance", "voltage-ceiling", "near-compliance"]
    assert "\n" not in verdicts[1].message and verdicts[1].t == 10.2
    monitor.reset()
    assert custom.resets == 1


def test_custom_rule_skips_the_contact_check_unless_it_asks() -> None:
    custom = VoltageCeiling(20.0)
    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0), [custom])
    probe = Sample(0.2, "contact-check", 0.05, 0.05, 30.0, False, 0.0)
    assert monitor.check(probe) == []
    custom.phases = safety.ALL_PHASES
    assert [v.rule for v in monitor.check(probe)] == ["voltage-ceiling"]


def test_custom_warning_level_is_ranked_with_the_warnings() -> None:
    class Note(VoltageCeiling):
        name = "voltage-note"
        level = Level.WARN

    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0), [Note(10.0)])
    verdicts = monitor.check(Sample(10.0, "hold", 2.0, 1.0, 39.0, False, 1.0))
    levels = [v.level for v in verdicts]
    assert levels == sorted(levels, reverse=True) and verdicts[-1].rule in (
        "voltage-note", "near-compliance")


def test_a_crashing_custom_rule_aborts_the_run_instead_of_passing() -> None:
    class Broken(Rule):
        name = "broken"

        def check(self, sample: Sample, history: History) -> Verdict | None:
            raise ZeroDivisionError("oops")

    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0), [Broken()])
    verdicts = monitor.check(Sample(10.0, "hold", 2.0, 2.0, 8.0, False, 1.0))
    assert [(v.rule, v.level) for v in verdicts] == [("broken", Level.ABORT)]
    assert "ZeroDivisionError" in verdicts[0].message


@pytest.mark.parametrize("name", ["compliance", "stale-data", ""])
def test_custom_rule_names_must_be_new(name: str) -> None:
    rule = VoltageCeiling(20.0)
    rule.name = name
    with pytest.raises(ValueError):
        SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0), [rule])


def test_duplicate_custom_rules_are_rejected() -> None:
    with pytest.raises(ValueError):
        SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0),
                      [VoltageCeiling(20.0), VoltageCeiling(30.0)])


def test_rule_base_class_requires_check() -> None:
    class Incomplete(Rule):
        name = "incomplete"

    with pytest.raises(TypeError):
        Incomplete()  # type: ignore[abstract]
