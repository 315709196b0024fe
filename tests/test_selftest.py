"""`ionto selftest` on the strict simulator with a simulated resistor (as CI runs it)."""

from __future__ import annotations

import json
import logging

import pytest

from ionto_instruments.clock import VirtualClock
from ionto_instruments.connect import open_source
from procedures.cli import main
from procedures.selftest import run_selftest


@pytest.mark.parametrize("model", ["keithley2400", "keithley2450"])
def test_selftest_passes_on_the_stated_resistor(model, tmp_path, capsys):
    target = tmp_path / "selftest.json"
    code = main(["selftest", "--sim", "--model", model, "--dummy-load-ohm", "1000",
                 "--json-file", str(target)])
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(target.read_text())
    assert report["passed"] and report["load_ohm"] == 1000.0
    names = [check["name"] for check in report["checks"]]
    assert names == ["identity and command set", "interlock", "model limits and OVP read-back",
                     "Ohm's law at 0.1 mA", "Ohm's law at 1 mA", "Ohm's law at 2 mA",
                     "compliance trip (low compliance)", "output-off latency",
                     "error queue clean", "output off at the end (read back)"]
    assert report["output_off_confirmed"] is True
    assert "PASS  compliance trip" in out and out.rstrip().splitlines()[-1].startswith("PASSED")


def test_selftest_fails_when_the_resistor_is_not_what_was_typed(tmp_path, capsys):
    clock = VirtualClock()
    source = open_source(model="keithley2400", clock=clock, load_ohm=2000.0)
    result = run_selftest(source, 1000.0, 0.01, clock)
    failed = [check.name for check in result.checks if not check.passed]
    assert failed == ["Ohm's law at 0.1 mA", "Ohm's law at 1 mA", "Ohm's law at 2 mA"]
    assert not result.passed
    assert not source.simulator.model.output_enabled  # off at the end, pass or fail


def test_selftest_reports_an_open_interlock_and_still_qualifies_low_voltage(tmp_path):
    clock = VirtualClock()
    source = open_source(model="keithley2450", clock=clock, load_ohm=1000.0, interlock=False)
    result = run_selftest(source, 1000.0, 0.01, clock)
    interlock = next(check for check in result.checks if check.name == "interlock")
    assert "NOT asserted" in interlock.detail
    assert result.passed


def test_selftest_refuses_a_resistor_2_mA_cannot_drive(capsys):
    assert main(["selftest", "--sim", "--dummy-load-ohm", "1e6"]) == 2
    assert "--dummy-load-ohm" in capsys.readouterr().err


def test_selftest_on_a_2401_reads_its_limits(tmp_path):
    clock = VirtualClock()
    source = open_source(model="keithley2400", clock=clock, load_ohm=1000.0, instrument="2401")
    result = run_selftest(source, 1000.0, 0.01, clock)
    limits = next(c for c in result.checks if c.name == "model limits and OVP read-back")
    assert "Keithley 2401: max 21 V" in limits.detail and result.passed


def _stuck_on(source):
    """An output relay that stays on: every read-back says "on" (what the guard must catch)."""
    source.output_enabled = lambda: True
    return source


def test_selftest_reports_an_unconfirmed_off_in_table_json_exit_code_and_log(
        tmp_path, capsys, caplog, monkeypatch):
    import ionto_instruments.connect as connect

    real_open = connect.open_source
    monkeypatch.setattr(connect, "open_source", lambda *a, **k: _stuck_on(real_open(*a, **k)))
    target = tmp_path / "selftest.json"
    with caplog.at_level(logging.CRITICAL):
        code = main(["selftest", "--sim", "--dummy-load-ohm", "1000", "--json-file", str(target)])
    assert code == 4  # EXIT_INSTRUMENT, as a run whose off is unconfirmed
    out = capsys.readouterr().out
    assert "FAIL  output off at the end (read back)  OUTPUT OFF NOT CONFIRMED" in out
    report = json.loads(target.read_text())
    assert report["output_off_confirmed"] is False and report["passed"] is False
    assert any(r.levelno == logging.CRITICAL and "OUTPUT OFF NOT CONFIRMED" in r.getMessage()
               for r in caplog.records)


def test_selftest_writes_and_reads_back_the_off_even_when_a_check_raises(monkeypatch):
    clock = VirtualClock()
    source = open_source(model="keithley2400", clock=clock, load_ohm=1000.0)
    reads: list[bool] = []
    real_enabled = source.output_enabled

    def read_back() -> bool:
        reads.append(real_enabled())
        return reads[-1]

    def broken(*args, **kwargs):
        assert source.simulator.model.output_enabled  # the output is on when the bug strikes
        reads.clear()
        raise RuntimeError("a bug in a check")

    monkeypatch.setattr(source, "output_enabled", read_back)
    monkeypatch.setattr(source, "read", broken)  # the first Ohm's-law reading
    with pytest.raises(RuntimeError):
        run_selftest(source, 1000.0, 0.01, clock)
    assert not source.simulator.model.output_enabled
    assert reads and reads[-1] is False, "the final off is read back after the failure"
