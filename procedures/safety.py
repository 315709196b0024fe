"""Safety rules and the monitor that applies them: readings in, verdicts out.

The monitor is pure: no I/O, no clock. The procedure hands it one `Sample` per tick (protocol
units: mA, V, s, mA·min) and acts on the verdicts: an ABORT switches the output off at once,
a WARN is recorded as an event. Each rule is a small named object holding its threshold and
the sentence it says when it trips (the model is Bluesky's suspenders). Rule names are a
contract: they appear in results files, summaries and exit codes.

Priority (the first ABORT names the cause): instrument-fault, stale-data, overcurrent,
current-density, impedance-high, compliance, impedance-low, impedance-drop, regulation,
dose-cap; then warnings (near-compliance). `impedance-high` comes before `compliance` so an
open circuit, which also drives the voltage to compliance, is reported as lost contact.
"""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ionto_instruments import limits as L
from ionto_instruments.procedures.contracts import INSTRUMENT_FAULT, Phase

if TYPE_CHECKING:
    from ionto_instruments.source import Reading

#: The phases of a run, in order. Only overcurrent (plus instrument-fault and stale-data,
#: which do not look at a sample) applies during "contact-check": it has its own evaluation.
PHASES: tuple[str, ...] = (Phase.CONTACT_CHECK, Phase.RAMP_UP, Phase.HOLD, Phase.RAMP_DOWN)
RUN_PHASES: frozenset[str] = frozenset({Phase.RAMP_UP, Phase.HOLD, Phase.RAMP_DOWN})
ALL_PHASES: frozenset[str] = frozenset(PHASES)

#: Below this |current| (mA) V/I is meaningless: `Sample.impedance_kohm` is NaN.
MIN_DIVISOR_MA = 1e-6

#: Slack on time comparisons (s), so a gap of exactly N intervals computed in floating point
#: (2.2 - 1.2 = 1.0000000000000002) does not count as longer than N intervals.
TIME_EPSILON_S = 1e-9

#: Largest dose per electrode (`limits.MAX_DOSE`); a run's cap may be lower.
MAX_DOSE_CAP_MA_MIN = L.MAX_DOSE.value

#: The stable rule names in priority order (ABORT rules, the pre-run contact check, then the
#: warning). They appear in results files, summaries and exit codes: do not rename them.
RULE_NAMES: tuple[str, ...] = (
    "instrument-fault",
    "stale-data",
    "overcurrent",
    "current-density",
    "impedance-high",
    "compliance",
    "impedance-low",
    "impedance-drop",
    "regulation",
    "dose-cap",
    "contact-check",
    "near-compliance",
)

#: What each rule trips on, for the README's rule table; `{NAME}` is a `limits` entry's value.
RULE_DOCS: dict[str, str] = {
    "instrument-fault": "I/O error, timeout ({INSTRUMENT_TIMEOUT} VISA timeout), unparsable "
                        "reply, disconnect, NaN reading",
    "stale-data": "no valid reading for > {STALE_INTERVALS}",
    "overcurrent": "\\|I\\| > \\|target\\| + max({OVERCURRENT_FRACTION}, {OVERCURRENT_MARGIN}), "
                   "or > {MAX_CURRENT} (+{MEASUREMENT_TOLERANCE} tolerance): immediately",
    "current-density": "measured \\|I\\|/area > limit (+{MEASUREMENT_TOLERANCE} measurement "
                       "tolerance): immediately",
    "impedance-high": "contact lost or lifting: \\|V/I\\| > {IMPEDANCE_HIGH}, \\|I\\| < "
                      "{CURRENT_COLLAPSE_FRACTION} of setpoint, or a sudden rise to "
                      "{IMPEDANCE_RISE_FACTOR} the minimum of the last {IMPEDANCE_RISE_WINDOW}",
    "compliance": "the instrument's compliance flag, or \\|V\\| ≥ {COMPLIANCE_TRIP_FRACTION} of "
                  "compliance: current no longer regulated",
    "impedance-low": "\\|V/I\\| < {IMPEDANCE_LOW} (a short)",
    "impedance-drop": "impedance < {IMPEDANCE_DROP_FRACTION} of its maximum over the last "
                      "{IMPEDANCE_DROP_WINDOW} (skin decays over minutes: a hot spot); like "
                      "every impedance rule, judged on each reading whose V/I noise is at most "
                      "{IMPEDANCE_MAX_NOISE} (from 0.05 mA up), the contact check as the "
                      "reference from the first ramp sample",
    "regulation": "\\|I − Iset\\| > max({REGULATION_FRACTION}, {REGULATION_FLOOR}) for > "
                  "{REGULATION_DURATION}",
    "dose-cap": "dose > the run's cap (at most {MAX_DOSE}) + {MEASUREMENT_TOLERANCE} "
                "measurement tolerance",
    "contact-check": "before the ramp ({CONTACT_CHECK_DURATION} at {CONTACT_CHECK_CURRENT}): "
                     "impedance outside {CONTACT_MIN}–{CONTACT_MAX}, open circuit, or predicted "
                     "V at target > {CONTACT_VOLTAGE_FRACTION} of compliance",
    "near-compliance": "\\|V\\| > {NEAR_COMPLIANCE_WARN_FRACTION} of compliance; recorded as an "
                       "event, re-armed below {NEAR_COMPLIANCE_REARM_FRACTION}",
}


def describe_rule(name: str) -> str:
    """The README sentence of a built-in rule, with the values from the limits table."""
    return RULE_DOCS[name].format(**{k: e.text() for k, e in L.BY_NAME.items()})


