"""The one table of every safety threshold and parameter range, with its unit and evidence.

Everything reads from here: the driver ceilings (`source.py`), the Procedure's Parameter
min/max, `ProtocolPlan.validate`, `SafetyConfig` and every rule's defaults, the GUI's limit
lines, the report and the README's tables (`tests/test_limits.py` keeps them equal). It lives
in the hardware layer because the driver ceilings need it and that layer imports nothing above.

Evidence names a section of `docs/evidence.md` or says "engineering default": a value chosen
here, with no published source, documented as such and configurable in `SafetyConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

EVIDENCE = "docs/evidence.md"
ENGINEERING = "engineering default (no published source)"


@dataclass(frozen=True)
class Limit:
    """One threshold: its value, unit, what it bounds, and where the number comes from."""

    name: str
    value: float
    unit: str
    what: str
    evidence: str

    def text(self) -> str:
        """The value with its unit for a sentence ("80 mA·min", "95 %")."""
        if self.unit == "%":
            return f"{self.value * 100:g} %"
        if self.unit == "x":
            return f"{self.value:g}×"
        return f"{self.value:g} {self.unit}".rstrip()


@dataclass(frozen=True)
class Range:
    """One settable parameter: default and allowed [minimum, maximum], unit and evidence."""

    name: str
    default: float
    minimum: float
    maximum: float
    unit: str
    what: str
    evidence: str

    def text(self) -> str:
        """The allowed range for a sentence ("0.05–4 mA")."""
        return f"{self.minimum:g}–{self.maximum:g} {self.unit}".rstrip()


def ascii_unit(unit: str) -> str:
    """The unit as files and messages spell it in ASCII ("mA*min", "cm^2", "kohm")."""
    return unit.replace("·", "*").replace("²", "^2").replace("kΩ", "kohm")


def _limit(name: str, value: float, unit: str, what: str, evidence: str) -> Limit:
    return Limit(name, value, unit, what, evidence)


# -- device-class ceilings (the drivers enforce them whatever the caller asks) -----------------

MAX_CURRENT = _limit("MAX_CURRENT", 4.0, "mA", "largest |current| of the device class",
                     f"{EVIDENCE} (ActivaDose II 4 mA cap; tDCS ≤ 4 mA safety record)")
MAX_COMPLIANCE = _limit("MAX_COMPLIANCE", 80.0, "V", "largest compliance voltage",
                        f"{ENGINEERING}; {EVIDENCE} (27-60 V seen in devices)")
MAX_DENSITY = _limit("MAX_DENSITY", 2.0, "mA/cm²", "largest current-density limit",
                     f"{EVIDENCE} (IEC 60601-2-10 requires a warning above 2 mA/cm²)")
MAX_DOSE = _limit("MAX_DOSE", 80.0, "mA·min", "largest dose per electrode (the cap may be lower)",
                  f"{EVIDENCE} (ActivaDose II; Dupel B.L.U.E. electrode)")

# -- burn-risk rule thresholds (SafetyConfig defaults) -------------------------------------------

OVERCURRENT_FRACTION = _limit("OVERCURRENT_FRACTION", 0.10, "%",
                              "overcurrent: allowed excess over |target| (or the margin)",
                              ENGINEERING)
OVERCURRENT_MARGIN = _limit("OVERCURRENT_MARGIN", 0.1, "mA",
                            "overcurrent: smallest allowed excess over |target|", ENGINEERING)
MEASUREMENT_TOLERANCE = _limit("MEASUREMENT_TOLERANCE", 0.02, "%",
                               "tolerance on the current ceiling and the density limit "
                               "(measurement noise at the limit)", ENGINEERING)
COMPLIANCE_TRIP_FRACTION = _limit("COMPLIANCE_TRIP_FRACTION", 0.95, "%",
                                  "compliance: trip at this fraction of the compliance voltage",
                                  ENGINEERING)
NEAR_COMPLIANCE_WARN_FRACTION = _limit("NEAR_COMPLIANCE_WARN_FRACTION", 0.80, "%",
                                       "near-compliance: warn at this fraction of compliance",
                                       ENGINEERING)
NEAR_COMPLIANCE_REARM_FRACTION = _limit("NEAR_COMPLIANCE_REARM_FRACTION", 0.75, "%",
                                        "near-compliance: re-arm below this fraction",
                                        ENGINEERING)
IMPEDANCE_HIGH = _limit("IMPEDANCE_HIGH", 100.0, "kΩ", "impedance-high: contact lost above",
                        f"{ENGINEERING}; {EVIDENCE} (skin 2-20 kΩ under DC)")
IMPEDANCE_LOW = _limit("IMPEDANCE_LOW", 0.5, "kΩ", "impedance-low: a short below",
                       f"{ENGINEERING}; {EVIDENCE} (skin 2-20 kΩ under DC)")
CURRENT_COLLAPSE_FRACTION = _limit("CURRENT_COLLAPSE_FRACTION", 0.10, "%",
                                   "impedance-high: |I| below this fraction of |Iset|",
                                   ENGINEERING)
IMPEDANCE_RISE_FACTOR = _limit("IMPEDANCE_RISE_FACTOR", 2.0, "x",
                               "impedance-high: sudden rise over the window's minimum",
                               f"{EVIDENCE} (a sudden rise: electrode lifted or dried)")
IMPEDANCE_RISE_WINDOW = _limit("IMPEDANCE_RISE_WINDOW", 2.0, "s",
                               "impedance-high: window of the sudden-rise minimum", ENGINEERING)
IMPEDANCE_DROP_FRACTION = _limit("IMPEDANCE_DROP_FRACTION", 0.60, "%",
                                 "impedance-drop: trip below this fraction of the window's maximum",
                                 f"{EVIDENCE} (a sudden drop: a hot spot, the burn mechanism)")
IMPEDANCE_DROP_WINDOW = _limit("IMPEDANCE_DROP_WINDOW", 2.0, "s",
                               "impedance-drop: window of the maximum (skin decays over minutes)",
                               f"{EVIDENCE} (phantom τ 1-3 min)")
IMPEDANCE_MIN_CURRENT = _limit("IMPEDANCE_MIN_CURRENT", 0.001, "mA",
                               "impedance rules: hard floor of |current| (or |setpoint| for a "
                               "collapse); above it the noise model decides (IMPEDANCE_NOISE_*)",
                               ENGINEERING)
# The noise model of the impedance rules (docs/hazards.md, H-low-current): a reading's V/I is
# judged only where its 1-sigma error from these three terms is at most IMPEDANCE_MAX_NOISE of
# the value compared. Voltage: the simulator's meter noise; current: 20x the simulator's
# (the hypothesis phantom of tests/test_safety_monitor.py). Verify on a real instrument.
IMPEDANCE_NOISE_V_REL = _limit("IMPEDANCE_NOISE_V_REL", 0.003, "%",
                               "noise model: relative voltage-reading noise (1 sigma)",
                               f"{ENGINEERING}; the simulator's phantom noise")
IMPEDANCE_NOISE_V_ABS = _limit("IMPEDANCE_NOISE_V_ABS", 1.0, "mV",
                               "noise model: absolute voltage-reading noise (1 sigma)",
                               f"{ENGINEERING}; the simulator's phantom noise")
IMPEDANCE_NOISE_I_ABS = _limit("IMPEDANCE_NOISE_I_ABS", 200.0, "nA",
                               "noise model: absolute current-reading noise and offset (1 sigma)",
                               f"{ENGINEERING}; 20x the simulator's, as the monitor's tests")
IMPEDANCE_MAX_NOISE = _limit("IMPEDANCE_MAX_NOISE", 0.05, "%",
                             "impedance rules judge V/I only where its noise (1 sigma) is at "
                             "most this share of the value compared: the 40 % drop is then 8 "
                             "sigma (no false trip), and 0.05 mA at 0.5 kΩ still qualifies",
                             ENGINEERING)
IMPEDANCE_REFERENCE_MAX_AGE = _limit("IMPEDANCE_REFERENCE_MAX_AGE", 30.0, "s",
                                     "impedance-drop/-rise: the last judgeable impedance (the "
                                     "contact check's at the ramp start) stays the reference "
                                     "across unjudgeable samples for at most this long (skin "
                                     "with tau >= 1 min decays to no less than 69 % of it)",
                                     f"{EVIDENCE} (phantom τ 1-3 min)")
REGULATION_FRACTION = _limit("REGULATION_FRACTION", 0.05, "%",
                             "regulation: allowed |I − Iset| as a fraction of |Iset|", ENGINEERING)
REGULATION_FLOOR = _limit("REGULATION_FLOOR", 0.02, "mA",
                          "regulation: smallest allowed |I − Iset|", ENGINEERING)
REGULATION_DURATION = _limit("REGULATION_DURATION", 1.0, "s",
                             "regulation: longest time out of the band", ENGINEERING)
STALE_INTERVALS = _limit("STALE_INTERVALS", 3.0, "sample intervals",
                         "stale-data: longest gap without a valid reading, in sample intervals",
                         ENGINEERING)
SCALED_CLOCK_JITTER = _limit("SCALED_CLOCK_JITTER", 0.25, "s",
                             "stale-data: real-time jitter allowed on a scaled (demo) clock, "
                             "multiplied by its speed", ENGINEERING)
HISTORY = _limit("HISTORY", 10.0, "s", "how much recent history the monitor keeps", ENGINEERING)
INSTRUMENT_TIMEOUT = _limit("INSTRUMENT_TIMEOUT", 1.0, "s",
                            "instrument-fault: VISA timeout of every exchange",
                            f"{ENGINEERING}; a 1 NPLC reading takes ~71-84 ms ({EVIDENCE})")

# -- the contact check before the ramp -----------------------------------------------------------

CONTACT_CHECK_CURRENT = _limit("CONTACT_CHECK_CURRENT", 0.05, "mA", "contact-check test current",
                               f"{EVIDENCE} (Open-tDCS-Stack: 50 µA contact test current)")
CONTACT_CHECK_DURATION = _limit("CONTACT_CHECK_DURATION", 2.0, "s", "contact-check duration",
                                ENGINEERING)
PAUSE_RAMP = _limit("PAUSE_RAMP", 5.0, "s", "pause: ramp from the setpoint to zero before "
                    "the output goes off", f"{ENGINEERING} (a short ramp, as clinical devices "
                    "pause)")
CONTACT_MIN = _limit("CONTACT_MIN", 0.5, "kΩ", "contact-check: plausible impedance from",
                     f"{ENGINEERING}; {EVIDENCE} (skin 2-20 kΩ)")
CONTACT_MAX = _limit("CONTACT_MAX", 100.0, "kΩ", "contact-check: plausible impedance up to",
                     f"{ENGINEERING}; {EVIDENCE} (skin 2-20 kΩ)")
CONTACT_VOLTAGE_FRACTION = _limit("CONTACT_VOLTAGE_FRACTION", 0.80, "%",
                                  "contact-check: refuse when the predicted V at the target "
                                  "needs more than this fraction of compliance", ENGINEERING)

# -- settable parameters (Procedure Parameters, ProtocolPlan.validate, protocol files) -----------

TARGET_CURRENT = Range("TARGET_CURRENT", 2.0, 0.05, MAX_CURRENT.value, "mA",
                       "target current (magnitude; the drug sets the sign)",
                       f"{EVIDENCE} (4 mA device cap)")
RAMP = Range("RAMP", 30.0, 0.0, 600.0, "s", "ramp-up / ramp-down",
             f"{EVIDENCE} (Soterix IontoDC: 30 s ramps)")
TREATMENT_TIME = Range("TREATMENT_TIME", 30.0, 0.5, 60.0, "min",
                       "treatment time (ramps included; the maximum when dose-controlled)",
                       f"{EVIDENCE} (leaflet: about 30 minutes)")
DOSE_TARGET = Range("DOSE_TARGET", 40.0, 0.1, MAX_DOSE.value, "mA·min",
                    "dose target (dose-controlled runs)", f"{EVIDENCE} (80 mA·min per electrode)")
DOSE_CAP = Range("DOSE_CAP", MAX_DOSE.value, 0.1, MAX_DOSE.value, "mA·min",
                 "dose cap of a run (dose-cap rule)", f"{EVIDENCE} (80 mA·min per electrode)")
ELECTRODE_AREA = Range("ELECTRODE_AREA", 10.0, 0.5, 500.0, "cm²", "electrode area",
                       ENGINEERING)
MAX_DENSITY_SETTING = Range("MAX_DENSITY_SETTING", 0.5, 0.01, MAX_DENSITY.value, "mA/cm²",
                            "maximum current density",
                            f"{EVIDENCE} (≈0.5 mA/cm² in reviews; 2 mA/cm² IEC warning)")
COMPLIANCE_VOLTAGE = Range("COMPLIANCE_VOLTAGE", 40.0, 1.0, MAX_COMPLIANCE.value, "V",
                           "compliance voltage", f"{ENGINEERING}; {EVIDENCE}")
SAMPLE_INTERVAL = Range("SAMPLE_INTERVAL", 0.2, 0.05, 2.0, "s", "sample interval", ENGINEERING)

# -- the fail-safe beyond the run's process (guard process, 2450 dead-man) ----------------------

GUARD_TIMEOUT_FACTOR = _limit("GUARD_TIMEOUT_FACTOR", 2.0, "x",
                              "guard: trips after this many (sample interval + VISA timeout) "
                              "without a heartbeat", ENGINEERING)
GUARD_TIMEOUT_MIN = _limit("GUARD_TIMEOUT_MIN", 2.0, "s",
                           "guard: heartbeat timeout never below this", ENGINEERING)
GUARD_ARM_TIMEOUT = _limit("GUARD_ARM_TIMEOUT", 15.0, "s",
                           "guard: the run waits this long for it to arm, else refuses",
                           ENGINEERING)
GUARD_TRIP_ATTEMPTS = _limit("GUARD_TRIP_ATTEMPTS", 5.0, "attempts",
                             "guard: off-write + read-back attempts (reopening) on a trip",
                             ENGINEERING)
DEAD_MAN_MARGIN = _limit("DEAD_MAN_MARGIN", 1.0, "s",
                         "2450 dead-man: T = guard timeout + this (the guard acts first)",
                         ENGINEERING)
DEAD_MAN_SLACK = _limit("DEAD_MAN_SLACK", 10.0, "s",
                        "2450 dead-man: ends by itself this long after the planned end",
                        ENGINEERING)
DEAD_MAN_MEASURE_TIME = _limit("DEAD_MAN_MEASURE_TIME", 0.025, "s",
                               "2450 dead-man: time one measure block takes (1 PLC at 50 Hz)",
                               "2450 Reference Manual (NPLC); docs/scpi.md, 2450 dead-man")

# -- the output guard and the 2450 interlock (ionto_instruments/output.py, keithley2450.py) -------

OFF_CONFIRM_ATTEMPTS = _limit("OFF_CONFIRM_ATTEMPTS", 3.0, "attempts",
                              "run's output guard: read-back attempts of the off (each re-writes "
                              "it, reopening the session), then CRITICAL; the guard process, the "
                              "last resort, tries GUARD_TRIP_ATTEMPTS", ENGINEERING)
ESTOP_LOCK_TIMEOUT = _limit("ESTOP_LOCK_TIMEOUT", 1.0, "s",
                            "emergency stop: longest wait for the exchange in progress before "
                            "writing the off without the I/O lock", ENGINEERING)
INTERLOCK_OPEN_MAX = _limit("INTERLOCK_OPEN_MAX", 37.0, "V",
                            "2450 family, interlock open: highest compliance accepted (the "
                            "output is limited to about 37-42 V)",
                            "2450 Reference Manual Rev. B p. 6-33 (interlock); docs/scpi.md")

# -- `ionto selftest` on a known resistor (procedures/selftest.py) -------------------------------

SELFTEST_CURRENT_LOW = _limit("SELFTEST_CURRENT_LOW", 0.1, "mA",
                              "selftest: first Ohm's-law reading at", ENGINEERING)
SELFTEST_CURRENT_MID = _limit("SELFTEST_CURRENT_MID", 1.0, "mA",
                              "selftest: second Ohm's-law reading at", ENGINEERING)
SELFTEST_CURRENT_HIGH = _limit("SELFTEST_CURRENT_HIGH", 2.0, "mA",
                               "selftest: third Ohm's-law reading (and the compliance trip) at",
                               ENGINEERING)
_DATASHEETS = ("2400 and 2450 datasheets: 0.03-0.05 % + 60-600 nA on the 1-10 mA ranges; "
               "a little wider here")
SELFTEST_CURRENT_GAIN_TOLERANCE = _limit("SELFTEST_CURRENT_GAIN_TOLERANCE", 0.001, "%",
                                         "selftest: measured current within this fraction of "
                                         "the setting ...", _DATASHEETS)
SELFTEST_CURRENT_OFFSET = _limit("SELFTEST_CURRENT_OFFSET", 1.0, "µA",
                                 "selftest: ... plus this offset", _DATASHEETS)
SELFTEST_VOLTAGE_TOLERANCE = _limit("SELFTEST_VOLTAGE_TOLERANCE", 0.001, "%",
                                    "selftest: V/I allowance added to the resistor's tolerance",
                                    ENGINEERING)
SELFTEST_LOAD = Range("SELFTEST_LOAD", 1000.0, 10.0, 15e3, "Ω",
                      "selftest: the resistor across the leads (2 mA must fit under the "
                      "compliance)", ENGINEERING)
SELFTEST_MIN_COMPLIANCE = _limit("SELFTEST_MIN_COMPLIANCE", 5.0, "V",
                                 "selftest: compliance of the Ohm's-law readings at least",
                                 ENGINEERING)
SELFTEST_MAX_OFF_LATENCY = _limit("SELFTEST_MAX_OFF_LATENCY", 0.5, "s",
                                  "selftest: longest time from the off-write to reading back off",
                                  ENGINEERING)

# -- input sanity of the driver (wider than the parameters: the driver is used on its own too) ---

DRIVER_AREA = Range("DRIVER_AREA", 10.0, 0.01, 1000.0, "cm²",
                    "electrode area accepted by CurrentSource.limit_current_density", ENGINEERING)
DRIVER_DENSITY = Range("DRIVER_DENSITY", 0.5, 0.001, MAX_DENSITY.value, "mA/cm²",
                       "density accepted by CurrentSource.limit_current_density", ENGINEERING)

# -- input sanity of the command line and files (issue 9) ----------------------------------------

CLOCK_SPEED = Range("CLOCK_SPEED", 60.0, 1.0, 600.0, "x",
                    "--speed of the simulator's scaled clock (faster: use --fast, the virtual "
                    "clock; beyond 600x the loop cannot keep its 0.05 s deadlines)", ENGINEERING)
PROTOCOL_FILE_MAX = _limit("PROTOCOL_FILE_MAX", 1.0, "MB",
                           "largest protocol file read (a regular file only)", ENGINEERING)
FREE_SPACE_FACTOR = _limit("FREE_SPACE_FACTOR", 2.0, "x",
                           "pre-flight: free space needed, as a multiple of the planned results "
                           "file", ENGINEERING)

# -- the course plan and the before/after form (procedures/records) ------------------------------

_COURSE = f"{EVIDENCE} (Courses and records: the leaflet)"
TRIAL_COUNT = Range("TRIAL_COUNT", 6, 4, 8, "sessions",
                    "a course's trial before the specialist's review", _COURSE)
MIN_INTERVAL = Range("MIN_INTERVAL", 2, 1, 14, "days",
                     "minimum interval between a course's sessions (2: twice weekly)", _COURSE)
WEEKLY_AFTER = Range("WEEKLY_AFTER", 28, 7, 180, "days",
                     "a course goes weekly after (the leaflet: about four weeks)", _COURSE)
PAIN_NRS = Range("PAIN_NRS", 0, 0, 10, "points", "pain score before/after a session (NRS)",
                 f"{EVIDENCE} (Courses and records: adverse-event questionnaires)")

#: Every entry, in the order of the README's table.
TABLE: tuple[Limit | Range, ...] = tuple(
    value for value in dict(globals()).values() if isinstance(value, Limit | Range))
BY_NAME: dict[str, Limit | Range] = {entry.name: entry for entry in TABLE}


def markdown_table() -> str:
    """The README's table of every limit: name, value or range, unit, what, evidence."""
    lines = ["| limit | value | what | evidence |", "|---|---|---|---|"]
    for entry in TABLE:
        if isinstance(entry, Range):
            value = f"{entry.text()} (default {entry.default:g})"
        else:
            value = entry.text()
        what, evidence = (text.replace("|", "\\|") for text in (entry.what, entry.evidence))
        lines.append(f"| `{entry.name}` | {value} | {what} | {evidence} |")
    return "\n".join(lines)


__all__ = ["BY_NAME", "ENGINEERING", "EVIDENCE", "TABLE", "Limit", "Range", "ascii_unit",
           "markdown_table",
           *BY_NAME]
