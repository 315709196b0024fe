"""Helpers shared by the tests (fixtures are in conftest.py): fakes and log matchers."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from ionto_instruments.source import CurrentSource, InstrumentFault, Reading

#: The simulator's command log: a source-current setting, and an output-off (any spelling).
SET_CURRENT = re.compile(r"^:?SOUR(?:CE)?:CURR(?:ENT)?(?::LEV(?:EL)?(?::IMM(?:EDIATE)?)?"
                         r"(?::AMPL(?:ITUDE)?)?)? +(\S+)$", re.IGNORECASE)
OUTPUT_OFF = re.compile(r"^:?OUTP(?:UT)?(?::STAT(?:E)?)? +(?:0|OFF)$", re.IGNORECASE)


def rows_of(summary: dict[str, Any]) -> pd.DataFrame:
    """The data rows of a run's results file, from its summary."""
    return pd.read_csv(summary["results_file"], comment="#")


class FakeSource(CurrentSource):
    """A CurrentSource that records every write; faults can be injected per method."""

    def __init__(self) -> None:
        super().__init__()
        self.enabled = False
        self.log: list[str] = []
        self.fail: dict[str, int] = {}  # method -> number of calls that raise
        self.reads_stuck_on = 0  # read-backs that still say "on"

    def _maybe_fail(self, name: str) -> None:
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            self.log.append(f"{name}!")
            raise InstrumentFault(f"injected {name} failure")

    @property
    def resource_name(self) -> str:
        return "FAKE::1"

    def identify(self) -> str:
        return "FAKE"

    def configure_current_source(self, compliance_voltage: float, source_range: float = 4e-3,
                                 nplc: float = 1.0) -> None:
        self.log.append("configure")

    def set_current(self, amps: float) -> None:
        self.log.append(f"set {amps}")

    def output_on(self) -> None:
        with self.io_lock:
            self._maybe_fail("output_on")
            self.log.append("on")
            self.enabled = True

    def output_off(self) -> None:
        with self.io_lock:
            self._maybe_fail("output_off")
            self.log.append("off")
            self.enabled = False

    def emergency_off(self, lock_timeout: float = 1.0) -> None:
        acquired = self.io_lock.acquire(timeout=lock_timeout) if lock_timeout > 0 else False
        try:
            self._maybe_fail("emergency_off")
            self.log.append("emergency_off")
            self.enabled = False
        finally:
            if acquired:
                self.io_lock.release()

    def read(self) -> Reading:
        return Reading(0.0, 0.0, 0.0, False)

    def output_enabled(self) -> bool:
        with self.io_lock:
            self._maybe_fail("output_enabled")
            self.log.append("read-back")
            if self.reads_stuck_on > 0:
                self.reads_stuck_on -= 1
                return True
            return self.enabled

    def drain_errors(self) -> list[str]:
        return []

    def reopen(self) -> None:
        self._maybe_fail("reopen")
        self.log.append("reopen")

    def close(self) -> None:
        self.log.append("close")


def wait_for_phase(run: Any, phase: str, timeout_s: float = 60.0) -> None:
    """Wait (real time) until `run.live.phase == phase`; fail, never hang, if it ends first."""
    import time

    deadline = time.monotonic() + timeout_s
    while run.live.phase != phase:
        assert run.running, f"the run ended before reaching {phase!r}"
        assert time.monotonic() < deadline, f"no {phase!r} phase within {timeout_s} s"
        time.sleep(0.001)