def _num(value: float) -> str:
    """Format a measured number for a sentence: 4 significant digits, no exponent above 1e-4."""
    if math.isnan(value):
        return "not a number"
    if math.isinf(value):
        return "infinite"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def _kohm(value: float) -> str:
    """Format an impedance in kΩ for a sentence, in MΩ or GΩ when large (an open circuit)."""
    for scale, unit in ((1e6, "GΩ"), (1e3, "MΩ")):
        if math.isfinite(value) and abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{_num(value)} kΩ"


def _mA(value: float) -> str:
    """Format a current in mA for a sentence; below a microampere it is "under 0.001 mA"."""
    if math.isfinite(value) and 0 < abs(value) < 1e-3:
        return "under 0.001 mA"
    return f"{_num(value)} mA"


def _pct(fraction: float) -> str:
    """Format a fraction as a percentage for a sentence ("95 %")."""
    return f"{_num(fraction * 100)} %"


def _one_line(text: str) -> str:
    """Collapse whitespace (newlines included) so a sentence stays on one line of a file."""
    return " ".join(str(text).split())


# -- data ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One tick of the sampling loop in protocol units; the setpoint is the one in effect."""

    t: float
    phase: str
    setpoint_mA: float
    current_mA: float
    voltage_V: float
    compliance: bool
    dose_mA_min: float

    def __post_init__(self) -> None:
        if self.phase not in ALL_PHASES:
            raise ValueError(f"unknown phase {self.phase!r}: expected one of {', '.join(PHASES)}")

    @property
    def impedance_kohm(self) -> float:
        """Return |V/I| in kΩ (V over mA), or NaN when |I| < 1e-6 mA."""
        if not abs(self.current_mA) >= MIN_DIVISOR_MA:
            return math.nan
        return abs(self.voltage_V / self.current_mA)

    def density(self, area_cm2: float) -> float:
        """Return the measured current density |I|/area in mA/cm²."""
        return abs(self.current_mA) / area_cm2

    @classmethod
    def from_reading(cls, reading: Reading, *, t: float, phase: str, setpoint_mA: float,
                     dose_mA_min: float) -> Sample:
        """Build a sample from a source `Reading` (SI units), converting A to mA."""
        return cls(t=t, phase=phase, setpoint_mA=setpoint_mA, current_mA=reading.current * 1e3,
                   voltage_V=reading.voltage, compliance=bool(reading.compliance),
                   dose_mA_min=dose_mA_min)


class Level(enum.IntEnum):
    """How serious a verdict is: OK, WARN (record and go on) or ABORT (output off now)."""

    OK = 0
    WARN = 1
    ABORT = 2


@dataclass(frozen=True)
class Verdict:
    """What a rule concluded about one tick: level, rule name, one-line sentence, run time."""

    level: Level
    rule: str
    message: str
    t: float

    def __str__(self) -> str:
        return f"{self.level.name} {self.rule} at {self.t:.1f} s: {self.message}"


