"""The protocol plan: profile, phases, planned dose, pre-flight refusals, dose integration."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ionto_instruments.procedures.plan import DoseIntegrator, InvalidParameter, ProtocolPlan


def test_default_plan_profile_and_planned_dose():
    plan = ProtocolPlan(target_mA=2.0)
    plan.validate()
    assert plan.setpoint(0) == 0.0
    assert plan.setpoint(15) == pytest.approx(1.0)
    assert plan.setpoint(30) == pytest.approx(2.0)
    assert plan.setpoint(1000) == pytest.approx(2.0)
    assert plan.setpoint(1785) == pytest.approx(1.0)
    assert plan.setpoint(1800) == 0.0
    assert [plan.phase(t) for t in (-1, 0, 29.9, 30, 1769.9, 1770, 1800)] == [
        "contact-check", "ramp-up", "ramp-up", "hold", "hold", "ramp-down", "off"]
    # 2 mA x 29 min of full current + two 30 s ramps at half = 58 + 1 mA*min
    assert plan.planned_dose_mA_min == pytest.approx(59.0)


def test_polarity_makes_the_setpoint_negative_for_an_anion():
    plan = ProtocolPlan(target_mA=2.0, polarity=-1)
    assert plan.setpoint(100) == pytest.approx(-2.0)
    assert plan.ramp_down_setpoint(-2.0, 15) == pytest.approx(-1.0)


@pytest.mark.parametrize(("kwargs", "field", "fragment"), [
    ({"target_mA": 4.5}, "target current", "[0.05, 4] mA"),
    ({"target_mA": 0.01}, "target current", "[0.05, 4] mA"),
    ({"compliance_V": 81}, "compliance voltage", "[1, 80] V"),
    ({"max_density_mA_cm2": 2.5}, "maximum current density", "[0.01, 2] mA/cm^2"),
    ({"sample_interval_s": 0.0}, "sample interval", "[0.05, 2] s"),
    ({"total_min": 0.5, "ramp_up_s": 30, "ramp_down_s": 30.5}, "treatment time", "add up"),
    ({"target_mA": 4.0, "electrode_area_cm2": 5.0}, "target current", "0.8 mA/cm^2"),
    ({"target_mA": 4.0, "total_min": 30, "electrode_area_cm2": 20}, "treatment time",
     "dose cap 80"),
    ({"dose_target_mA_min": 90}, "dose target", "80] mA*min"),
    ({"dose_target_mA_min": 79, "target_mA": 1.0}, "dose target", "longer than the treatment"),
])
def test_inconsistent_plans_are_refused_naming_the_field(kwargs, field, fragment):
    plan = ProtocolPlan(**{"target_mA": 2.0, **kwargs})
    with pytest.raises(InvalidParameter) as info:
        plan.validate()
    assert info.value.field == field
    assert fragment in str(info.value)


def test_dose_controlled_plan_derives_its_duration_from_the_dose():
    plan = ProtocolPlan(target_mA=4.0, dose_target_mA_min=40.0, electrode_area_cm2=10,
                        max_density_mA_cm2=0.5)
    plan.validate()
    assert plan.planned_dose_mA_min == 40.0
    # 40 mA*min at 4 mA: the ramps give 2 mA*min, the hold 38 mA*min = 9.5 min
    assert plan.nominal_duration_s == pytest.approx(30 + 570 + 30)


def test_dose_integrator_is_trapezoidal_on_measured_magnitude():
    dose = DoseIntegrator()
    dose.add(0.0, 0.0)
    dose.add(60.0, -2.0)  # a linear ramp to 2 mA (anion: negative) over one minute
    assert dose.dose_mA_min == pytest.approx(1.0)
    dose.add(120.0, -2.0)
    assert dose.dose_mA_min == pytest.approx(3.0)
    dose.add(121.0, math.nan)  # a missing reading contributes nothing above the last value
    assert dose.dose_mA_min == pytest.approx(3.0 + 1.0 / 60.0)


@given(target=st.floats(0.05, 4.0), minutes=st.floats(1.0, 60.0))
def test_any_valid_time_plan_integrates_to_its_planned_dose(target, minutes):
    plan = ProtocolPlan(target_mA=target, total_min=minutes, electrode_area_cm2=200,
                        dose_cap_mA_min=80)
    if plan.planned_dose_mA_min > 80:
        with pytest.raises(InvalidParameter):
            plan.validate()
        return
    plan.validate()
    dose = DoseIntegrator()
    step = 0.5
    n = int(plan.total_s / step)
    for k in range(n + 1):
        dose.add(k * step, plan.setpoint(k * step))
    assert dose.dose_mA_min == pytest.approx(plan.planned_dose_mA_min, rel=0.01, abs=1e-3)
