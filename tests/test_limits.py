"""The limits table is the one home of every threshold: the code and the README read it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from pymeasure.experiment import FloatParameter

from ionto_instruments import limits as L
from ionto_instruments.procedures import doc_tables, safety
from ionto_instruments.procedures.iontophoresis import ConstantCurrentIontophoresis
from ionto_instruments.procedures.plan import InvalidParameter, ProtocolPlan
from ionto_instruments.source import MAX_COMPLIANCE_V, MAX_CURRENT_A, MAX_DENSITY_MA_CM2

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_entry_has_a_unit_and_evidence_and_a_unique_name():
    assert len(L.BY_NAME) == len(L.TABLE)
    for entry in L.TABLE:
        assert entry.unit and entry.what and entry.evidence, entry.name
        if isinstance(entry, L.Range):
            assert entry.minimum <= entry.default <= entry.maximum, entry.name


def test_the_readme_tables_are_generated_from_the_table():
    text = README.read_text(encoding="utf-8")
    found = doc_tables.blocks(text)
    assert set(found) == set(doc_tables.GENERATORS)
    assert doc_tables.render(text) == text, (
        "README tables differ from ionto_instruments.limits: run "
        "`python -m ionto_instruments.procedures.doc_tables README.md`")


def test_the_issue_numbers_are_in_the_table():
    assert L.MAX_CURRENT.value == 4.0 and L.MAX_CURRENT.unit == "mA"
    assert L.MAX_COMPLIANCE.value == 80.0
    assert L.MAX_DENSITY.value == 2.0
    assert L.MAX_DOSE.value == 80.0
    assert (L.COMPLIANCE_TRIP_FRACTION.value, L.NEAR_COMPLIANCE_WARN_FRACTION.value,
            L.NEAR_COMPLIANCE_REARM_FRACTION.value) == (0.95, 0.80, 0.75)
    assert (L.IMPEDANCE_HIGH.value, L.IMPEDANCE_LOW.value) == (100.0, 0.5)
    assert L.IMPEDANCE_DROP_FRACTION.value == 0.60 and L.IMPEDANCE_RISE_FACTOR.value == 2.0


def test_driver_ceilings_read_the_table():
    assert pytest.approx(L.MAX_CURRENT.value * 1e-3) == MAX_CURRENT_A
    assert L.MAX_COMPLIANCE.value == MAX_COMPLIANCE_V
    assert L.MAX_DENSITY.value == MAX_DENSITY_MA_CM2


PARAMETERS = {"target_current": L.TARGET_CURRENT, "ramp_up": L.RAMP, "ramp_down": L.RAMP,
              "treatment_time": L.TREATMENT_TIME, "dose_target": L.DOSE_TARGET,
              "electrode_area": L.ELECTRODE_AREA, "max_density": L.MAX_DENSITY_SETTING,
              "compliance_voltage": L.COMPLIANCE_VOLTAGE, "sample_interval": L.SAMPLE_INTERVAL}


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_procedure_parameters_read_the_table(name):
    parameter = getattr(ConstantCurrentIontophoresis, name)
    limit = PARAMETERS[name]
    assert isinstance(parameter, FloatParameter)
    assert (parameter.minimum, parameter.maximum, parameter.default) == (
        limit.minimum, limit.maximum, limit.default)


@pytest.mark.parametrize(("field", "limit", "kwargs"), [
    ("target current", L.TARGET_CURRENT, "target_mA"),
    ("compliance voltage", L.COMPLIANCE_VOLTAGE, "compliance_V"),
    ("sample interval", L.SAMPLE_INTERVAL, "sample_interval_s"),
    ("electrode area", L.ELECTRODE_AREA, "electrode_area_cm2"),
])
def test_plan_validate_refuses_just_outside_the_table(field, limit, kwargs):
    values = {"target_mA": 0.5, "electrode_area_cm2": 100.0, kwargs: limit.maximum * 1.001}
    with pytest.raises(InvalidParameter) as info:
        ProtocolPlan(**values).validate()
    assert info.value.field == field
    assert f"{limit.maximum:g}" in info.value.message


def test_safety_config_and_rule_defaults_are_the_table():
    config = safety.SafetyConfig(target_mA=2.0, compliance_V=40.0)
    assert config.compliance_fraction == L.COMPLIANCE_TRIP_FRACTION.value
    assert config.voltage_warn_fraction == L.NEAR_COMPLIANCE_WARN_FRACTION.value
    assert config.dose_cap_mA_min == L.MAX_DOSE.value
    assert config.stale_limit_s == pytest.approx(
        L.STALE_INTERVALS.value * L.SAMPLE_INTERVAL.default)
    limit_values = {entry.value for entry in L.TABLE if isinstance(entry, L.Limit)}
    limit_values |= {entry.default for entry in L.TABLE if isinstance(entry, L.Range)}
    for cls in (safety.OvercurrentRule, safety.CurrentDensityRule, safety.ImpedanceHighRule,
                safety.ComplianceRule, safety.ImpedanceLowRule, safety.ImpedanceDropRule,
                safety.RegulationRule, safety.DoseCapRule, safety.NearComplianceWarning):
        for parameter in inspect.signature(cls.__init__).parameters.values():
            if parameter.default not in (inspect.Parameter.empty, None):  # None: see NoiseModel
                assert parameter.default in limit_values, (cls.__name__, parameter.name)
        signature = inspect.getsource(cls.__init__).split(") -> None:")[0]
        assert not re.search(r"=\s*[-+]?[\d.]", signature), f"{cls.__name__}: copied number"


def test_every_rule_is_described_from_the_table():
    for name in safety.RULE_NAMES:
        assert "{" not in safety.describe_rule(name)


def test_each_setting_declares_its_range_once_for_flag_file_and_parameter():
    from ionto_instruments.procedures.cli import build_parser
    from ionto_instruments.procedures.protocol_file import SETTINGS, parameter_limits

    limits = parameter_limits()
    run = next(a for a in build_parser()._subparsers._group_actions[0].choices.values()
               if a.prog.endswith(" run"))
    flags = {o: a for a in run._actions for o in a.option_strings}
    for setting in SETTINGS:
        action = flags[setting.flag]
        if setting.parameter in limits and setting.kind is float:
            low, high, units = limits[setting.parameter]
            assert setting.limit is not None, setting.key
            assert (setting.limit.minimum, setting.limit.maximum) == (low, high), setting.key
            assert setting.unit == units, setting.key
            assert f"[{low:g}, {high:g}] {units}" in action.help, setting.flag
        if setting.choices:
            assert tuple(action.choices) == tuple(setting.choices), setting.flag


def test_one_clock_factory_serves_cli_and_gui():
    import math

    from ionto_instruments.clock import RealClock, ScaledClock, VirtualClock, clock_for_speed
    from ionto_instruments.gui.window import make_clock_for_speed
    from ionto_instruments.procedures.cli import build_parser, make_run_clock

    assert isinstance(clock_for_speed(math.inf), VirtualClock)
    assert isinstance(clock_for_speed(None), RealClock)
    assert isinstance(clock_for_speed(1.0), RealClock)
    assert clock_for_speed(60.0).speed == 60.0 and isinstance(clock_for_speed(60), ScaledClock)
    assert isinstance(clock_for_speed(60.0, simulated=False), RealClock)
    for speed in (math.inf, 1.0, 60.0):
        assert type(make_clock_for_speed(speed)) is type(clock_for_speed(speed))
    fast = build_parser().parse_args(["run", "--fast"])
    assert isinstance(make_run_clock(fast, simulated=True), VirtualClock)
    assert isinstance(make_run_clock(fast, simulated=False), RealClock)


def test_evidence_is_shipped_and_cited_only_from_the_repository():
    root = README.parent
    evidence = (root / "docs" / "evidence.md").read_text(encoding="utf-8")
    assert "## Drug polarity" in evidence and "80 mA·min" in evidence
    assert (root / "docs" / "patient-leaflet-iontophoresis.txt").exists()
    for folder in ("ionto_instruments", "procedures", "gui"):
        for path in (root / folder).rglob("*.py"):
            assert "facts.md" not in path.read_text(encoding="utf-8"), path


def test_selftest_guard_and_interlock_thresholds_read_the_table():
    from ionto_instruments import keithley2450, output
    from ionto_instruments.procedures import selftest

    table = {name: entry for name, entry in L.BY_NAME.items()}
    currents = tuple(table[f"SELFTEST_CURRENT_{n}"].value * 1e-3 for n in ("LOW", "MID", "HIGH"))
    load = table["SELFTEST_LOAD"]
    assert pytest.approx(currents) == selftest.TEST_CURRENTS_A
    assert (load.minimum, load.maximum) == (selftest.MIN_LOAD_OHM, selftest.MAX_LOAD_OHM)
    assert table["SELFTEST_MAX_OFF_LATENCY"].value == selftest.MAX_OFF_LATENCY_S
    assert table["SELFTEST_MIN_COMPLIANCE"].value == selftest.MIN_COMPLIANCE_V
    # One entry for the 2450's open-interlock ceiling: the driver and the selftest read it.
    interlock_open = table["INTERLOCK_OPEN_MAX"].value
    assert keithley2450.INTERLOCK_OPEN_MAX_V == selftest.MAX_COMPLIANCE_V == interlock_open
    assert table["OFF_CONFIRM_ATTEMPTS"].value == output.OFF_CONFIRM_ATTEMPTS
    assert table["ESTOP_LOCK_TIMEOUT"].value == output.ESTOP_LOCK_TIMEOUT_S
    for module in (selftest, output, keithley2450):  # no threshold written as a literal again
        source = inspect.getsource(module)
        assert not re.findall(r"^[A-Z][A-Z0-9_]*(?:_S|_V|_A|_OHM|ATTEMPTS)\b.*= *[\d(]", source,
                              re.MULTILINE), module.__name__
    assert "37.0" not in inspect.getsource(selftest)