@dataclass(frozen=True)
class SafetyConfig:
    """Every threshold of the safety rules; the defaults come from `ionto_instruments.limits`.

    Units: mA, V, kΩ, s; fractions 0..1. `stale_after_s=None` means `limits.STALE_INTERVALS`
    sample intervals.
    """

    target_mA: float
    compliance_V: float
    electrode_area_cm2: float = L.ELECTRODE_AREA.default
    max_density_mA_cm2: float = L.MAX_DENSITY_SETTING.default
    sample_interval_s: float = L.SAMPLE_INTERVAL.default
    dose_cap_mA_min: float = L.DOSE_CAP.default
    # overcurrent: |I| > |target| + max(fraction x |target|, margin), or > ceiling x (1 + tol)
    max_current_mA: float = L.MAX_CURRENT.value
    overcurrent_fraction: float = L.OVERCURRENT_FRACTION.value
    overcurrent_margin_mA: float = L.OVERCURRENT_MARGIN.value
    # measurement tolerance on the density limit and the current ceiling (noise at the limit)
    measurement_tolerance: float = L.MEASUREMENT_TOLERANCE.value
    # compliance: instrument flag, or |V| >= fraction x compliance voltage
    compliance_fraction: float = L.COMPLIANCE_TRIP_FRACTION.value
    # regulation: |I - Iset| > max(fraction x |Iset|, floor) for longer than duration
    regulation_fraction: float = L.REGULATION_FRACTION.value
    regulation_floor_mA: float = L.REGULATION_FLOOR.value
    regulation_duration_s: float = L.REGULATION_DURATION.value
    # impedance rules: a hard current floor, then the noise model decides what V/I to judge
    impedance_min_current_mA: float = L.IMPEDANCE_MIN_CURRENT.value
    impedance_noise_v_rel: float = L.IMPEDANCE_NOISE_V_REL.value
    impedance_noise_v_abs_V: float = L.IMPEDANCE_NOISE_V_ABS.value * 1e-3
    impedance_noise_i_abs_mA: float = L.IMPEDANCE_NOISE_I_ABS.value * 1e-6
    impedance_max_noise: float = L.IMPEDANCE_MAX_NOISE.value
    impedance_reference_max_age_s: float = L.IMPEDANCE_REFERENCE_MAX_AGE.value
    impedance_drop_fraction: float = L.IMPEDANCE_DROP_FRACTION.value
    impedance_drop_window_s: float = L.IMPEDANCE_DROP_WINDOW.value
    impedance_low_kohm: float = L.IMPEDANCE_LOW.value
    impedance_high_kohm: float = L.IMPEDANCE_HIGH.value
    current_collapse_fraction: float = L.CURRENT_COLLAPSE_FRACTION.value
    impedance_rise_factor: float = L.IMPEDANCE_RISE_FACTOR.value
    impedance_rise_window_s: float = L.IMPEDANCE_RISE_WINDOW.value
    # stale data: no valid reading for longer than this (None: STALE_INTERVALS intervals)
    stale_after_s: float | None = None
    # near-compliance warning with hysteresis
    voltage_warn_fraction: float = L.NEAR_COMPLIANCE_WARN_FRACTION.value
    voltage_rearm_fraction: float = L.NEAR_COMPLIANCE_REARM_FRACTION.value
    # pre-run contact check
    contact_min_kohm: float = L.CONTACT_MIN.value
    contact_max_kohm: float = L.CONTACT_MAX.value
    contact_voltage_fraction: float = L.CONTACT_VOLTAGE_FRACTION.value
    # how much recent history the monitor keeps (bounded)
    history_s: float = L.HISTORY.value

    def __post_init__(self) -> None:
        target = abs(self.target_mA)
        _require(0 < self.max_current_mA <= L.MAX_CURRENT.value,
                 f"max_current_mA must be in (0, {_num(L.MAX_CURRENT.value)}] mA")
        _require(0 < target <= self.max_current_mA,
                 f"target current {_num(self.target_mA)} mA must be non-zero and at most "
                 f"{_num(self.max_current_mA)} mA")
        _require(0 < self.compliance_V <= L.MAX_COMPLIANCE.value,
                 f"compliance voltage {_num(self.compliance_V)} V must be in "
                 f"(0, {_num(L.MAX_COMPLIANCE.value)}] V")
        _require(self.electrode_area_cm2 > 0, "electrode area must be positive")
        _require(0 < self.max_density_mA_cm2 <= L.MAX_DENSITY.value,
                 f"maximum current density must be in (0, {_num(L.MAX_DENSITY.value)}] mA/cm²")
        density = target / self.electrode_area_cm2
        _require(density <= self.max_density_mA_cm2 * (1 + 1e-9),
                 f"target {_num(target)} mA over {_num(self.electrode_area_cm2)} cm² is "
                 f"{_num(density)} mA/cm², above the {_num(self.max_density_mA_cm2)} mA/cm² "
                 f"limit: use a larger electrode or a lower current")
        _require(0 < self.dose_cap_mA_min <= MAX_DOSE_CAP_MA_MIN,
                 f"dose cap must be in (0, {_num(MAX_DOSE_CAP_MA_MIN)}] mA·min")
        for name in ("sample_interval_s", "overcurrent_margin_mA", "regulation_floor_mA",
                     "regulation_duration_s", "impedance_min_current_mA",
                     "impedance_drop_window_s", "impedance_low_kohm", "impedance_high_kohm",
                     "impedance_rise_window_s",
                     "contact_min_kohm", "contact_max_kohm", "history_s"):
            _require(getattr(self, name) > 0, f"{name} must be positive")
        for name in ("overcurrent_fraction", "measurement_tolerance", "compliance_fraction",
                     "regulation_fraction", "impedance_drop_fraction",
                     "current_collapse_fraction", "voltage_warn_fraction",
                     "voltage_rearm_fraction", "contact_voltage_fraction"):
            _require(0 <= getattr(self, name) <= 1, f"{name} must be a fraction in [0, 1]")
        _require(self.impedance_rise_factor > 1, "impedance_rise_factor must be above 1")
        _require(self.impedance_low_kohm < self.impedance_high_kohm,
                 "impedance_low_kohm must be below impedance_high_kohm")
        _require(self.contact_min_kohm < self.contact_max_kohm,
                 "contact_min_kohm must be below contact_max_kohm")
        _require(self.voltage_rearm_fraction < self.voltage_warn_fraction,
                 "voltage_rearm_fraction must be below voltage_warn_fraction")
        _require(self.stale_after_s is None or self.stale_after_s > 0,
                 "stale_after_s must be positive (or None for STALE_INTERVALS sample intervals)")

    @property
    def noise_model(self) -> NoiseModel:
        """The reading noise the impedance rules allow for (see NoiseModel)."""
        return NoiseModel(self.impedance_noise_v_rel, self.impedance_noise_v_abs_V,
                          self.impedance_noise_i_abs_mA, self.impedance_max_noise)

    @property
    def stale_limit_s(self) -> float:
        """Seconds without a valid reading before stale-data trips (default STALE_INTERVALS)."""
        if self.stale_after_s is None:
            return L.STALE_INTERVALS.value * self.sample_interval_s
        return self.stale_after_s


def _require(condition: bool, message: str) -> None:
    """Raise ValueError with `message` unless `condition` holds (config validation)."""
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class NoiseModel:
    """The reading noise (1 sigma) the impedance rules allow for; V/I is judged only where
    its error is at most `max_error` of the value compared, so noise cannot trip a rule.

    error(Z) = sqrt((Z v_rel)^2 + (v_abs / I)^2 + (Z i_abs / I)^2)  [kΩ, with I in mA]
    """

    v_rel: float = L.IMPEDANCE_NOISE_V_REL.value
    v_abs_V: float = L.IMPEDANCE_NOISE_V_ABS.value * 1e-3
    i_abs_mA: float = L.IMPEDANCE_NOISE_I_ABS.value * 1e-6
    max_error: float = L.IMPEDANCE_MAX_NOISE.value

    def error_kohm(self, impedance_kohm: float, current_mA: float) -> float:
        """The 1-sigma error of a V/I reading of `impedance_kohm` at `current_mA`."""
        current = abs(current_mA)
        if not current > 0 or not math.isfinite(impedance_kohm):
            return math.inf
        z = abs(impedance_kohm)
        return math.sqrt((z * self.v_rel) ** 2 + (self.v_abs_V / current) ** 2
                         + (z * self.i_abs_mA / current) ** 2)

    def judgeable(self, sample: Sample) -> bool:
        """True when the sample's own V/I is known to within `max_error` (relative)."""
        z = sample.impedance_kohm
        return z > 0 and self.error_kohm(z, sample.current_mA) <= self.max_error * z

    def judgeable_at(self, threshold_kohm: float, current_mA: float) -> bool:
        """True when V/I near `threshold_kohm` is known to within `max_error` of it."""
        return self.error_kohm(threshold_kohm, current_mA) <= self.max_error * threshold_kohm

    def min_current_mA(self, impedance_kohm: float) -> float:
        """The smallest |current| at which V/I of `impedance_kohm` is judgeable."""
        z, budget = impedance_kohm, (self.max_error * impedance_kohm) ** 2 - \
            (impedance_kohm * self.v_rel) ** 2
        if budget <= 0:
            return math.inf
        return math.sqrt(self.v_abs_V ** 2 + (z * self.i_abs_mA) ** 2) / math.sqrt(budget)


