"""Run a protocol from Python without the GUI, safely at every exit of the caller.

    with start_protocol(procedure, output_dir="runs") as run:   # output off on every exit
        for live in run.updates():
            print(live.phase, live.current_mA)
    print(run.summary["outcome"])

`run_protocol(...)` is the one-call form. Whatever happens in the caller's thread while a run
is active, the run ends with the output off and its summary on disk *before* the exception
propagates: Ctrl-C once is an operator stop (ramp down), twice an emergency stop; any other
exception (an `on_update` callback that raises included) is an emergency stop.

PyMeasure traps avoided here: `Worker.join(timeout)` *stops* the worker when the timeout
expires, and on CPython 3.11 a KeyboardInterrupt while the caller waits in `Thread.join` can
mark a still-running worker as stopped, so the interpreter exits without waiting for it. The
caller therefore waits on an Event the worker sets after its shutdown, never on the thread.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from logging.handlers import QueueListener
from types import TracebackType
from typing import Any

from pymeasure.experiment import Procedure, Worker

from ionto_instruments.clock import Clock

from .iontophoresis import ConstantCurrentIontophoresis, LiveStatus
from .plan import InvalidParameter
from .results import IontoResults, check_output_dir, new_results_file, planned_file_bytes
from .terminal import StopSignals

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: How long the caller waits for the worker's shutdown after an emergency stop (real s).
ESTOP_WAIT_S = 60.0


class ProcedureAlreadyRun(RuntimeError):
    """A Procedure object runs once; build a new one with `make_procedure` for another run."""


def make_procedure(values: Mapping[str, Any] | None = None,
                   **kwargs: Any) -> ConstantCurrentIontophoresis:
    """Build the Procedure from parameter values; InvalidParameter names a bad field and range."""
    procedure = ConstantCurrentIontophoresis()
    parameters = procedure.parameter_objects()
    for name, value in {**(values or {}), **kwargs}.items():
        if name not in parameters:
            raise InvalidParameter(name, f"unknown parameter; valid: {', '.join(parameters)}")
        parameter = parameters[name]
        try:
            value = parameter.convert(value)
        except ValueError as exc:
            low, high = getattr(parameter, "minimum", None), getattr(parameter, "maximum", None)
            units = getattr(parameter, "units", None) or ""
            if low is not None and high is not None:
                raise InvalidParameter(parameter.name, f"{value!r} is outside the allowed range "
                                       f"[{low:g}, {high:g}] {units}".rstrip()) from None
            choices = getattr(parameter, "choices", None)
            if choices:
                raise InvalidParameter(parameter.name, f"{value!r} is not one of "
                                       f"{', '.join(map(str, choices))}") from None
            raise InvalidParameter(parameter.name, str(exc)) from None
        setattr(procedure, name, value)
    procedure.refresh_parameters()
    return procedure


class IontoWorker(Worker):
    """PyMeasure's Worker, plus an Event set once its shutdown has finished (output off,
    summary written), and results-file write errors reported once instead of as a traceback
    per row (the Procedure turns them into the `storage-fault` trip); a failing final flush
    cannot crash its shutdown. Usable wherever PyMeasure builds a Worker (the GUI's Manager)."""

    def __init__(self, results: IontoResults, *args: Any, **kwargs: Any) -> None:
        super().__init__(results, *args, **kwargs)
        self.finished = threading.Event()
        self._quieted = False

    def handle_record(self, record: dict[str, Any]) -> None:
        if not self._quieted and self.recorder is not None:
            self._quieted = True
            for handler in self.recorder.handlers:
                handler.handleError = self._write_failed  # type: ignore[method-assign]
        super().handle_record(record)

    def _write_failed(self, record: Any) -> None:
        self._note(sys.exc_info()[1])

    def _note(self, error: BaseException | None) -> None:
        if isinstance(self.results, IontoResults):
            self.results.note_write_error(error)

    def shutdown(self) -> None:
        if self.recorder is not None:
            self.recorder.stop = self._stop_recorder  # type: ignore[method-assign]
        super().shutdown()

    def _stop_recorder(self) -> None:
        """Close the results file; a failing final flush is a storage fault, not a crash."""
        recorder = self.recorder
        for handler in recorder.handlers:
            try:
                handler.close()
            except OSError as exc:
                self._note(exc)
        QueueListener.stop(recorder)

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.finished.set()


class ProtocolRun:
    """One run of a Procedure on a worker thread; a context manager that ends it safely.

    Leaving the `with` block while the run is active stops it: normally or on the first
    Ctrl-C with a ramp-down, on a second Ctrl-C or any other exception at once (emergency
    stop). The exception propagates only after the output is off and the summary written.
    """

    def __init__(self, procedure: ConstantCurrentIontophoresis,
                 output_dir: str | os.PathLike[str] = ".", prefix: str = "ionto",
                 clock: Clock | None = None, poll_s: float = 0.1,
                 handle_signals: bool = True) -> None:
        check_fresh(procedure)
        self.handle_signals = handle_signals
        self._signals: StopSignals | None = None
        self.procedure = procedure
        self.output_dir = output_dir
        self.prefix = prefix
        self.poll_s = poll_s
        if clock is not None:
            procedure.clock = clock
        self.results: IontoResults | None = None
        self._worker: IontoWorker | None = None
        self._interrupts = 0
        self._stop_sent = False
        self._estop_reason: str | None = None
        self._estop_sent = False
        self._estop_deadline = 0.0
        self._gave_up = False

    # -- starting and state

    def start(self) -> ProtocolRun:
        """Create the results file (exclusively) and start the run on its worker thread."""
        if self._worker is not None:
            raise ProcedureAlreadyRun("this run was already started")
        check_fresh(self.procedure)
        check_output_dir(self.output_dir, _planned_bytes(self.procedure))
        self.procedure.mark_started()
        self.results = IontoResults(self.procedure,
                                    new_results_file(self.output_dir, self.prefix))
        self._worker = IontoWorker(self.results)
        if self.handle_signals:
            self._signals = StopSignals(self.procedure, interrupt=False, only_default=True,
                                        finished=self._worker.finished.is_set).__enter__()
        self._worker.start()
        return self

    @property
    def running(self) -> bool:
        """True from start until the worker's shutdown has finished."""
        return self._worker is not None and not self._worker.finished.is_set()

    @property
    def live(self) -> LiveStatus:
        """The live status (phase, current, voltage, dose, ...), replaced every sample."""
        return self.procedure.live

    @property
    def summary(self) -> dict[str, Any] | None:
        """The run's summary once it has ended (also on disk beside the results file)."""
        return self.procedure.summary

    # -- controls

    def stop(self) -> None:
        """Operator stop: ramp down over the ramp-down time, then off."""
        self.procedure.request_stop()

    def emergency_stop(self, reason: str = "Emergency stop by the caller") -> None:
        """Switch the output off at once, from this thread, without waiting for the loop."""
        self.procedure.emergency_stop(reason)

    # -- waiting

    def wait(self, timeout: float | None = None,
             on_update: Callable[[LiveStatus], None] | None = None) -> dict[str, Any] | None:
        """Wait for the end (or `timeout` real seconds); return the summary, None if still on.

        Safe against interrupts: an exception here (Ctrl-C, an `on_update` that raises) first
        ends the run with the output off and the summary written, then propagates.
        """
        if self._worker is None:
            raise RuntimeError("the run was not started")
        clock_deadline = None if timeout is None else _monotonic() + timeout
        pending: BaseException | None = None
        while True:
            try:
                self._act_on_interrupts(pending)
                if self._worker.finished.wait(self._wait_step(clock_deadline, pending)):
                    break
                if pending is None:
                    if on_update is not None:
                        on_update(self.procedure.live)
                    if clock_deadline is not None and _monotonic() >= clock_deadline:
                        return None
                elif self._estop_sent and _monotonic() >= self._estop_deadline:
                    log.critical("The run did not finish %g s after the emergency stop; the "
                                 "output-off command was sent from the caller's thread",
                                 ESTOP_WAIT_S)
                    self._gave_up = True
                    break
            except KeyboardInterrupt as exc:
                self._interrupts += 1
                if pending is None:
                    pending = exc
            except BaseException as exc:
                if pending is None or isinstance(pending, KeyboardInterrupt):
                    pending = exc
                if self._estop_reason is None:
                    self._estop_reason = (f"Emergency stop: the calling program failed "
                                          f"({type(exc).__name__}: {exc})")
        received = self._release_signals()
        if on_update is not None and pending is None:
            on_update(self.procedure.live)
        if pending is not None:
            raise pending
        if received is not None:  # the signal ends the script, as it meant to, but only now
            raise SystemExit(128 + received)
        return self.summary

    def _release_signals(self) -> int | None:
        """Restore the signal handlers; return the terminating signal received, if any."""
        signals, self._signals = self._signals, None
        if signals is None:
            return None
        signals.__exit__(None, None, None)
        return signals.received

    def updates(self, every_s: float | None = None) -> Iterator[LiveStatus]:
        """Yield the live status about every `every_s` real seconds until the run ends."""
        step = self.poll_s if every_s is None else every_s
        while self.running:
            if self.wait(timeout=step) is None and self.running:
                yield self.procedure.live
        yield self.procedure.live

    def _wait_step(self, deadline: float | None, pending: BaseException | None) -> float:
        if pending is not None or deadline is None:
            return self.poll_s
        return max(0.0, min(self.poll_s, deadline - _monotonic()))

    def _act_on_interrupts(self, pending: BaseException | None) -> None:
        """Turn interrupts and failures counted so far into stops (idempotent, re-entrant)."""
        if self._interrupts >= 2 and self._estop_reason is None:
            self._estop_reason = "Emergency stop (Ctrl-C twice)"
        if self._estop_reason is not None and not self._estop_sent:
            self._estop_deadline = _monotonic() + ESTOP_WAIT_S
            self.procedure.emergency_stop(self._estop_reason)
            self._estop_sent = True
        elif self._interrupts == 1 and not self._stop_sent:
            self.procedure.request_stop()
            self._stop_sent = True
            log.warning("Interrupted: stopping, ramping down to zero, then output off "
                        "(interrupt again to switch the output off at once)")

    # -- context manager

    def __enter__(self) -> ProtocolRun:
        if self._worker is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.running or self._gave_up:
            return
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            if exc_type is KeyboardInterrupt:
                self._interrupts = max(self._interrupts, 1)
            else:
                self.stop()
                self._stop_sent = True
        else:
            self._estop_reason = (f"Emergency stop: the calling program failed "
                                  f"({exc_type.__name__}: {exc})")
        self.wait()


def check_fresh(procedure: ConstantCurrentIontophoresis) -> None:
    """Raise ProcedureAlreadyRun when `procedure` has already been run (or is running)."""
    if procedure.has_started or procedure.summary is not None or \
            procedure.status not in (Procedure.QUEUED,):
        raise ProcedureAlreadyRun(
            "this Procedure has already been run; a Procedure runs once: build a new one "
            "with make_procedure(...) for another run")


def start_protocol(procedure: ConstantCurrentIontophoresis,
                   output_dir: str | os.PathLike[str] = ".", prefix: str = "ionto",
                   clock: Clock | None = None, poll_s: float = 0.1,
                   handle_signals: bool = True) -> ProtocolRun:
    """Start `procedure` and return its ProtocolRun; use it in a `with` block."""
    return ProtocolRun(procedure, output_dir, prefix, clock, poll_s, handle_signals).start()


def run_protocol(procedure: ConstantCurrentIontophoresis, output_dir: str | os.PathLike[str] = ".",
                 prefix: str = "ionto", clock: Clock | None = None,
                 on_update: Callable[[LiveStatus], None] | None = None,
                 poll_s: float = 0.1, handle_signals: bool = True) -> dict[str, Any]:
    """Run `procedure` to its end, writing results + summary into `output_dir`; return summary.

    `on_update` is called with the live status about every `poll_s` seconds (progress lines);
    if it raises, the run is stopped at once (output off) and the exception propagates.
    With `handle_signals` (main thread only), a terminating signal that still has its default
    action (SIGTERM, SIGHUP, SIGQUIT, ...) is an emergency stop first, then SystemExit(128+N).
    """
    with ProtocolRun(procedure, output_dir, prefix, clock, poll_s, handle_signals) as run:
        run.wait(on_update=on_update)
    if procedure.summary is None:
        raise RuntimeError("the run ended without a summary; see the log")
    return procedure.summary


def _planned_bytes(procedure: ConstantCurrentIontophoresis) -> int:
    try:
        plan = procedure.build_plan()
    except ValueError:
        return 0  # the pre-flight refuses the run and writes only the summary
    return planned_file_bytes(plan.total_s, plan.sample_interval_s)


def _monotonic() -> float:
    return time.monotonic()
