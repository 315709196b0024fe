"""The terminal side of a run: progress on stderr, log lines, and the stop signals.

Split out of the command line so that `cli.py` parses and dispatches while this module owns
what a person at the terminal sees and does during a run (Ctrl-C, Ctrl-Z, signals).

Signals during a run (main thread only; restored afterwards):

- SIGINT (Ctrl-C) once: operator stop, ramp down then off; twice: emergency stop.
- SIGTSTP (Ctrl-Z): emergency stop *before* the process suspends (an output nobody watches
  must not exist); it says so on stderr, then suspends as asked. After `fg` the run ends.
- Every other catchable signal whose default action ends the process (`TERMINATING_SIGNALS`:
  SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGXCPU, SIGVTALRM, SIGPROF, SIGIO,
  SIGPWR, SIGSTKFLT and the real-time signals): emergency stop, the run ends with its summary
  and exit code 5. A signal the caller set to be ignored (e.g. SIGHUP under `nohup`) stays
  ignored.
- SIGTTIN/SIGTTOU (a background run touching the terminal) are ignored during the run, so
  they cannot stop the process with the output on.
- Not handled: SIGKILL and SIGSTOP (cannot be caught: the instrument keeps its last state;
  see docs/hazards.md), and SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS, which
  mean the interpreter itself is broken; SIGPIPE and SIGXFSZ are ignored by Python already
  (they become OSErrors: a full disk is a storage fault).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .iontophoresis import ConstantCurrentIontophoresis, LiveStatus

#: Plain log lines (stderr not a terminal) come at most this often in run time, plus events.
LOG_EVERY_S = 10.0
#: How long Ctrl-Z waits for the run's shutdown (summary written) before suspending (real s).
SUSPEND_WAIT_S = 5.0

log = logging.getLogger("ionto_instruments.cli")

_NOT_HANDLED = {"SIGKILL", "SIGSTOP", "SIGCHLD", "SIGCONT", "SIGURG", "SIGWINCH", "SIGTSTP",
                "SIGTTIN", "SIGTTOU", "SIGINT", "SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE",
                "SIGABRT", "SIGIOT", "SIGTRAP", "SIGSYS", "SIGPIPE", "SIGXFSZ", "SIGCLD",
                "SIGEMT", "SIGINFO", "SIGBREAK", "CTRL_C_EVENT", "CTRL_BREAK_EVENT"}


def _terminating_signals() -> tuple[signal.Signals, ...]:
    """The catchable signals whose default action ends the process (this platform)."""
    found = []
    for signum in sorted(signal.valid_signals()):
        try:
            name = signal.Signals(signum).name
        except ValueError:  # a real-time signal without a name of its own
            name = f"SIGRT{signum}"
        if name in _NOT_HANDLED:
            continue
        found.append(signum)
    return tuple(found)


#: Catchable signals that would end the process: each one is an emergency stop during a run.
TERMINATING_SIGNALS: tuple[int, ...] = _terminating_signals()


def signal_name(signum: int) -> str:
    """SIGTERM, SIGRTMIN+3, ... for a signal number."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        rtmin = getattr(signal, "SIGRTMIN", None)
        return f"SIGRTMIN+{signum - rtmin}" if rtmin is not None else f"signal {signum}"


def minutes(seconds: float) -> str:
    """Format seconds as m:ss (or '--:--' when unknown)."""
    if not math.isfinite(seconds):
        return "--:--"
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def _num(value: float, fmt: str) -> str:
    return format(value, fmt) if math.isfinite(value) else "--"


def status_text(live: LiveStatus, planned_dose: float) -> str:
    """The progress line: phase, elapsed / remaining, current, voltage, impedance, dose."""
    return (f"{live.phase:<9} {minutes(live.elapsed_s)} / {minutes(live.remaining_s)} left  "
            f"{_num(live.current_mA, '+.3f')} mA  {_num(live.voltage_V, '.2f')} V  "
            f"{_num(live.impedance_kohm, '.2f')} kOhm  "
            f"{live.dose_mA_min:.2f}/{planned_dose:.2f} mA*min")


class Console:
    """Human output on stderr: a progress line on a terminal, else plain periodic log lines."""

    def __init__(self, stream: TextIO, planned_dose: float = 0.0,
                 every_s: float = LOG_EVERY_S) -> None:
        self.stream = stream
        try:
            self.tty = stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.planned_dose = planned_dose
        self.every_s = every_s
        self._shown = 0
        self._next_t = 0.0
        self._last_event = ""
        self._lock = threading.RLock()
        self._broken = False

    def line(self, text: str) -> None:
        """Print one line, clearing the progress line first on a terminal."""
        with self._lock:
            self._write(("\r" + " " * self._shown + "\r" if self._shown else "") + text + "\n")
            self._shown = 0

    def update(self, live: LiveStatus) -> None:
        """Show the live status: events as lines, then the progress line or a periodic line."""
        with self._lock:
            if live.last_event and live.last_event != self._last_event:
                self._last_event = live.last_event
                self.line(f"[{minutes(live.elapsed_s)}] {live.last_event}")
            status = status_text(live, self.planned_dose)
            if self.tty:
                width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
                text = status[:width]
                self._write("\r" + text + " " * max(0, self._shown - len(text)))
                self._shown = len(text)
            elif live.phase in ("ramp-up", "hold", "ramp-down") and live.t >= self._next_t:
                self._next_t = (math.floor(live.t / self.every_s) + 1) * self.every_s
                self.line(status)

    def close(self) -> None:
        """Clear the progress line so what follows starts on a clean line."""
        with self._lock:
            if self._shown:
                self._write("\r" + " " * self._shown + "\r")
                self._shown = 0

    def _write(self, text: str) -> None:
        if self._broken:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self._broken = True  # a closed terminal must not stop the run's shutdown path