class _Reference:
    """The impedance a relative rule compares with: the judgeable samples of its window
    (contact-check ones included: the baseline from the first ramp sample on), else the last
    judgeable one if not older than `max_age_s` (a ramp that starts below the noise floor)."""

    def __init__(self, noise: NoiseModel, window_s: float, max_age_s: float) -> None:
        self.noise = noise
        self.window_s = window_s
        self.max_age_s = max_age_s
        self.last: Sample | None = None

    def usable(self, sample: Sample) -> bool:
        return sample.phase in ALL_PHASES and self.noise.judgeable(sample)

    def values(self, sample: Sample, history: History) -> list[float]:
        found = [s.impedance_kohm for s in history.since(sample.t - self.window_s)
                 if self.usable(s)]
        last = self.last
        if not found and last is not None and sample.t - last.t <= self.max_age_s:
            found = [last.impedance_kohm]
        return found

    def remember(self, sample: Sample) -> None:
        if self.usable(sample):
            self.last = sample

    def reset(self) -> None:
        self.last = None


class History:
    """The monitor's bounded memory of recent valid samples, oldest first.

    Rules see the samples *before* the one being checked; the monitor appends it afterwards.
    """

    def __init__(self, maxlen: int) -> None:
        self._samples: deque[Sample] = deque(maxlen=maxlen)

    @property
    def maxlen(self) -> int:
        """The most samples kept."""
        return self._samples.maxlen or 0

    def append(self, sample: Sample) -> None:
        """Remember `sample`, forgetting the oldest when full."""
        self._samples.append(sample)

    def clear(self) -> None:
        """Forget everything."""
        self._samples.clear()

    @property
    def last(self) -> Sample | None:
        """The most recent sample, or None when empty."""
        return self._samples[-1] if self._samples else None

    def since(self, t0: float) -> list[Sample]:
        """Return the kept samples with t >= t0, oldest first."""
        out: list[Sample] = []
        for sample in reversed(self._samples):
            if sample.t < t0:
                break
            out.append(sample)
        out.reverse()
        return out

    def __len__(self) -> int:
        return len(self._samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)


# -- rules -----------------------------------------------------------------------------------


class Rule(ABC):
    """One safety condition: a stable name, a level, the phases it watches, and `check`.

    Subclass it for a custom rule: set `name` (and `level`, `phases` if needed), implement
    `check` returning `self.trip(sample, sentence)` or None; keep state small and `reset` it.
    """

    name: str = "custom"
    level: Level = Level.ABORT
    phases: frozenset[str] = RUN_PHASES

    @abstractmethod
    def check(self, sample: Sample, history: History) -> Verdict | None:
        """Return a Verdict when the rule trips on `sample`, else None."""

    def reset(self) -> None:
        """Forget any state kept between ticks (start of a new run)."""
        return None

    def trip(self, sample: Sample, message: str) -> Verdict:
        """Build this rule's verdict for `sample` with a one-line sentence."""
        return Verdict(self.level, self.name, _one_line(message), sample.t)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class OvercurrentRule(Rule):
    """|I| above |target| by a margin, or above the device ceiling: trips at once, any phase."""

    name = "overcurrent"
    phases = ALL_PHASES

    def __init__(self, target_mA: float, fraction: float = L.OVERCURRENT_FRACTION.value,
                 margin_mA: float = L.OVERCURRENT_MARGIN.value,
                 ceiling_mA: float = L.MAX_CURRENT.value,
                 tolerance: float = L.MEASUREMENT_TOLERANCE.value) -> None:
        self.target_mA = abs(target_mA)
        self.limit_mA = self.target_mA + max(fraction * self.target_mA, margin_mA)
        self.ceiling_mA = ceiling_mA
        self.ceiling_limit_mA = ceiling_mA * (1 + tolerance)

    def check(self, sample: Sample, history: History) -> Verdict | None:
        current = abs(sample.current_mA)
        if current > self.ceiling_limit_mA:
            return self.trip(sample, (
                f"Overcurrent: {_num(current)} mA measured, above the {_num(self.ceiling_mA)} mA "
                f"ceiling of this device class (limit {_num(self.ceiling_limit_mA)} mA with "
                f"measurement tolerance). Check the instrument's source range and settings, and "
                f"have the instrument serviced before further use."))
        if current > self.limit_mA:
            return self.trip(sample, (
                f"Overcurrent: {_num(current)} mA measured against a target of "
                f"{_num(self.target_mA)} mA (limit {_num(self.limit_mA)} mA). Check the current "
                f"setting and the instrument's source range; the source is not holding the set "
                f"current."))
        return None


