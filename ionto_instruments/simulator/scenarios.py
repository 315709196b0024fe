"""Named simulator scenarios: normal skin, or one fault starting at a chosen minute.

A scenario is written `name` or `name@minute`, e.g. "impedance-drop@12" or
"contact-loss@0.25". The minute is on the RUN's time axis: clock time since the simulated
instrument's last `*RST`. The protocol resets the instrument when it configures for a run
and then starts its own run clock, so "minute 12" of the scenario is minute 12 of the run
(exactly so on the virtual clock; within the few milliseconds of configuration otherwise).
A fault lasts from its minute until the next `*RST` restarts the axis (a `disconnect`
blocks that `*RST` itself, so it lasts for the life of the simulator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    """The faults the simulator can inject."""

    IMPEDANCE_DROP = "impedance-drop"
    CONTACT_LOSS = "contact-loss"
    HIGH_IMPEDANCE = "high-impedance"
    DRYING = "drying"
    IO_TIMEOUT = "io-timeout"
    GARBLED = "garbled"
    DISCONNECT = "disconnect"


#: Faults that act on the wire (the VISA session) rather than on the skin resistance.
WIRE_FAULTS = frozenset({Fault.IO_TIMEOUT, Fault.GARBLED, Fault.DISCONNECT})

#: Onset minute when the scenario names none; high-impedance is wrong from the start.
DEFAULT_ONSET_MIN = 10.0
DEFAULT_ONSETS_MIN = {fault: DEFAULT_ONSET_MIN for fault in Fault} | {Fault.HIGH_IMPEDANCE: 0.0}

#: impedance-drop: R falls to this fraction (a shrunken contact: a current-density hot spot).
DROP_FACTOR = 0.2
#: high-impedance from the start: R0 = R-infinity = this, far above skin, so the contact
#: check refuses; at a later minute R steps up by HIGH_IMPEDANCE_STEP instead.
HIGH_IMPEDANCE_OHM = 60e3
HIGH_IMPEDANCE_STEP = 10.0
#: drying: R doubles every this many seconds from the onset (compliance within minutes).
DRYING_DOUBLING_S = 60.0
#: drying is capped here to keep the arithmetic finite; it is an open circuit by then.
DRYING_MAX_OHM = 1e9

NORMAL = "normal"

#: One line per scenario, for `ionto scenarios`.
SCENARIOS: dict[str, str] = {
    NORMAL: "healthy skin: R falls from 15 kOhm to 3 kOhm (tau 2 min) once current flows",
    Fault.IMPEDANCE_DROP.value: "resistance steps down to 20 % (hot spot under the electrode), "
    "default minute 10",
    Fault.CONTACT_LOSS.value: "electrode lifts off: open circuit, V at the compliance limit, "
    "default minute 10",
    Fault.HIGH_IMPEDANCE.value: "skin far too resistive: 60 kOhm from the start (contact check "
    "refuses); with @minute R steps to 10x then",
    Fault.DRYING.value: "gel dries: resistance doubles every minute until compliance, "
    "default minute 10",
    Fault.IO_TIMEOUT.value: "instrument stops answering: every read times out, default minute 10",
    Fault.GARBLED.value: "the reply to :READ? is corrupted bytes, default minute 10",
    Fault.DISCONNECT.value: "session lost: every read and write on the open session fails "
    "(VI_ERROR_CONN_LOST); a new session reaches the instrument, default minute 10",
}


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed scenario: no fault (normal) or one fault from `onset_min` on the run axis."""

    fault: Fault | None = None
    onset_min: float = 0.0

    @property
    def name(self) -> str:
        """The canonical spelling, e.g. "normal" or "impedance-drop@12"."""
        if self.fault is None:
            return NORMAL
        return f"{self.fault.value}@{self.onset_min:g}"

    @property
    def onset_s(self) -> float:
        """The onset in seconds on the run axis."""
        return self.onset_min * 60.0

    def active(self, run_time: float) -> bool:
        """Return True when the fault is in effect at `run_time` seconds after *RST."""
        return self.fault is not None and run_time >= self.onset_s

    def wire_fault(self, run_time: float) -> Fault | None:
        """Return the wire fault in effect at `run_time`, if any."""
        if self.fault in WIRE_FAULTS and self.active(run_time):
            return self.fault
        return None

    def resistance(self, base_ohm: float, run_time: float) -> float:
        """Return the skin resistance after this scenario's fault acts on the phantom's."""
        if not self.active(run_time):
            return base_ohm
        since = run_time - self.onset_s
        match self.fault:
            case Fault.IMPEDANCE_DROP:
                return base_ohm * DROP_FACTOR
            case Fault.CONTACT_LOSS:
                return math.inf
            case Fault.HIGH_IMPEDANCE:
                if self.onset_min == 0:
                    return HIGH_IMPEDANCE_OHM
                return base_ohm * HIGH_IMPEDANCE_STEP
            case Fault.DRYING:
                doublings = min(since / DRYING_DOUBLING_S, 64.0)  # 2**64 caps anyway
                return min(base_ohm * 2.0**doublings, DRYING_MAX_OHM)
        return base_ohm

    def __str__(self) -> str:
        return self.name


def parse_scenario(text: str | Scenario) -> Scenario:
    """Parse "name" or "name@minute" (minute may be fractional); raise ValueError if bad."""
    if isinstance(text, Scenario):
        return text
    valid = ", ".join(SCENARIOS)
    spec = str(text).strip().lower()
    name, at, minute_text = spec.partition("@")
    name = name.strip()
    if name == NORMAL:
        if at:
            raise ValueError(f"scenario 'normal' takes no minute, got {text!r}")
        return Scenario()
    try:
        fault = Fault(name)
    except ValueError:
        raise ValueError(f"unknown scenario {text!r}; valid scenarios: {valid} "
                         "(faults optionally as name@minute, e.g. impedance-drop@12)") from None
    if not at:
        return Scenario(fault, DEFAULT_ONSETS_MIN[fault])
    try:
        minute = float(minute_text)
    except ValueError:
        raise ValueError(f"scenario {text!r}: the minute after '@' must be a number, "
                         f"e.g. {fault.value}@12") from None
    if not math.isfinite(minute) or minute < 0:
        raise ValueError(f"scenario {text!r}: the minute must be a finite number >= 0")
    return Scenario(fault, minute)
