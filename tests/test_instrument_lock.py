"""One instrument, one controller: a second process is refused the instrument, clearly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

from ionto_instruments.clock import VirtualClock
from ionto_instruments.instrument_lock import (
    LOCK_DIR_ENV,
    InstrumentBusy,
    InstrumentLock,
    canonical_resource,
    kept_lock,
    lock_visa_session,
    release_kept,
)
from ionto_instruments.procedures import cli
from ionto_instruments.procedures.runner import make_procedure, run_protocol

HOLDER = """
import sys, time
from ionto_instruments.instrument_lock import InstrumentLock
lock = InstrumentLock(sys.argv[1])
lock.acquire()
print("HELD", flush=True)
time.sleep(120)
"""


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))
    return tmp_path / "locks"


@pytest.fixture
def holder(lock_dir):
    """Another process holding GPIB0::24::INSTR (spelled differently on purpose)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, "gpib::24"], text=True,
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "HELD"
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def test_a_second_process_is_refused_the_instrument_before_anything_is_sent(holder, tmp_path):
    procedure = make_procedure(resource="GPIB0::24::INSTR", subject_kind="phantom",
                               treatment_time=1.0)
    summary = run_protocol(procedure, output_dir=tmp_path, clock=VirtualClock())
    assert (summary["outcome"], summary["rule"]) == ("fault", "instrument-fault")
    assert "in use by another run" in summary["reason"]
    assert f"process {holder.pid}" in summary["reason"]
    assert procedure.source is None  # refused before any VISA session was opened
    assert summary["output_was_on"] is False
    assert cli.exit_code(summary) == 4


def test_the_lock_dies_with_its_process_even_after_kill_9(holder):
    with pytest.raises(InstrumentBusy):
        InstrumentLock("GPIB0::24::INSTR").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    deadline = time.monotonic() + 5
    while True:
        try:
            with InstrumentLock("GPIB0::24::INSTR") as lock:
                assert lock.held
            break
        except InstrumentBusy:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_locks_are_per_instrument_and_released_after_the_run(lock_dir):
    first, other = InstrumentLock("GPIB0::24::INSTR"), InstrumentLock("GPIB0::25::INSTR")
    with first, other, pytest.raises(InstrumentBusy):  # two instruments: two controllers
        InstrumentLock("GPIB0::24::INSTR").acquire()  # same process, second controller
    with InstrumentLock("GPIB0::24::INSTR"):
        pass
    assert canonical_resource("gpib::24") == canonical_resource("GPIB0::24::INSTR")


class _Connection:
    def __init__(self, error: int | None) -> None:
        self.error = error

    def lock_excl(self, timeout):
        if self.error is not None:
            raise VisaIOError(self.error)


class _Source:
    def __init__(self, error: int | None) -> None:
        self.adapter = type("Adapter", (), {"connection": _Connection(error)})()


def test_visa_exclusive_lock_is_used_where_supported():
    assert lock_visa_session(_Source(None), "GPIB0::24::INSTR") is True
    with pytest.raises(InstrumentBusy, match="locked by another VISA session"):
        lock_visa_session(_Source(constants.StatusCode.error_resource_locked), "GPIB0::24")
    # Not supported (pyvisa-py, the simulator): the lock file is the lock, no error.
    assert lock_visa_session(_Source(constants.StatusCode.error_nonsupported_operation),
                             "GPIB0::24") is False
    assert lock_visa_session(object(), "GPIB0::24") is False


def test_an_unconfirmed_off_keeps_the_instrument_locked_for_this_process(lock_dir, tmp_path):
    """The GUI outlives a run: after an unconfirmed off, its next run is refused, saying why."""
    procedure = make_procedure(subject_kind="phantom", treatment_time=1.0,
                               scenario="io-timeout@0.25")
    procedure._instrument_lock = InstrumentLock("GPIB0::24::INSTR")  # as a resource run takes
    procedure._instrument_lock.acquire()
    summary = run_protocol(procedure, output_dir=tmp_path / "first", clock=VirtualClock())
    assert summary["output_was_on"] is True
    assert summary["output_off_confirmed"] is False
    try:
        second = make_procedure(resource="GPIB0::24::INSTR", subject_kind="phantom",
                                treatment_time=1.0)
        refused = run_protocol(second, output_dir=tmp_path / "second", clock=VirtualClock())
        assert (refused["outcome"], refused["rule"]) == ("fault", "instrument-fault")
        assert "NOT confirmed off" in refused["reason"]
        assert second.source is None and refused["output_was_on"] is False
        assert not release_kept("gpib::24", output_confirmed_off=False)  # no acknowledgement
        with pytest.raises(InstrumentBusy, match="NOT confirmed off"):
            InstrumentLock("GPIB0::24::INSTR").acquire()
        assert release_kept("gpib::24", output_confirmed_off=True)  # acknowledged off
        with InstrumentLock("GPIB0::24::INSTR") as lock:
            assert lock.held
    finally:
        procedure._instrument_lock.release()


def test_a_confirmed_off_gives_the_instrument_back(lock_dir, tmp_path):
    procedure = make_procedure(subject_kind="phantom", treatment_time=1.0)
    procedure._instrument_lock = InstrumentLock("GPIB0::24::INSTR")
    procedure._instrument_lock.acquire()
    summary = run_protocol(procedure, output_dir=tmp_path, clock=VirtualClock())
    assert summary["output_off_confirmed"] is True
    assert kept_lock("GPIB0::24::INSTR") is None
    with InstrumentLock("GPIB0::24::INSTR") as lock:
        assert lock.held