class CurrentDensityRule(Rule):
    """Measured |I|/area above the density limit (plus measurement tolerance): trips at once."""

    name = "current-density"

    def __init__(self, area_cm2: float, max_density_mA_cm2: float,
                 tolerance: float = L.MEASUREMENT_TOLERANCE.value) -> None:
        self.area_cm2 = area_cm2
        self.max_density_mA_cm2 = max_density_mA_cm2
        self.limit_mA_cm2 = max_density_mA_cm2 * (1 + tolerance)

    def check(self, sample: Sample, history: History) -> Verdict | None:
        density = sample.density(self.area_cm2)
        if density > self.limit_mA_cm2:
            return self.trip(sample, (
                f"Current density {_num(density)} mA/cm² ({_num(abs(sample.current_mA))} mA over "
                f"{_num(self.area_cm2)} cm²) is above the limit of "
                f"{_num(self.max_density_mA_cm2)} mA/cm² (trip at {_num(self.limit_mA_cm2)} "
                f"mA/cm² with measurement tolerance). Check the electrode area setting and the "
                f"current setting."))
        return None


class ImpedanceHighRule(Rule):
    """Contact lost or lifting: |V/I| above a ceiling, |I| collapsed under |Iset|, or a sudden rise.

    A rise to IMPEDANCE_RISE_FACTOR x the window's minimum is never skin (it only falls under
    DC; drying takes minutes): an electrode lifting, leaving the current to a shrinking area.
    Ranked before compliance, which an open circuit also reaches, so the cause is named.
    """

    name = "impedance-high"
    _advice = ("Check that the patch is attached, the gel is moist, and the leads are "
               "connected.")

    phases = ALL_PHASES  # contact-check samples only become the reference

    def __init__(self, max_kohm: float = L.IMPEDANCE_HIGH.value,
                 collapse_fraction: float = L.CURRENT_COLLAPSE_FRACTION.value,
                 min_setpoint_mA: float = L.IMPEDANCE_MIN_CURRENT.value,
                 rise_factor: float = L.IMPEDANCE_RISE_FACTOR.value,
                 rise_window_s: float = L.IMPEDANCE_RISE_WINDOW.value,
                 noise: NoiseModel | None = None,
                 reference_max_age_s: float = L.IMPEDANCE_REFERENCE_MAX_AGE.value) -> None:
        self.max_kohm = max_kohm
        self.collapse_fraction = collapse_fraction
        self.min_setpoint_mA = min_setpoint_mA
        self.rise_factor = rise_factor
        self.rise_window_s = rise_window_s
        self.noise = noise or NoiseModel()
        self._reference = _Reference(self.noise, rise_window_s, reference_max_age_s)

    def reset(self) -> None:
        self._reference.reset()

    def check(self, sample: Sample, history: History) -> Verdict | None:
        try:
            if sample.phase not in RUN_PHASES:
                return None
            return self._check(sample, history)
        finally:
            self._reference.remember(sample)

    def _check(self, sample: Sample, history: History) -> Verdict | None:
        setpoint = abs(sample.setpoint_mA)
        if setpoint < self.min_setpoint_mA:
            return None
        impedance = sample.impedance_kohm
        if impedance > self.max_kohm and self.noise.judgeable_at(self.max_kohm,
                                                                 sample.current_mA):
            return self.trip(sample, (
                f"Contact lost: impedance rose to {_kohm(impedance)} "
                f"(limit {_num(self.max_kohm)} kΩ). {self._advice}"))
        current = abs(sample.current_mA)
        floor = self.collapse_fraction * setpoint
        if current < floor:
            return self.trip(sample, (
                f"Contact lost: current collapsed to {_mA(current)} against a setpoint of "
                f"{_num(setpoint)} mA (limit {_pct(self.collapse_fraction)} of the setpoint, "
                f"{_num(floor)} mA). {self._advice}"))
        if abs(sample.current_mA) >= self.min_setpoint_mA and self.noise.judgeable(sample):
            low = min(self._reference.values(sample, history), default=math.nan)
            if low > 0 and impedance > self.rise_factor * low:
                return self.trip(sample, (
                    f"Impedance rose suddenly to {_kohm(impedance)}, {_num(impedance / low)}x "
                    f"its minimum of {_num(low)} kΩ in the last {_num(self.rise_window_s)} s "
                    f"(limit {_num(self.rise_factor)}x): the electrode may be lifting, leaving "
                    f"the current to a smaller area. {self._advice}"))
        return None


class ComplianceRule(Rule):
    """The instrument's compliance flag, or |V| at COMPLIANCE_TRIP_FRACTION: current unregulated."""

    name = "compliance"

    def __init__(self, compliance_V: float,
                 fraction: float = L.COMPLIANCE_TRIP_FRACTION.value) -> None:
        self.compliance_V = compliance_V
        self.fraction = fraction
        self.limit_V = fraction * compliance_V

    def check(self, sample: Sample, history: History) -> Verdict | None:
        voltage = abs(sample.voltage_V)
        advice = ("Check the patch contact and the gel (skin or electrode drying out raises "
                  "the resistance), or lower the current.")
        if voltage >= self.limit_V:
            return self.trip(sample, (
                f"Compliance: the voltage reached {_num(voltage)} V (limit "
                f"{_pct(self.fraction)} of the {_num(self.compliance_V)} V compliance, "
                f"{_num(self.limit_V)} V), so the current is no longer regulated. {advice}"))
        if sample.compliance:
            return self.trip(sample, (
                f"Compliance: the instrument reports compliance at {_num(voltage)} V "
                f"(compliance voltage {_num(self.compliance_V)} V), so the current is no "
                f"longer regulated. {advice}"))
        return None


