"""OutputGuard against a fake source: the one owner of the output state and its changes."""

from __future__ import annotations

import logging
import threading

import pytest
from helpers import FakeSource

from ionto_instruments.output import OutputGuard
from ionto_instruments.source import InstrumentFault


@pytest.fixture
def fake() -> FakeSource:
    return FakeSource()


def test_on_then_off_now_is_one_write_then_a_read_back(fake):
    guard = OutputGuard(fake)
    assert guard.on() is True
    assert (guard.may_be_on, guard.was_on, guard.confirmed_off) == (True, True, False)
    assert guard.off_now() is True
    assert fake.log == ["on", "emergency_off", "read-back"]
    assert (guard.may_be_on, guard.confirmed_off, fake.enabled) == (False, True, False)
    assert guard.off_now() is True
    assert fake.log == ["on", "emergency_off", "read-back"], "already confirmed: nothing sent"


def test_on_is_refused_after_an_emergency_stop(fake):
    guard = OutputGuard(fake)
    guard.emergency_stop()
    assert guard.emergency_stopped
    assert guard.on() is False
    assert "on" not in fake.log and not fake.enabled
    assert guard.off_confirmed_or_never_on


def test_emergency_stop_writes_off_at_once_without_a_ramp(fake):
    guard = OutputGuard(fake)
    guard.on()
    guard.emergency_stop()
    assert fake.log == ["on", "emergency_off"]
    assert not fake.enabled
    assert guard.may_be_on, "only a read-back confirms the off"


def test_emergency_stop_never_raises(fake):
    guard = OutputGuard(fake)
    guard.on()
    fake.fail["emergency_off"] = 1
    guard.emergency_stop()  # logged, not raised
    assert fake.enabled and guard.may_be_on
    assert guard.off_now() is True
    assert not fake.enabled


def test_off_now_reopens_and_retries_when_the_write_fails(fake):
    guard = OutputGuard(fake)
    guard.on()
    fake.fail["emergency_off"] = 2  # the first write and the first retry fail
    fake.reads_stuck_on = 1
    assert guard.off_now() is True
    assert fake.log == ["on", "emergency_off!", "read-back", "emergency_off!", "reopen",
                        "emergency_off", "read-back"]


def test_off_now_is_critical_when_the_off_cannot_be_confirmed(fake, caplog):
    guard = OutputGuard(fake, attempts=3)
    guard.on()
    fake.fail.update(emergency_off=100, output_enabled=100, reopen=100)
    with caplog.at_level(logging.CRITICAL, logger="ionto_instruments.output"):
        assert guard.off_now() is False
    assert "OUTPUT OFF NOT CONFIRMED" in caplog.text
    assert fake.log.count("reopen!") == 3
    assert guard.may_be_on and not guard.confirmed_off
    assert not guard.off_confirmed_or_never_on


def test_ramped_off_runs_the_ramp_then_one_normal_off_and_a_read_back(fake):
    guard = OutputGuard(fake)
    guard.on()
    marks = []
    assert guard.ramped_off(lambda: fake.set_current(0.0),
                            after_write=lambda: marks.append(list(fake.log))) is True
    assert fake.log == ["on", "set 0.0", "off", "read-back"]
    assert marks == [["on", "set 0.0", "off"]]


def test_ramped_off_lets_a_failing_write_propagate_to_the_fault_path(fake):
    guard = OutputGuard(fake)
    guard.on()
    fake.fail["output_off"] = 1
    with pytest.raises(InstrumentFault):
        guard.ramped_off()
    assert guard.may_be_on
    assert guard.off_now() is True


def test_current_source_exit_switches_off_through_the_guard(fake):
    with fake:
        fake.output_on()
    assert fake.log == ["on", "emergency_off", "read-back", "close"]
    assert not fake.enabled


class RacingEvent(threading.Event):
    """The guard's e-stop flag; the first `is_set()` (in `on()`) lets another thread act.

    The racer starts right after `on()` has read the flag as clear, while `on()` holds the
    I/O lock; `on()` goes on once the racer has finished or blocks (at most `grace` s).
    """

    def __init__(self, grace: float = 0.3) -> None:
        super().__init__()
        self.hook = None
        self.grace = grace
        self.racer: threading.Thread | None = None

    def is_set(self) -> bool:
        value = super().is_set()
        hook, self.hook = self.hook, None
        if hook is not None:
            self.racer = threading.Thread(target=hook)
            self.racer.start()
            self.racer.join(self.grace)
        return value


def test_an_emergency_stop_racing_an_output_on_leaves_the_output_off(fake):
    """The e-stop comes from another thread after `on()` checked the flag, before its write.

    A guard whose e-stop reads `may_be_on` outside the I/O lock sees False, writes nothing,
    and the on that follows leaves the output on: this test then fails.
    """
    guard = OutputGuard(fake)
    flag = RacingEvent()
    guard._estop = flag
    flag.hook = guard.emergency_stop
    result = guard.on()
    assert flag.racer is not None
    flag.racer.join(5)
    assert not flag.racer.is_alive()
    assert result is True, "the on passed its check first"
    assert fake.log == ["on", "emergency_off"], "the e-stop's off follows the on"
    assert not fake.enabled
    assert guard.on() is False and not fake.enabled


def test_many_races_between_on_and_emergency_stop_always_end_off():
    for _ in range(200):
        fake = FakeSource()
        guard = OutputGuard(fake)
        start = threading.Barrier(2)

        def press(guard=guard, start=start):
            start.wait()
            guard.emergency_stop()

        presser = threading.Thread(target=press)
        presser.start()
        start.wait()
        turned_on = guard.on()
        presser.join(5)
        assert not fake.enabled, fake.log
        assert turned_on == ("on" in fake.log)
