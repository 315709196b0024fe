"""The pyvisa library of the simulated SourceMeter: pyvisa-sim plus the Python model.

Drivers reach the simulator through the same pyvisa path as hardware, e.g.
``VISAAdapter(sim.resource_name, visa_library=sim.visa_library)``. Each program message is
handed to the `SourceMeterModel`; the commands it does not own are looked up in the
pyvisa-sim YAML device (package data `ionto_instruments.sim_configs`). Replies are queued
whole, so a read returns at once instead of pyvisa-sim's byte-by-byte polling loop.

A reply is ready when the model says (a reading takes its NPLC time and commands queue
behind it); a read waits for it in clock time, without holding the lock, so a device clear
from another thread (the emergency path) aborts the reading at once.

Wire faults from the scenario act here: `io-timeout` (commands are still executed, but no
reply ever comes: a read waits the session timeout in clock time, then VI_ERROR_TMO),
`garbled` (the digits of a reading reply become junk characters) and `disconnect` (the
sessions open at the onset are lost: every read and write on them raises VI_ERROR_CONN_LOST
and nothing reaches the instrument; like a real LAN/USB drop, a session opened afterwards
reaches the instrument again, which is how the shutdown path can still switch it off).
"""

from __future__ import annotations

import importlib.resources
import itertools
import random
import threading
from typing import Any

from pyvisa import constants
from pyvisa.errors import VisaIOError
from pyvisa.typing import VISASession
from pyvisa_sim import parser
from pyvisa_sim.component import NoResponse
from pyvisa_sim.highlevel import SimVisaLibrary

from .model import SourceMeterModel
from .scenarios import Fault

CONFIG_PACKAGE = "ionto_instruments.sim_configs"
#: Prefix of the per-instance library path: a unique key defeats pyvisa's library cache.
PATH_PREFIX = "ionto-sim"
#: A session with an infinite VISA timeout waits this long (clock seconds) on a hung meter.
INFINITE_TIMEOUT_S = 3600.0
#: Characters that replace digits in a garbled reply: no digits, separators or float words.
GARBAGE = "#$%&?@!~^*|<>`{}[]_=\\"

_instances = itertools.count(1)


def load_devices(config: str) -> Any:
    """Parse the pyvisa-sim YAML `config` (e.g. "keithley2400") from package data."""
    resource = importlib.resources.files(CONFIG_PACKAGE).joinpath(f"{config}.yaml")
    with importlib.resources.as_file(resource) as path:
        return parser.get_devices(str(path), False)