class ImpedanceLowRule(Rule):
    """|V/I| below a floor: a short. Judged where the noise model knows V/I near the floor
    (at 0.05 mA and above with the default noise), never below IMPEDANCE_MIN_CURRENT."""

    name = "impedance-low"

    def __init__(self, min_kohm: float = L.IMPEDANCE_LOW.value,
                 min_current_mA: float = L.IMPEDANCE_MIN_CURRENT.value,
                 noise: NoiseModel | None = None) -> None:
        self.min_kohm = min_kohm
        self.min_current_mA = min_current_mA
        self.noise = noise or NoiseModel()

    def check(self, sample: Sample, history: History) -> Verdict | None:
        if abs(sample.current_mA) < self.min_current_mA or \
                not self.noise.judgeable_at(self.min_kohm, sample.current_mA):
            return None
        impedance = sample.impedance_kohm
        if impedance < self.min_kohm:
            return self.trip(sample, (
                f"Short circuit: impedance fell to {_num(impedance)} kΩ (floor "
                f"{_num(self.min_kohm)} kΩ). Check that the electrodes and their leads do not "
                f"touch, that no gel bridges them, and that no jewellery or metal is under the "
                f"patch."))
        return None


class ImpedanceDropRule(Rule):
    """Impedance under IMPEDANCE_DROP_FRACTION of its recent maximum: a hot spot.

    Skin under DC decays over minutes, not seconds. Judged on every run sample whose V/I the
    noise model knows (at 0.05 mA and above for any plausible skin), against the window's
    judgeable samples, the contact check's included: the baseline from the first ramp sample.
    """

    name = "impedance-drop"
    phases = ALL_PHASES  # contact-check samples only become the reference

    def __init__(self, fraction: float = L.IMPEDANCE_DROP_FRACTION.value,
                 window_s: float = L.IMPEDANCE_DROP_WINDOW.value,
                 min_current_mA: float = L.IMPEDANCE_MIN_CURRENT.value,
                 noise: NoiseModel | None = None,
                 reference_max_age_s: float = L.IMPEDANCE_REFERENCE_MAX_AGE.value) -> None:
        self.fraction = fraction
        self.window_s = window_s
        self.min_current_mA = min_current_mA
        self.noise = noise or NoiseModel()
        self._reference = _Reference(self.noise, window_s, reference_max_age_s)

    def reset(self) -> None:
        self._reference.reset()

    def check(self, sample: Sample, history: History) -> Verdict | None:
        try:
            if (sample.phase not in RUN_PHASES
                    or abs(sample.current_mA) < self.min_current_mA
                    or not self.noise.judgeable(sample)):
                return None
            return self._check(sample, history)
        finally:
            self._reference.remember(sample)

    def _check(self, sample: Sample, history: History) -> Verdict | None:
        peak = max(self._reference.values(sample, history), default=math.nan)
        if not peak > 0:
            return None
        impedance = sample.impedance_kohm
        if impedance < self.fraction * peak:
            return self.trip(sample, (
                f"Impedance drop: impedance fell to {_num(impedance)} kΩ, "
                f"{_pct(impedance / peak)} of its maximum of {_num(peak)} kΩ in the last "
                f"{_num(self.window_s)} s (limit {_pct(self.fraction)}): current may be "
                f"concentrating in a hot spot. Check the skin under the patch for redness or "
                f"burning, and the patch for lifted edges or dried gel."))
        return None


class RegulationRule(Rule):
    """|I − Iset| outside the REGULATION band for longer than REGULATION_DURATION.

    A reading matching the previous tick's setpoint also passes (a reading just before a step).
    """

    name = "regulation"

    def __init__(self, fraction: float = L.REGULATION_FRACTION.value,
                 floor_mA: float = L.REGULATION_FLOOR.value,
                 duration_s: float = L.REGULATION_DURATION.value) -> None:
        self.fraction = fraction
        self.floor_mA = floor_mA
        self.duration_s = duration_s
        self._since: float | None = None

    def reset(self) -> None:
        self._since = None

    def tolerance_mA(self, setpoint_mA: float) -> float:
        """The allowed |I − Iset| at this setpoint."""
        return max(self.fraction * abs(setpoint_mA), self.floor_mA)

    def _ok(self, current: float, setpoint: float) -> bool:
        return abs(current - setpoint) <= self.tolerance_mA(setpoint)

    def check(self, sample: Sample, history: History) -> Verdict | None:
        previous = history.last
        if self._ok(sample.current_mA, sample.setpoint_mA) or (
                previous is not None and previous.phase in RUN_PHASES
                and self._ok(sample.current_mA, previous.setpoint_mA)):
            self._since = None
            return None
        if self._since is None:
            self._since = sample.t
        lasted = sample.t - self._since
        if lasted > self.duration_s + TIME_EPSILON_S:
            return self.trip(sample, (
                f"Current not regulated: {_num(sample.current_mA)} mA measured against a "
                f"setpoint of {_num(sample.setpoint_mA)} mA for {_num(lasted)} s (tolerance "
                f"{_num(self.tolerance_mA(sample.setpoint_mA))} mA for at most "
                f"{_num(self.duration_s)} s). Check the leads and the electrode contact, and "
                f"the instrument's source settings."))
        return None


