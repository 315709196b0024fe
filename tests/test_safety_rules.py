"""Each safety rule at its threshold: just below does not trip, just above trips and says why."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from ionto_instruments.procedures.safety import (
    RULE_NAMES,
    ComplianceRule,
    CurrentDensityRule,
    DoseCapRule,
    History,
    ImpedanceDropRule,
    ImpedanceHighRule,
    ImpedanceLowRule,
    Level,
    NearComplianceWarning,
    OvercurrentRule,
    RegulationRule,
    Rule,
    SafetyConfig,
    SafetyMonitor,
    Sample,
    Verdict,
    default_rules,
    evaluate_contact_check,
)
from ionto_instruments.source import Reading


def sample(t: float = 10.0, *, phase: str = "hold", setpoint: float = 2.0,
           current: float | None = None, voltage: float | None = None, r_kohm: float = 5.0,
           compliance: bool = False, dose: float = 10.0) -> Sample:
    """A sample at `setpoint`; current defaults to the setpoint, voltage to I x r_kohm."""
    current = setpoint if current is None else current
    voltage = current * r_kohm if voltage is None else voltage
    return Sample(t, phase, setpoint, current, voltage, compliance, dose)


def feed(rule: Rule, samples: list[Sample]) -> list[Verdict | None]:
    """Run `rule` over `samples` as the monitor does (history = the samples before)."""
    history = History(1000)
    out = []
    for s in samples:
        out.append(rule.check(s, history))
        history.append(s)
    return out


def assert_says(verdict: Verdict | None, rule: str, *phrases: str) -> None:
    """The verdict exists, names `rule`, is one line and contains every phrase."""
    assert verdict is not None, f"{rule} did not trip"
    assert verdict.rule == rule
    assert "\n" not in verdict.message and "\r" not in verdict.message
    assert "Check" in verdict.message or "check" in verdict.message
    for phrase in phrases:
        assert phrase in verdict.message, f"{phrase!r} not in {verdict.message!r}"


# -- Sample ----------------------------------------------------------------------------------


def test_sample_impedance_is_volts_over_milliamps_in_kohm() -> None:
    s = sample(current=-2.0, voltage=-24.0)
    assert s.impedance_kohm == pytest.approx(12.0)
    assert s.density(4.0) == pytest.approx(0.5)


def test_sample_impedance_is_nan_below_a_nanoamp() -> None:
    assert math.isnan(sample(current=0.9e-6, voltage=40.0).impedance_kohm)
    assert sample(current=1e-6, voltage=1e-3).impedance_kohm == pytest.approx(1000.0)


def test_sample_rejects_unknown_phase() -> None:
    with pytest.raises(ValueError, match="phase"):
        sample(phase="running")


def test_sample_from_reading_converts_amps_to_milliamps() -> None:
    s = Sample.from_reading(Reading(1.0, 24.0, -2e-3, False), t=3.0, phase="hold",
                            setpoint_mA=-2.0, dose_mA_min=1.5)
    assert (s.current_mA, s.voltage_V, s.t, s.compliance) == (pytest.approx(-2.0), 24.0, 3.0,
                                                              False)


# -- overcurrent -----------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "below", "above", "limit"), [
    (2.0, 2.19, 2.21, "2.2 mA"),    # 10 % of 2 mA = 0.2 mA > 0.1 mA
    (0.5, 0.59, 0.61, "0.6 mA"),    # 10 % of 0.5 mA = 0.05 mA < 0.1 mA floor
])
def test_overcurrent_relative_to_target(target: float, below: float, above: float,
                                        limit: str) -> None:
    rule = OvercurrentRule(target)
    assert rule.check(sample(setpoint=target, current=below), History(4)) is None
    assert rule.check(sample(setpoint=-target, current=-below), History(4)) is None
    verdict = rule.check(sample(setpoint=-target, current=-above), History(4))
    assert_says(verdict, "overcurrent", f"{above:g} mA", limit)
    assert verdict is not None and verdict.level is Level.ABORT


def test_overcurrent_absolute_ceiling_with_measurement_tolerance() -> None:
    rule = OvercurrentRule(4.0)            # relative limit would be 4.4 mA
    assert rule.check(sample(setpoint=4.0, current=4.079), History(4)) is None
    verdict = rule.check(sample(setpoint=4.0, current=4.09), History(4))
    assert_says(verdict, "overcurrent", "4.09 mA", "4 mA ceiling", "4.08 mA")


def test_overcurrent_applies_during_contact_check() -> None:
    monitor = SafetyMonitor(SafetyConfig(target_mA=2.0, compliance_V=40.0))
    verdicts = monitor.check(sample(0.2, phase="contact-check", setpoint=0.05, current=2.5))
    assert [v.rule for v in verdicts] == ["overcurrent"]


# -- current density -------------------------------------------------------------------------


def test_current_density_allows_two_percent_tolerance_at_the_limit() -> None:
    rule = CurrentDensityRule(area_cm2=4.0, max_density_mA_cm2=0.5)   # trips above 0.51
    assert rule.check(sample(setpoint=2.0, current=2.0), History(4)) is None
    assert rule.check(sample(setpoint=2.0, current=-2.039), History(4)) is None
    assert rule.check(sample(setpoint=2.0, current=2.041), History(4)) is not None
    verdict = rule.check(sample(setpoint=2.0, current=2.06), History(4))
    assert_says(verdict, "current-density", "0.515 mA/cm²", "0.5 mA/cm²", "4 cm²")


# -- impedance-high --------------------------------------------------------------------------


def test_impedance_high_ceiling() -> None:
    rule = ImpedanceHighRule(max_kohm=100.0)
    assert rule.check(sample(setpoint=2.0, current=0.3, voltage=29.97), History(4)) is None
    assert rule.check(sample(setpoint=2.0, current=0.3, voltage=30.03), History(4)) is not None
    verdict = rule.check(sample(setpoint=0.5, current=0.1, voltage=41.2), History(4))
    assert_says(verdict, "impedance-high", "Contact lost", "412 kΩ", "limit 100 kΩ",
                "gel is moist")


def test_impedance_high_current_collapse() -> None:
    rule = ImpedanceHighRule(collapse_fraction=0.10)
    assert rule.check(sample(setpoint=2.0, current=0.201), History(4)) is None
    verdict = rule.check(sample(setpoint=-2.0, current=-0.199), History(4))
    assert_says(verdict, "impedance-high", "0.199 mA", "0.2 mA", "10 %")


def test_impedance_high_trips_on_zero_current_and_waits_for_a_real_setpoint() -> None:
    rule = ImpedanceHighRule(min_setpoint_mA=0.1)
    assert rule.check(sample(setpoint=0.099, current=0.0, voltage=40.0), History(4)) is None
    assert rule.check(sample(setpoint=0.0, current=1e-4, voltage=0.05), History(4)) is None
    assert_says(rule.check(sample(setpoint=0.1, current=0.0, voltage=40.0), History(4)),
                "impedance-high", "collapsed")


# -- compliance ------------------------------------------------------------------------------


def test_compliance_at_95_percent_of_the_compliance_voltage() -> None:
    rule = ComplianceRule(40.0)
    assert rule.check(sample(voltage=37.99), History(4)) is None
    assert rule.check(sample(voltage=-38.0), History(4)) is not None
    verdict = rule.check(sample(voltage=38.5), History(4))
    assert_says(verdict, "compliance", "38.5 V", "38 V", "40 V", "95 %")


def test_compliance_on_the_instrument_flag_alone() -> None:
    verdict = ComplianceRule(40.0).check(sample(voltage=12.3, compliance=True), History(4))
    assert_says(verdict, "compliance", "12.3 V", "reports compliance")


# -- impedance-low ---------------------------------------------------------------------------


def test_impedance_low_floor() -> None:
    rule = ImpedanceLowRule(min_kohm=0.5)
    assert rule.check(sample(current=2.0, voltage=1.002), History(4)) is None
    verdict = rule.check(sample(current=2.0, voltage=0.998), History(4))
    assert_says(verdict, "impedance-low", "0.499 kΩ", "0.5 kΩ")


def test_impedance_low_ignores_currents_below_the_gate() -> None:
    rule = ImpedanceLowRule(min_kohm=0.5, min_current_mA=0.1)
    assert rule.check(sample(setpoint=0.05, current=0.099, voltage=0.001), History(4)) is None
    assert rule.check(sample(setpoint=0.1, current=0.1, voltage=0.001), History(4)) is not None


# -- impedance-drop --------------------------------------------------------------------------


def steady(r_kohm: float, start: float, stop: float, **kw: object) -> list[Sample]:
    """Samples every 0.2 s from `start` to `stop` inclusive at impedance r_kohm."""
    n = round((stop - start) / 0.2)
    return [sample(start + 0.2 * k, r_kohm=r_kohm, **kw) for k in range(n + 1)]  # type: ignore[arg-type]


def test_impedance_drop_at_sixty_percent_of_the_recent_maximum() -> None:
    before = steady(5.0, 8.0, 10.0)
    assert feed(ImpedanceDropRule(), [*before, sample(10.2, r_kohm=3.01)])[-1] is None
    verdict = feed(ImpedanceDropRule(), [*before, sample(10.2, r_kohm=2.99)])[-1]
    assert_says(verdict, "impedance-drop", "2.99 kΩ", "5 kΩ", "60 %", "2 s", "hot spot")


def test_impedance_drop_forgets_maxima_older_than_the_window() -> None:
    samples = [*steady(10.0, 0.0, 7.8), *steady(5.0, 8.0, 10.0), sample(10.2, r_kohm=4.0)]
    assert feed(ImpedanceDropRule(window_s=2.0), samples)[-1] is None
    assert feed(ImpedanceDropRule(window_s=3.0), samples)[-1] is not None


def test_impedance_drop_judges_from_0_05_mA_with_the_contact_check_as_baseline() -> None:
    """Issue 9: a hot spot at the smallest allowed current, or right at the ramp start, trips."""
    low = steady(50.0, 8.0, 10.0, setpoint=0.05)          # the smallest target current
    probe = steady(50.0, 8.0, 10.0, phase="contact-check", setpoint=0.05)  # the baseline
    for history in (low, probe):
        assert_says(feed(ImpedanceDropRule(), [*history, sample(10.2, r_kohm=5.0)])[-1],
                    "impedance-drop", "10 %")
        assert feed(ImpedanceDropRule(), [*history, sample(10.2, r_kohm=45.0)])[-1] is None


def test_impedance_drop_ignores_readings_the_noise_model_cannot_judge() -> None:
    # 20 nA through 5 kΩ is 0.1 mV: V/I is noise (1 mV, 10 nA): never a reference, never judged
    noise = steady(50.0, 8.0, 10.0, setpoint=2e-5)
    assert feed(ImpedanceDropRule(), [*noise, sample(10.2, r_kohm=5.0)])[-1] is None
    assert feed(ImpedanceDropRule(), [*steady(5.0, 8.0, 10.0),
                                      sample(10.2, setpoint=2e-5, r_kohm=1.0)])[-1] is None


def test_impedance_drop_keeps_a_recent_reference_across_unjudgeable_samples() -> None:
    """A slow ramp starts below the noise floor: the contact check stays the reference for
    IMPEDANCE_REFERENCE_MAX_AGE, so a hot spot during that gap trips once V/I is judgeable."""
    check = steady(15.0, 0.0, 2.0, phase="contact-check", setpoint=0.05)
    gap = [sample(2.0 + 0.2 * k, phase="ramp-up", setpoint=1e-5 * k, r_kohm=3.0)
           for k in range(1, 60)]                          # 12 s below the noise floor
    judged = sample(14.2, phase="ramp-up", setpoint=0.01, r_kohm=3.0)
    assert feed(ImpedanceDropRule(), [*check, *gap, judged])[-1] is not None
    late = sample(40.0, phase="ramp-up", setpoint=0.01, r_kohm=3.0)  # 38 s after: too old
    assert feed(ImpedanceDropRule(), [*check, late])[-1] is None


def test_the_noise_model_makes_every_impedance_rule_valid_at_0_05_mA() -> None:
    from ionto_instruments import limits as L
    from ionto_instruments.procedures.safety import NoiseModel

    noise = NoiseModel()
    # Down to the contact check's plausible minimum (0.5 kΩ), 0.05 mA is judgeable...
    assert noise.min_current_mA(L.CONTACT_MIN.value) <= L.TARGET_CURRENT.minimum
    assert noise.judgeable_at(L.IMPEDANCE_LOW.value, L.TARGET_CURRENT.minimum)
    # ...and the 40 % drop is at least 8 sigma there, so noise cannot trip it.
    z = L.CONTACT_MIN.value
    sigma = noise.error_kohm(z, L.TARGET_CURRENT.minimum) / z
    assert (1 - L.IMPEDANCE_DROP_FRACTION.value) / sigma >= 8


# -- regulation ------------------------------------------------------------------------------


def test_regulation_trips_only_after_more_than_one_second() -> None:
    samples = [*steady(5.0, 8.0, 9.8), *steady(5.0, 10.0, 11.2, current=1.89)]
    verdicts = feed(RegulationRule(), samples)
    assert all(v is None for v in verdicts[:-1])          # 10.0 .. 11.0: lasted <= 1 s
    assert_says(verdicts[-1], "regulation", "1.89 mA", "2 mA", "1.2 s", "0.1 mA", "1 s")


def test_regulation_tolerance_just_inside_never_trips() -> None:
    verdicts = feed(RegulationRule(), steady(5.0, 0.0, 10.0, current=1.901))
    assert verdicts == [None] * len(verdicts)


def test_regulation_streak_restarts_when_current_recovers() -> None:
    bad = steady(5.0, 10.0, 10.8, current=1.5)
    samples = [*bad, sample(11.0), *steady(5.0, 11.2, 12.0, current=1.5)]
    assert all(v is None for v in feed(RegulationRule(), samples))


def test_regulation_floor_of_twenty_microamps_at_small_setpoints() -> None:
    ok = feed(RegulationRule(), steady(5.0, 0.0, 3.0, setpoint=0.2, current=0.181))
    assert all(v is None for v in ok)
    bad = feed(RegulationRule(), steady(5.0, 0.0, 3.0, setpoint=0.2, current=0.179))
    assert bad[-1] is not None and "0.02 mA" in bad[-1].message


def test_regulation_accepts_a_reading_paired_with_the_previous_ramp_step() -> None:
    """A 4 mA/30 s ramp moves 0.027 mA per tick: more than the tolerance near 0.5 mA."""
    step = 4.0 / 30 * 0.2
    samples = [sample(0.2 * k, phase="ramp-up", setpoint=step * k, current=step * (k - 1))
               for k in range(1, 60)]
    assert all(v is None for v in feed(RegulationRule(), samples))


def test_regulation_reset_forgets_the_streak() -> None:
    rule = RegulationRule()
    feed(rule, steady(5.0, 10.0, 10.8, current=1.5))
    rule.reset()
    assert rule.check(sample(11.2, current=1.5), History(4)) is None


# -- dose-cap --------------------------------------------------------------------------------


def test_dose_cap_allows_the_measurement_tolerance_and_trips_above_it() -> None:
    rule = DoseCapRule(80.0)                      # + 2 % measurement tolerance: 81.6
    for dose in (80.0, 80.01, 81.6):              # a plan at the cap, measured a hair above
        assert rule.check(sample(dose=dose), History(4)) is None
    verdict = rule.check(sample(dose=81.61), History(4))
    assert_says(verdict, "dose-cap", "81.61 mA·min delivered", "cap of 80 mA·min", "81.6")
    assert DoseCapRule(40.0).check(sample(dose=40.9), History(4)) is not None


def test_a_dose_cap_message_never_shows_the_dose_equal_to_its_limit() -> None:
    rule = DoseCapRule(80.0)
    for dose in (81.60000001, 81.6000000001, 81.61, 95.0):
        verdict = rule.check(sample(dose=dose), History(4))
        assert verdict is not None
        delivered = float(verdict.message.split(": ", 1)[1].split(" mA")[0])
        limit = float(verdict.message.split("(limit ", 1)[1].split(" mA")[0])
        assert delivered > limit, verdict.message


# -- near-compliance warning -----------------------------------------------------------------


def test_near_compliance_warns_once_and_rearms_below_75_percent() -> None:
    rule = NearComplianceWarning(40.0)              # warn at 32 V, re-arm below 30 V
    volts = [31.9, 32.0, 33.0, 31.0, 30.5, 29.9, 32.5]
    verdicts = feed(rule, [sample(10 + 0.2 * k, voltage=v) for k, v in enumerate(volts)])
    tripped = [v is not None for v in verdicts]
    assert tripped == [False, True, False, False, False, False, True]
    assert verdicts[1] is not None and verdicts[1].level is Level.WARN
    assert_says(verdicts[1], "near-compliance", "32 V", "40 V", "80 %")


# -- stale data and instrument faults (monitor-level rules) ----------------------------------


def config(**kw: object) -> SafetyConfig:
    return SafetyConfig(**{"target_mA": 2.0, "compliance_V": 40.0, **kw})  # type: ignore[arg-type]


def test_stale_data_after_three_sample_intervals() -> None:
    monitor = SafetyMonitor(config())
    assert monitor.check(sample(10.0)) == []
    assert monitor.check_staleness(10.6) == []
    verdicts = monitor.check_staleness(10.7)
    assert [v.rule for v in verdicts] == ["stale-data"]
    assert_says(verdicts[0], "stale-data", "0.7 s", "0.6 s")
    assert verdicts[0].t == 10.7


def test_stale_timer_starts_at_the_first_tick_and_a_valid_sample_rearms_it() -> None:
    monitor = SafetyMonitor(config(stale_after_s=1.0))
    assert monitor.check_staleness(0.0) == []
    assert monitor.check_staleness(1.0) == []
    assert monitor.check_staleness(1.01) != []
    monitor.check(sample(1.2))
    assert monitor.check_staleness(2.2) == []


def test_no_reading_is_an_instrument_fault_on_one_line() -> None:
    monitor = SafetyMonitor(config())
    verdicts = monitor.no_reading(5.0, "VISA timeout\nafter 2 s.")
    assert len(verdicts) == 1 and verdicts[0].level is Level.ABORT
    assert_says(verdicts[0], "instrument-fault", "VISA timeout after 2 s")


def test_a_reading_with_nan_is_an_instrument_fault_not_a_silent_pass() -> None:
    monitor = SafetyMonitor(config())
    verdicts = monitor.check(sample(current=math.nan, voltage=40.0))
    assert [v.rule for v in verdicts] == ["instrument-fault"]
    assert "current" in verdicts[0].message
    assert monitor.t_last_valid == 10.0 and len(monitor.history) == 0


# -- contact check ---------------------------------------------------------------------------


def test_contact_check_plausible_window() -> None:
    small = config(target_mA=0.1, compliance_V=80.0)    # predicted voltage stays low
    assert evaluate_contact_check(501.0, False, small) is None
    assert evaluate_contact_check(99_900.0, False, small) is None
    low = evaluate_contact_check(499.0, False, small)
    assert_says(low, "contact-check", "0.499 kΩ", "0.5 kΩ", "short")
    high = evaluate_contact_check(-100_100.0, False, small)
    assert_says(high, "contact-check", "100.1 kΩ", "100 kΩ")
    assert evaluate_contact_check(600.0, False, small, min_ohm=700.0) is not None
    assert evaluate_contact_check(1_500.0, False, small, max_ohm=1_000.0) is not None


def test_contact_check_refuses_an_open_circuit() -> None:
    for impedance, flag in ((5_000.0, True), (math.nan, False), (math.inf, False)):
        verdict = evaluate_contact_check(impedance, flag, config())
        assert_says(verdict, "contact-check", "open circuit")
        assert verdict is not None and verdict.level is Level.ABORT


def test_contact_check_predicted_voltage_at_target_current() -> None:
    cfg = config(target_mA=-2.0, compliance_V=40.0)     # 80 % of 40 V = 32 V -> 16 kΩ
    assert evaluate_contact_check(15_900.0, False, cfg) is None
    verdict = evaluate_contact_check(16_100.0, False, cfg, t=1.5)
    assert_says(verdict, "contact-check", "32.2 V", "32 V", "40 V", "16.1 kΩ")
    assert verdict is not None and verdict.t == 1.5


# -- configuration and names -----------------------------------------------------------------


def test_config_defaults_and_stale_limit() -> None:
    cfg = config()
    assert cfg.stale_limit_s == pytest.approx(0.6)
    assert dataclasses.replace(cfg, sample_interval_s=0.5).stale_limit_s == pytest.approx(1.5)
    assert cfg.dose_cap_mA_min == 80.0 and cfg.max_density_mA_cm2 == 0.5


@pytest.mark.parametrize("bad", [
    {"target_mA": 4.5},                                   # above the 4 mA device ceiling
    {"target_mA": 0.0},
    {"compliance_V": 81.0},                               # above the 80 V ceiling
    {"dose_cap_mA_min": 81.0},                            # above 80 mA·min per electrode
    {"max_density_mA_cm2": 2.5},                          # above the IEC 2 mA/cm² warning
    {"target_mA": 3.0, "electrode_area_cm2": 5.0},        # 0.6 mA/cm² > 0.5
    {"voltage_rearm_fraction": 0.85},
    {"sample_interval_s": 0.0},
    {"compliance_fraction": 1.5},
])
def test_config_rejects_unsafe_or_inconsistent_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        config(**bad)


def test_target_exactly_at_the_density_limit_is_allowed() -> None:
    assert config(target_mA=2.0, electrode_area_cm2=4.0).electrode_area_cm2 == 4.0


def test_rule_names_are_stable_and_in_priority_order() -> None:
    assert RULE_NAMES == (
        "instrument-fault", "stale-data", "overcurrent", "current-density", "impedance-high",
        "compliance", "impedance-low", "impedance-drop", "regulation", "dose-cap",
        "contact-check", "near-compliance")
    built_in = [rule.name for rule in default_rules(config())]
    assert built_in == [n for n in RULE_NAMES if n not in
                        ("instrument-fault", "stale-data", "contact-check")]


def test_impedance_high_trips_on_a_sudden_rise_below_the_ceiling():
    from ionto_instruments.procedures.safety import History, ImpedanceHighRule, Sample

    rule = ImpedanceHighRule()
    history = History(maxlen=50)
    for k in range(10):  # 2 mA through 5 kOhm
        history.append(Sample(t=0.2 * k, phase="hold", setpoint_mA=2.0, current_mA=2.0,
                              voltage_V=10.0, compliance=False, dose_mA_min=1.0))
    just_below = Sample(t=2.0, phase="hold", setpoint_mA=2.0, current_mA=2.0, voltage_V=19.9,
                        compliance=False, dose_mA_min=1.0)
    assert rule.check(just_below, history) is None
    above = Sample(t=2.0, phase="hold", setpoint_mA=2.0, current_mA=2.0, voltage_V=20.2,
                   compliance=False, dose_mA_min=1.0)
    verdict = rule.check(above, history)
    assert verdict is not None and verdict.rule == "impedance-high"
    assert "10.1 kΩ" in verdict.message and "2x" in verdict.message


def test_a_slow_drying_rise_is_not_a_sudden_rise():
    from ionto_instruments.procedures.safety import History, ImpedanceHighRule, Sample

    rule = ImpedanceHighRule()
    history = History(maxlen=50)
    for k in range(11):  # resistance doubling every minute: 2.3 % over 2 s
        r_kohm = 5.0 * 2 ** (0.2 * k / 60)
        sample = Sample(t=0.2 * k, phase="hold", setpoint_mA=2.0, current_mA=2.0,
                        voltage_V=2.0 * r_kohm, compliance=False, dose_mA_min=1.0)
        assert rule.check(sample, history) is None
        history.append(sample)


def test_impedance_high_says_megohms_not_a_seven_digit_number_of_kilohms() -> None:
    """A near-open contact can read millions of kΩ; the operator's sentence must stay readable."""
    rule = ImpedanceHighRule(max_kohm=100.0)
    verdict = rule.check(sample(setpoint=2.0, current=1.0, voltage=2030.0), History(4))
    assert_says(verdict, "impedance-high", "Contact lost", "2.03 MΩ", "limit 100 kΩ")
    assert not re.search(r"\d{5,}", verdict.message), verdict.message


def test_a_collapsed_current_reads_under_a_microampere_not_an_exponent() -> None:
    rule = ImpedanceHighRule(collapse_fraction=0.10)
    verdict = rule.check(sample(setpoint=2.0, current=7.093e-06, voltage=40.0), History(4))
    assert_says(verdict, "impedance-high", "collapsed to under 0.001 mA")
    assert "e-0" not in verdict.message, verdict.message
