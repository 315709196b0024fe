"""The words a run writes to disk and shows: outcomes, phases, event kinds, safety states.

StrEnums, so each member *is* its string: the values in results files, summaries and the GUI
are unchanged (`Outcome.COMPLETED == "completed"`), and a typo is an AttributeError.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How a run ended (summary `outcome`; exit codes follow from it and the rule)."""

    COMPLETED = "completed"
    ABORTED = "aborted"
    REFUSED = "refused"
    FAULT = "fault"
    STOPPED = "stopped"


#: Outcomes that mean a trip, a refusal or a fault (red), as opposed to a normal end.
TRIP_OUTCOMES: frozenset[Outcome] = frozenset({Outcome.ABORTED, Outcome.FAULT, Outcome.REFUSED})


class Phase(StrEnum):
    """The phases of a run, in order (results column `Phase`)."""

    PRE_FLIGHT = "pre-flight"
    CONTACT_CHECK = "contact-check"
    RAMP_UP = "ramp-up"
    HOLD = "hold"
    RAMP_DOWN = "ramp-down"
    PAUSED = "paused"
    OFF = "off"


class EventKind(StrEnum):
    """What an event is (summary `events[].kind`, and the prefix of its text in `Event`)."""

    PHASE = "phase"
    INFO = "info"
    WARNING = "warning"
    TRIP = "trip"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    INSTRUMENT_ERROR = "instrument-error"


class SafetyState(StrEnum):
    """The safety light of a running Procedure (`LiveStatus.safety`)."""

    OK = "ok"
    WARNING = "warning"
    TRIPPED = "tripped"


#: The rule name recorded for an operator's emergency stop (not a burn-risk rule).
EMERGENCY_STOP = "emergency-stop"
#: The rule name recorded when pre-flight refuses the parameters.
PRE_FLIGHT = "pre-flight"
#: The rule name of an instrument fault.
INSTRUMENT_FAULT = "instrument-fault"

__all__ = ["EMERGENCY_STOP", "INSTRUMENT_FAULT", "PRE_FLIGHT", "TRIP_OUTCOMES", "EventKind",
           "Outcome", "Phase", "SafetyState"]