class DoseCapRule(Rule):
    """The delivered dose (integrated |measured current|) above the cap per electrode.

    The measured dose of a plan exactly at the cap lands a little above or below it (reading
    noise, integration): the cap allows MEASUREMENT_TOLERANCE, as the density limit does, so
    such a run completes with its ramp-down; pre-flight never plans above the cap itself.
    """

    name = "dose-cap"

    def __init__(self, cap_mA_min: float = L.DOSE_CAP.default,
                 tolerance: float = L.MEASUREMENT_TOLERANCE.value) -> None:
        self.cap_mA_min = cap_mA_min
        self.tolerance = tolerance
        self.limit_mA_min = cap_mA_min * (1 + tolerance)

    def check(self, sample: Sample, history: History) -> Verdict | None:
        if sample.dose_mA_min > self.limit_mA_min:
            delivered, limit = _distinct(sample.dose_mA_min, self.limit_mA_min)
            return self.trip(sample, (
                f"Dose cap: {delivered} mA·min delivered, above the cap of "
                f"{_num(self.cap_mA_min)} mA·min per electrode (limit {limit} mA·min with "
                f"{_pct(self.tolerance)} measurement tolerance). Check the protocol's current "
                f"and duration; do not continue with this electrode."))
        return None


def _distinct(value: float, limit: float) -> tuple[str, str]:
    """Format `value` and `limit` with enough digits that a value above shows as above."""
    for digits in range(4, 12):
        shown, bound = f"{value:.{digits}g}", f"{limit:.{digits}g}"
        if float(shown) > float(bound):
            return shown, bound
    return repr(value), repr(limit)


class NearComplianceWarning(Rule):
    """WARN once when |V| reaches the warn fraction of compliance; re-arm below the re-arm one."""

    name = "near-compliance"
    level = Level.WARN

    def __init__(self, compliance_V: float,
                 warn_fraction: float = L.NEAR_COMPLIANCE_WARN_FRACTION.value,
                 rearm_fraction: float = L.NEAR_COMPLIANCE_REARM_FRACTION.value) -> None:
        self.compliance_V = compliance_V
        self.warn_fraction = warn_fraction
        self.rearm_fraction = rearm_fraction
        self.warn_V = warn_fraction * compliance_V
        self.rearm_V = rearm_fraction * compliance_V
        self._armed = True

    def reset(self) -> None:
        self._armed = True

    def check(self, sample: Sample, history: History) -> Verdict | None:
        voltage = abs(sample.voltage_V)
        if not self._armed:
            if voltage < self.rearm_V:
                self._armed = True
            return None
        if voltage >= self.warn_V:
            self._armed = False
            return self.trip(sample, (
                f"Voltage near compliance: {_num(voltage)} V is above "
                f"{_pct(self.warn_fraction)} of the {_num(self.compliance_V)} V compliance "
                f"({_num(self.warn_V)} V): the skin resistance is high or rising. Check the "
                f"gel and the patch contact before the current can no longer be regulated."))
        return None


def default_rules(config: SafetyConfig) -> list[Rule]:
    """Build the built-in sample rules from `config`, in priority order (ABORTs, then WARNs)."""
    return [
        OvercurrentRule(config.target_mA, config.overcurrent_fraction,
                        config.overcurrent_margin_mA, config.max_current_mA,
                        config.measurement_tolerance),
        CurrentDensityRule(config.electrode_area_cm2, config.max_density_mA_cm2,
                           config.measurement_tolerance),
        ImpedanceHighRule(config.impedance_high_kohm, config.current_collapse_fraction,
                          config.impedance_min_current_mA,
                          rise_factor=config.impedance_rise_factor,
                          rise_window_s=config.impedance_rise_window_s,
                          noise=config.noise_model,
                          reference_max_age_s=config.impedance_reference_max_age_s),
        ComplianceRule(config.compliance_V, config.compliance_fraction),
        ImpedanceLowRule(config.impedance_low_kohm, config.impedance_min_current_mA,
                         noise=config.noise_model),
        ImpedanceDropRule(config.impedance_drop_fraction, config.impedance_drop_window_s,
                          config.impedance_min_current_mA, noise=config.noise_model,
                          reference_max_age_s=config.impedance_reference_max_age_s),
        RegulationRule(config.regulation_fraction, config.regulation_floor_mA,
                       config.regulation_duration_s),
        DoseCapRule(config.dose_cap_mA_min, config.measurement_tolerance),
        NearComplianceWarning(config.compliance_V, config.voltage_warn_fraction,
                              config.voltage_rearm_fraction),
    ]


# -- the monitor -----------------------------------------------------------------------------


