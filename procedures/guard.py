"""The guard: a small process that switches the output off when the run stops beating.

Every real-time run on a VISA resource (hardware, or `ionto sim serve`) starts one before the
output can go on (`GuardLink.start`). The run writes ``HB`` on the guard's stdin at every
sample; the guard answers ``A`` for each, so the run can see a frozen guard as well as a dead
one. The guard trips when

- its stdin reaches end-of-file without ``DONE`` (the run's process ended: killed, crashed,
  out of memory): at once;
- no heartbeat arrived for `timeout` seconds (the run is frozen: SIGSTOP, a hung thread).

Tripping: switch the output off through the guard's OWN VISA session (opened and verified
with *IDN? before arming; reopened if lost), read it back, write ``<results>.guard.json``
beside the results, append a GUARD event row to the results CSV, log CRITICAL, print
``TRIPPED {...}`` and exit with `EXIT_TRIPPED`. ``DONE`` (the run confirmed the output off)
ends the guard with exit code 0 without touching the instrument.

Sessions per transport: TCPIP (raw socket, VXI-11, HiSLIP) allows several; GPIB and USB are
shared between processes by NI-VISA/Keysight VISA, but pyvisa-py's USB claims the interface
for one process; ASRL (serial) allows one. The guard proves its session at arming time while
the run holds its own, so a one-session transport fails to arm and the run refuses to start.

This module imports no PyMeasure or Qt: the guard process stays small (see benchmarks).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ionto_instruments import limits as L

log = logging.getLogger("ionto.guard")

#: The rule name in a run's summary when the guard refused, tripped, died or froze.
GUARD_RULE = "guard"
#: Exit codes of the guard process.
EXIT_DONE = 0
EXIT_TRIPPED = 3
EXIT_NOT_ARMED = 4
EXIT_USAGE = 2
#: Heartbeat timeout floor (s): the run's loop may spend a VISA timeout (1 s) in one exchange.
MIN_TIMEOUT_S = L.GUARD_TIMEOUT_MIN.value
#: Seconds the run waits for the guard to arm (pyvisa-py's resource manager is slow to start).
ARM_TIMEOUT_S = L.GUARD_ARM_TIMEOUT.value
#: Attempts (and the pause between them) to switch off and read back on a trip.
TRIP_ATTEMPTS = int(L.GUARD_TRIP_ATTEMPTS.value)
TRIP_RETRY_PAUSE_S = 0.2
#: VISA timeout of the guard's session (ms): the same as the run's.
GUARD_VISA_TIMEOUT_MS = round(L.INSTRUMENT_TIMEOUT.value * 1000)

#: model -> (commands that switch the output off, in order; the read-back query)
OFF_SEQUENCES: dict[str, tuple[tuple[str, ...], str]] = {
    "keithley2400": (("OUTPUT 0",), "OUTPUT?"),
    # On the 2450 a trigger model (the dead-man) may be running: stop it first.
    "keithley2450": ((":ABOR", "OUTPUT OFF"), "OUTPUT?"),
}

#: Transports (VISA interface prefixes) that allow a second session while the run holds one.
CONCURRENT_SESSIONS = {
    "TCPIP": "several sessions (raw socket, VXI-11, HiSLIP)",
    "GPIB": "shared between processes by the VISA library (one bus, serialized)",
    "USB": "shared by NI-VISA/Keysight VISA; one process only with pyvisa-py (libusb)",
    "ASRL": "one session: the guard cannot reach the instrument while the run holds it",
}

#: Transports where the guard must not open a second session (it would interleave bytes).
ONE_SESSION_TRANSPORTS = frozenset({"ASRL"})


def heartbeat_timeout(sample_interval_s: float,
                      visa_timeout_s: float = L.INSTRUMENT_TIMEOUT.value) -> float:
    """The guard's timeout for a run sampling every `sample_interval_s`: never a false trip
    from one slow exchange (GUARD_TIMEOUT_FACTOR × (interval + VISA timeout)), never below
    GUARD_TIMEOUT_MIN."""
    return max(MIN_TIMEOUT_S, L.GUARD_TIMEOUT_FACTOR.value * (sample_interval_s
                                                              + visa_timeout_s))


def transport_of(resource: str) -> str:
    """The VISA interface of a resource name ("TCPIP", "GPIB", "USB", "ASRL", ...)."""
    head = resource.strip().upper().split("::", 1)[0]
    return head.rstrip("0123456789") or head


# -- the guard process ---------------------------------------------------------------------


@dataclass
class GuardConfig:
    resource: str
    model: str
    timeout_s: float
    note_path: Path | None
    results_csv: Path | None
    run_t0_monotonic: float | None
    visa_library: str
    run_pid: int | None


class Guard:
    """The guard's state: its own session and what to do on a trip."""

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        self._manager: Any = None
        self._session: Any = None

    # -- the session ----------------------------------------------------------------------

    def open_session(self) -> str:
        """Open (or reopen) the guard's own session and return *IDN?; raise on failure."""
        import pyvisa

        self.close_session()
        if self._manager is None:
            self._manager = pyvisa.ResourceManager(self.config.visa_library)
        session = self._manager.open_resource(self.config.resource, open_timeout=2000)
        session.timeout = GUARD_VISA_TIMEOUT_MS
        session.read_termination = session.write_termination = "\n"
        self._session = session
        return session.query("*IDN?").strip()

    def close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception as exc:  # a dead session: nothing left to close
                log.debug("closing the guard session: %s", exc)

    def switch_off(self) -> dict[str, Any]:
        """Write the off sequence and read it back, reopening as needed; return what happened."""
        commands, query = OFF_SEQUENCES[self.config.model]
        attempts: list[str] = []
        for attempt in range(1, TRIP_ATTEMPTS + 1):
            try:
                if self._session is None:
                    self.open_session()
                for command in commands:
                    self._session.write(command)
                state = self._session.query(query).strip()
                if state in ("0", "OFF"):
                    return {"off_confirmed": True, "read_back": state, "attempts": attempt,
                            "errors": attempts}
                attempts.append(f"read back {state!r}")
            except Exception as exc:  # any VISA/socket failure: reopen and try again
                attempts.append(f"{type(exc).__name__}: {exc}")
                self.close_session()
            time.sleep(TRIP_RETRY_PAUSE_S)
        return {"off_confirmed": False, "read_back": None, "attempts": TRIP_ATTEMPTS,
                "errors": attempts}

    # -- the trip -------------------------------------------------------------------------

    def trip(self, reason: str, detected_monotonic: float, last_beat_age: float) -> dict:
        """Switch off, record, log CRITICAL; return the note."""
        log.critical("GUARD TRIP: %s: switching the output off at %s", reason,
                     self.config.resource)
        result = self.switch_off()
        done = time.monotonic()
        note = {
            "event": "guard-trip",
            "reason": reason,
            "resource": self.config.resource,
            "model": self.config.model,
            "run_pid": self.config.run_pid,
            "heartbeat_timeout_s": self.config.timeout_s,
            "last_heartbeat_age_s": round(last_beat_age, 3),
            "detected_at": _iso(time.time() - (done - detected_monotonic)),
            "off_done_at": _iso(time.time()),
            "detect_to_off_s": round(done - detected_monotonic, 3),
        } | result
        if result["off_confirmed"]:
            log.critical("GUARD: output OFF confirmed (%s) after %d attempt(s)",
                         result["read_back"], result["attempts"])
        else:
            log.critical("GUARD: OUTPUT OFF NOT CONFIRMED: switch the SourceMeter off by hand "
                         "(front-panel OUTPUT key) and disconnect the patient leads. %s",
                         "; ".join(result["errors"]))
        self._write_note(note)
        self._append_event(note)
        return note

    def _write_note(self, note: dict) -> None:
        path = self.config.note_path
        if path is None:
            return
        try:
            tmp = path.with_suffix(path.suffix + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(note, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            log.critical("GUARD: could not write the note %s: %s", path, exc)

    def _append_event(self, note: dict) -> None:
        """Append one row with the GUARD event to the results CSV (if its header is there)."""
        path = self.config.results_csv
        if path is None:
            return
        try:
            columns = _csv_columns(path)
            if not columns:
                return
            t0 = self.config.run_t0_monotonic
            row = {c: "" for c in columns}
            if "Time (s)" in row and t0 is not None:
                row["Time (s)"] = f"{time.monotonic() - t0:.4f}"
            if "Phase" in row:
                row["Phase"] = "guard"
            if "Setpoint (mA)" in row:
                row["Setpoint (mA)"] = "0.0"
            if "Event" in row:
                state = "confirmed off" if note["off_confirmed"] else "OFF NOT CONFIRMED"
                row["Event"] = f"GUARD: {note['reason']}: output {state}"
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerow([row[c] for c in columns])
            with open(path, "rb+") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        f.write(b"\n")
                f.write(buffer.getvalue().encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            log.error("GUARD: could not append to %s: %s", path, exc)


def _csv_columns(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            return next(csv.reader([line]))
    return []


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1e3):03d}Z"


def _say(text: str) -> None:
    """One line to the run (stdout); the run may be gone, which is no error here."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def watch(guard: Guard, stdin_fd: int) -> int:
    """Arm, then watch the heartbeats until DONE (0) or a trip (EXIT_TRIPPED)."""
    timeout = guard.config.timeout_s
    last_beat = time.monotonic()
    buffer = b""
    while True:
        remaining = last_beat + timeout - time.monotonic()
        ready, _, _ = select.select([stdin_fd], [], [], max(0.0, remaining))
        if not ready:
            # Starved by the scheduler? Read whatever arrived before deciding.
            ready, _, _ = select.select([stdin_fd], [], [], 0)
        if not ready:
            now = time.monotonic()
            age = now - last_beat
            note = guard.trip(f"no heartbeat for {age:.2f} s (timeout {timeout:g} s): the run "
                              "is frozen", now, age)
            _say("TRIPPED " + json.dumps(note))
            return EXIT_TRIPPED
        chunk = os.read(stdin_fd, 4096)
        now = time.monotonic()
        if not chunk:
            age = now - last_beat
            note = guard.trip("the run's process ended without switching off (heartbeat pipe "
                              "closed)", now, age)
            _say("TRIPPED " + json.dumps(note))
            return EXIT_TRIPPED
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            word = line.strip()
            if word == b"HB":
                last_beat = now
                _say("A")
            elif word == b"DONE":
                log.info("GUARD: the run ended and confirmed the output off; disarmed")
                _say("DISARMED")
                return EXIT_DONE


def main(argv: list[str] | None = None) -> int:
    """`ionto guard`: arm against RESOURCE and watch the heartbeats on stdin."""
    args = build_parser().parse_args(argv)
    return run_guard(args)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The guard's arguments (also used by `ionto guard`)."""
    parser = parser or argparse.ArgumentParser(prog="ionto guard")
    parser.add_argument("--resource", required=True, help="VISA resource of the SourceMeter")
    parser.add_argument("--model", choices=list(OFF_SEQUENCES), default="keithley2400")
    parser.add_argument("--timeout", type=float, default=MIN_TIMEOUT_S, metavar="S",
                        help=f"trip after S seconds without a heartbeat (>= {MIN_TIMEOUT_S:g})")
    parser.add_argument("--note", type=Path, metavar="FILE.json",
                        help="where to write what the guard did on a trip")
    parser.add_argument("--results", type=Path, metavar="FILE.csv",
                        help="results CSV to append the guard's event row to")
    parser.add_argument("--t0", type=float, metavar="MONOTONIC",
                        help="the run's time origin (time.monotonic()) for the CSV row")
    parser.add_argument("--visa-library", default="", help="pyvisa library (default: pyvisa's)")
    parser.add_argument("--run-pid", type=int, help="the run's process id (for the note)")
    parser.add_argument("--log", type=Path, metavar="FILE", help="also log to FILE")
    return parser


def run_guard(args: argparse.Namespace) -> int:
    """Arm (own session, *IDN?), say ARMED, watch; see the module docstring."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if args.log:
        try:
            handlers.append(logging.FileHandler(args.log, encoding="utf-8"))
        except OSError as exc:
            print(f"ionto guard: cannot log to {args.log}: {exc}", file=sys.stderr)
    logging.basicConfig(level=logging.INFO, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(message)s")
    # Terminal signals belong to the run; the guard ends only by DONE, a trip or SIGKILL.
    for sig in (signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    if args.timeout < MIN_TIMEOUT_S:
        print(f"ionto guard: error: --timeout must be >= {MIN_TIMEOUT_S:g} s", file=sys.stderr)
        return EXIT_USAGE
    config = GuardConfig(args.resource, args.model, args.timeout, args.note, args.results,
                         args.t0, args.visa_library, args.run_pid)
    guard = Guard(config)
    transport = transport_of(args.resource)
    if transport in ONE_SESSION_TRANSPORTS:
        message = (f"{args.resource}: {transport} allows one session "
                   f"({CONCURRENT_SESSIONS[transport]}); a second one would corrupt the run's "
                   "exchanges, so the guard refuses and the run cannot switch the output on. "
                   "Connect the SourceMeter by GPIB, USB or LAN for real-time runs.")
        log.error("GUARD NOT ARMED: %s", message)
        _say("FAILED " + json.dumps({"error": message}))
        return EXIT_NOT_ARMED
    try:
        idn = guard.open_session()
    except Exception as exc:
        transport = transport_of(args.resource)
        why = CONCURRENT_SESSIONS.get(transport, "")
        message = (f"cannot open its own session to {args.resource}: {exc}"
                   + (f" ({transport}: {why})" if why else ""))
        log.error("GUARD NOT ARMED: %s", message)
        _say("FAILED " + json.dumps({"error": message}))
        return EXIT_NOT_ARMED
    log.info("GUARD armed on %s (%s), timeout %g s", args.resource, idn, args.timeout)
    _say("ARMED " + json.dumps({"idn": idn, "timeout_s": args.timeout, "pid": os.getpid()}))
    try:
        return watch(guard, sys.stdin.fileno())
    finally:
        guard.close_session()


# -- the run's side ------------------------------------------------------------------------


class GuardError(Exception):
    """The guard could not be started or armed: the run must not switch the output on."""


class GuardLink:
    """The run's end of the guard: start and arm it, beat, watch it, release it."""

    def __init__(self, resource: str, model: str, timeout_s: float,
                 results_csv: str | None = None, run_t0_monotonic: float | None = None,
                 visa_library: str = "") -> None:
        self.resource = resource
        self.model = model
        self.timeout_s = max(MIN_TIMEOUT_S, float(timeout_s))
        self.results_csv = results_csv
        self.note_path = (Path(results_csv).with_suffix(".guard.json") if results_csv
                          else None)
        self.run_t0 = run_t0_monotonic
        self.visa_library = visa_library
        self.process: subprocess.Popen[bytes] | None = None
        self.armed = False
        self.tripped: dict | None = None
        self.released = False
        self._unanswered_since: float | None = None  # first heartbeat not yet answered
        self._last_sent = 0.0
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._armed_event = threading.Event()
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        """The guard's command line."""
        cmd = [sys.executable, "-m", "ionto_instruments.procedures.guard",
               "--resource", self.resource, "--model", self.model,
               "--timeout", f"{self.timeout_s:g}", "--run-pid", str(os.getpid())]
        if self.note_path is not None:
            cmd += ["--note", str(self.note_path), "--results", str(self.results_csv),
                    "--log", str(Path(self.results_csv).with_suffix(".guard.log"))]
        if self.run_t0 is not None:
            cmd += ["--t0", repr(self.run_t0)]
        if self.visa_library:
            cmd += ["--visa-library", self.visa_library]
        return cmd

    def start(self, arm_timeout_s: float = ARM_TIMEOUT_S) -> None:
        """Start the guard in its own session group and wait until it is armed."""
        try:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=None, start_new_session=True, close_fds=True)
        except OSError as exc:
            raise GuardError(f"cannot start the guard process: {exc}") from exc
        self._reader = threading.Thread(target=self._read, name="guard-link", daemon=True)
        self._reader.start()
        if not self._armed_event.wait(arm_timeout_s) or not self.armed:
            failure = next((line[7:] for line in self._lines if line.startswith("FAILED ")),
                           "")
            self.kill()
            detail = json.loads(failure).get("error") if failure else (
                f"not armed within {arm_timeout_s:g} s")
            raise GuardError(f"the guard did not arm: {detail}")
        self._last_sent = time.monotonic()

    def _read(self) -> None:
        process = self.process
        assert process is not None and process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").strip()
            with self._lock:
                if line == "A":
                    self._unanswered_since = None
                    continue
                self._lines.append(line)
                if line.startswith("ARMED"):
                    self.armed = True
                    self._armed_event.set()
                elif line.startswith("TRIPPED "):
                    self.tripped = json.loads(line[8:])
                elif line.startswith("FAILED"):
                    self._armed_event.set()
        self._armed_event.set()

    def beat(self) -> None:
        """Send one heartbeat (never raises: a dead guard shows in `problem()`)."""
        process = self.process
        if process is None or process.stdin is None or self.released:
            return
        now = time.monotonic()
        self._last_sent = now
        with self._lock:
            if self._unanswered_since is None:
                self._unanswered_since = now
        try:
            process.stdin.write(b"HB\n")
            process.stdin.flush()
        except (OSError, ValueError):
            pass

    def problem(self) -> str | None:
        """None while the guard is up and answering; else what is wrong, in a sentence."""
        process = self.process
        if process is None or not self.armed or self.released:
            return None
        if time.monotonic() - self._last_sent > self.timeout_s:
            self._await_verdict()
        code = process.poll()
        if code is not None:
            if code == EXIT_TRIPPED or self.tripped is not None:
                return "the guard switched the output off (the run's heartbeat was late)"
            return f"the guard process ended (exit code {code})"
        with self._lock:
            since = self._unanswered_since
        if since is not None and time.monotonic() - since > self.timeout_s:
            return (f"the guard has not answered a heartbeat for "
                    f"{time.monotonic() - since:.1f} s (frozen?)")
        return None

    def _await_verdict(self) -> None:
        """This run was frozen past the timeout: let the guard's verdict decide, not a race.

        Beat once, then wait until the guard answers it (it had not tripped) or exits (it
        tripped: it exits once the output is off and recorded).
        """
        process = self.process
        assert process is not None
        self.beat()
        deadline = time.monotonic() + TRIP_ATTEMPTS * (TRIP_RETRY_PAUSE_S + 2.0)
        while time.monotonic() < deadline and process.poll() is None:
            with self._lock:
                if self._unanswered_since is None:
                    return
            time.sleep(0.01)

    def guard_tripped(self) -> bool:
        """True if the guard tripped (it switched the output off itself)."""
        process = self.process
        return process is not None and (process.poll() == EXIT_TRIPPED
                                        or self.tripped is not None)

    def release(self, wait_s: float = 2.0) -> None:
        """The run confirmed the output off: disarm the guard and let it exit."""
        process = self.process
        if process is None or self.released:
            return
        self.released = True
        try:
            if process.stdin is not None:
                process.stdin.write(b"DONE\n")
                process.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            log.warning("The guard did not exit after DONE; killing it")
            self.kill()

    def kill(self) -> None:
        """Stop the guard without a trip (only when nothing was energized)."""
        process = self.process
        if process is None:
            return
        self.released = True
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def describe(self) -> dict[str, Any]:
        """For the summary: what the guard was and did."""
        return {"pid": self.pid, "resource": self.resource, "timeout_s": self.timeout_s,
                "armed": self.armed, "tripped": self.tripped is not None or (
                    self.process is not None and self.process.poll() == EXIT_TRIPPED),
                "note": str(self.note_path) if self.note_path else None}


if __name__ == "__main__":
    sys.exit(main())
