"""The simulated SourceMeter as its own process: SCPI over TCP, like a LAN instrument.

    server = SimServer("keithley2450", scenario="normal", port=5025)
    server.start()        # or `ionto sim serve --model keithley2450`
    # clients: TCPIP0::127.0.0.1::5025::SOCKET through pyvisa-py

One instrument, many connections: every program message (one line, "\\n"-terminated) from any
connection is executed by the same `SourceMeterModel.process` the in-process pyvisa backend
uses, one message at a time under one lock, and its reply goes back on the connection that
asked. The server outlives its clients, so a run that dies leaves the output as it was, as
real hardware does; that is what the guard process and the 2450 dead-man are tested against.

A second port speaks JSON lines (the control channel, for tests and training):

    {"cmd": "state"}                      ground truth: output, setpoint, on-time, changes
    {"cmd": "fault", "scenario": "io-timeout"}   a fault from now on ("normal" clears it)
    {"cmd": "load", "ohm": 4700}          a fixed resistance between the electrodes
    {"cmd": "drop"}                       close every SCPI connection now (a LAN drop)
    {"cmd": "shutdown"}                   stop the server

Each request gets one JSON line back with "ok": true/false. Wire faults act per connection:
`io-timeout` swallows replies, `garbled` corrupts reading replies, `disconnect` closes the
connections that were open at the onset (new connections work, as after a real LAN drop).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..clock import Clock, RealClock, ScaledClock
from . import MODELS, SimulatedSourceMeter
from .backend import GARBAGE
from .phantom import PhantomParams, SkinPhantom
from .scenarios import Fault, Scenario, parse_scenario
from .trigger_model import TriggerModel

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

DEFAULT_PORT = 5025
#: A program message longer than this is refused and the connection closed (a runaway client).
MAX_MESSAGE_BYTES = 64 * 1024
#: Output changes kept for the control channel's ground truth.
MAX_CHANGES = 10_000
#: How often the 2450's trigger model is advanced when no message arrives (seconds).
TICK_S = 0.02


@dataclass(frozen=True)
class OutputChange:
    """One change of the output state as seen at the instrument."""

    wall: float  # time.time() when it happened
    monotonic: float  # time.monotonic() when it happened
    on: bool
    setpoint_A: float
    cause: str  # "scpi:<client>", "deadman", "control"

    def as_dict(self) -> dict[str, Any]:
        return {"wall": self.wall, "monotonic": self.monotonic, "on": self.on,
                "setpoint_A": self.setpoint_A, "cause": self.cause}


class SimServer:
    """One simulated SourceMeter served over TCP (SCPI) with a JSON-lines control port."""

    def __init__(self, model: str = "keithley2400", scenario: str | Scenario = "normal",
                 host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 control_port: int | None = None, speed: float = 1.0, seed: int = 0,
                 clock: Clock | None = None, max_connections: int = 0) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown simulated model {model!r}; choose one of "
                             f"{', '.join(MODELS)}")
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a finite number > 0, got {speed!r}")
        if clock is None:
            clock = RealClock() if speed == 1 else ScaledClock(speed)
        self.sim = SimulatedSourceMeter(model, scenario=scenario, clock=clock, seed=seed)
        self.model = self.sim.model
        self.host = host
        #: 0: any number of SCPI connections; 1 emulates a one-session transport (serial).
        self.max_connections = max_connections
        self.lock = threading.RLock()  # one instrument: one message at a time
        self.changes: list[OutputChange] = []
        self._on_since: float | None = None
        self._recorded_on = False
        #: The 2450's trigger model (the dead-man runs on it); None on a 2400.
        self.trigger: TriggerModel | None = None
        if self.model.dialect == "2450":
            self.trigger = TriggerModel(self.model, on_output=self._trigger_output)
            self.trigger.install()
        self._garble_rng = random.Random(seed)
        self._connections: dict[int, tuple[socket.socket, float]] = {}
        self._next_id = 0
        self._stopped = threading.Event()
        self._scpi = _TCPServer((host, port), _ScpiHandler, self)
        control = port + 1 if control_port is None and port else (control_port or 0)
        self._control = _TCPServer((host, control), _ControlHandler, self)
        self._threads: list[threading.Thread] = []

    # -- life cycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The SCPI port actually bound (useful with port 0)."""
        return self._scpi.server_address[1]

    @property
    def control_port(self) -> int:
        """The control port actually bound."""
        return self._control.server_address[1]

    @property
    def resource_name(self) -> str:
        """The VISA address of the SCPI port, for pyvisa-py."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def start(self) -> None:
        """Serve both ports on background threads."""
        for server in (self._scpi, self._control):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=f"sim-server-{server.server_address[1]}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.trigger is not None:
            ticker = threading.Thread(target=self._tick, name="sim-server-trigger", daemon=True)
            ticker.start()
            self._threads.append(ticker)
        log.info("Simulated %s serving SCPI on %s:%d, control on %d", self.sim.title, self.host,
                 self.port, self.control_port)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until shutdown() (or the timeout); return True if stopped."""
        return self._stopped.wait(timeout)

    def shutdown(self) -> None:
        """Stop serving and close every connection (the instrument is switched off)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.drop_connections()
        for server in (self._scpi, self._control):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> SimServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- the instrument -----------------------------------------------------------------

    def execute(self, message: str, cause: str = "scpi") -> str | None:
        """Execute one program message on the model; return the reply text (None: no reply)."""
        with self.lock:
            self._advance()
            if self.trigger is not None and "*RST" in message.upper():
                self.trigger.reset()  # *RST stops and empties the trigger model
            reply = self.model.process(message)
            self.note_output(cause)
        fault = self.model.scenario.wire_fault(self.model.run_time())
        if reply.text is None or fault is Fault.IO_TIMEOUT:
            return None
        if reply.reading and fault is Fault.GARBLED:
            return "".join(self._garble_rng.choice(GARBAGE) if c.isdigit() else c
                           for c in reply.text)
        return reply.text

    def note_output(self, cause: str, when: float | None = None) -> None:
        """Record an output change, if there was one (call with the lock held).

        `when` is the monotonic time it happened (default now).
        """
        after = self.model.output_enabled
        if after == self._recorded_on:
            return
        self._recorded_on = after
        now = time.monotonic() if when is None else when
        self._on_since = now if after else None
        if len(self.changes) >= MAX_CHANGES:
            del self.changes[: MAX_CHANGES // 10]
        wall = time.time() - (time.monotonic() - now)
        self.changes.append(OutputChange(wall, now, after, self.model.setpoint, cause))
        log.info("output %s (%s)", "ON" if after else "OFF", cause)

    def _trigger_output(self, on: bool, clock_time: float) -> None:
        """The trigger model switched the output at `clock_time` (model clock)."""
        clock = self.model.clock
        when = time.monotonic() - (clock.now() - clock_time) / clock.speed
        self.note_output("trigger-model", when)

    def _advance(self) -> None:
        if self.trigger is not None:
            self.trigger.advance()
            self.note_output("trigger-model")

    def _tick(self) -> None:
        while not self._stopped.wait(TICK_S):
            with self.lock:
                self._advance()

    def state(self) -> dict[str, Any]:
        """The ground truth: output state, setpoint, how long on, every output change."""
        with self.lock:
            self._advance()
            on = self.model.output_enabled
            return {
                "model": self.sim.model_name,
                "scenario": self.model.scenario.name,
                "output": on,
                "setpoint_A": self.model.setpoint,
                "compliance_V": self.model.compliance_voltage,
                "resistance_ohm": _finite(self.model.resistance()),
                "on_for_s": (time.monotonic() - self._on_since) if on and self._on_since
                else 0.0,
                "monotonic": time.monotonic(),
                "wall": time.time(),
                "connections": len(self._connections),
                "changes": [c.as_dict() for c in self.changes],
                "errors": self.model.errors,
                "trigger_model": self.trigger.describe() if self.trigger else None,
            }

    def set_fault(self, scenario: str) -> str:
        """Start a fault now on the run axis ("normal" clears any fault); return its name."""
        parsed = parse_scenario(scenario)
        with self.lock:
            if parsed.fault is not None and "@" not in scenario:
                parsed = Scenario(parsed.fault, self.model.run_time() / 60.0)
            self.model.scenario = parsed
            self.sim.scenario = parsed
        if parsed.fault is Fault.DISCONNECT:
            self.drop_connections(opened_before=time.monotonic())
        return parsed.name

    def set_load(self, ohm: float) -> None:
        """Put a fixed resistance between the electrodes (replaces the skin phantom)."""
        if not (math.isfinite(ohm) and ohm > 0):
            raise ValueError(f"load must be a finite resistance > 0 ohm, got {ohm!r}")
        with self.lock:
            params = self.model.phantom.params
            fixed = PhantomParams(r0=ohm, r_inf=ohm, tau=params.tau,
                                  v_noise_rel=params.v_noise_rel,
                                  v_noise_abs=params.v_noise_abs,
                                  i_noise_abs=params.i_noise_abs)
            self.model.phantom = SkinPhantom(fixed, seed=len(self.changes))

    def drop_connections(self, opened_before: float = math.inf) -> int:
        """Close the SCPI connections opened before `opened_before`; return how many."""
        with self.lock:
            victims = [(cid, sock) for cid, (sock, opened) in self._connections.items()
                       if opened < opened_before]
            for cid, _ in victims:
                self._connections.pop(cid, None)
        for _, sock in victims:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if victims:
            log.warning("dropped %d connection(s)", len(victims))
        return len(victims)

    # -- connections --------------------------------------------------------------------

    def _register(self, sock: socket.socket) -> int | None:
        with self.lock:
            if self.max_connections and len(self._connections) >= self.max_connections:
                return None
            self._next_id += 1
            self._connections[self._next_id] = (sock, time.monotonic())
            return self._next_id

    def _unregister(self, cid: int) -> None:
        with self.lock:
            self._connections.pop(cid, None)

    def _lost(self, cid: int) -> bool:
        """True when a disconnect fault began after this connection opened (drop it)."""
        with self.lock:
            entry = self._connections.get(cid)
            if entry is None:
                return True
            if self.model.scenario.wire_fault(self.model.run_time()) is not Fault.DISCONNECT:
                return False
            onset_age = self.model.run_time() - self.model.scenario.onset_s
            return entry[1] < time.monotonic() - onset_age / self.model.clock.speed


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, owner: SimServer) -> None:
        self.owner = owner
        super().__init__(address, handler)


class _ScpiHandler(socketserver.StreamRequestHandler):
    """One client connection: lines in, replies out, executed on the one instrument."""

    server: _TCPServer

    def handle(self) -> None:
        owner = self.server.owner
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid = owner._register(self.request)
        if cid is None:
            log.warning("refused a connection: %d session(s) allowed", owner.max_connections)
            return
        try:
            while True:
                try:
                    raw = self.rfile.readline(MAX_MESSAGE_BYTES + 1)
                except OSError:
                    return
                if not raw or len(raw) > MAX_MESSAGE_BYTES:
                    return
                if owner._lost(cid):
                    return
                message = raw.decode("ascii", "replace").strip("\r\n")
                if not message.strip():
                    continue
                reply = owner.execute(message, cause=f"scpi:{cid}")
                if reply is not None:
                    try:
                        self.wfile.write(reply.encode("ascii") + b"\n")
                        self.wfile.flush()
                    except OSError:
                        return
        finally:
            owner._unregister(cid)


class _ControlHandler(socketserver.StreamRequestHandler):
    """The control channel: one JSON request per line, one JSON reply per line."""

    server: _TCPServer

    def handle(self) -> None:
        owner = self.server.owner
        for raw in self.rfile:
            try:
                request = json.loads(raw)
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
                reply = {"ok": True} | _control(owner, request)
            except (ValueError, KeyError, TypeError) as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()
            if request_is_shutdown(reply):
                threading.Thread(target=owner.shutdown, daemon=True).start()
                return


def request_is_shutdown(reply: dict[str, Any]) -> bool:
    return bool(reply.get("shutdown"))


def _control(owner: SimServer, request: dict[str, Any]) -> dict[str, Any]:
    command = request["cmd"]
    if command == "state":
        return owner.state()
    if command == "fault":
        return {"scenario": owner.set_fault(str(request["scenario"]))}
    if command == "load":
        owner.set_load(float(request["ohm"]))
        return {}
    if command == "drop":
        return {"dropped": owner.drop_connections()}
    if command == "shutdown":
        return {"shutdown": True}
    raise ValueError(f"unknown command {command!r}: state, fault, load, drop, shutdown")


class ControlClient:
    """A small client of the control channel (tests, benchmarks, training scripts)."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._file = self._sock.makefile("rwb")

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send one request; return the reply; raise RuntimeError if it says ok: false."""
        self._file.write(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise ConnectionError("the simulator server closed the control channel")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error", "request refused"))
        return reply

    def state(self) -> dict[str, Any]:
        """The server's ground truth."""
        return self.request("state")

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["DEFAULT_PORT", "ControlClient", "OutputChange", "SimServer"]
