"""The current-source interface the protocol needs, independent of the SourceMeter on the bench.

Units are SI (A, V, s, ohm) as in PyMeasure; the protocol layer converts to mA for people.
Every method that talks to the instrument holds `io_lock`, so an emergency stop from another
thread is serialized with the sampling loop's I/O and never interleaves a half-written command.
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

from . import limits
from .output import OutputGuard

#: Absolute ceilings of this device class in driver units, whatever the caller asks
#: (`limits.MAX_CURRENT`, `limits.MAX_COMPLIANCE`, `limits.MAX_DENSITY`).
MAX_CURRENT_A = limits.MAX_CURRENT.value * 1e-3
MAX_COMPLIANCE_V = limits.MAX_COMPLIANCE.value
MAX_DENSITY_MA_CM2 = limits.MAX_DENSITY.value


class InstrumentError(RuntimeError):
    """The instrument could not be used: wrong model, nothing at the address, lost session."""


class InstrumentFault(InstrumentError):
    """An I/O error during a run: timeout, unparsable reply, disconnect."""


class UnparsableReading(InstrumentFault):
    """A reply to the reading query that is not the expected numbers (a garbled reply)."""


class WrongInstrument(InstrumentError):
    """The instrument at the address is not a supported SourceMeter."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One combined reading from a single query: the instrument's timestamp, V, I, compliance."""

    time: float
    voltage: float
    current: float
    compliance: bool

    @property
    def impedance(self) -> float:
        """Return V/I in ohms, or NaN when the current is too small to divide by."""
        if abs(self.current) < 1e-9:
            return math.nan
        return self.voltage / self.current


def check_range(name: str, value: float, low: float, high: float, unit: str) -> float:
    """Return `value` as float if low <= value <= high, else raise ValueError naming the range."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}] {unit}, "
                         f"got {value!r}") from None
    if not (low <= number <= high) or math.isnan(number):
        raise ValueError(f"{name} {number:g} {unit} is outside the allowed range "
                         f"[{low:g}, {high:g}] {unit}")
    return number


class CurrentSource(ABC):
    """A SourceMeter used as an iontophoresis current source.

    Implementations enforce the ceilings themselves: `set_current` never sends a value above
    `current_ceiling`, and `configure_current_source` never one above `limits.MAX_COMPLIANCE`.
    """

    #: True for the simulated SourceMeter; shown in banners, summaries and file headers.
    simulated: bool = False

    def __init__(self) -> None:
        self.io_lock = threading.RLock()
        self._current_ceiling = MAX_CURRENT_A

    # -- ceilings -----------------------------------------------------------------------

    @property
    def current_ceiling(self) -> float:
        """Get the largest |current| in A this session sources (MAX_CURRENT or area x density)."""
        return self._current_ceiling

    def limit_current_density(self, electrode_area_cm2: float,
                              max_density_mA_cm2: float) -> float:
        """Narrow the current ceiling to area x density (never above MAX_CURRENT); return it (A)."""
        area = check_range("electrode area", electrode_area_cm2, limits.DRIVER_AREA.minimum,
                           limits.DRIVER_AREA.maximum, "cm^2")
        density = check_range("maximum current density", max_density_mA_cm2,
                              limits.DRIVER_DENSITY.minimum, limits.DRIVER_DENSITY.maximum,
                              "mA/cm^2")
        self._current_ceiling = min(MAX_CURRENT_A, area * density * 1e-3)
        self._apply_current_ceiling(self._current_ceiling)
        return self._current_ceiling

    def _apply_current_ceiling(self, amps: float) -> None:  # noqa: B027 - optional hook
        """Hook for drivers whose validators must learn the narrowed ceiling."""

    def check_limits(  # noqa: B027 - optional hook
            self, compliance_voltage: float, max_current: float) -> None:
        """Pre-flight: raise ValueError naming the model if it cannot deliver these limits.

        Drivers that know their model (from *IDN?) and state (interlock) override this; it
        is called before anything is configured or energized.
        """

    def reopen(self) -> None:
        """Open a fresh session to the same instrument after the old one was lost."""
        raise InstrumentFault(f"{type(self).__name__} cannot reopen its session")

    # -- the interface ------------------------------------------------------------------

    @property
    @abstractmethod
    def resource_name(self) -> str:
        """Get the VISA address this source is connected to."""

    @abstractmethod
    def identify(self) -> str:
        """Return the instrument's identification string (*IDN?)."""

    @abstractmethod
    def configure_current_source(self, compliance_voltage: float,
                                 source_range: float = MAX_CURRENT_A,
                                 nplc: float = 1.0) -> None:
        """Reset and configure as a current source: range, compliance (V), speed (NPLC)."""

    @abstractmethod
    def set_current(self, amps: float) -> None:
        """Set the source current in A (signed); raise ValueError beyond the ceiling."""

    @abstractmethod
    def output_on(self) -> None:
        """Switch the output on."""

    @abstractmethod
    def output_off(self) -> None:
        """Switch the output off (the protocol ramps to zero first when it can)."""

    @abstractmethod
    def emergency_off(self, lock_timeout: float = 1.0) -> None:
        """Switch the output off at once with one write, no ramp, callable from any thread."""

    @abstractmethod
    def read(self) -> Reading:
        """Take one combined reading with a single query; raise InstrumentFault on bad I/O."""

    @abstractmethod
    def output_enabled(self) -> bool:
        """Read back from the instrument whether the output is on."""

    @abstractmethod
    def drain_errors(self) -> list[str]:
        """Read the instrument's error queue until empty; return the errors (not 'No error')."""

    @abstractmethod
    def close(self) -> None:
        """Close the session (does not switch anything on or off)."""

    def __enter__(self) -> CurrentSource:
        return self

    def __exit__(self, *exc: object) -> None:
        """Leaving a `with` block switches the output off at once (confirmed), then closes."""
        try:
            OutputGuard(self, may_be_on=True).off_now()
        finally:
            self.close()
