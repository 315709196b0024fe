"""The course's rules and vocabulary, pure: the plan's ranges, grades, side effects, and
whether the next session may start (too soon, review due, burn hold, course stopped).

Each refusal names its rule and says what to do. Nothing here touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ionto_instruments import limits as L

#: Plan ranges and defaults, from the limits table (the leaflet: a trial of 4-8, twice weekly,
#: weekly after about four weeks).
TRIAL_COUNT_RANGE = (int(L.TRIAL_COUNT.minimum), int(L.TRIAL_COUNT.maximum))
TRIAL_COUNT_DEFAULT = int(L.TRIAL_COUNT.default)
MIN_INTERVAL_RANGE_DAYS = (int(L.MIN_INTERVAL.minimum), int(L.MIN_INTERVAL.maximum))
MIN_INTERVAL_DEFAULT_DAYS = int(L.MIN_INTERVAL.default)
WEEKLY_AFTER_RANGE_DAYS = (int(L.WEEKLY_AFTER.minimum), int(L.WEEKLY_AFTER.maximum))
WEEKLY_AFTER_DEFAULT_DAYS = int(L.WEEKLY_AFTER.default)
WEEKLY_INTERVAL_DAYS = 7
NRS_RANGE = (int(L.PAIN_NRS.minimum), int(L.PAIN_NRS.maximum))

GRADES = ("none", "mild", "moderate", "severe")
PHASES = ("before", "after", "next-day")
DECISIONS = ("continue", "change-medication", "stop")
SKIN_SITES = ("anode_redness", "anode_burn", "cathode_redness", "cathode_burn")
#: The leaflet's side effects, by the form field that records each.
SIDE_EFFECTS: dict[str, str] = {
    "fatigue": "fatigue",
    "dizziness": "dizziness",
    "dry_mouth_nose": "dry mouth or nose",
    "uneasy_feeling": "an uneasy feeling",
    "dark_urine": "dark urine (next day)",
    "constipation": "constipation (next day)",
}
GRADED_FIELDS = (*SKIN_SITES, *SIDE_EFFECTS)

#: Rule names as they appear in the record, the CLI and the panel.
TOO_SOON = "too-soon"
REVIEW_DUE = "review-due"
BURN_HOLD = "burn-hold"
COURSE_STOPPED = "course-stopped"
SCREENING = "screening"


class RecordValueError(ValueError):
    """A value outside its range or vocabulary; `field` names it (exit 2 on the CLI)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def check_range(name: str, value: int, bounds: tuple[int, int]) -> int:
    """Return `value` if it lies within `bounds`, else raise RecordValueError naming both."""
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RecordValueError(name, f"{value!r} is outside the allowed range {low}-{high}")
    return value


def check_grade(name: str, value: str | None) -> str | None:
    """Return a grade (none/mild/moderate/severe) or None; refuse anything else."""
    if value is None:
        return None
    if value not in GRADES:
        raise RecordValueError(name, f"unknown grade {value!r}: use {', '.join(GRADES)}")
    return value


