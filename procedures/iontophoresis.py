"""The ramped constant-current iontophoresis Procedure used by the GUI, the CLI and scripts.

pre-flight -> contact check -> ramp up -> hold -> ramp down -> off. Every sample goes through
the safety monitor; a tripped rule switches the output off at once (one write, then read-back).
Every way out passes through `shutdown()`, which leaves the output off and writes the summary.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

from pymeasure.experiment import (
    BooleanParameter,
    FloatParameter,
    IntegerParameter,
    ListParameter,
    Metadata,
    Parameter,
    Procedure,
)

from ionto_instruments import __version__
from ionto_instruments import limits as L
from ionto_instruments.clock import Clock, RealClock
from ionto_instruments.connect import (
    DEFAULT_BAUD_RATE,
    DEFAULT_TERMINATOR,
    SERIAL_TERMINATORS,
    SUPPORTED_MODELS,
    open_source,
)
from ionto_instruments.deadman2450 import (
    DeadManPlan,
    dead_man_timeout,
    open_dead_man_source,
)
from ionto_instruments.instrument_lock import InstrumentLock
from ionto_instruments.limits import Range, ascii_unit
from ionto_instruments.output import OutputGuard
from ionto_instruments.source import CurrentSource, InstrumentError, InstrumentFault

from .contracts import (
    EMERGENCY_STOP,
    INSTRUMENT_FAULT,
    PRE_FLIGHT,
    TRIP_OUTCOMES,
    EventKind,
    Outcome,
    Phase,
    SafetyState,
)
from .drugs import DRUGS, get_drug
from .events import CELL_SEPARATOR, RunEvent
from .guard import GUARD_RULE, GuardError, GuardLink, heartbeat_timeout
from .keepawake import SleepInhibitor
from .plan import DoseIntegrator, InvalidParameter, ProtocolPlan
from .results import (
    DATA_COLUMNS,
    STORAGE_FAULT,
    StorageFault,
    summary_path,
    sync_file,
    write_summary_somewhere,
)
from .safety import (
    RULE_NAMES,
    Level,
    Rule,
    SafetyConfig,
    SafetyMonitor,
    Sample,
    evaluate_contact_check,
)
from .screening import evaluate_screening

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

CONTACT_CHECK_MA = L.CONTACT_CHECK_CURRENT.value
CONTACT_CHECK_S = L.CONTACT_CHECK_DURATION.value
SUBJECT_KINDS = ("human", "phantom", "in-vitro")
#: Real-time scheduling jitter tolerated on a scaled (simulator-only) clock before stale-data.
SCALED_CLOCK_JITTER_S = L.SCALED_CLOCK_JITTER.value
PAUSE_RAMP_S = L.PAUSE_RAMP.value


def _ranged(name: str, limit: Range, **options: Any) -> FloatParameter:
    """A FloatParameter whose default, minimum, maximum and unit come from the limits table."""
    return FloatParameter(name, units=ascii_unit(limit.unit), default=limit.default,
                          minimum=limit.minimum, maximum=limit.maximum, **options)


@dataclass(frozen=True)
class LiveStatus:
    """What a front panel or progress line shows; replaced atomically every sample."""

    phase: str = Phase.PRE_FLIGHT
    t: float = 0.0
    elapsed_s: float = 0.0
    remaining_s: float = math.nan
    setpoint_mA: float = 0.0
    current_mA: float = math.nan
    voltage_V: float = math.nan
    impedance_kohm: float = math.nan
    dose_mA_min: float = 0.0
    density_mA_cm2: float = math.nan
    compliance: bool = False
    safety: SafetyState = SafetyState.OK
    last_event: str = ""
    progress: float = 0.0


class _Abort(Exception):
    """Internal: leave the sampling loop now (the output is already off)."""


@dataclass
class _RunState:
    outcome: Outcome | None = None
    rule: str | None = None
    reason: str = ""
    events: list[RunEvent] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    samples: int = 0
    treatment_start: float | None = None
    treatment_end: float | None = None
    max_lateness_s: float = 0.0
    error: BaseException | None = None


class ConstantCurrentIontophoresis(Procedure):
    """Ramped ~30-minute constant-current iontophoresis with burn-risk aborts."""

    target_current = _ranged("Target current", L.TARGET_CURRENT, decimals=3, step=0.1)
    ramp_up = _ranged("Ramp-up", L.RAMP)
    treatment_time = _ranged("Treatment time", L.TREATMENT_TIME)
    ramp_down = _ranged("Ramp-down", L.RAMP)
    dose_controlled = BooleanParameter("Dose-controlled", default=False)
    dose_target = _ranged("Dose target", L.DOSE_TARGET, group_by="dose_controlled")
    electrode_area = _ranged("Electrode area", L.ELECTRODE_AREA)
    max_density = _ranged("Maximum current density", L.MAX_DENSITY_SETTING, decimals=3)
    compliance_voltage = _ranged("Compliance voltage", L.COMPLIANCE_VOLTAGE)
    sample_interval = _ranged("Sample interval", L.SAMPLE_INTERVAL, decimals=3)
    drug = ListParameter("Drug", choices=list(DRUGS), default="none")
    subject_kind = ListParameter("Subject", choices=list(SUBJECT_KINDS), default="phantom")
    screening_confirmed = BooleanParameter("Screening confirmed", default=False)
    subject_id = Parameter("Subject ID", default="")
    session_id = Parameter("Session ID", default="")
    operator_note = Parameter("Operator note", default="")
    resource = Parameter("VISA resource", default="")
    baud_rate = IntegerParameter("RS-232 baud rate", default=DEFAULT_BAUD_RATE, minimum=300,
                                 maximum=115200)
    serial_terminator = ListParameter("RS-232 terminator", choices=list(SERIAL_TERMINATORS),
                                      default=DEFAULT_TERMINATOR)
    instrument_model = ListParameter("Instrument model", choices=list(SUPPORTED_MODELS),
                                     default="keithley2400")
    scenario = Parameter("Simulator scenario", default="normal")
    seed = IntegerParameter("Simulator seed", default=0, minimum=0, maximum=2**31 - 1)

    instrument_idn = Metadata("Instrument", default="")
    simulated = Metadata("Simulated", default="")
    clock_name = Metadata("Clock", default="")
    software_version = Metadata("Software version", default=__version__)
    started_at = Metadata("Started", default="")

    DATA_COLUMNS = DATA_COLUMNS

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Clock shared with the simulator; set by the caller (default: real time).
        self.clock: Clock | None = None
        #: A pre-opened source to use instead of opening one from the parameters.
        self.source: CurrentSource | None = None
        #: Additional safety rules (instances of `safety.Rule`).
        self.extra_rules: list[Any] = []
        #: Set by IontoResults: where the rows go (the summary is written beside it).
        self.results_file: str | None = None
        #: The summary dict, available after shutdown.
        self.summary: dict[str, Any] | None = None
        #: The screening answers (question key -> yes), recorded in the summary.
        self.screening_answers: dict[str, bool] | None = None
        #: Set by IontoResults: raises StorageFault when the last row did not reach the disk.
        self.storage_check: Callable[[], None] | None = None
        self.storage_close: Callable[[], None] | None = None
        self._started = False
        self._instrument_lock: InstrumentLock | None = None
        #: Set when shutdown() has finished: output off, summary written (or attempted).
        self.shutdown_done = threading.Event()
        self._storage_error: str | None = None
        self._storage_handled = False
        self.live = LiveStatus()
        self._state = _RunState()
        #: The one owner of the output state and of every way to switch it.
        self.output = OutputGuard()
        self._opened_source = False
        self._estop = threading.Event()
        self._stop_request = threading.Event()
        self._pause_request = threading.Event()
        self._resume_request = threading.Event()
        self._wake = threading.Event()
        self._in_pause = False
        self._paused_since: float | None = None
        self._paused_total_s = 0.0
        self._pauses: list[dict[str, float]] = []
        self._resume_t: float | None = None
        self._rebase_ticks = False
        self._frozen_remaining: float | None = None
        self._estop_reason = ""
        self._plan: ProtocolPlan | None = None
        self._monitor: SafetyMonitor | None = None
        self._dose = DoseIntegrator()
        self._t0 = 0.0
        self._last_setpoint: float | None = None
        #: The guard process: None = automatic (every real-time run on a VISA resource).
        self.guard_required: bool | None = None
        self.guard: GuardLink | None = None
        self._guard_handled = False
        self._guard_ramp_pending = False
        self._inhibitor = SleepInhibitor()
        #: On a 2450 in real time, hold the output with the instrument's own dead-man.
        self.instrument_dead_man = True
        self._dead_man: DeadManPlan | None = None

    # ------------------------------------------------------------------ public controls

    @property
    def has_started(self) -> bool:
        """True once a run of this Procedure has begun: a Procedure runs once."""
        return self._started

    def mark_started(self) -> None:
        """Claim this Procedure for a run (the runner calls it before creating any file)."""
        self._started = True

    def build_plan(self) -> ProtocolPlan:
        """Return the protocol plan from the parameters; raise InvalidParameter if unsafe."""
        drug = get_drug(self.drug)
        plan = ProtocolPlan(
            target_mA=float(self.target_current),
            polarity=drug.polarity,
            ramp_up_s=float(self.ramp_up),
            total_min=float(self.treatment_time),
            ramp_down_s=float(self.ramp_down),
            dose_target_mA_min=float(self.dose_target) if self.dose_controlled else None,
            electrode_area_cm2=float(self.electrode_area),
            max_density_mA_cm2=float(self.max_density),
            compliance_V=float(self.compliance_voltage),
            sample_interval_s=float(self.sample_interval),
        )
        plan.validate()
        return plan

    def preflight(self) -> ProtocolPlan:
        """Check every parameter and the subject screening; raise InvalidParameter if refused."""
        try:
            get_drug(self.drug)
        except ValueError as exc:
            raise InvalidParameter("drug", str(exc)) from None
        if self.subject_kind not in SUBJECT_KINDS:
            raise InvalidParameter("subject", f"{self.subject_kind!r} is not one of "
                                              f"{', '.join(SUBJECT_KINDS)}")
        if self.instrument_model not in SUPPORTED_MODELS:
            raise InvalidParameter("instrument model", f"{self.instrument_model!r} is not one "
                                   f"of {', '.join(SUPPORTED_MODELS)}")
        plan = self.build_plan()
        if self.subject_kind == "human" and self.screening_answers is not None:
            screening = evaluate_screening(self.screening_answers)
            if not screening.passed:
                raise InvalidParameter("screening", screening.reason)
        self._check_extra_rules()
        if self.subject_kind == "human" and not self.screening_confirmed:
            raise InvalidParameter(
                "screening", "a human subject requires the contraindication screening to be "
                "confirmed (pregnancy, drug hypersensitivity, adrenal tumour, heart complaints "
                "from high blood pressure, heart rhythm disorders, pacemaker)")
        return plan

    def _check_extra_rules(self) -> None:
        """Refuse extra rules that are not Rules, have a bad level, or reuse a name."""
        seen = set(RULE_NAMES)
        for rule in self.extra_rules:
            if not isinstance(rule, Rule):
                raise InvalidParameter("extra_rules", f"{rule!r} is not a safety.Rule "
                                       f"(subclass ionto_instruments.procedures.safety.Rule)")
            if rule.level not in (Level.WARN, Level.ABORT):
                raise InvalidParameter("extra_rules", f"rule {rule.name!r} must have level "
                                                      f"WARN or ABORT")
            if not rule.name or rule.name in seen:
                raise InvalidParameter("extra_rules", f"rule name {rule.name!r} is empty or "
                                                      f"already taken")
            seen.add(rule.name)

    def confirm_screening(self, answers: dict[str, bool]) -> None:
        """Record a completed screening; raise InvalidParameter naming any contraindication."""
        self.screening_answers = dict(answers)
        result = evaluate_screening(answers)
        if not result.passed:
            raise InvalidParameter("screening", result.reason)
        self.screening_confirmed = True

    def emergency_stop(self, reason: str = "Emergency stop by the operator") -> None:
        """Switch the output off at once, without waiting for the next sample.

        Any-thread contract: callable from the GUI thread, a signal handler's thread or the
        worker itself, at any time (before startup, mid-exchange, after the end), any number
        of times; never raises. It writes the off at once through `OutputGuard.emergency_stop`
        (waiting at most for the exchange in progress, under the I/O lock), refuses every
        later output-on, and wakes the worker, which records the trip, confirms the off by
        read-back and ends the run (outcome `aborted`, rule `emergency-stop`). The first
        reason given is the one recorded.
        """
        if not self._estop.is_set():
            self._estop_reason = reason
        self._estop.set()
        self._wake.set()
        self.output.emergency_stop()

    def request_stop(self) -> None:
        """Operator stop: ramp down over the ramp-down time, then switch off."""
        self._stop_request.set()
        self._wake.set()

    def pause(self) -> None:
        """Pause the treatment: ramp to zero over PAUSE_RAMP, output off and confirmed.

        For the GUI, the CLI and scripts (any thread; not a signal). Honoured once the
        treatment has begun (ramp-up, hold). The delivered dose and the elapsed treatment time
        are kept; the pause does not count as treatment time. Stop and emergency stop work
        while paused. Pauses are `pause`/`resume` events and the summary's `pauses`.
        """
        self._resume_request.clear()
        self._pause_request.set()
        self._wake.set()

    def resume(self) -> None:
        """Resume a paused treatment: the contact check again, then ramp back up to the target.

        In dose-controlled mode the hold extends until the dose is delivered, within the
        maximum treatment time (pauses not counted).
        """
        self._resume_request.set()
        self._wake.set()

    @property
    def paused(self) -> bool:
        """True while the output is off for a pause (until the resume's contact check ends)."""
        return self._paused_since is not None

    @property
    def pause_requested(self) -> bool:
        """True from `pause()` until the pause has begun."""
        return self._pause_request.is_set()

    @property
    def events(self) -> tuple[RunEvent, ...]:
        """Every event so far, with its kind as data (a snapshot; safe from any thread).

        A front panel shows `events[n:]` for the events it has not shown yet.
        """
        return tuple(self._state.events)

    @property
    def simulator(self) -> Any:
        """The SimulatedSourceMeter behind the source, or None on hardware."""
        return getattr(self.source, "simulator", None)

    # ------------------------------------------------------------------ PyMeasure hooks

    def startup(self) -> None:
        """Pre-flight (nothing energized yet), connect, verify, configure, start the run clock."""
        self.clock = self.clock or RealClock()
        self.clock_name = self.clock.name
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        if self._state.outcome is not None or self.summary is not None:
            # Reused (not through the runner, which refuses earlier): refuse on a clean slate.
            self._state, self.summary, self.source = _RunState(), None, None
            self._set_phase(Phase.PRE_FLIGHT, 0.0)
            self._finish(Outcome.REFUSED, PRE_FLIGHT, "Refused: this Procedure has already "
                                                      "run; a Procedure runs once")
            return
        self._started = True
        self._set_phase(Phase.PRE_FLIGHT, 0.0)
        try:
            self._plan = self.preflight()
        except (InvalidParameter, ValueError) as exc:
            self._finish(Outcome.REFUSED, PRE_FLIGHT, f"Refused before energizing: {exc}")
            return
        try:
            if self.source is None and self.resource:
                self._instrument_lock = InstrumentLock(self.resource)
                self._instrument_lock.acquire()  # one instrument, one controller
            if self.source is None and self._wants_dead_man():
                self.source = open_dead_man_source(self.resource, baud_rate=int(self.baud_rate),
                                                   terminator=self.serial_terminator)
                self._opened_source = True
            if self.source is None:
                self.source = open_source(
                    resource=self.resource or None, model=self.instrument_model,
                    scenario=self.scenario, clock=self.clock, seed=int(self.seed),
                    baud_rate=int(self.baud_rate), terminator=self.serial_terminator)
                self._opened_source = True
            self.output.attach(self.source)
            self.instrument_idn = self.source.identify()
            self.simulated = str(bool(self.source.simulated))
            try:  # the model's limits and state (e.g. 2450 interlock), before configuring
                self.source.check_limits(self._plan.compliance_V, self._plan.target_mA * 1e-3)
            except ValueError as exc:
                self._finish("refused", "pre-flight", f"Refused before energizing: {exc}")
                return
            self.source.limit_current_density(self._plan.electrode_area_cm2,
                                              self._plan.max_density_mA_cm2)
            self.source.configure_current_source(compliance_voltage=self._plan.compliance_V)
        except (InstrumentError, OSError) as exc:
            self._finish(Outcome.FAULT, INSTRUMENT_FAULT,
                         f"The instrument could not be used, nothing was energized: {exc}")
            return
        self._monitor = SafetyMonitor(self._safety_config(self._plan), self.extra_rules)
        self._t0 = self.clock.now()
        try:
            self._start_guard()
        except GuardError as exc:
            self._finish(Outcome.FAULT, GUARD_RULE, f"Refused before energizing: {exc}")
            return
        log.info("Run started: %s", self._describe_plan())

    def execute(self) -> None:
        """Contact check, then the ramped constant-current treatment."""
        if self._state.outcome is not None:
            return
        try:
            self._contact_check()
            self._treatment()
        except _Abort:
            pass
        except InstrumentFault as exc:
            with contextlib.suppress(_Abort):
                self._fault(exc)
        except StorageFault as exc:
            self._storage_fault(str(exc))
        except BaseException as exc:
            self._state.error = exc
            self.output.off_now()
            self._finish(Outcome.FAULT, None, f"Internal error, output switched off: "
                                              f"{type(exc).__name__}: {exc}")
            raise

    def shutdown(self) -> None:
        """The one exit path: output off and confirmed, errors drained, summary on disk."""
        try:
            self._shutdown()
        except BaseException:
            log.exception("Shutdown hit an error; the output-off attempt was made first")
        finally:
            self.shutdown_done.set()

    # ------------------------------------------------------------------ phases

    def _contact_check(self, refusal: Outcome = Outcome.REFUSED) -> None:
        plan = self._require_plan()
        self._set_phase(Phase.CONTACT_CHECK, self._t())
        test_mA = plan.polarity * CONTACT_CHECK_MA
        self._set_current(test_mA)
        self._before_output_on()
        self.output.on()  # refused after an emergency stop: the first tick then records it
        impedances: list[float] = []
        compliance = False
        end = self._t() + CONTACT_CHECK_S
        for sample in self._ticks(lambda t: (Phase.CONTACT_CHECK, test_mA),
                                 until=lambda s: s.t >= end, delay_first=False):
            compliance = compliance or sample.compliance
            if math.isfinite(sample.impedance_kohm):
                impedances.append(sample.impedance_kohm * 1e3)
        tail = impedances[len(impedances) // 2:] or [math.inf]
        impedance = statistics.median(tail)
        verdict = evaluate_contact_check(impedance, compliance, self._monitor_config())
        if verdict is not None and verdict.level == Level.ABORT:
            self._trip(self._t(), refusal, verdict.rule, verdict.message,
                       phase=Phase.CONTACT_CHECK)
        self._event(self._t(), EventKind.INFO, f"Contact check passed: skin impedance "
                                       f"{impedance / 1e3:.1f} kOhm at {CONTACT_CHECK_MA} mA")

    def _treatment(self) -> None:
        plan = self._require_plan()
        start = self._t()
        self._state.treatment_start = start
        dose_at_start = self._dose.dose_mA_min

        if plan.dose_target_mA_min is None:
            def profile(t: float) -> tuple[str, float]:
                tau = self._elapsed(t)  # treatment time: pauses do not count
                phase = plan.phase(tau)
                phase = Phase.RAMP_DOWN if phase == Phase.OFF else phase
                return self._after_resume(phase, plan.setpoint(tau), t)

            for _ in self._ticks(profile, until=lambda s: self._elapsed(s.t) >= plan.total_s):
                pass
            self._switch_off_at_end(Outcome.COMPLETED)
            return

        def dose_profile(t: float) -> tuple[str, float]:
            tt = self._elapsed(t)
            if tt < plan.ramp_up_s:
                return self._after_resume(Phase.RAMP_UP, plan.ramp_up_setpoint(tt), t)
            return self._after_resume(Phase.HOLD, plan.setpoint_mA, t)

        def hold_done(sample: Sample) -> bool:
            if sample.phase != Phase.HOLD:
                return False
            ramp_down_dose = abs(sample.current_mA) * plan.ramp_down_s / 120.0
            delivered = sample.dose_mA_min - dose_at_start
            return (delivered + ramp_down_dose >= plan.dose_target_mA_min
                    or self._elapsed(sample.t) >= plan.total_s - plan.ramp_down_s)

        last = None
        for sample in self._ticks(dose_profile, until=hold_done):
            last = sample
        if last is not None:
            delivered = last.dose_mA_min - dose_at_start
            expected = delivered + abs(last.current_mA) * plan.ramp_down_s / 120.0
            if expected < plan.dose_target_mA_min * 0.99:
                self._event(self._t(), EventKind.WARNING,
                            f"Treatment time reached before the dose target: {delivered:.1f} of "
                            f"{plan.dose_target_mA_min:g} mA*min; ramping down")
        self._ramp_down(from_mA=self._last_setpoint or 0.0, outcome=Outcome.COMPLETED)

    def _ramp_down(self, from_mA: float, outcome: Outcome, reason: str = "",
                   delay_first: bool = True, rule: str | None = None) -> None:
        plan = self._require_plan()
        start = self._t() + (plan.sample_interval_s if delay_first else 0.0)

        def profile(t: float) -> tuple[str, float]:
            return Phase.RAMP_DOWN, plan.ramp_down_setpoint(from_mA, t - start)

        def ramp() -> None:
            for _ in self._ticks(profile, until=lambda s: s.setpoint_mA == 0.0,
                                 stoppable=False, delay_first=delay_first):
                pass

        self._switch_off_at_end(outcome, reason, ramp, rule)

    def _switch_off_at_end(self, outcome: Outcome, reason: str = "",
                           ramp: Any = None, rule: str | None = None) -> None:
        """Ramp to zero, output off, confirm by read-back, record the outcome (a fault when
        the off cannot be confirmed)."""

        def ended() -> None:
            self._state.treatment_end = self._t()

        confirmed = self.output.ramped_off(ramp, after_write=ended)
        self._set_phase(Phase.OFF, self._t())
        if not confirmed:  # never "completed" or "stopped" with the output maybe still on
            self._trip(self._t(), Outcome.FAULT, INSTRUMENT_FAULT, "The output could not be "
                       "confirmed off at the end of the run: switch the SourceMeter off by hand "
                       "(front-panel OUTPUT key) and disconnect the patient leads",
                       phase=Phase.OFF)
        if outcome == Outcome.COMPLETED:
            reason = f"Treatment completed: {self._dose.dose_mA_min:.2f} mA*min delivered"
        self._finish(outcome, rule, reason)
        self._emit_marker(Phase.OFF)

    # ------------------------------------------------------------------ the sampling loop

    def _ticks(self, profile, until, stoppable: bool = True, delay_first: bool = True):
        """Yield one Sample per interval on absolute deadlines until `until(sample)` is true.

        With `delay_first`, the first sample waits one interval after the previous phase's.
        """
        plan = self._require_plan()
        clock = self._clock()
        interval = plan.sample_interval_s
        base = clock.now()
        k = 0
        if delay_first:
            k = 1
            self._sleep_until(base + interval - self._t0)
        while True:
            self._beat()
            self._check_interrupts(stoppable)
            if self._rebase_ticks:  # back from a pause: a new schedule, the gap is not lateness
                self._rebase_ticks = False
                base, k = clock.now(), 0
            phase, setpoint = profile(self._t())
            self._set_phase(phase, self._t())
            sample = self._take_sample(phase, setpoint)
            yield sample
            if until(sample):
                return
            k += 1
            deadline = base + k * interval
            now = clock.now()
            if now > deadline:
                self._state.max_lateness_s = max(self._state.max_lateness_s, now - deadline)
                k = math.ceil((now - base) / interval)
                deadline = base + k * interval
            self._sleep_until(deadline - self._t0)

    def _take_sample(self, phase: str, setpoint_mA: float) -> Sample:
        plan = self._require_plan()
        monitor = self._require_monitor()
        self._set_current(setpoint_mA)
        self._check_interrupts(stoppable=False)
        reading = self._source().read()
        self._check_interrupts(stoppable=False)
        t = self._t()
        current_mA = reading.current * 1e3
        sample = Sample(t=t, phase=phase, setpoint_mA=setpoint_mA, current_mA=current_mA,
                        voltage_V=reading.voltage, compliance=bool(reading.compliance),
                        dose_mA_min=self._dose.add(t, current_mA))
        self._state.samples += 1
        verdicts = monitor.check_staleness(t) + monitor.check(sample)
        trip = next((v for v in verdicts if v.level == Level.ABORT), None)
        warnings = [v.message for v in verdicts if v.level == Level.WARN]
        if trip is not None:
            self._trip(t, Outcome.ABORTED, trip.rule, trip.message, row=(sample, plan),
                       warnings=warnings)
        for message in warnings:
            self._event(t, EventKind.WARNING, message)
        self._emit_row(sample, plan)
        if self._storage_error is not None and not self._storage_handled:
            raise StorageFault(self._storage_error)
        return sample

    def _check_interrupts(self, stoppable: bool) -> None:
        self._check_guard(stoppable)
        if self._estop.is_set():
            self._trip(self._t(), Outcome.ABORTED, EMERGENCY_STOP,
                       f"{self._estop_reason}: output switched off at once")
        if (stoppable and self._pause_request.is_set() and not self._in_pause
                and self._state.treatment_start is not None):
            self._pause()
        if stoppable and (self._stop_request.is_set() or self.should_stop()):
            t = self._t()
            self._frozen_remaining = self._remaining(t)  # the display stops counting
            self._event(t, EventKind.STOP, "Stop requested by the operator: ramping down")
            self._ramp_down(from_mA=self._last_setpoint or 0.0, outcome=Outcome.STOPPED,
                            reason="Stopped by the operator: ramped down, output off",
                            delay_first=False)
            raise _Abort

    # ------------------------------------------------------------------ pause and resume

    def _pause(self) -> None:
        """Ramp to zero (rules armed), output off and confirmed; wait; contact check; go on."""
        self._in_pause = True
        try:
            self._pause_request.clear()
            t = self._t()
            self._event(t, EventKind.PAUSE, "Paused by the operator: ramping to zero, then "
                                            "output off")
            from_mA = self._last_setpoint or 0.0

            def profile(now: float) -> tuple[str, float]:
                left = 1.0 - (now - t) / PAUSE_RAMP_S if PAUSE_RAMP_S > 0 else 0.0
                return Phase.RAMP_DOWN, from_mA * left if left > 1e-9 else 0.0

            def ramp() -> None:
                for _ in self._ticks(profile, until=lambda s: s.setpoint_mA == 0.0,
                                     stoppable=False, delay_first=False):
                    pass

            if not self.output.ramped_off(ramp):
                self._trip(self._t(), Outcome.FAULT, INSTRUMENT_FAULT,
                           "Pause: the output could not be confirmed off")
            self._paused_since = self._t()
            self._dose.break_segment()
            self._set_phase(Phase.PAUSED, self._paused_since)
            self._emit_marker(Phase.PAUSED)
            self._wait_for_resume()
            self._event(self._t(), EventKind.RESUME, "Resumed by the operator: contact check, "
                                                     "then ramping back up")
            self._require_monitor().reset()  # no stale-data or history across the gap
            self._contact_check(refusal=Outcome.ABORTED)
            self._end_pause(self._t())
            self._resume_t = self._t()
            self._rebase_ticks = True
        finally:
            self._in_pause = False

    def _wait_for_resume(self) -> None:
        """While paused: output off; a stop ends the run, an emergency stop trips."""
        while not self._resume_request.is_set():
            self._beat()  # the guard watches a paused run too (no false trip)
            self._check_interrupts(stoppable=False)
            if self._stop_request.is_set() or self.should_stop():
                t = self._t()
                self._end_pause(t)
                self._frozen_remaining = self._remaining(t)
                self._event(t, EventKind.STOP, "Stopped by the operator while paused")
                self._switch_off_at_end(Outcome.STOPPED, "Stopped by the operator while "
                                                         "paused: output off")
                raise _Abort
            self._wake.wait(0.05)  # real time: a virtual clock does not run on while paused
            if not self._estop.is_set():
                self._wake.clear()
        self._resume_request.clear()

    def _end_pause(self, t: float) -> None:
        if self._paused_since is None:
            return
        duration = t - self._paused_since
        self._pauses.append({"start_s": round(self._paused_since, 4), "end_s": round(t, 4),
                             "duration_s": round(duration, 4)})
        self._paused_total_s += duration
        self._paused_since = None

    def _after_resume(self, phase: str, setpoint: float, t: float) -> tuple[str, float]:
        """After a resume, ramp back up to the profile over the ramp-up time."""
        if self._resume_t is None:
            return phase, setpoint
        plan = self._require_plan()
        fraction = (t - self._resume_t) / plan.ramp_up_s if plan.ramp_up_s > 0 else 1.0
        if fraction >= 1.0:
            self._resume_t = None
            return phase, setpoint
        limit = plan.setpoint_mA * max(fraction, 0.0)
        if abs(setpoint) <= abs(limit):
            return phase, setpoint
        return Phase.RAMP_UP, limit

    # ------------------------------------------------------------------ I/O helpers

    def _set_current(self, setpoint_mA: float) -> None:
        if setpoint_mA != self._last_setpoint:
            self._source().set_current(setpoint_mA * 1e-3)
            self._last_setpoint = setpoint_mA

    def _trip(self, t: float, outcome: Outcome, rule: str | None, message: str, *,
              phase: str | None = None, row: tuple[Sample, ProtocolPlan] | None = None,
              warnings: list[str] | None = None) -> NoReturn:
        """The one trip path: output off now, the trip event, its row, the outcome, leave.

        The event goes on the tripping sample's `row` when there is one, else on a marker row
        at `t` in `phase` (default: the current phase). Warnings of the same tick follow it.
        """
        self.output.off_now()
        self._event(t, EventKind.TRIP, message)
        for warning in warnings or ():
            self._event(t, EventKind.WARNING, warning)
        if row is not None:
            self._emit_row(*row)
        else:
            self._emit_marker(phase or self.live.phase, t)
        self._finish(outcome, rule, message)
        raise _Abort

    def _fault(self, exc: BaseException) -> NoReturn:
        if self._estop.is_set():  # the e-stop's device clear aborted the exchange in progress
            self._check_interrupts(stoppable=False)
        t = self._t()
        verdicts = self._require_monitor().no_reading(t, f"{type(exc).__name__}: {exc}")
        verdict = next((v for v in verdicts if v.level == Level.ABORT), None)
        message = verdict.message if verdict else f"Instrument fault: {exc}"
        self._trip(t, Outcome.FAULT, INSTRUMENT_FAULT, message)

    # ------------------------------------------------------------------ the guard process

    def _needs_guard(self) -> bool:
        """Automatic: every real-time run on a VISA resource (not the in-process simulator)."""
        if self.guard_required is not None:
            return self.guard_required
        return not getattr(self.source, "simulated", False) and isinstance(self._clock(),
                                                                           RealClock)

    def _start_guard(self) -> None:
        """Start the guard process and wait until it is armed (GuardError if it cannot be)."""
        self.guard_required = self._needs_guard()
        if not self.guard_required:
            return
        source = self._source()
        plan = self._require_plan()
        t0 = self._t0 if isinstance(self._clock(), RealClock) else None
        link = GuardLink(source.resource_name, self.instrument_model,
                         heartbeat_timeout(plan.sample_interval_s), self.results_file, t0,
                         visa_library=str(getattr(source, "_open_args", ("",))[0] or ""))
        link.start()
        self.guard = link
        self._arm_dead_man()
        self._event(self._t(), EventKind.INFO, f"Guard process {link.pid} armed on "
                    f"{link.resource} (timeout {link.timeout_s:g} s)")

    def _arm_dead_man(self) -> None:
        """2450: (re)arm the instrument's dead-man for what is left of the run from now."""
        arm = getattr(self.source, "arm_dead_man", None)
        if arm is None or self.guard is None:
            return
        plan = self._require_plan()
        left = max(0.0, plan.total_s - self._elapsed(self._t()))  # pauses not counted
        self._dead_man = DeadManPlan(
            timeout_s=dead_man_timeout(plan.sample_interval_s, self.guard.timeout_s),
            planned_s=CONTACT_CHECK_S + left + plan.ramp_up_s + plan.ramp_down_s
            + L.DEAD_MAN_SLACK.value,
            sample_interval_s=plan.sample_interval_s)
        arm(self._dead_man)
        self._event(self._t(), EventKind.INFO, f"2450 dead-man armed: the instrument switches "
                    f"off {self._dead_man.timeout_s:g} s after the last heartbeat and by "
                    f"itself {self._dead_man.planned_s:g} s after output-on")

    def _before_output_on(self) -> None:
        """Refuse output-on unless the guard is up and armed; re-arm the 2450 dead-man for
        the time left; hold the sleep inhibitor."""
        if self.guard_required and (self.guard is None or not self.guard.armed
                                    or self.guard.problem() is not None):
            self._finish(Outcome.FAULT, GUARD_RULE, "Refused to switch the output on: the "
                         "guard process is not up and armed")
            raise _Abort
        if self._dead_man is not None:
            self._arm_dead_man()
        if isinstance(self._clock(), RealClock):
            self._inhibitor.acquire()

    def _wants_dead_man(self) -> bool:
        return (bool(self.resource) and self.instrument_model == "keithley2450"
                and self.instrument_dead_man and self.guard_required is not False
                and isinstance(self._clock(), RealClock))

    def _beat(self) -> None:
        """Heartbeat to the guard process and (2450) to the instrument's dead-man."""
        if self.guard is not None:
            self.guard.beat()
        heartbeat = getattr(self.source, "heartbeat", None)
        if heartbeat is not None:
            heartbeat()

    def _check_guard(self, stoppable: bool) -> None:
        """A guard that died, froze or tripped ends the treatment as a fault."""
        guard = self.guard
        if guard is None:
            return
        if self._guard_handled:
            if stoppable and self._guard_ramp_pending:
                self._guard_ramp_pending = False
                self._ramp_down(from_mA=self._last_setpoint or 0.0, outcome=Outcome.FAULT,
                                reason=self._state.reason, delay_first=False)
                raise _Abort
            return
        problem = guard.problem()
        if problem is None:
            return
        self._guard_handled = True
        t = self._t()
        if guard.guard_tripped():
            self._trip(t, Outcome.FAULT, GUARD_RULE, f"{problem}: output off, run ended")
        message = f"Guard lost ({problem}): the treatment is stopped, ramping down"
        self._event(t, EventKind.TRIP, message)
        self._finish(Outcome.FAULT, GUARD_RULE, message)
        # Ramp down at the next point where the loop may change course (now, if it can);
        # a ramp-down already under way simply goes on.
        self._guard_ramp_pending = True
        self._check_guard(stoppable)

    def _end_guard(self) -> None:
        """Release the guard once the output is confirmed off; otherwise leave it armed."""
        guard = self.guard
        if guard is None or guard.released:
            return
        if self.output.off_confirmed_or_never_on:
            guard.release()
        else:
            log.critical("The output is not confirmed off: the guard stays armed and will "
                         "switch it off when this run's heartbeat stops")

    # ------------------------------------------------------------------ bookkeeping

    def _shutdown(self) -> None:
        state = self._state
        if self.source is not None and self.output.source is None:
            self.output.attach(self.source)  # a pre-opened source, startup ended before it
        with contextlib.suppress(Exception):
            self._beat()
        self.output.off_now()
        self._inhibitor.release()
        self._end_guard()
        if state.outcome is None:
            if state.error is not None:
                self._finish(Outcome.FAULT, None, f"Internal error: {state.error}")
            elif self.should_stop():
                self._finish(Outcome.ABORTED, EMERGENCY_STOP, "Run aborted before it finished; "
                                                              "output switched off")
            else:
                self._finish(Outcome.FAULT, None,
                             "The run ended unexpectedly; output switched off")
        if self.source is not None:
            try:
                for error in self.source.drain_errors():
                    self._event(self._t(), EventKind.INSTRUMENT_ERROR, error)
            except Exception as exc:
                log.warning("Could not read the instrument's error queue: %s", exc)
        if state.outcome == Outcome.COMPLETED and self._storage_error is not None:
            # Never "completed" with data missing (the failure came with the last rows).
            state.outcome, state.rule = Outcome.FAULT, STORAGE_FAULT
            state.reason = f"Storage fault: {self._storage_error}. The results are incomplete."
        self.summary = self._make_summary()
        if self.storage_close is not None:
            self.storage_close()
        if self.results_file:
            sync_file(self.results_file)
            where = write_summary_somewhere(self.summary, self.results_file)
            if where != str(summary_path(self.results_file)):
                self.summary["summary_file"] = where
        if self._opened_source and self.source is not None:
            try:
                self.source.close()
            except Exception as exc:
                log.warning("Closing the instrument session failed: %s", exc)
        self._release_instrument()
        status = {Outcome.COMPLETED: Procedure.FINISHED, Outcome.STOPPED: Procedure.FINISHED,
                  Outcome.ABORTED: Procedure.ABORTED}.get(state.outcome, Procedure.FAILED)
        # Report only what the Worker will not: after an exception it has already sent FAILED,
        # and a second status message crashes PyMeasure's Manager.
        if status != Procedure.FINISHED and self.status == Procedure.RUNNING:
            self.status = status
            try:
                self.emit("status", status)
            except Exception:
                log.debug("No worker to notify of the final status")
        log.info("Run ended: %s%s. %s", state.outcome,
                 f" ({state.rule})" if state.rule else "", state.reason)

    def _release_instrument(self) -> None:
        """Give the instrument back after the close, only if its output is confirmed off."""
        lock = self._instrument_lock
        if lock is None:
            return
        if self.output.off_confirmed_or_never_on:
            lock.release()
        else:
            lock.keep_held("its output was NOT confirmed off at the end of the last run: "
                           "switch it off by hand (front-panel OUTPUT key) and restart the "
                           "program")
            log.critical("The instrument lock stays held: the output is not confirmed off")

    def _finish(self, outcome: Outcome, rule: str | None, reason: str) -> None:
        if self._state.outcome is not None:
            return
        self._state.outcome, self._state.rule, self._state.reason = outcome, rule, reason
        safety = SafetyState.TRIPPED if outcome in TRIP_OUTCOMES else self.live.safety
        self._update_live(safety=safety, last_event=reason)

    def _event(self, t: float, kind: EventKind, message: str) -> None:
        event = RunEvent(round(t, 4), kind, message)  # as written: rows' `Time (s)` precision
        self._state.events.append(event)
        self._state.pending.append(event.cell_text())
        safety = {EventKind.TRIP: SafetyState.TRIPPED,
                  EventKind.WARNING: SafetyState.WARNING}.get(kind, self.live.safety)
        if self.live.safety == SafetyState.TRIPPED:
            safety = SafetyState.TRIPPED
        self._update_live(safety=safety, last_event=message)

    def _set_phase(self, phase: str, t: float) -> None:
        if phase != self.live.phase:
            self._event(t, EventKind.PHASE, f"Phase: {phase}")
            self._update_live(phase=phase)

    def _emit_row(self, sample: Sample, plan: ProtocolPlan) -> None:
        density = abs(sample.current_mA) / plan.electrode_area_cm2
        row = {
            "Time (s)": round(sample.t, 4),
            "Phase": sample.phase,
            "Setpoint (mA)": round(sample.setpoint_mA, 6),
            "Current (mA)": sample.current_mA,
            "Voltage (V)": sample.voltage_V,
            "Impedance (kohm)": sample.impedance_kohm,
            "Dose (mA*min)": sample.dose_mA_min,
            "Current density (mA/cm^2)": density,
            "Compliance": int(sample.compliance),
            "Event": CELL_SEPARATOR.join(self._state.pending),
        }
        self._state.pending.clear()
        self._write_row(row)
        progress = self._progress(sample.t)
        self.emit("progress", progress)
        self._update_live(t=sample.t, setpoint_mA=sample.setpoint_mA,
                          current_mA=sample.current_mA, voltage_V=sample.voltage_V,
                          impedance_kohm=sample.impedance_kohm, dose_mA_min=sample.dose_mA_min,
                          density_mA_cm2=density, compliance=sample.compliance,
                          progress=progress, elapsed_s=self._elapsed(sample.t),
                          remaining_s=self._remaining(sample.t))

    def _emit_marker(self, phase: str, t: float | None = None) -> None:
        """Write a row carrying pending events (a trip, the final off) at time t (default now)."""
        if not self._state.pending or self._plan is None:
            return
        t = self._t() if t is None else t
        row = {c: math.nan for c in DATA_COLUMNS}
        row.update({"Time (s)": round(t, 4), "Phase": phase, "Setpoint (mA)": 0.0,
                    "Dose (mA*min)": self._dose.dose_mA_min, "Compliance": 0,
                    "Event": CELL_SEPARATOR.join(self._state.pending)})
        self._state.pending.clear()
        self._write_row(row)

    def _write_row(self, row: dict[str, Any]) -> None:
        """Send a row to the results file and check it arrived; after a storage failure,
        rows are no longer sent (one error, not one per row)."""
        if self._storage_error is not None:
            return
        self.emit("results", row)
        if self.storage_check is None:
            return
        try:
            self.storage_check()
        except StorageFault as exc:
            self._storage_error = str(exc)

    def _storage_fault(self, message: str) -> None:
        """The results cannot be written: ramp down (still monitored), then off."""
        reason = (f"Storage fault: {message}. The results are incomplete; the output was "
                  f"ramped down and switched off. Check the disk and the output folder.")
        self._storage_handled = True
        t = self._t()
        self._event(t, EventKind.TRIP, reason)
        if not self.output.may_be_on:
            self._finish(Outcome.FAULT, STORAGE_FAULT, reason)
            return
        try:
            self._ramp_down(from_mA=self._last_setpoint or 0.0, outcome=Outcome.FAULT,
                            reason=reason, delay_first=False, rule=STORAGE_FAULT)
        except _Abort:
            pass
        except InstrumentFault as exc:
            with contextlib.suppress(_Abort):
                self._fault(exc)

    def _update_live(self, **changes: Any) -> None:
        current = self.live.__dict__ | changes
        self.live = LiveStatus(**current)

    def _progress(self, t: float) -> float:
        plan = self._plan
        if plan is None or self._state.treatment_start is None:
            return 0.0
        return max(0.0, min(100.0, 100.0 * self._elapsed(t) / plan.nominal_duration_s))

    def _elapsed(self, t: float) -> float:
        """Treatment time at run time t: since the treatment began, pauses not counted."""
        start = self._state.treatment_start
        if start is None:
            return 0.0
        paused = self._paused_total_s
        if self._paused_since is not None:
            paused += max(0.0, t - self._paused_since)
        return t - start - paused

    def _remaining(self, t: float) -> float:
        if self._frozen_remaining is not None:
            return self._frozen_remaining
        if self._plan is None:
            return math.nan
        return max(0.0, self._plan.nominal_duration_s - self._elapsed(t))

    def _make_summary(self) -> dict[str, Any]:
        state = self._state
        plan = self._plan
        start, end = state.treatment_start, state.treatment_end
        if start is not None and end is None:
            end = self._t()
        simulated = bool(getattr(self.source, "simulated", False))
        return {
            "outcome": state.outcome,
            "rule": state.rule,
            "reason": state.reason,
            "planned_dose_mA_min": round(plan.planned_dose_mA_min, 4) if plan else None,
            "delivered_dose_mA_min": round(self._dose.dose_mA_min, 4),
            "duration_s": round(end - start, 3) if start is not None else 0.0,
            "samples": state.samples,
            # True when read back as off, or when this run never switched the output on.
            "output_off_confirmed": self.output.off_confirmed_or_never_on,
            "output_was_on": self.output.was_on,
            "instrument": str(self.instrument_idn or ""),
            "simulated": simulated,
            "scenario": self.scenario if simulated else None,
            "results_file": self.results_file,
            "software_version": __version__,
            "drug": self.drug,
            "target_current_mA": float(self.target_current),
            "subject_kind": self.subject_kind,
            "subject_id": self.subject_id,
            "session_id": self.session_id,
            "screening_answers": self.screening_answers,
            "pauses": list(self._pauses),
            "paused_s": round(self._paused_total_s, 3),
            "clock": self.clock.name if self.clock else None,
            "max_schedule_lateness_s": round(state.max_lateness_s, 6),
            "guard": self.guard.describe() if self.guard is not None else None,
            "instrument_dead_man": (self._dead_man.describe() if self._dead_man is not None
                                    else None),
            "sleep_inhibitor": (self._inhibitor.state.as_dict()
                                if self._inhibitor.state is not None else None),
            "events": [e.as_dict() for e in state.events],
        }

    def _safety_config(self, plan: ProtocolPlan) -> SafetyConfig:
        """Thresholds for this run; on a scaled (demo) clock, real-time jitter is scaled too."""
        speed = self._clock().speed
        stale_after = L.STALE_INTERVALS.value * plan.sample_interval_s
        if math.isfinite(speed) and speed > 1:
            stale_after += SCALED_CLOCK_JITTER_S * speed
        return SafetyConfig(target_mA=plan.target_mA, compliance_V=plan.compliance_V,
                            electrode_area_cm2=plan.electrode_area_cm2,
                            max_density_mA_cm2=plan.max_density_mA_cm2,
                            sample_interval_s=plan.sample_interval_s,
                            dose_cap_mA_min=plan.dose_cap_mA_min,
                            stale_after_s=stale_after)

    def _monitor_config(self) -> SafetyConfig:
        return self._require_monitor().config

    def _describe_plan(self) -> str:
        plan = self._require_plan()
        drug = get_drug(self.drug)
        mode = (f"dose target {plan.dose_target_mA_min:g} mA*min"
                if plan.dose_target_mA_min is not None else f"{plan.total_min:g} min")
        return (f"{plan.target_mA:g} mA ({'+' if plan.polarity > 0 else '-'}, {drug.name}), "
                f"{mode}, planned {plan.planned_dose_mA_min:.1f} mA*min, "
                f"compliance {plan.compliance_V:g} V, on {self.instrument_idn}")

    def _t(self) -> float:
        return self._clock().now() - self._t0

    def _sleep_until(self, run_deadline: float) -> None:
        """Sleep to an absolute deadline; wake for stops (PyMeasure's flag is polled)."""
        clock = self._clock()
        target = run_deadline
        while True:
            remaining = target - self._t()
            if remaining <= 0 or self._wake.is_set():
                break
            if math.isinf(clock.speed):
                clock.sleep(remaining, self._wake)
                break
            step = min(remaining, 0.05 * clock.speed)
            clock.sleep(step, self._wake)
            if self.should_stop():
                break
        if not self._estop.is_set():
            self._wake.clear()

    def _clock(self) -> Clock:
        if self.clock is None:
            self.clock = RealClock()
        return self.clock

    def _source(self) -> CurrentSource:
        if self.source is None:
            raise InstrumentFault("no instrument session")
        return self.source

    def _require_plan(self) -> ProtocolPlan:
        if self._plan is None:
            raise RuntimeError("the run has no plan (startup did not complete)")
        return self._plan

    def _require_monitor(self) -> SafetyMonitor:
        if self._monitor is None:
            raise RuntimeError("the run has no safety monitor (startup did not complete)")
        return self._monitor

    # PyMeasure calls should_stop/emit through the Worker; keep them usable without one.
    def should_stop(self) -> bool:  # replaced by the Worker
        return False

    def emit(self, topic: str, record: Any) -> None:  # replaced by the Worker
        return None

