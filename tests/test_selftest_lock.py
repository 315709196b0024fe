"""`ionto selftest` on a real resource takes the run's per-instrument lock: never beside a run."""

from __future__ import annotations

import pytest

from ionto_instruments.instrument_lock import LOCK_DIR_ENV, InstrumentLock
from ionto_instruments.simulator.server import ControlClient, SimServer
from procedures import cli


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))
    with SimServer("keithley2400", port=0) as srv:
        yield srv


def test_selftest_is_refused_while_a_run_holds_the_instrument(server, tmp_path, capsys):
    report = tmp_path / "selftest.json"
    args = ["selftest", "--resource", server.resource_name, "--dummy-load-ohm", "1000",
            "--json-file", str(report)]
    with InstrumentLock(server.resource_name):  # a run on this instrument
        assert cli.main(args) == cli.EXIT_INSTRUMENT
    assert "in use by another run" in capsys.readouterr().err
    with ControlClient(server.control_port) as control:
        assert control.state()["changes"] == []  # nothing was switched on beside the run
    assert not report.exists()


def test_selftest_takes_the_instrument_and_gives_it_back(server, tmp_path):
    with ControlClient(server.control_port) as control:
        control.request("load", ohm=1000)
    args = ["selftest", "--resource", server.resource_name, "--dummy-load-ohm", "1000",
            "--json-file", str(tmp_path / "selftest.json")]
    assert cli.main(args) == cli.EXIT_OK
    with InstrumentLock(server.resource_name) as lock:  # released at the end
        assert lock.held