def check_not_future(name: str, when: datetime, now: datetime) -> datetime:
    """Refuse a date or time later than now (one minute of clock skew between stations)."""
    if when > now + timedelta(minutes=1):
        raise RecordValueError(name, f"{when.isoformat(timespec='minutes')} is in the future "
                                     f"(now {now.isoformat(timespec='minutes')})")
    return when


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """Return `value` if it is one of `choices`, else raise RecordValueError listing them."""
    if value not in choices:
        raise RecordValueError(name, f"{value!r} is not one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class PastSession:
    """What the rules need of an earlier session."""

    number: int
    started_at: datetime
    drug: str
    delivered: bool
    burn: bool = False


@dataclass(frozen=True)
class PastReview:
    """What the rules need of a review."""

    decided_on: datetime
    decision: str
    new_drug: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A course rule that refuses the next session: its name, why, and what to do."""

    rule: str
    reason: str
    todo: str
    overridable: bool = False

    @property
    def message(self) -> str:
        """One sentence for the operator: rule, reason, what to do."""
        return f"Refused by the course rule '{self.rule}': {self.reason} {self.todo}"


@dataclass(frozen=True)
class NextSession:
    """The verdict on the next session of a course, computed before anything is energized."""

    number: int
    drug: str
    earliest: date | None
    refusals: tuple[Refusal, ...] = ()
    no_drive: bool = False
    no_drive_reason: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def allowed(self) -> bool:
        """True when no rule refuses the session."""
        return not self.refusals


def current_drug(course_drug: str, reviews: list[PastReview]) -> str:
    """The course's drug after the reviews (the last change of medication wins)."""
    drug = course_drug
    for review in sorted(reviews, key=lambda r: r.decided_on):
        if review.decision == "change-medication" and review.new_drug:
            drug = review.new_drug
    return drug


def next_session(*, course_drug: str, trial_count: int, min_interval_days: int,
                 weekly_after_days: int, started_on: datetime,
                 sessions: list[PastSession], reviews: list[PastReview],
                 earlier_drugs_of_subject: set[str], now: datetime,
                 override_reason: str | None = None, course_id: int | str = "COURSE",
                 ) -> NextSession:
    """Decide whether the next session of a course may start now, and whether the patient may
    drive home after it. `earlier_drugs_of_subject` lists the drugs of the subject's earlier
    delivered sessions in any course; an empty set means this is the first treatment."""
    drug = current_drug(course_drug, reviews)
    delivered = sorted((s for s in sessions if s.delivered), key=lambda s: s.started_at)
    number = max((s.number for s in sessions), default=0) + 1
    last_review = max(reviews, key=lambda r: r.decided_on) if reviews else None
    refusals: list[Refusal] = []
    notes: list[str] = []
    review_cmd = (f"`ionto course review {course_id} --decision continue|change-medication|stop "
                  f"--note TEXT`")
    if last_review is not None and last_review.decision == "stop":
        refusals.append(Refusal(
            COURSE_STOPPED, f"the course was stopped at the review of "
            f"{last_review.decided_on.date().isoformat()}.",
            "Start a new course (`ionto course start`) if the specialist decides to treat again."))
    burns = [s for s in sessions if s.burn
             and (last_review is None or s.started_at >= last_review.decided_on)]
    if burns:
        refusals.append(Refusal(
            BURN_HOLD, f"a burn was recorded at session {burns[-1].number} "
            f"({burns[-1].started_at.date().isoformat()}); the course is on hold until the pain "
            f"specialist reviews it.", f"Record the review: {review_cmd}."))
    if not reviews and len(delivered) >= trial_count:
        refusals.append(Refusal(
            REVIEW_DUE, f"the trial of {trial_count} sessions is complete "
            f"({len(delivered)} delivered) and the course has not been reviewed.",
            f"The pain specialist evaluates the trial first: {review_cmd}."))
    earliest: date | None = None
    if delivered:
        last = delivered[-1].started_at
        weekly = (last - started_on).days >= weekly_after_days
        if weekly:
            notes.append(f"Past {weekly_after_days} days: the leaflet's schedule is weekly "
                         f"when results are good.")
        earliest = last.astimezone().date() + timedelta(days=min_interval_days)
        today = now.astimezone().date()
        if today < earliest:
            gap = (today - last.astimezone().date()).days
            refusal = Refusal(
                TOO_SOON, f"the last session was {gap} day(s) ago "
                f"({last.astimezone().date().isoformat()}); the plan's minimum interval is "
                f"{min_interval_days} days (earliest {earliest.isoformat()}).",
                "Wait, or give the reason for treating sooner (--reason TEXT); it is recorded.",
                overridable=True)
            if override_reason and override_reason.strip():
                notes.append(f"Minimum interval overridden by the operator: "
                             f"{override_reason.strip()}")
            else:
                refusals.append(refusal)
    no_drive, why = False, ""
    if not earlier_drugs_of_subject:
        no_drive, why = True, "first treatment"
    elif drug not in earlier_drugs_of_subject:
        no_drive, why = True, f"first treatment with {drug}"
    return NextSession(number=number, drug=drug, earliest=earliest,
                       refusals=tuple(refusals), no_drive=no_drive,
                       no_drive_reason=why, notes=tuple(notes))


NO_DRIVE_TEXT = "MUST NOT DRIVE HOME"


def no_drive_sentence(reason: str) -> str:
    """The flag's sentence for the panel, the CLI and the record."""
    return (f"{NO_DRIVE_TEXT} ({reason}): the patient may not drive; someone else must bring "
            f"them home (leaflet, 'Going home').")


def projected_schedule(*, started_on: date, first_free: date, delivered: int, trial_count: int,
                       min_interval_days: int, weekly_after_days: int,
                       reviewed: bool, horizon: int = 4) -> list[tuple[date, str]]:
    """The next planned dates: the trial's remaining sessions at the minimum interval, then the
    review, then weekly once the course is older than `weekly_after_days` (the leaflet's plan).
    Entries count treatments ("treatment 3 of 6"), not the record's session numbers, which
    count every attempt (refused and simulated ones too)."""
    plan: list[tuple[date, str]] = []
    day, count = first_free, delivered
    while len(plan) < horizon:
        if count >= trial_count and not reviewed:
            plan.append((day, "review by the pain specialist (trial complete)"))
            break
        weekly = (day - started_on).days >= weekly_after_days
        what = (f"treatment {count + 1} of {trial_count}" if count < trial_count
                else f"treatment {count + 1}")
        plan.append((day, what + (" (weekly)" if weekly else "")))
        count += 1
        day += timedelta(days=WEEKLY_INTERVAL_DAYS if weekly else min_interval_days)
    return plan
