"""`OutputGuard`: the one owner of what is known about the output and of the ways to change it.

Known: `may_be_on` (an on-write may have reached the instrument and no off is confirmed),
`was_on` (this guard switched it on at least once), `confirmed_off` (read back as off).
The ways to change it:

- `on()`: refused after an emergency stop; checked and written under the instrument's I/O lock,
  so an emergency stop from another thread either comes first (and `on` is refused) or sees
  `may_be_on` and writes its off after the on.
- `off_now()`: one off-write, no ramp; then read back; on failure reopen the session and
  retry; CRITICAL when still unconfirmed (rule trips, faults, the end of every run).
- `ramped_off(ramp)`: the operator stop and a completed profile: `ramp` brings the setpoint to
  zero, then one normal OUTPUT OFF, confirmed by read-back.
- `emergency_stop()`: from any thread (see its docstring).

State machine (docs/architecture.md): OFF --on--> MAY_BE_ON --off write + read-back--> OFF
(confirmed); an emergency stop moves to ESTOPPED, where `on` is refused for good.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import limits as L

if TYPE_CHECKING:
    from .source import CurrentSource

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: Read-back attempts (each with a retried off-write, reopening the session if needed).
OFF_CONFIRM_ATTEMPTS = int(L.OFF_CONFIRM_ATTEMPTS.value)
#: Longest wait for the I/O lock in an emergency stop (an exchange in progress), seconds.
ESTOP_LOCK_TIMEOUT_S = L.ESTOP_LOCK_TIMEOUT.value
UNCONFIRMED = ("OUTPUT OFF NOT CONFIRMED: switch the SourceMeter off by hand "
               "(front-panel OUTPUT key) and disconnect the patient leads")


class OutputGuard:
    """Owns the output state of one source; every path that switches it goes through here."""

    def __init__(self, source: CurrentSource | None = None, *, may_be_on: bool = False,
                 attempts: int = OFF_CONFIRM_ATTEMPTS) -> None:
        self.source = source
        self.may_be_on = may_be_on
        self.was_on = False
        self.confirmed_off = False
        self.attempts = attempts
        self._estop = threading.Event()
        self._ons = 0  # on() calls: an emergency stop re-writes off if one raced it

    @property
    def emergency_stopped(self) -> bool:
        """True once `emergency_stop()` was called: `on()` is refused from then on."""
        return self._estop.is_set()

    @property
    def off_confirmed_or_never_on(self) -> bool:
        """The summary's `output_off_confirmed`: read back as off, or never switched on."""
        return self.confirmed_off or not self.was_on

    def attach(self, source: CurrentSource) -> None:
        """Use `source` from now on (the Procedure opens it after the guard exists)."""
        self.source = source

    # -- on ----------------------------------------------------------------------------------

    def on(self) -> bool:
        """Switch the output on, under the I/O lock; return False (nothing sent) after an e-stop."""
        source = self._require_source()
        with source.io_lock:
            if self._estop.is_set():
                log.warning("Output on refused: an emergency stop was requested")
                return False
            self.may_be_on = True
            self.was_on = True
            self.confirmed_off = False
            self._ons += 1
            source.output_on()
        return True

    # -- off ---------------------------------------------------------------------------------

    def emergency_stop(self, lock_timeout: float = ESTOP_LOCK_TIMEOUT_S) -> None:
        """Refuse any later `on()`, then write the output off at once; callable from ANY thread.

        Contract: never raises (failures are logged; the run's own off path confirms later);
        does not read back (that is the worker's `off_now`); waits for the I/O lock at most
        `lock_timeout` s (one exchange in progress), then writes without it. The check of
        `may_be_on` is made under the lock, so an `on()` racing it is switched off after it.
        """
        self._estop.set()
        source = self.source
        if source is None:
            return
        attempted, ons = False, self._ons
        if self.may_be_on:  # at once: the driver clears a reading in progress, then writes off
            attempted = True
            try:
                source.emergency_off(lock_timeout=0.0)
            except Exception:
                log.exception("Emergency stop: the off command failed; the off path will retry")
        acquired = source.io_lock.acquire(timeout=lock_timeout)
        try:
            if attempted and (not acquired or self._ons == ons):
                return  # written at once, and no on() slipped in since
            if acquired and not self.may_be_on:
                return
            source.emergency_off(lock_timeout=lock_timeout if acquired else 0.0)
        except Exception:
            log.exception("Emergency stop: the off command failed; the off path will retry")
        finally:
            if acquired:
                source.io_lock.release()

    def off_now(self) -> bool:
        """One off-write (no ramp) if it may be on, then confirm by read-back; return confirmed.

        Nothing is written or read when the output is already confirmed off.
        """
        source = self.source
        if source is None:
            return self.off_confirmed_or_never_on
        if not self.may_be_on and self.confirmed_off:
            return True
        if self.may_be_on:
            try:
                source.emergency_off()
            except Exception:
                log.exception("Output-off write failed; retrying")
        return self.confirm_off()

    def ramped_off(self, ramp: Callable[[], object] | None = None,
                   after_write: Callable[[], object] | None = None) -> bool:
        """Run `ramp` (setpoint to zero), then one normal OUTPUT OFF and read-back; confirmed?

        `after_write` runs between the write and the read-back (the run records its end there).
        An exception from the ramp or the off-write propagates: the caller's fault path then
        uses `off_now`.
        """
        if ramp is not None:
            ramp()
        source = self._require_source()
        source.output_off()
        if after_write is not None:
            after_write()
        return self.confirm_off()

    def confirm_off(self) -> bool:
        """Read back until off, re-writing (and reopening the session) between attempts."""
        source = self.source
        if source is None:
            return self.off_confirmed_or_never_on
        for attempt in range(1, self.attempts + 1):
            try:
                if not source.output_enabled():
                    self.confirmed_off = True
                    self.may_be_on = False
                    return True
            except Exception as exc:
                log.error("Output-off read-back failed (attempt %d/%d): %s",
                          attempt, self.attempts, exc)
            try:
                source.emergency_off()
            except Exception as exc:
                log.error("Output-off write failed (attempt %d/%d): %s; reopening the session",
                          attempt, self.attempts, exc)
                try:
                    source.reopen()
                    source.emergency_off()
                except Exception as again:
                    log.error("Reopening the session failed: %s", again)
        log.critical(UNCONFIRMED)
        return False

    def _require_source(self) -> CurrentSource:
        if self.source is None:
            from .source import InstrumentFault

            raise InstrumentFault("no instrument session")
        return self.source


__all__ = ["ESTOP_LOCK_TIMEOUT_S", "OFF_CONFIRM_ATTEMPTS", "UNCONFIRMED", "OutputGuard"]
