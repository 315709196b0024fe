"""A run whose final output-off cannot be read back never ends as `completed` or `stopped`."""

from __future__ import annotations

import pytest
from helpers import wait_for_phase

from ionto_instruments.clock import ScaledClock
from ionto_instruments.connect import open_source
from ionto_instruments.source import InstrumentFault
from procedures import cli
from procedures.cli import EXIT_INSTRUMENT, exit_code
from procedures.runner import make_procedure, start_protocol


def _unreadable_output_state(smu) -> None:
    """The instrument takes the off-write but never answers the output read-back."""

    def output_enabled() -> bool:
        raise InstrumentFault(f"{smu.resource_name}: I/O error on 'OUTPUT?': timeout")

    smu.output_enabled = output_enabled


@pytest.mark.parametrize("ending", ["completed", "operator stop"])
def test_an_end_whose_off_is_not_read_back_is_a_fault(tmp_path, ending):
    # A scaled clock holds for seconds of real time, so the stop lands in the hold however busy
    # the machine; a virtual-clock run can finish before the test sees it.
    clock = ScaledClock(600)
    smu = open_source(model="keithley2400", clock=clock)
    _unreadable_output_state(smu)
    treatment_min = 30.0 if ending == "operator stop" else 1.0
    procedure = make_procedure(treatment_time=treatment_min, ramp_up=5, ramp_down=5)
    procedure.source = smu
    with start_protocol(procedure, output_dir=tmp_path, clock=clock) as run:
        if ending == "operator stop":
            wait_for_phase(run, "hold")
            run.stop()
        run.wait()
    summary = run.summary
    assert summary["output_was_on"] and summary["output_off_confirmed"] is False
    assert not smu.simulator.model.output_enabled  # the off-write reached the instrument
    # Neither "completed" (exit 0) nor "stopped" (exit 5): the operator must check by hand.
    assert summary["outcome"] == "fault", summary["reason"]
    assert summary["rule"] == "instrument-fault"
    assert "could not be confirmed off" in summary["reason"]
    assert exit_code(summary) == EXIT_INSTRUMENT


def test_the_end_of_run_text_claims_a_read_back_only_after_one(tmp_path, capsys):
    """Nothing answered *IDN?: the output was never switched on, and was never read back."""
    code = cli.main(["run", "--sim", "io-timeout@0", "--fast", "--output", str(tmp_path)])
    assert code == EXIT_INSTRUMENT
    text = "".join(capsys.readouterr())
    assert "Output:    never switched on by this run" in text
    assert "confirmed by read-back" not in text
