"""The `ionto` command line: every exit code through real subprocesses on the simulator.

Runs use --fast (virtual clock) and short durations; the signal tests use a 300x clock so
that the hold lasts about two real seconds. A few pure pieces are tested in-process.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import rows_of

from ionto_instruments.procedures import cli
from ionto_instruments.procedures.iontophoresis import LiveStatus
from ionto_instruments.procedures.protocol_file import SETTINGS

IONTO = [sys.executable, "-m", "ionto_instruments.procedures.cli"]
TIMEOUT_S = 120
SUMMARY_FIELDS = {"outcome", "rule", "reason", "planned_dose_mA_min", "delivered_dose_mA_min",
                  "duration_s", "samples", "output_off_confirmed", "instrument", "simulated",
                  "scenario", "results_file", "software_version", "clock", "events"}
INJECT_BUG = """
import sys
from ionto_instruments.procedures.iontophoresis import ConstantCurrentIontophoresis

def broken(self):
    raise RuntimeError("injected bug in _treatment")

ConstantCurrentIontophoresis._treatment = broken
from ionto_instruments.procedures.cli import main
sys.exit(main(sys.argv[1:]))
"""
NO_GUI = """
import sys
sys.modules["ionto_instruments.gui.app"] = None  # as if the GUI could not be imported
from ionto_instruments.procedures.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("IONTO_RESOURCE", None)
    return env


