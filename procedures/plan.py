"""The protocol plan: setpoint profile, phases, planned dose, and pre-flight consistency checks.

Times are on the treatment axis: 0 is the start of the ramp-up (after the contact check).
Currents are signed: the drug's polarity sets the sign, magnitudes are what the limits see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ionto_instruments import limits as L
from ionto_instruments.limits import Range, ascii_unit

from .contracts import Phase

#: Maximum dose per electrode, mA*min (`limits.MAX_DOSE`).
DOSE_CAP_MA_MIN = L.MAX_DOSE.value

PHASES: tuple[Phase, ...] = tuple(Phase)


class InvalidParameter(ValueError):
    """A parameter is out of range or inconsistent; raised before anything is energized."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def require_limit(field: str, value: float, limit: Range) -> float:
    """Return `value` if within the table entry `limit`, else raise InvalidParameter."""
    return require_range(field, value, limit.minimum, limit.maximum, ascii_unit(limit.unit))


def require_range(field: str, value: float, low: float, high: float, unit: str) -> float:
    """Return `value` if within [low, high], else raise InvalidParameter naming field and range."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameter(field, f"must be a number in [{low:g}, {high:g}] {unit}, "
                                      f"got {value!r}") from None
    if math.isnan(number) or not low <= number <= high:
        raise InvalidParameter(field, f"{number:g} {unit} is outside the allowed range "
                                      f"[{low:g}, {high:g}] {unit}")
    return number


@dataclass(frozen=True)
class ProtocolPlan:
    """A ramped constant-current protocol: ramp up, hold, ramp down; optionally dose-controlled."""

    target_mA: float
    polarity: int = 1
    ramp_up_s: float = L.RAMP.default
    total_min: float = L.TREATMENT_TIME.default
    ramp_down_s: float = L.RAMP.default
    dose_target_mA_min: float | None = None
    electrode_area_cm2: float = L.ELECTRODE_AREA.default
    max_density_mA_cm2: float = L.MAX_DENSITY_SETTING.default
    compliance_V: float = L.COMPLIANCE_VOLTAGE.default
    sample_interval_s: float = L.SAMPLE_INTERVAL.default
    dose_cap_mA_min: float = L.DOSE_CAP.default

    # -- derived quantities ---------------------------------------------------------------

    @property
    def total_s(self) -> float:
        """Treatment time in seconds, ramps included (the maximum in dose-controlled mode)."""
        return self.total_min * 60.0

    @property
    def hold_s(self) -> float:
        """Hold time in seconds for a time-controlled run."""
        return self.total_s - self.ramp_up_s - self.ramp_down_s

    @property
    def setpoint_mA(self) -> float:
        """The signed hold current."""
        return self.polarity * self.target_mA

    @property
    def ramp_dose_mA_min(self) -> float:
        """Dose delivered by one linear ramp up plus one ramp down at the target current."""
        return self.target_mA * (self.ramp_up_s + self.ramp_down_s) / 2.0 / 60.0

    @property
    def planned_dose_mA_min(self) -> float:
        """The dose the plan delivers: the target in dose mode, else the profile's integral."""
        if self.dose_target_mA_min is not None:
            return self.dose_target_mA_min
        return self.target_mA * self.hold_s / 60.0 + self.ramp_dose_mA_min

    @property
    def nominal_duration_s(self) -> float:
        """Treatment time the plan needs when the skin lets the full current flow."""
        if self.dose_target_mA_min is None:
            return self.total_s
        hold = (self.dose_target_mA_min - self.ramp_dose_mA_min) / self.target_mA * 60.0
        return self.ramp_up_s + hold + self.ramp_down_s

    @property
    def target_density_mA_cm2(self) -> float:
        """Current density at the target current."""
        return self.target_mA / self.electrode_area_cm2

    # -- profile --------------------------------------------------------------------------

    def ramp_up_setpoint(self, t: float) -> float:
        """Signed setpoint during ramp-up at treatment time t (clipped to the target)."""
        if self.ramp_up_s <= 0 or t >= self.ramp_up_s:
            return self.setpoint_mA
        return self.setpoint_mA * max(t, 0.0) / self.ramp_up_s

    def ramp_down_setpoint(self, start_mA: float, elapsed: float) -> float:
        """Signed setpoint `elapsed` s into a ramp-down that started from `start_mA`."""
        if self.ramp_down_s <= 0 or elapsed >= self.ramp_down_s:
            return 0.0
        return start_mA * (1.0 - elapsed / self.ramp_down_s)

    def setpoint(self, t: float) -> float:
        """Signed setpoint of the time-controlled profile at treatment time t."""
        if t < 0 or t >= self.total_s:
            return 0.0
        if t < self.ramp_up_s:
            return self.ramp_up_setpoint(t)
        ramp_down_start = self.total_s - self.ramp_down_s
        if t < ramp_down_start:
            return self.setpoint_mA
        return self.ramp_down_setpoint(self.setpoint_mA, t - ramp_down_start)

    def phase(self, t: float) -> Phase:
        """Phase of the time-controlled profile at treatment time t."""
        if t < 0:
            return Phase.CONTACT_CHECK
        if t < self.ramp_up_s:
            return Phase.RAMP_UP
        if t < self.total_s - self.ramp_down_s:
            return Phase.HOLD
        if t < self.total_s:
            return Phase.RAMP_DOWN
        return Phase.OFF

    # -- pre-flight -----------------------------------------------------------------------

    def validate(self) -> None:
        """Raise InvalidParameter (field + allowed range) unless the plan is safe and consistent."""
        require_limit("target current", self.target_mA, L.TARGET_CURRENT)
        require_limit("ramp-up", self.ramp_up_s, L.RAMP)
        require_limit("ramp-down", self.ramp_down_s, L.RAMP)
        require_limit("treatment time", self.total_min, L.TREATMENT_TIME)
        require_limit("electrode area", self.electrode_area_cm2, L.ELECTRODE_AREA)
        require_limit("maximum current density", self.max_density_mA_cm2, L.MAX_DENSITY_SETTING)
        require_limit("compliance voltage", self.compliance_V, L.COMPLIANCE_VOLTAGE)
        require_limit("sample interval", self.sample_interval_s, L.SAMPLE_INTERVAL)
        require_limit("dose cap", self.dose_cap_mA_min, L.DOSE_CAP)
        if self.polarity not in (1, -1):
            raise InvalidParameter("polarity", f"must be +1 or -1, got {self.polarity!r}")
        if self.ramp_up_s + self.ramp_down_s > self.total_s:
            raise InvalidParameter(
                "treatment time",
                f"{self.total_min:g} min is shorter than ramp-up + ramp-down "
                f"({self.ramp_up_s:g} s + {self.ramp_down_s:g} s); the times do not add up")
        density = self.target_density_mA_cm2
        if density > self.max_density_mA_cm2 + 1e-12:
            allowed = self.max_density_mA_cm2 * self.electrode_area_cm2
            raise InvalidParameter(
                "target current",
                f"{self.target_mA:g} mA on {self.electrode_area_cm2:g} cm^2 is "
                f"{density:.3g} mA/cm^2, above the maximum current density "
                f"{self.max_density_mA_cm2:g} mA/cm^2; allowed range "
                f"[{L.TARGET_CURRENT.minimum:g}, {allowed:.3g}] mA "
                f"for this electrode")
        if self.dose_target_mA_min is not None:
            require_range("dose target", self.dose_target_mA_min, self.ramp_dose_mA_min + 0.01,
                          self.dose_cap_mA_min, "mA*min")
            if self.nominal_duration_s > self.total_s + 1e-9:
                raise InvalidParameter(
                    "dose target",
                    f"{self.dose_target_mA_min:g} mA*min at {self.target_mA:g} mA needs "
                    f"{self.nominal_duration_s / 60:.1f} min, longer than the treatment time "
                    f"{self.total_min:g} min; raise the time or the current")
        planned = self.planned_dose_mA_min
        if planned > self.dose_cap_mA_min + 1e-9:
            raise InvalidParameter(
                "treatment time",
                f"the plan delivers {planned:.1f} mA*min, above the dose cap "
                f"{self.dose_cap_mA_min:g} mA*min per electrode; shorten the time or lower "
                f"the current")


class DoseIntegrator:
    """Trapezoidal integral of the measured |current| over time, in mA*min."""

    def __init__(self) -> None:
        self.dose_mA_min = 0.0
        self._last: tuple[float, float] | None = None

    def add(self, t_s: float, current_mA: float) -> float:
        """Add a measured current at time t (s); return the dose so far."""
        magnitude = abs(current_mA) if math.isfinite(current_mA) else 0.0
        if self._last is not None:
            t0, i0 = self._last
            if t_s > t0:
                self.dose_mA_min += (i0 + magnitude) / 2.0 * (t_s - t0) / 60.0
        self._last = (t_s, magnitude)
        return self.dose_mA_min

    def break_segment(self) -> None:
        """The output was off (a pause): the next reading starts afresh, no area across the gap."""
        self._last = None