class SimSourceMeterLibrary(SimVisaLibrary):
    """A pyvisa-sim library whose one instrument is answered by a `SourceMeterModel`.

    Create it with `create()`, never with the class call: the library path must be unique so
    pyvisa's per-path cache hands every simulator its own library and fresh state.
    """

    model: SourceMeterModel | None = None

    @classmethod
    def create(cls, config: str) -> SimSourceMeterLibrary:
        """Return a new library with its own copy of the YAML device `config`."""
        return cls(f"{PATH_PREFIX}:{config}:{next(_instances)}")

    def _init(self) -> None:
        self.sessions = {}
        prefix, _, rest = str(self.library_path).partition(":")
        config = rest.rpartition(":")[0]
        if prefix != PATH_PREFIX or not config:
            raise ValueError(f"{type(self).__name__} needs a path made by create(), "
                             f"got {self.library_path!r}")
        self.devices = load_devices(config)
        self._device = self.devices[self.devices.list_resources()[0]]
        self._lock = threading.Lock()
        self._opened_at: dict[int, float] = {}
        self._cut: set[int] | None = None
        self._pending = b""
        self._ready_at = 0.0
        self._clears = 0  # device clears so far: a read waiting across one is aborted
        self._garble_rng = random.Random(0)

    def attach(self, model: SourceMeterModel, seed: int = 0) -> None:
        """Let `model` answer this library's instrument (falling back to the YAML device)."""
        model.static = self.static_answer
        self.model = model
        self._garble_rng = random.Random(seed)

    def static_answer(self, unit: str) -> str | None:
        """Answer `unit` from the YAML device; raise KeyError if it does not know it."""
        # pyvisa-sim has no public lookup; _match is its per-unit dispatcher.
        response = self._device._match(unit.encode("ascii", "replace"))
        if response is None:
            raise KeyError(unit)
        if response is NoResponse:
            return None
        return response.decode("ascii", "replace")

    # -- pyvisa library calls -----------------------------------------------------------

    def open(self, session: Any, resource_name: str, *args: Any, **kwargs: Any) -> Any:
        """Open a session, remembering when: a disconnect loses only sessions older than it."""
        handle, status = super().open(session, resource_name, *args, **kwargs)
        model = self.model
        if handle:
            self._opened_at[handle] = model.run_time() if model is not None else 0.0
        return handle, status

    def _lost(self, session: Any, model: SourceMeterModel) -> bool:
        if model.scenario.wire_fault(model.run_time()) is not Fault.DISCONNECT:
            self._cut = None
            return False
        if self._cut is None:
            # The sessions open when the fault began are lost; later ones work. (Comparing
            # open times with the onset missed `disconnect@0`: *RST restarts the axis.)
            self._cut = set(self._opened_at)
        return session in self._cut

    def write(self, session: VISASession, data: bytes) -> tuple[int, constants.StatusCode]:
        """Execute one program message (one write is one message: EOI ends it)."""
        model = self.model
        if model is None:
            return super().write(session, data)
        if session not in self.sessions:
            return 0, constants.StatusCode.error_invalid_object
        with self._lock:
            if self._lost(session, model):
                raise VisaIOError(constants.VI_ERROR_CONN_LOST)
            if self._pending:
                self._pending = b""
                model.push_error(-410, "Query INTERRUPTED")
            message = bytes(data).decode("ascii", "replace").rstrip("\r\n")
            reply = model.process(message)
            fault = model.scenario.wire_fault(model.run_time())
            if reply.text is None or fault is Fault.IO_TIMEOUT:
                return len(data), constants.StatusCode.success
            text = reply.text
            if reply.reading and fault is Fault.GARBLED:
                text = self._garble(text)
            self._pending = text.encode("ascii") + b"\n"
            self._ready_at = reply.ready_at
        return len(data), constants.StatusCode.success

    def read(self, session: VISASession, count: int) -> tuple[bytes, constants.StatusCode]:
        """Return the queued reply at once; with none, wait the timeout and raise VI_ERROR_TMO."""
        model = self.model
        if model is None:
            return super().read(session, count)
        sess = self.sessions.get(session)
        if sess is None:
            return b"", constants.StatusCode.error_invalid_object
        timeout = self._timeout_s(sess)
        with self._lock:
            wait = self._ready_at - model.clock.now() if self._pending else 0.0
            clears = self._clears
        if wait > timeout:  # the reading outlasts the session timeout
            model.clock.sleep(timeout)
            raise VisaIOError(constants.VI_ERROR_TMO)
        if wait > 0:  # a reading in progress: the reply comes when it is done
            model.clock.sleep(wait)
        with self._lock:
            if self._lost(session, model):
                raise VisaIOError(constants.VI_ERROR_CONN_LOST)
            if self._clears != clears and not self._pending:
                raise VisaIOError(constants.VI_ERROR_ABORT)  # a device clear ended the reading
            fault = model.scenario.wire_fault(model.run_time())
            if fault is Fault.IO_TIMEOUT:
                self._pending = b""
            if self._pending:
                chunk, self._pending = self._pending[:count], self._pending[count:]
                if self._pending:
                    return chunk, constants.StatusCode.success_max_count_read
                return chunk, constants.StatusCode.success
            if fault is not Fault.IO_TIMEOUT:
                model.push_error(-420, "Query UNTERMINATED")
        model.clock.sleep(timeout)
        raise VisaIOError(constants.VI_ERROR_TMO)

    def clear(self, session: VISASession) -> constants.StatusCode:
        """Device clear: abort the reading in progress and discard any unread reply."""
        status = self._discard(session)
        model = self.model
        if model is not None and status == constants.StatusCode.success:
            with self._lock:
                model.device_clear()
                self._clears += 1
        return status

    def flush(self, session: VISASession, mask: constants.BufferOperation) -> constants.StatusCode:
        """Discard any unread reply (all buffer operations act on the one output queue)."""
        return self._discard(session)

    # -- helpers ------------------------------------------------------------------------

    def _discard(self, session: VISASession) -> constants.StatusCode:
        if session not in self.sessions:
            return constants.StatusCode.error_invalid_object
        model = self.model
        if model is not None and self._lost(session, model):
            raise VisaIOError(constants.VI_ERROR_CONN_LOST)
        with self._lock:
            self._pending = b""
        return constants.StatusCode.success

    @staticmethod
    def _timeout_s(sess: Any) -> float:
        timeout_ms, _ = sess.get_attribute(constants.ResourceAttribute.timeout_value)
        if timeout_ms is None or timeout_ms >= constants.VI_TMO_INFINITE:
            return INFINITE_TIMEOUT_S
        return timeout_ms / 1000.0

    def _garble(self, text: str) -> str:
        choice = self._garble_rng.choice
        return "".join(choice(GARBAGE) if char.isdigit() else char for char in text)
