"""One clock shared by the procedure and the simulator: real, scaled (xN) or virtual.

The procedure schedules samples on absolute deadlines of this clock, and the simulator
computes the skin phantom and fault onsets from it, so both agree on "minute 12".
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod


class Clock(ABC):
    """Monotonic seconds on the run's time axis, plus interruptible sleeping."""

    #: Human name shown in banners and summaries ("real", "x60", "virtual").
    name: str = "clock"
    #: Simulated seconds per real second (1 for real time, inf for virtual).
    speed: float = 1.0

    @abstractmethod
    def now(self) -> float:
        """Return the current time in seconds (monotonic; the origin is arbitrary)."""

    @abstractmethod
    def _wait(self, seconds: float, wake: threading.Event | None) -> bool:
        """Let `seconds` of clock time pass unless `wake` is set; return True if woken."""

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        """Sleep `seconds` of clock time; return True if `wake` cut the sleep short."""
        if wake is not None and wake.is_set():
            return True
        if seconds <= 0:
            return False
        return self._wait(seconds, wake)

    def sleep_until(self, deadline: float, wake: threading.Event | None = None) -> bool:
        """Sleep until the absolute clock time `deadline`; return True if woken early."""
        return self.sleep(deadline - self.now(), wake)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class RealClock(Clock):
    """Wall-clock time, for real hardware."""

    name = "real"
    speed = 1.0

    def now(self) -> float:
        return time.monotonic()

    def _wait(self, seconds: float, wake: threading.Event | None) -> bool:
        if wake is None:
            time.sleep(seconds)
            return False
        return wake.wait(seconds)


class ScaledClock(Clock):
    """Time running `speed` times faster than real time, for demos and training."""

    def __init__(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be > 0, got {speed!r}")
        self.speed = float(speed)
        self.name = f"x{speed:g}"
        self._origin = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._origin) * self.speed

    def _wait(self, seconds: float, wake: threading.Event | None) -> bool:
        real = seconds / self.speed
        if wake is None:
            time.sleep(real)
            return False
        return wake.wait(real)


class VirtualClock(Clock):
    """Time that only moves when someone sleeps: 30 simulated minutes cost no waiting.

    Sleeping advances the clock at once. Thread-safe; a woken sleeper does not advance it.
    """

    name = "virtual"
    speed = float("inf")

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds` (used by the simulator to charge I/O time)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds

    def _wait(self, seconds: float, wake: threading.Event | None) -> bool:
        self.advance(seconds)
        return False


def clock_for_speed(speed: float | None = None, *, simulated: bool = True) -> Clock:
    """The one clock factory of the CLI and the GUI: a run's clock from its speed.

    inf ("max", `--fast`): virtual; None or 1: real time; any other speed: scaled. A real
    instrument (`simulated=False`) always runs in real time.
    """
    if not simulated or speed is None or speed == 1:
        return RealClock()
    if math.isinf(speed):
        return VirtualClock()
    return ScaledClock(speed)


def make_clock(kind: str = "real", speed: float = 1.0) -> Clock:
    """Build a clock from a name: 'real', 'scaled' (with `speed`) or 'virtual'."""
    if kind == "real":
        return RealClock()
    if kind == "scaled":
        return RealClock() if speed == 1 else ScaledClock(speed)
    if kind == "virtual":
        return VirtualClock()
    raise ValueError(f"unknown clock {kind!r}: choose 'real', 'scaled' or 'virtual'")
