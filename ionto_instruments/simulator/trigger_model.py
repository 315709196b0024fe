"""The 2450 trigger model, exactly the blocks the dead-man uses, on a `SourceMeterModel`.

Emulated (2450 Reference Manual 2450-901-01 Rev. B, section 3 "Trigger model" and section 6
":TRIGger" commands; details and the dead-man's block list in docs/scpi.md):

    :TRIG:LOAD "Empty"                         clear the model
    :TRIG:BLOC:BUFF:CLE <n>, "defbuffer1"      clear the reading buffer
    :TRIG:BLOC:SOUR:STAT <n>, ON|OFF           output on/off
    :TRIG:BLOC:DEL:CONS <n>, <s>               wait s seconds
    :TRIG:BLOC:MEAS <n>, "defbuffer1"          one reading into the buffer
    :TRIG:BLOC:BRAN:COUN <n>, <count>, <to>    go to <to> while reached < count, then fall
                                               through and start counting again
    :TRIG:BLOC:BRAN:EVEN <n>, COMM, <to>       go to <to> if a *TRG arrived since last time
    :TRIG:BLOC:BRAN:ALW <n>, <to>              go to <to>
    :INIT / :ABOR / *TRG / :TRIG:STAT?
    :FETC? "defbuffer1", READ, SOUR, REL, SOURSTAT   the newest reading: V, I, time, status
    :TRAC:ACT? "defbuffer1"                    how many readings the buffer holds
    *RST (seen by the server)                  stops and empties the model

Execution is lazy and exact: `advance(now)` runs every block whose start time has come, each at
its own scheduled clock time, so the result does not depend on how often it is called (the
server calls it before every message and from a 20 ms ticker). Falling off the last block
ends the model (IDLE). Anything else under :TRIG is an undefined header here (-113): a driver
that sends more than the dead-man needs shows up in the error queue.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .. import limits as L
from .model import (
    SOURSTAT_LIMIT,
    SOURSTAT_OUTPUT,
    SOURSTAT_PROTECTION,
    SOURSTAT_READBACK,
    ScpiError,
    SourceMeterModel,
    StaticAnswer,
)

BUFFER = '"defbuffer1"'
FETCH = ':FETC? "defbuffer1", READ, SOUR, REL, SOURSTAT'
COUNT = ':TRAC:ACT? "defbuffer1"'
#: Readings kept in the emulated defbuffer1 (the 2450's default holds 100 000).
BUFFER_SIZE = 100_000
#: Blocks executed in one advance() without time passing before the model is declared FAILED
#: (a loop with no delay in it would otherwise spin for ever).
MAX_STEPS_WITHOUT_DELAY = 10_000
#: The 2450 numbers blocks from 1; this many at most.
MAX_BLOCKS = 63
#: Time one measure block takes (1 PLC at 50 Hz plus overhead), clock seconds.
MEASURE_S = L.DEAD_MAN_MEASURE_TIME.value

_BLOCK = re.compile(r":TRIG:BLOC:([A-Z:]+) (.*)")


@dataclass(frozen=True)
class Block:
    kind: str  # "BUFF:CLE", "SOUR:STAT", "DEL:CONS", "MEAS", "BRAN:COUN", "BRAN:EVEN", "BRAN:ALW"
    args: tuple

    def describe(self) -> str:
        return f"{self.kind} {', '.join(map(str, self.args))}"


class TriggerModel:
    """The trigger-model engine of one simulated 2450."""

    def __init__(self, model: SourceMeterModel,
                 on_output: Callable[[bool, float], None] | None = None) -> None:
        self.model = model
        self.blocks: dict[int, Block] = {}
        self.state = "EMPTY"
        self.block = 0
        self.block_time = 0.0  # clock time at which `block` starts
        self.counters: dict[int, int] = {}
        self.command_event: float | None = None  # clock time of the latched *TRG
        self.buffer: deque[tuple[float, float, float]] = deque(maxlen=BUFFER_SIZE)
        self.on_output = on_output
        self._fallback: StaticAnswer | None = None

    def install(self) -> None:
        """Answer the trigger-model commands for `model`, before its YAML static answers."""
        self._fallback = self.model.static
        self.model.static = self.answer

    def reset(self) -> None:
        """*RST: the model is stopped and emptied, the buffer cleared."""
        self.blocks.clear()
        self.state = "EMPTY"
        self.block = 0
        self.counters = {}
        self.command_event = None
        self.buffer.clear()

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"

    # -- commands -------------------------------------------------------------------------

    def answer(self, unit: str) -> str | None:
        """Execute one message unit the SMU model does not own; KeyError if not ours either."""
        now = self.model.clock.now()
        self.advance(now)
        if unit == '*TRG':
            if self.running:
                self.command_event = now
            return None
        if unit == ":INIT":
            self._start(now)
            return None
        if unit == ":ABOR":
            if self.running:
                self.state = "ABORTED"
            return None
        if unit == ":TRIG:STAT?":
            return f"{self.state};{self.state};{self.block}"
        if unit == ':TRIG:LOAD "Empty"':
            if self.running:
                raise ScpiError(-200, "Execution error; trigger model is running")
            self.blocks.clear()
            self.state = "EMPTY"
            return None
        if unit == COUNT:
            return str(len(self.buffer))
        if unit == FETCH:
            if not self.buffer:
                raise ScpiError(-230, "Data corrupt or stale; buffer empty")
            v, i, t, status = self.buffer[-1]
            return f"{v:+.6E},{i:+.6E},{t:+.6E},{status:d}"
        match = _BLOCK.fullmatch(unit)
        if match is not None:
            self._define(match.group(1), [a.strip() for a in match.group(2).split(",")])
            return None
        if self._fallback is None:
            raise KeyError(unit)
        return self._fallback(unit)

    def _define(self, kind: str, args: list[str]) -> None:
        if self.running:
            raise ScpiError(-200, "Execution error; trigger model is running")
        number = _integer(args[0], 1, MAX_BLOCKS)
        rest = args[1:]
        if kind in ("BUFF:CLE", "MEAS") and rest == [BUFFER]:
            block = Block(kind, ())
        elif kind == "SOUR:STAT" and len(rest) == 1 and rest[0] in ("ON", "OFF"):
            block = Block(kind, (rest[0] == "ON",))
        elif kind == "DEL:CONS" and len(rest) == 1:
            block = Block(kind, (_seconds(rest[0]),))
        elif kind == "BRAN:COUN" and len(rest) == 2:
            block = Block(kind, (_integer(rest[0], 1, 2**31 - 1), _integer(rest[1], 1,
                                                                           MAX_BLOCKS)))
        elif kind == "BRAN:EVEN" and len(rest) == 2 and rest[0] == "COMM":
            block = Block(kind, (_integer(rest[1], 1, MAX_BLOCKS),))
        elif kind == "BRAN:ALW" and len(rest) == 1:
            block = Block(kind, (_integer(rest[0], 1, MAX_BLOCKS),))
        else:
            raise KeyError(f":TRIG:BLOC:{kind}")
        self.blocks[number] = block
        self.state = "BUILDING"

    def _start(self, now: float) -> None:
        if self.running:
            raise ScpiError(-200, "Execution error; trigger model is running")
        numbers = sorted(self.blocks)
        if not numbers or numbers != list(range(1, len(numbers) + 1)):
            raise ScpiError(-200, "Execution error; trigger model blocks must be 1..n")
        self.counters = {}
        self.command_event = None
        self.block, self.block_time = 1, now
        self.state = "RUNNING"
        self.advance(now)

    # -- execution ------------------------------------------------------------------------

    def advance(self, now: float | None = None) -> None:
        """Run every block whose start time has come (each at its scheduled time)."""
        if now is None:
            now = self.model.clock.now()
        steps = 0
        while self.running and self.block_time <= now:
            block = self.blocks.get(self.block)
            if block is None:
                self.state = "IDLE"
                return
            t = self.block_time
            next_block, duration = self._execute(block, t)
            self.block, self.block_time = next_block, t + duration
            steps = 0 if duration > 0 else steps + 1
            if steps > MAX_STEPS_WITHOUT_DELAY:
                self.state = "FAILED"
                self.model.push_error(-200, "Execution error; trigger model loops without delay")

    def _execute(self, block: Block, t: float) -> tuple[int, float]:
        """Execute `block` at clock time `t`; return (next block, seconds it took)."""
        nxt = self.block + 1
        kind, args = block.kind, block.args
        if kind == "BUFF:CLE":
            self.buffer.clear()
        elif kind == "SOUR:STAT":
            self._output(args[0], t)
        elif kind == "DEL:CONS":
            return nxt, args[0]
        elif kind == "MEAS":
            self.buffer.append(self._reading(t))
            return nxt, MEASURE_S
        elif kind == "BRAN:COUN":
            count = self.counters.get(self.block, 0) + 1
            if count < args[0]:
                self.counters[self.block] = count
                return args[1], 0.0
            self.counters[self.block] = 0
        elif kind == "BRAN:EVEN":
            if self.command_event is not None and self.command_event <= t:
                self.command_event = None
                return args[0], 0.0
        elif kind == "BRAN:ALW":
            return args[0], 0.0
        return nxt, 0.0

    def _output(self, on: bool, t: float) -> None:
        if self.model.output_enabled == on:
            return
        self.model.process("OUTPUT ON" if on else "OUTPUT OFF")
        if self.on_output is not None:
            self.on_output(on, t)

    def _reading(self, t: float) -> tuple[float, float, float, int]:
        v, i, clamped = self.model.source_state()
        status = SOURSTAT_READBACK
        if self.model.output_enabled:
            v, i = self.model.phantom.measure(v, i)
            status |= SOURSTAT_OUTPUT
        else:
            v, i = self.model.phantom.voltage_noise(), 0.0
        if clamped:
            ovp = self.model.voltage_limit()[1] == "ovp"
            status |= SOURSTAT_PROTECTION if ovp else SOURSTAT_LIMIT
        return v, i, t - (self.model.clock.now() - self.model.timestamp()), status

    def describe(self) -> dict:
        """For the control channel: state, current block, the block list."""
        return {"state": self.state, "block": self.block,
                "blocks": {n: b.describe() for n, b in sorted(self.blocks.items())},
                "readings": len(self.buffer)}


def _integer(text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ScpiError(-104, "Data type error") from None
    if not low <= value <= high:
        raise ScpiError(-222, "Data out of range")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ScpiError(-104, "Data type error") from None
    if not (math.isfinite(value) and 0 <= value <= 10_000):
        raise ScpiError(-222, "Data out of range")
    return value


__all__ = ["FETCH", "Block", "TriggerModel"]