def ionto(*args: str, cwd: Path, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run the command line in a subprocess; return the finished process (text output)."""
    return subprocess.run([*(prefix or IONTO), *args], cwd=cwd, env=_env(), text=True,
                          capture_output=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)


def json_summary(proc: subprocess.CompletedProcess) -> dict[str, Any]:
    """stdout must be exactly one JSON document (everything else goes to stderr)."""
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not only JSON:\n{proc.stdout!r}\nstderr:\n{proc.stderr}")


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The error printed on stderr: a single line, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def expected_png_size() -> tuple[int, int]:
    from ionto_instruments.procedures import report

    dpi = inspect.signature(report.make_report).parameters["dpi"].default
    return round(report.FIGSIZE_IN[0] * dpi), round(report.FIGSIZE_IN[1] * dpi)




# -- runs shared by several tests -------------------------------------------------------------


@pytest.fixture(scope="module")
def completed(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("completed")
    return ionto("run", "--fast", "--duration", "2", "--output", str(out), "--json",
                 cwd=out), out


@pytest.fixture(scope="module")
def contact_lost(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("aborted")
    return ionto("run", "--sim", "contact-loss@1", "--fast", "--duration", "3",
                 "--output", str(out), "--json", cwd=out), out


# -- exit 0 -------------------------------------------------------------------------------------


def test_a_normal_run_exits_0_with_only_the_json_summary_on_stdout(completed):
    proc, out = completed
    assert proc.returncode == 0, proc.stderr
    summary = json_summary(proc)
    assert summary.keys() >= SUMMARY_FIELDS
    assert summary["outcome"] == "completed" and summary["rule"] is None
    assert summary["simulated"] is True and summary["scenario"] == "normal"
    assert summary["clock"] == "virtual"
    assert summary["output_off_confirmed"] is True
    assert summary["duration_s"] == pytest.approx(120.0, abs=1.0)
    assert summary["delivered_dose_mA_min"] == pytest.approx(summary["planned_dose_mA_min"],
                                                             rel=0.01)
    results = Path(summary["results_file"])
    assert results.parent == out and results.is_file()
    assert json.loads(results.with_suffix(".json").read_text()) == summary
    # the human text went to stderr: the simulator is announced, the summary printed
    assert "SIMULATOR" in proc.stderr and "no --resource given" in proc.stderr
    assert "Outcome:   completed" in proc.stderr and str(results) in proc.stderr


def test_the_default_clock_on_the_simulator_is_real_time_and_says_so(tmp_path):
    """Stopped by SIGTERM at once: only the banner matters here."""
    proc = subprocess.Popen([*IONTO, "run", "--output", str(tmp_path)], cwd=tmp_path,
                            env=_env(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        banner = _read_until(proc, "Phase:")  # the stop handlers are installed by now
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=TIMEOUT_S)
    assert "Clock: real time" in banner and "--speed 60" in banner and "--fast" in banner
    assert proc.returncode == 5, err


# -- exit 2: invalid input, nothing energized --------------------------------------------------


def test_an_out_of_range_value_exits_2_naming_the_field_and_range(tmp_path):
    proc = ionto("run", "--current", "9", "--fast", "--output", str(tmp_path / "out"),
                 cwd=tmp_path)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "--current 9" in line and "target current" in line and "[0.05, 4] mA" in line
    assert not (tmp_path / "out").exists(), "nothing may be written before the checks pass"


def test_an_unknown_toml_key_exits_2_naming_the_key(tmp_path):
    (tmp_path / "p.toml").write_text("[protocol]\ncurrent_mA = 2\ndurration_min = 5\n")
    proc = ionto("run", "p.toml", "--fast", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "p.toml" in line and "protocol.durration_min" in line and "duration_min" in line
    assert not (tmp_path / "out").exists()


def test_bad_toml_syntax_exits_2_naming_the_file_and_line(tmp_path):
    (tmp_path / "p.toml").write_text("[protocol]\n\ncurrent_mA = = 2\n")
    proc = ionto("run", "p.toml", "--fast", cwd=tmp_path)
    assert proc.returncode == 2
    assert "p.toml, line 3: invalid TOML" in one_line_error(proc)


def test_a_human_subject_without_screening_is_refused_with_exit_2(tmp_path):
    proc = ionto("run", "--subject", "human", "--fast", "--json", "--output", "out",
                 cwd=tmp_path)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "screening" in line and "--screening-confirmed" in line
    summary = json_summary(proc)
    assert summary["outcome"] == "refused" and summary["rule"] == "pre-flight"
    assert summary["results_file"] is None
    assert not (tmp_path / "out").exists()


# -- exit 3: safety ------------------------------------------------------------------------------


def test_contact_loss_trips_a_safety_rule_with_exit_3(contact_lost):
    proc, _ = contact_lost
    assert proc.returncode == 3, proc.stderr
    summary = json_summary(proc)
    assert summary.keys() >= SUMMARY_FIELDS
    assert summary["outcome"] == "aborted"
    assert summary["rule"] == "impedance-high"
    assert summary["scenario"] == "contact-loss@1"
    assert summary["output_off_confirmed"] is True
    assert 0 < summary["delivered_dose_mA_min"] < summary["planned_dose_mA_min"]
    assert any(e["kind"] == "trip" for e in summary["events"])
    assert "Cause:" in proc.stderr and "impedance-high" in proc.stderr


def test_a_refused_contact_check_exits_3(tmp_path):
    proc = ionto("run", "--sim", "high-impedance", "--fast", "--json", "--output", ".",
                 cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    summary = json_summary(proc)
    assert summary.keys() >= SUMMARY_FIELDS
    assert summary["outcome"] == "refused" and summary["rule"] == "contact-check"
    assert summary["delivered_dose_mA_min"] < 0.01
    assert summary["output_off_confirmed"] is True
    assert Path(summary["results_file"]).is_file()


# -- exit 4: instrument ------------------------------------------------------------------------


def test_an_io_timeout_is_an_instrument_fault_with_exit_4(tmp_path):
    proc = ionto("run", "--sim", "io-timeout@1", "--fast", "--duration", "3", "--json",
                 "--output", ".", cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr
    summary = json_summary(proc)
    assert summary.keys() >= SUMMARY_FIELDS
    assert summary["outcome"] == "fault" and summary["rule"] == "instrument-fault"
    assert summary["samples"] > 0
    assert "Traceback" not in proc.stderr


def test_a_missing_instrument_exits_4_with_a_clear_message(tmp_path):
    proc = ionto("run", "--resource", "GPIB0::29::INSTR", "--subject", "phantom", "--json",
                 "--output", ".", cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr
    summary = json_summary(proc)
    assert summary["outcome"] == "fault" and summary["rule"] == "instrument-fault"
    assert summary["samples"] == 0 and summary["simulated"] is False
    assert "GPIB0::29::INSTR" in summary["reason"]
    assert "nothing was energized" in summary["reason"]
    assert "Traceback" not in proc.stderr


# -- exit 1: internal error ----------------------------------------------------------------------


def test_an_internal_error_exits_1_with_the_output_off(tmp_path):
    """A bug injected into the Procedure in the subprocess (there is no legitimate trigger)."""
    proc = ionto("run", "--fast", "--duration", "1", "--json", "--output", ".", cwd=tmp_path,
                 prefix=[sys.executable, "-c", INJECT_BUG])
    assert proc.returncode == 1, proc.stderr
    summary = json_summary(proc)
    assert summary["outcome"] == "fault" and summary["rule"] is None
    assert "injected bug" in summary["reason"]
    assert summary["output_off_confirmed"] is True
    assert "Traceback" not in proc.stderr


# -- exit 5: the operator, by signal -----------------------------------------------------------


def _read_until(proc: subprocess.Popen, marker: str, timeout: float = 60.0) -> str:
    """Read stderr lines until one contains `marker`; return what was read."""
    seen: list[str] = []
    done = threading.Event()

    def reader() -> None:
        for line in proc.stderr:
            seen.append(line)
            if marker in line:
                done.set()
                return
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    if not done.wait(timeout) or not any(marker in line for line in seen):
        proc.kill()
        pytest.fail(f"{marker!r} never appeared on stderr:\n{''.join(seen)}")
    return "".join(seen)


def _signalled_run(tmp_path: Path, signum: int) -> tuple[int, dict[str, Any], str]:
    """Start a 10-minute run at 300x, send `signum` once the hold has begun; return results."""
    proc = subprocess.Popen([*IONTO, "run", "--speed", "300", "--duration", "10",
                             "--interval", "1", "--output", ".", "--json"],
                            cwd=tmp_path, env=_env(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    head = _read_until(proc, "Phase: hold")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, json.loads(out), head + err


def test_ctrl_c_ramps_down_then_exits_5_with_a_complete_file(tmp_path):
    code, summary, err = _signalled_run(tmp_path, signal.SIGINT)
    assert code == 5, err
    assert summary["outcome"] == "stopped" and summary["rule"] is None
    assert summary["output_off_confirmed"] is True
    assert "Traceback" not in err and "Ctrl-C: stopping" in err
    rows = rows_of(summary)
    stop = rows.index[rows["Event"].fillna("").str.contains("Stop requested")][0]
    after = rows.loc[stop:]
    ramp = after[after["Phase"] == "ramp-down"]
    assert len(ramp) >= 3, "an operator stop ramps down"
    assert ramp["Setpoint (mA)"].is_monotonic_decreasing
    assert ramp["Setpoint (mA)"].iloc[0] > 1.0 and ramp["Setpoint (mA)"].iloc[-1] == 0.0
    assert rows["Phase"].iloc[-1] == "off" and rows["Setpoint (mA)"].iloc[-1] == 0.0
    assert summary["duration_s"] < 600 - 60, "the run stopped well before its end"
    assert json.loads(Path(summary["results_file"]).with_suffix(".json").read_text()) == summary


def test_sigterm_switches_off_at_once_and_exits_5(tmp_path):
    code, summary, err = _signalled_run(tmp_path, signal.SIGTERM)
    assert code == 5, err
    assert summary["outcome"] == "aborted" and summary["rule"] == "emergency-stop"
    assert "SIGTERM" in summary["reason"]
    assert summary["output_off_confirmed"] is True
    rows = rows_of(summary)
    assert "ramp-down" not in set(rows["Phase"]), "an emergency stop never ramps"
    running = rows[rows["Phase"].isin(["ramp-up", "hold"])]
    assert running["Phase"].iloc[-1] == "hold"
    assert (rows[rows["Phase"] == "hold"]["Setpoint (mA)"].iloc[:-1] == 2.0).all()
    assert "Emergency stop (SIGTERM)" in str(rows["Event"].iloc[-1])


# -- reports ---------------------------------------------------------------------------------


@pytest.mark.parametrize("run", ["completed", "contact_lost"])
def test_a_report_png_is_drawn_from_a_finished_or_aborted_run(run, request, tmp_path):
    proc, _ = request.getfixturevalue(run)
    results = json_summary(proc)["results_file"]
    target = tmp_path / f"{run}.png"
    report = ionto("report", results, "-o", str(target), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip() == str(target)
    assert png_size(target) == expected_png_size()


def test_report_errors_exit_2(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "missing.csv")]) == 2
    assert "results file not found" in capsys.readouterr().err
    (tmp_path / "r.csv").write_text("x\n")
    assert cli.main(["report", str(tmp_path / "r.csv"), "-o", "r.svg"]) == 2
    assert ".png or .pdf" in capsys.readouterr().err


# -- the other commands -------------------------------------------------------------------------


def test_scenarios_lists_one_line_each(capsys):
    from ionto_instruments.simulator import SCENARIOS

    assert cli.main(["scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [str(name) for name in SCENARIOS]


def test_resources_sim_lists_the_simulated_sourcemeters(capsys):
    assert cli.main(["resources", "--sim"]) == 0
    out = capsys.readouterr().out
    assert "GPIB0::24::INSTR" in out and "keithley2400" in out and "keithley2450" in out


def test_gui_that_cannot_be_imported_is_one_line_and_exit_1(tmp_path):
    proc = ionto("gui", "--sim", cwd=tmp_path, prefix=[sys.executable, "-c", NO_GUI])
    assert proc.returncode == 1
    assert "front panel cannot be loaded" in one_line_error(proc)


def test_gui_passes_scenario_speed_resource_and_model_to_the_front_panel(monkeypatch):
    app = pytest.importorskip("ionto_instruments.gui.app")
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(app, "run_gui", lambda **kwargs: calls.append(kwargs) or 0)
    assert cli.main(["gui", "--sim", "Drying@3", "--speed", "30"]) == 0
    assert cli.main(["gui", "--resource", "GPIB0::24::INSTR", "--model", "keithley2450"]) == 0
    assert calls == [
        {"scenario": "drying@3", "speed": 30.0, "resource": None, "model": "keithley2400"},
        {"scenario": "normal", "resource": "GPIB0::24::INSTR", "model": "keithley2450"}]


@pytest.mark.parametrize("args", [["gui", "--sim", "--resource", "GPIB0::24::INSTR"],
                                  ["gui", "--speed", "60", "--resource", "GPIB0::24::INSTR"],
                                  ["gui", "--sim", "nonsense"]])
def test_gui_usage_errors_exit_2(args, capsys):
    assert cli.main(args) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "scenarios", "resources", "report", "gui"])
def test_every_subcommand_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_run_help_lists_every_setting_and_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = capsys.readouterr().out
    for setting in SETTINGS:
        assert setting.flag in text, setting.flag
    for code, meaning in cli.EXIT_CODES.items():
        assert f"{code}  {meaning}" in text


def test_version(capsys):
    from ionto_instruments import __version__

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ionto {__version__}"


def test_usage_errors_from_argparse_exit_2(capsys):
    for args in (["run", "--current", "abc"], ["run", "--speed", "0"],
                 ["run", "--fast", "--speed", "60"], ["run", "--subject", "patient"], []):
        with pytest.raises(SystemExit) as info:
            cli.main(args)
        assert info.value.code == 2, args
    capsys.readouterr()


# -- in-process: settings, conflicts and exit codes ---------------------------------------------


def parse(*argv: str):
    return cli.build_parser().parse_args(["run", *argv])


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--sim", "--resource", "GPIB0::24::INSTR"], "--sim and --resource"),
    (["--resource", "GPIB0::24::INSTR", "--subject", "phantom", "--speed", "60"],
     "--speed is for the simulator only"),
    (["--resource", "GPIB0::24::INSTR", "--subject", "phantom", "--fast"],
     "--fast is for the simulator only"),
    (["--resource", "GPIB0::24::INSTR"], "--subject"),
])
def test_conflicting_flags_exit_2_before_anything_is_opened(argv, fragment, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", *argv, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_hardware_needs_the_subject_even_from_a_file(tmp_path, capsys):
    path = tmp_path / "hw.toml"
    path.write_text('[instrument]\nresource = "GPIB0::24::INSTR"\n')
    assert cli.main(["run", str(path), "--output", str(tmp_path / "out")]) == 2
    assert "never defaults to phantom" in capsys.readouterr().err
    path.write_text('[instrument]\nresource = "GPIB0::24::INSTR"\n'
                    'scenario = "drying"\n[subject]\nkind = "phantom"\n')
    assert cli.main(["run", str(path)]) == 2
    assert "simulator only" in capsys.readouterr().err


def test_flags_override_the_file_and_sim_drops_the_files_resource(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[protocol]\ncurrent_mA = 1.5\ndrug = "bupivacaine"\n'
                    '[instrument]\nresource = "GPIB0::24::INSTR"\n')
    values, notes = cli.collect_settings(parse(str(path), "--current", "3", "--sim"))
    assert values["protocol.current_mA"].value == 3.0
    assert values["protocol.current_mA"].origin == "--current 3"
    assert values["protocol.drug"].value == "bupivacaine"
    assert "instrument.resource" not in values and "ignoring" in notes[0]


def test_sim_followed_by_a_toml_file_takes_it_as_the_protocol(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[instrument]\nscenario = "drying@3"\n')
    args = parse("--sim", str(path))
    values, _ = cli.collect_settings(args)
    assert args.protocol == str(path)
    assert values["instrument.scenario"].value == "drying@3"


@pytest.mark.parametrize(("outcome", "rule", "code"), [
    ("completed", None, 0),
    ("refused", "pre-flight", 2),
    ("refused", "contact-check", 3),
    ("aborted", "impedance-high", 3),
    ("aborted", "compliance", 3),
    ("aborted", "my-custom-rule", 3),
    ("fault", "instrument-fault", 4),
    ("aborted", "instrument-fault", 4),
    ("stopped", None, 5),
    ("aborted", "emergency-stop", 5),
    ("fault", None, 1),
    (None, None, 1),
])
def test_exit_codes_follow_outcome_and_rule(outcome, rule, code):
    assert cli.exit_code({"outcome": outcome, "rule": rule}) == code


def test_stop_signals_request_a_stop_then_an_emergency_stop_and_restore_handlers():
    calls: list[str] = []
    done = threading.Event()
    fake = SimpleNamespace(request_stop=lambda: calls.append("stop"),
                           emergency_stop=lambda reason: (calls.append(reason), done.set()))
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = [signal.getsignal(s) for s in watched]
    with cli.StopSignals(fake) as signals:  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert calls == ["stop"]
        os.kill(os.getpid(), signal.SIGINT)
        assert done.wait(5)
        done.clear()
        os.kill(os.getpid(), signal.SIGTERM)
        assert done.wait(5)
        done.clear()
        os.kill(os.getpid(), signal.SIGHUP)  # the terminal went away: never leave it on
        assert done.wait(5)
    assert calls == ["stop", "Emergency stop (Ctrl-C twice)", "Emergency stop (SIGTERM)",
                     "Emergency stop (SIGHUP)"]
    assert len(signals.notices) == 4
    assert [signal.getsignal(s) for s in watched] == before


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def _live(t: float, phase: str = "hold", event: str = "") -> LiveStatus:
    return LiveStatus(phase=phase, t=t, elapsed_s=t, remaining_s=600 - t, current_mA=2.0,
                      voltage_V=12.0, impedance_kohm=6.0, dose_mA_min=t / 30,
                      last_event=event)


def test_plain_log_lines_every_10_s_of_run_time_and_on_each_event():
    stream = _Stream(tty=False)
    console = cli.Console(stream, planned_dose=20.0)
    for k in range(300):  # 30 s of run time, one update per 0.1 s
        console.update(_live(k / 10, event="Phase: hold" if k >= 150 else "Phase: ramp-up"))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert sum("Phase:" in line for line in lines) == 2
    status = [line for line in lines if "mA*min" in line]
    assert len(status) == 3  # at 0, 10 and 20 s
    assert "hold" in status[-1] and "+2.000 mA" in status[-1] and "6.00 kOhm" in status[-1]
    assert "12.00 V" in status[-1] and "/20.00 mA*min" in status[-1] and "left" in status[-1]


def test_a_terminal_gets_one_carriage_return_progress_line():
    stream = _Stream(tty=True)
    console = cli.Console(stream, planned_dose=20.0)
    for k in range(5):
        console.update(_live(float(k)))
    console.line("an event")
    console.close()
    text = stream.getvalue()
    assert text.count("\r") >= 5 and text.count("\n") == 1
    assert "an event\n" in text