class _ConsoleHandler(logging.Handler):
    """Log records as single lines through the Console (no tracebacks)."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = " ".join(record.getMessage().split())
            self.console.line(f"{record.levelname}: {message}")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def logging_to(console: Console, verbose: bool) -> Iterator[None]:
    """Route warnings (or, verbose, info) of the run to the console; restore afterwards."""
    handler = _ConsoleHandler(console)
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:  # PyMeasure's Worker sets its own logger level; keep its chatter out
        handler.addFilter(lambda r: not r.name.startswith("pymeasure")
                          or r.levelno >= logging.CRITICAL)
    loggers = {name: logging.getLogger(name) for name in ("ionto_instruments", "pymeasure")}
    saved = {name: (lg.level, lg.propagate) for name, lg in loggers.items()}
    loggers["ionto_instruments"].setLevel(logging.INFO if verbose else logging.WARNING)
    loggers["pymeasure"].setLevel(logging.WARNING if verbose else logging.CRITICAL)
    for lg in loggers.values():
        lg.addHandler(handler)
        lg.propagate = False
    try:
        yield
    finally:
        for name, lg in loggers.items():
            lg.removeHandler(handler)
            lg.setLevel(saved[name][0])
            lg.propagate = saved[name][1]


def never_raises(callback: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap a display callback so a display error cannot abandon a running protocol."""
    def safe(value: Any) -> None:
        try:
            callback(value)
        except Exception:
            log.debug("progress display failed", exc_info=True)
    return safe


class StopSignals:
    """The stop signals of a run (see the module docstring), installed for its duration.

    Handlers only set flags and start the emergency stop on a helper thread, so they never
    block or print, except Ctrl-Z, which must switch off before the process suspends.
    `interrupt=False` leaves SIGINT alone (the Python API turns it into KeyboardInterrupt).
    """

    def __init__(self, procedure: ConstantCurrentIontophoresis, interrupt: bool = True,
                 finished: Callable[[], bool] | None = None, only_default: bool = False) -> None:
        self.procedure = procedure
        self.interrupt = interrupt
        #: Take over only signals still at their default action (a script's own handlers win).
        self.only_default = only_default
        #: The first terminating signal received (SIGINT and SIGTSTP excluded), or None.
        self.received: int | None = None
        done = getattr(procedure, "shutdown_done", None)
        self.finished = finished or (done.is_set if done is not None else lambda: False)
        self.notices: list[str] = []
        self.interrupts = 0
        self._threads: list[threading.Thread] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        wanted: list[tuple[int, Any]] = []
        if self.interrupt:
            wanted.append((signal.SIGINT, self._on_interrupt))
        wanted += [(signum, self._on_terminate) for signum in TERMINATING_SIGNALS]
        if hasattr(signal, "SIGTSTP"):
            wanted.append((signal.SIGTSTP, self._on_suspend))
        for name in ("SIGTTIN", "SIGTTOU"):
            if hasattr(signal, name):
                wanted.append((getattr(signal, name), signal.SIG_IGN))
        for signum, handler in wanted:
            try:
                previous = signal.getsignal(signum)
                if previous == signal.SIG_IGN and signum != signal.SIGINT:
                    continue  # ignored on purpose by whoever started us (nohup): keep it so
                if self.only_default and previous not in (signal.SIG_DFL, None):
                    continue
                self._previous[signum] = signal.signal(signum, handler)
            except (OSError, ValueError):
                continue  # not settable on this platform
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
        for thread in self._threads:
            thread.join(5.0)

    def _on_interrupt(self, signum: int, frame: object) -> None:
        self.interrupts += 1
        if self.interrupts == 1:
            self.procedure.request_stop()
            self.notices.append("Ctrl-C: stopping, ramping down to zero, then output off "
                                "(Ctrl-C again switches the output off at once)")
        else:
            self._emergency("Emergency stop (Ctrl-C twice)")

    def _on_terminate(self, signum: int, frame: object) -> None:
        if self.received is None:
            self.received = signum
        if self.finished():  # the run is over but we are still installed: act as the default
            signal.signal(signum, self._previous.pop(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self._emergency(f"Emergency stop ({signal_name(signum)})")

    def _on_suspend(self, signum: int, frame: object) -> None:
        """Ctrl-Z: off at once from here; a helper suspends once the summary is written.

        The helper (not this handler) waits, because the interrupted main thread may hold a
        lock the run's shutdown needs (the console's). It then stops the process (SIGSTOP).
        """
        reason = "Emergency stop (Ctrl-Z, SIGTSTP: the process is being suspended)"
        self.procedure.emergency_stop(reason)
        self.notices.append(f"{reason}: output switched off before suspending")
        thread = threading.Thread(target=self._suspend_when_done, name="ionto-suspend",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def _suspend_when_done(self) -> None:
        deadline = time.monotonic() + SUSPEND_WAIT_S
        while not self.finished() and time.monotonic() < deadline:
            time.sleep(0.01)
        with contextlib.suppress(OSError):
            os.write(2, b"\nCtrl-Z: the output was switched off at once (emergency stop) "
                        b"before suspending; the run is over. `fg` shows its summary.\n")
        os.kill(os.getpid(), signal.SIGSTOP)

    def _emergency(self, reason: str) -> None:
        self.notices.append(f"{reason}: switching the output off at once")
        thread = threading.Thread(target=self.procedure.emergency_stop, args=(reason,),
                                  name="ionto-emergency-stop", daemon=True)
        self._threads.append(thread)
        thread.start()