class SafetyMonitor:
    """Apply the rules to each tick and return verdicts; no I/O, no clock, bounded memory.

    Same calls, same verdicts. Per tick: `check_staleness(t)`, then `check` or `no_reading`.
    """

    def __init__(self, config: SafetyConfig, extra_rules: Sequence[Rule] = ()) -> None:
        self.config = config
        self.rules: list[Rule] = default_rules(config) + list(extra_rules)
        names = [rule.name for rule in self.rules]
        for rule in extra_rules:
            if not isinstance(rule, Rule):
                raise TypeError(f"extra rule {rule!r} is not a Rule")
            if rule.level not in (Level.WARN, Level.ABORT):
                raise ValueError(f"rule {rule.name!r} must have level WARN or ABORT")
            if not rule.name or names.count(rule.name) > 1 or rule.name in RULE_NAMES:
                raise ValueError(f"rule name {rule.name!r} is empty or already taken")
        maxlen = max(8, 2 * math.ceil(config.history_s / config.sample_interval_s))
        self.history = History(maxlen)
        self._t_last_valid: float | None = None

    def reset(self) -> None:
        """Start over for a new run: forget history, rule state and the last valid time."""
        for rule in self.rules:
            rule.reset()
        self.history.clear()
        self._t_last_valid = None

    @property
    def t_last_valid(self) -> float | None:
        """Run time of the last valid sample (or of the first tick seen), None before any."""
        return self._t_last_valid

    def check(self, sample: Sample) -> list[Verdict]:
        """Return the verdicts for one valid sample: [] when all OK, ABORTs first, then WARNs.

        A sample with a non-finite number is not a valid reading: it returns instrument-fault.
        """
        numbers = (sample.t, sample.setpoint_mA, sample.current_mA, sample.voltage_V,
                   sample.dose_mA_min)
        if not all(math.isfinite(x) for x in numbers):
            bad = ", ".join(f"{label}={x!r}" for label, x in zip(
                ("t", "setpoint", "current", "voltage", "dose"), numbers, strict=True)
                if not math.isfinite(x))
            return self.no_reading(sample.t, f"the reading contains non-numeric values ({bad})")
        self._t_last_valid = sample.t
        verdicts: list[Verdict] = []
        for rule in self.rules:
            if sample.phase not in rule.phases:
                continue
            try:
                verdict = rule.check(sample, self.history)
            except Exception as exc:  # a broken rule must stop the run, not the shutdown path
                verdict = Verdict(Level.ABORT, rule.name, _one_line(
                    f"Safety rule {rule.name!r} failed ({type(exc).__name__}: {exc}), so the "
                    f"run was stopped to be safe. Check the rule's code."), sample.t)
            if verdict is not None and verdict.level > Level.OK:
                verdicts.append(verdict)
        self.history.append(sample)
        verdicts.sort(key=lambda v: -v.level)  # stable: priority order within a level
        return verdicts

    def no_reading(self, t: float, why: str) -> list[Verdict]:
        """Return the instrument-fault ABORT for a tick with no valid reading (I/O failed)."""
        if self._t_last_valid is None:
            self._t_last_valid = t
        reason = _one_line(why).rstrip(".") or "no reason given"
        return [Verdict(Level.ABORT, INSTRUMENT_FAULT, (
            f"Instrument fault: no valid reading ({reason}). Check the cable and connection, "
            f"that the instrument is switched on, and its front-panel error messages."), t)]

    def check_staleness(self, t: float) -> list[Verdict]:
        """Return a stale-data ABORT when no valid reading came for longer than the limit.

        Call it before `check` of the tick's sample; the first call before any reading starts it.
        """
        if self._t_last_valid is None:
            self._t_last_valid = t
            return []
        gap = t - self._t_last_valid
        limit = self.config.stale_limit_s
        if gap > limit + TIME_EPSILON_S:
            return [Verdict(Level.ABORT, "stale-data", (
                f"Stale data: no valid reading for {_num(gap)} s (limit {_num(limit)} s). "
                f"Check the connection and that the instrument is not busy or showing an "
                f"error."), t)]
        return []


# -- the contact check before the ramp ---------------------------------------------------------


def evaluate_contact_check(impedance_ohm: float, compliance: bool, config: SafetyConfig,
                           min_ohm: float | None = None, max_ohm: float | None = None,
                           *, t: float = 0.0) -> Verdict | None:
    """Judge the pre-ramp contact measurement; return a contact-check ABORT to refuse, or None.

    Refuses an open circuit, an implausible impedance, or more than CONTACT_VOLTAGE_FRACTION of
    compliance at the target.
    """
    low = config.contact_min_kohm * 1e3 if min_ohm is None else min_ohm
    high = config.contact_max_kohm * 1e3 if max_ohm is None else max_ohm

    def refuse(message: str) -> Verdict:
        return Verdict(Level.ABORT, "contact-check", _one_line(message), t)

    contact_advice = ("Check that both electrodes are on the skin, the gel is moist, and the "
                      "leads are connected.")
    impedance = abs(impedance_ohm)
    if compliance or math.isnan(impedance) or math.isinf(impedance):
        why = "the instrument hit compliance" if compliance else "no current flowed"
        return refuse(f"Contact check refused: {why} with the test current, an open circuit. "
                      f"{contact_advice}")
    kohm = impedance / 1e3
    if impedance < low:
        return refuse(f"Contact check refused: impedance {_num(kohm)} kΩ is below the "
                      f"plausible minimum of {_num(low / 1e3)} kΩ, a short. Check that the "
                      f"electrodes and leads do not touch and that no gel bridges them.")
    if impedance > high:
        return refuse(f"Contact check refused: impedance {_kohm(kohm)} is above the "
                      f"plausible maximum of {_num(high / 1e3)} kΩ, poor contact. "
                      f"{contact_advice}")
    target = abs(config.target_mA)
    predicted_V = target * kohm
    allowed_V = config.contact_voltage_fraction * config.compliance_V
    if predicted_V > allowed_V:
        return refuse(f"Contact check refused: at {_num(target)} mA an impedance of "
                      f"{_num(kohm)} kΩ needs {_num(predicted_V)} V, above "
                      f"{_pct(config.contact_voltage_fraction)} of the "
                      f"{_num(config.compliance_V)} V compliance ({_num(allowed_V)} V). Moisten "
                      f"the gel and re-seat the patch, lower the current, or raise the "
                      f"compliance voltage.")
    return None


__all__ = [
    "ALL_PHASES",
    "PHASES",
    "RULE_NAMES",
    "RUN_PHASES",
    "ComplianceRule",
    "CurrentDensityRule",
    "DoseCapRule",
    "History",
    "ImpedanceDropRule",
    "ImpedanceHighRule",
    "ImpedanceLowRule",
    "Level",
    "NearComplianceWarning",
    "OvercurrentRule",
    "RegulationRule",
    "Rule",
    "SafetyConfig",
    "SafetyMonitor",
    "Sample",
    "Verdict",
    "RULE_DOCS",
    "default_rules",
    "describe_rule",
    "evaluate_contact_check",
]
