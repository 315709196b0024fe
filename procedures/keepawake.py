"""Keep the host awake while the output is on: a sleeping laptop stops the run, not the source.

- Linux: logind's inhibitor lock through ``systemd-inhibit --what=sleep:idle --mode=block``
  (a child process holding the lock until it is stopped);
- macOS: ``caffeinate -i -s -w <pid>`` (also ends when this process ends);
- Windows: ``SetThreadExecutionState(ES_CONTINUOUS | ES_SYSTEM_REQUIRED)``.

Where none can be held (no logind, e.g. in a container), `acquire()` returns a state with
``held = False`` and a warning sentence: the run goes on, and the summary records it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: How long a helper must stay up to count as holding the lock (it exits at once on failure).
SETTLE_S = 0.3
WHY = "iontophoresis: the SourceMeter output is on"


@dataclass
class InhibitState:
    """What the summary records: whether sleep was inhibited, how, and any warning."""

    held: bool
    method: str
    warning: str = ""
    acquired_at: float | None = None
    released_at: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class SleepInhibitor:
    """Hold the OS sleep inhibitor from `acquire()` to `release()` (idempotent, never raises)."""

    def __init__(self) -> None:
        self.state: InhibitState | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._windows = False

    def acquire(self) -> InhibitState:
        if self.state is not None and self.state.released_at is None:
            return self.state
        try:
            state = self._acquire()
        except Exception as exc:  # an inhibitor must never stop a run
            state = InhibitState(False, "none", f"sleep inhibitor failed: {exc}")
        if state.held:
            state.acquired_at = time.time()
            log.info("Sleep inhibited while the output is on (%s)", state.method)
        else:
            log.warning("SLEEP NOT INHIBITED: %s. Keep the computer from sleeping by hand "
                        "(power settings) while the output is on.", state.warning)
        self.state = state
        return state

    def _acquire(self) -> InhibitState:
        if sys.platform == "win32":
            import ctypes

            es_continuous, es_system_required = 0x80000000, 0x00000001
            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
            if kernel32.SetThreadExecutionState(es_continuous | es_system_required) == 0:
                return InhibitState(False, "SetThreadExecutionState", "the call failed")
            self._windows = True
            return InhibitState(True, "SetThreadExecutionState")
        if sys.platform == "darwin":
            return self._helper("caffeinate", ["caffeinate", "-i", "-s", "-w", str(os.getpid())])
        return self._helper("systemd-inhibit", [
            "systemd-inhibit", "--what=sleep:idle", "--who=ionto", f"--why={WHY}",
            "--mode=block", "sleep", "infinity"])

    def _helper(self, name: str, command: list[str]) -> InhibitState:
        if shutil.which(command[0]) is None:
            return InhibitState(False, name, f"{command[0]} is not installed")
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   close_fds=True)
        try:
            process.wait(SETTLE_S)
        except subprocess.TimeoutExpired:
            self._process = process
            return InhibitState(True, name)
        error = (process.stderr.read().decode(errors="replace").strip()
                 if process.stderr else "")
        return InhibitState(False, name, f"{name} could not take the lock "
                                         f"({error or f'exit code {process.returncode}'})")

    def release(self) -> InhibitState | None:
        """Release the lock (if held); return the final state for the summary."""
        state = self.state
        if state is None or state.released_at is not None:
            return state
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(2)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._windows:
            import ctypes

            ctypes.windll.kernel32.SetThreadExecutionState(0x80000000)  # type: ignore[attr-defined]
            self._windows = False
        state.released_at = time.time()
        return state
