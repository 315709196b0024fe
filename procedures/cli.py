"""The `ionto` command line: run a protocol, list scenarios and resources, report, open the GUI.

Exit codes of `ionto run` (a contract, see EXIT_CODES): 0 completed; 2 invalid input (nothing
was energized); 3 a burn-risk rule tripped or the contact check refused; 4 instrument fault;
5 stopped by the operator (Ctrl-C, Ctrl-Z, any terminating signal); 1 internal error (the output
is still switched off); 130 Ctrl-C outside a run (nothing energized).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ionto_instruments import __version__
from ionto_instruments import limits as L

from . import selftest
from .cli_failsafe import register as register_failsafe
from .cli_shared import (
    EXIT_INSTRUMENT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_SAFETY,
    EXIT_STOPPED,
)
from .cli_shared import Formatter as _Formatter
from .contracts import EMERGENCY_STOP, INSTRUMENT_FAULT, PRE_FLIGHT, Outcome
from .guard import GUARD_RULE
from .protocol_file import (
    BY_KEY,
    SETTINGS,
    SUBJECT_KINDS,
    ProtocolError,
    Sourced,
    add_flag,
    check_value,
    load_protocol,
)
from .records import cli as records_cli
from .results import STORAGE_FAULT, StorageUnusable, check_output_dir, planned_file_bytes
from .terminal import (
    Console,
    StopSignals,
    logging_to,
    never_raises,
)
from .terminal import minutes as _minutes

if TYPE_CHECKING:
    from ionto_instruments.clock import Clock

    from .iontophoresis import ConstantCurrentIontophoresis, LiveStatus


#: Exit code -> meaning, for the help text and the README.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "completed",
    EXIT_INTERNAL: "internal error (the output is still switched off)",
    EXIT_INVALID: "invalid input: nothing was energized",
    EXIT_SAFETY: "a burn-risk safety rule tripped, or the contact check refused, or (--course) "
                 "a course rule refused the session",
    EXIT_INSTRUMENT: "instrument fault (including a wrong, missing or busy instrument), a "
                     "storage fault (the results could not be written), the guard process "
                     "refused, tripped, died or froze, or (--course) the records database "
                     "cannot be used",
    EXIT_STOPPED: "stopped by the operator: Ctrl-C (ramp down), or an emergency stop (Ctrl-C "
                  "twice, Ctrl-Z, SIGTERM, SIGHUP, SIGQUIT or any other terminating signal)",
    EXIT_INTERRUPTED: "Ctrl-C outside a run (before the instrument was opened: nothing was "
                      "energized)",
}

DEFAULT_OUTPUT = "runs"
POLL_S = 0.1
SIM = "simulator"

log = logging.getLogger("ionto_instruments.cli")


class UsageError(Exception):
    """Invalid input found by the command line itself: exit 2, one line, no traceback."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InstrumentUnavailable(Exception):
    """No VISA library or no instrument to talk to: exit 4 with one line."""


# -- exit codes ------------------------------------------------------------------------------


def exit_code(summary: dict[str, Any]) -> int:
    """Map a run summary (outcome, rule) to the exit code of `ionto run`."""
    outcome, rule = summary.get("outcome"), summary.get("rule")
    if outcome == Outcome.COMPLETED:
        return EXIT_OK
    if rule in (INSTRUMENT_FAULT, STORAGE_FAULT, GUARD_RULE):
        return EXIT_INSTRUMENT
    if outcome == Outcome.STOPPED or rule == EMERGENCY_STOP:
        return EXIT_STOPPED
    if outcome == Outcome.REFUSED and rule == PRE_FLIGHT:
        return EXIT_INVALID
    if outcome in (Outcome.ABORTED, Outcome.REFUSED) and rule:
        return EXIT_SAFETY
    return EXIT_INTERNAL


# -- argument parsing ------------------------------------------------------------------------


def _finite_float(text: str) -> float:
    """argparse type: a finite number (ranges are checked later, naming the allowed range)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _speed(text: str) -> float:
    """argparse type: the scaled clock's speed, within the limits table's CLOCK_SPEED."""
    value = _finite_float(text)
    speed = L.CLOCK_SPEED
    if not speed.minimum <= value <= speed.maximum:
        raise argparse.ArgumentTypeError(
            f"{text} is outside {speed.minimum:g}-{speed.maximum:g} (times faster than real "
            f"time); for the fastest run use --fast (the virtual clock)")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (exit 2): no usage block before the message."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INVALID, f"{self.prog}: error: {' '.join(message.split())} "
                                f"(see `{self.prog} --help`)\n")


def _exit_code_text() -> str:
    return "\n".join(f"  {code}  {meaning}" for code, meaning in sorted(EXIT_CODES.items()))


RUN_EPILOG = f"""\
examples:
  ionto run --fast                                  30-minute protocol on the simulator, seconds
  ionto run --sim impedance-drop@12 --speed 60      a fault at minute 12, 60x faster than real
  ionto run examples/dexamethasone_cathode.toml --fast --json > summary.json
  ionto run --current 2 --duration 20 --drug bupivacaine --sim --fast
  ionto run protocol.toml --resource GPIB0::24::INSTR --subject human --screening-confirmed

Without --resource the run uses the simulated SourceMeter (scenario "normal") in real time;
--speed X or --fast (virtual clock) are for the simulator only. Flags override the protocol
file (TOML: [protocol] [subject] [instrument]; see examples/*.toml). Results go to
DIR/ionto_<date>_<time>.csv with the JSON summary beside it.

Ctrl-C once: stop (ramp down over the ramp-down time, then off). Ctrl-C twice, SIGTERM,
SIGHUP, SIGQUIT (Ctrl-\\) or any other terminating signal: emergency stop (output off at
once). Ctrl-Z: emergency stop, then the process suspends. The files are complete either way.
Bad inputs and how each is refused: docs/bad-inputs.md.

exit codes:
{_exit_code_text()}
"""


def _add_sim_flag(parser: argparse.ArgumentParser) -> None:
    add_flag(parser, BY_KEY["instrument.scenario"], const=SIM)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ionto` and its subcommands."""
    parser = _Parser(
        prog="ionto", formatter_class=_Formatter,
        description="Constant-current iontophoresis on a Keithley SourceMeter or its simulator.",
        epilog="examples:\n  ionto run --fast\n  ionto scenarios\n  ionto resources --sim\n"
               "  ionto report runs/ionto_20250101_120000.csv\n  ionto gui --sim\n\n"
               "`ionto COMMAND --help` explains each command.")
    parser.add_argument("--version", action="version", version=f"ionto {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run", formatter_class=_Formatter, epilog=RUN_EPILOG,
        help="run a protocol (simulator unless --resource is given)",
        description="Run a ramped constant-current protocol: pre-flight, contact check, ramp "
                    "up, hold, ramp down, off.")
    run.add_argument("protocol", nargs="?", metavar="PROTOCOL.toml",
                     help="protocol file (TOML); flags override its settings")
    # One flag per protocol-file setting, generated from its declaration (protocol_file.py).
    groups = {"instrument": run.add_argument_group("instrument"),
              "protocol": run.add_argument_group("protocol"),
              "subject": run.add_argument_group("subject")}
    for setting in SETTINGS:
        add_flag(groups[setting.table], setting,
                 **({"const": SIM} if setting.parameter == "scenario" else {}),
                 **({"type": _finite_float} if setting.kind is float else {}))
    clock = run.add_argument_group("clock (simulator only)").add_mutually_exclusive_group()
    clock.add_argument("--speed", type=_speed, metavar="X",
                       help="run the clock X times faster (e.g. 60: 30 minutes in 30 s)")
    clock.add_argument("--fast", action="store_true",
                       help="virtual clock: a 30-minute protocol in seconds")
    out = run.add_argument_group("output")
    out.add_argument("--output", metavar="DIR", default=DEFAULT_OUTPUT,
                     help=f"directory for the results (default: {DEFAULT_OUTPUT})")
    out.add_argument("--json", action="store_true",
                     help="print the JSON summary on stdout (everything else goes to stderr)")
    out.add_argument("-v", "--verbose", action="store_true", help="log details on stderr")
    run.set_defaults(handler=lambda args: records_cli.run_with_course(
        args, cmd_run, check_run_request))

    scenarios = commands.add_parser(
        "scenarios", formatter_class=_Formatter, help="list the simulator's scenarios",
        description="List the simulator's scenarios, one per line.",
        epilog="examples:\n  ionto scenarios\n  ionto run --sim drying@5 --fast\n\n"
               "A fault scenario takes an optional onset minute: NAME@MINUTE.")
    scenarios.set_defaults(handler=cmd_scenarios)

    resources = commands.add_parser(
        "resources", formatter_class=_Formatter,
        help="list VISA resources and which are supported SourceMeters",
        description="List the VISA resources pyvisa sees and which answer as a supported "
                    "SourceMeter (keithley2400, keithley2450).",
        epilog="examples:\n  ionto resources\n  ionto resources --sim\n\n"
               "Without a vendor VISA (NI-VISA...) pyvisa-py is used. USB-TMC and GPIB need "
               "the extras: pip install 'ionto-instruments[usb,gpib]'.")
    resources.add_argument("--sim", action="store_true",
                           help="list the simulator's resources instead")
    resources.add_argument("--resource", metavar="VISA", action="append", default=[],
                           help="also ask this address (LAN instruments are not always listed)")
    _add_serial_flags(resources)
    resources.set_defaults(handler=cmd_resources)

    report = commands.add_parser(
        "report", formatter_class=_Formatter, help="draw a run's report (PNG or PDF)",
        description="Draw current, voltage, impedance and dose against time, with the summary.",
        epilog="examples:\n  ionto report runs/ionto_20250101_120000.csv\n"
               "  ionto report runs/ionto_20250101_120000.csv -o run.pdf")
    report.add_argument("results", metavar="RESULTS.csv", help="a results file of `ionto run`")
    report.add_argument("-o", "--output", metavar="FILE",
                        help="FILE.png or FILE.pdf (default: beside the results, .png)")
    report.set_defaults(handler=cmd_report)

    gui = commands.add_parser(
        "gui", formatter_class=_Formatter, help="open the front panel",
        description="Open the front panel (Qt): the simulator unless --resource is given.",
        epilog="examples:\n  ionto gui --sim\n  ionto gui --sim impedance-drop@12 --speed 60\n"
               "  ionto gui --resource GPIB0::24::INSTR --model keithley2400")
    _add_sim_flag(gui)
    gui.add_argument("--speed", type=_speed, metavar="X",
                     help="simulator clock speed (default: the front panel's own)")
    add_flag(gui, BY_KEY["instrument.resource"])
    add_flag(gui, BY_KEY["instrument.model"], default="keithley2400")
    gui.set_defaults(handler=cmd_gui)
    register_failsafe(commands)
    records_cli.register(commands, run)  # subject/course/session/audit/export/db, run --course
    selftest.register(commands)  # ionto selftest: qualify an instrument on a resistor
    return parser


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ionto` console script; returns the exit code."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"ionto {args.command}"
    try:
        return args.handler(args)
    except UsageError as exc:
        _error(prog, str(exc))
        if getattr(args, "json", False):
            _print_json({"outcome": "refused", "rule": "pre-flight", "reason": str(exc),
                         "field": exc.field, "results_file": None})
        return EXIT_INVALID
    except InstrumentUnavailable as exc:
        _error(prog, str(exc))
        return EXIT_INSTRUMENT
    except KeyboardInterrupt:
        _error(prog, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        _error(prog, f"internal error: {type(exc).__name__}: {exc}")
        return EXIT_INTERNAL


def _error(prog: str, message: str) -> None:
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def _print_json(data: dict[str, Any]) -> None:
    """Print JSON on stdout; a closed stdout never changes the exit code (it is the outcome's)."""
    try:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        sys.stdout.flush()
    except (AttributeError, OSError, ValueError):
        _stdout_gone()


def _stdout_gone() -> None:
    """stdout is closed or a broken pipe: send the rest to /dev/null so that the
    interpreter's final flush cannot fail either (it would exit 120)."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit


# -- ionto run -------------------------------------------------------------------------------


def collect_settings(args: argparse.Namespace) -> tuple[dict[str, Sourced], list[str]]:
    """Merge the protocol file and the flags (flags win); return the settings and notes.

    Raises UsageError (exit 2) for conflicting or invalid choices before anything is opened.
    """
    notes: list[str] = []
    _not_empty(args, "sim", "--sim", "a scenario name, e.g. contact-loss@5 (or --sim alone)")
    _not_empty(args, "protocol", "the protocol file", "a path to a TOML file")
    if args.protocol is None and args.sim and args.sim.endswith(".toml"):
        args.protocol, args.sim = args.sim, SIM  # `ionto run --sim p.toml`
    try:
        values = load_protocol(args.protocol) if args.protocol else {}
        for setting in SETTINGS:
            if setting.parameter == "scenario":
                continue
            raw = getattr(args, setting.dest, None)
            if raw is not None:
                shown = f"{raw:g}" if isinstance(raw, float) else raw
                origin = f"{setting.flag} {shown}" if setting.kind is not bool else setting.flag
                values[setting.key] = Sourced(check_value(setting, raw, origin), origin)
        if args.sim and args.sim != SIM:
            values["instrument.scenario"] = Sourced(
                check_value(BY_KEY["instrument.scenario"], args.sim, f"--sim {args.sim}"),
                f"--sim {args.sim}")
    except ProtocolError as exc:
        raise UsageError(str(exc), exc.key) from None

    if args.sim and args.resource:
        raise UsageError("--sim and --resource exclude each other: --sim runs on the simulator, "
                         "--resource on the instrument at that VISA address", "instrument")
    resource = values.get("instrument.resource")
    if args.sim and resource is not None:
        notes.append(f"--sim: ignoring the instrument resource of the protocol file "
                     f"({resource.value})")
        del values["instrument.resource"]
        resource = None
    if resource is not None:
        clock_flag = "--fast" if args.fast else "--speed" if args.speed else None
        if clock_flag:
            raise UsageError(f"{clock_flag} is for the simulator only; a real instrument "
                             f"({resource.origin}) runs in real time", "clock")
        if "instrument.scenario" in values:
            raise UsageError(f"a scenario ({values['instrument.scenario'].origin}) is for the "
                             f"simulator only, but the run is on {resource.origin}", "scenario")
        if "subject.kind" not in values:
            raise UsageError(
                f"on a real instrument ({resource.origin}) say who is treated: --subject "
                f"{'|'.join(SUBJECT_KINDS)} (or [subject] kind in the protocol file); it never "
                f"defaults to phantom on hardware", "subject")
        if args.seed is not None:
            notes.append("--seed applies to the simulator only; ignored")
    return values, notes


def check_run_request(args: argparse.Namespace) -> bool:
    """Check the flags and the protocol's values and ranges, opening nothing (UsageError, exit
    2: a typo is no refused session); True when the run would be on the simulator."""
    from .protocol_file import check_ranges

    values, _notes = collect_settings(args)
    try:
        check_ranges(values)
    except ProtocolError as exc:
        raise UsageError(str(exc), exc.key) from None
    return "instrument.resource" not in values


def _not_empty(args: argparse.Namespace, dest: str, label: str, expected: str) -> None:
    """Refuse an empty text option (`--output ''`): it would silently mean a default."""
    value = getattr(args, dest, None)
    if value is not None and not str(value).strip():
        raise UsageError(f"{label} is empty; give {expected}", dest)


def _check_fault_onset(procedure: ConstantCurrentIontophoresis, total_s: float) -> None:
    """Refuse a simulator fault scheduled after the run's end: it would never happen."""
    from ionto_instruments.simulator import parse_scenario

    from .iontophoresis import CONTACT_CHECK_S

    scenario = parse_scenario(procedure.scenario)
    end_s = CONTACT_CHECK_S + total_s
    if scenario.fault is not None and scenario.onset_s > end_s:
        raise UsageError(f"--sim {scenario.name}: the fault at minute {scenario.onset_min:g} "
                         f"would never happen; the run ends at minute {end_s / 60:.2f} (contact "
                         f"check + treatment time)", "scenario")


def make_run_clock(args: argparse.Namespace, simulated: bool) -> Clock:
    """The run's clock: virtual (--fast), scaled (--speed X) or real time."""
    from ionto_instruments.clock import clock_for_speed

    return clock_for_speed(math.inf if args.fast else args.speed, simulated=simulated)


def build_procedure(values: dict[str, Sourced]) -> ConstantCurrentIontophoresis:
    """Check ranges and the plan, then build the Procedure; UsageError names field and range."""
    from .plan import InvalidParameter
    from .protocol_file import check_ranges, origin_of, to_parameters
    from .runner import make_procedure

    try:
        check_ranges(values)
    except ProtocolError as exc:
        raise UsageError(str(exc), exc.key) from None
    try:
        procedure = make_procedure(to_parameters(values))
        procedure.preflight()
    except InvalidParameter as exc:
        origin = origin_of(exc.field, values)
        if exc.field == "screening" and "subject.kind" in values:
            origin = values["subject.kind"].origin
        where = f" ({origin})" if origin else ""
        hint = ""
        if exc.field == "screening":
            hint = ("; once it is done, pass --screening-confirmed (or [subject] "
                    "screening_confirmed = true)")
        raise UsageError(f"{exc.field}{where}: {exc.message}{hint}", exc.field) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return procedure


def _describe(procedure: ConstantCurrentIontophoresis) -> str:
    """One line describing the protocol: current and polarity, drug, time or dose, limits."""
    from .drugs import get_drug

    plan = procedure.build_plan()
    drug = get_drug(procedure.drug)
    mode = (f"dose-controlled {plan.dose_target_mA_min:g} mA*min (at most {plan.total_min:g} "
            f"min)" if plan.dose_target_mA_min is not None else f"{plan.total_min:g} min")
    return (f"{plan.target_mA:g} mA from the {drug.active_electrode}, {drug.label}, {mode}, "
            f"ramps {plan.ramp_up_s:g} s / {plan.ramp_down_s:g} s, planned "
            f"{plan.planned_dose_mA_min:.1f} mA*min, {plan.electrode_area_cm2:g} cm^2 "
            f"(max {plan.max_density_mA_cm2:g} mA/cm^2), compliance {plan.compliance_V:g} V, "
            f"subject {procedure.subject_kind}")


def cmd_run(args: argparse.Namespace) -> int:
    """`ionto run`: validate everything, run the protocol, print the summary, return exit code."""
    values, notes = collect_settings(args)
    simulated = "instrument.resource" not in values
    procedure = build_procedure(values)
    plan = procedure.build_plan()
    if simulated:
        _check_fault_onset(procedure, plan.total_s)
    _not_empty(args, "output", "--output", "a folder for the results (default: runs)")
    output_dir = Path(args.output)
    try:
        check_output_dir(output_dir, planned_file_bytes(plan.total_s, plan.sample_interval_s))
    except StorageUnusable as exc:
        raise UsageError(f"--output {exc}", "output") from None
    console = Console(sys.stderr, planned_dose=plan.planned_dose_mA_min)
    clock = make_run_clock(args, simulated)
    for note in notes:
        console.line(f"Note: {note}")
    if simulated:
        why = "--sim" if args.sim else "no --resource given"
        console.line(f"SIMULATOR ({why}): simulated {procedure.instrument_model}, scenario "
                     f"{procedure.scenario}. Nothing real is energized.")
        if clock.name == "real":
            console.line(f"Clock: real time: this takes about {_minutes(plan.total_s)} min of "
                         f"wall time. For a demonstration use --speed 60 (an hour in a minute) "
                         f"or --fast (virtual clock, seconds).")
        elif clock.name == "virtual":
            console.line("Clock: virtual (--fast): as fast as the simulator answers.")
        else:
            console.line(f"Clock: {clock.name} (--speed {args.speed:g}).")
    else:
        console.line(f"INSTRUMENT: {procedure.instrument_model} at {procedure.resource} "
                     f"(real hardware, real time).")
    console.line(f"Protocol: {_describe(procedure)}.")
    console.line(f"Results: {output_dir}/  |  Ctrl-C: stop (ramp down); twice: off at once.")

    redirect = (contextlib.redirect_stdout(sys.stderr) if args.json
                else contextlib.nullcontext())
    summary = _run(procedure, output_dir, clock, console, args.verbose, redirect)
    getattr(args, "on_summary", lambda _summary: None)(summary)  # ionto run --course records it
    console.close()
    code = exit_code(summary)
    _print_summary(summary, plan.planned_dose_mA_min,
                   sys.stderr if args.json else sys.stdout, code)
    if args.json:
        _print_json(summary)
    return code


def _run(procedure: ConstantCurrentIontophoresis, output_dir: Path, clock: Clock,
         console: Console, verbose: bool, redirect: contextlib.AbstractContextManager) -> dict:
    """Run to the end with the stop signals installed; never leave the run behind on error."""
    from .runner import run_protocol

    signals = StopSignals(procedure)

    def on_update(live: LiveStatus) -> None:
        while signals.notices:
            console.line(signals.notices.pop(0))
        console.update(live)

    with redirect, logging_to(console, verbose), signals:
        try:
            return run_protocol(procedure, output_dir=output_dir, prefix="ionto", clock=clock,
                                on_update=never_raises(on_update), poll_s=POLL_S,
                                handle_signals=False)
        except BaseException:
            procedure.emergency_stop("The command line failed while the run was going")
            raise


def _print_summary(summary: dict[str, Any], planned: float, stream: TextIO, code: int) -> None:
    """The end-of-run summary: outcome, cause, dose vs plan, duration, files, exit code."""
    outcome = summary.get("outcome") or "unknown"
    rule = summary.get("rule")
    delivered = float(summary.get("delivered_dose_mA_min") or 0.0)
    planned = float(summary.get("planned_dose_mA_min") or planned)
    share = f" ({100 * delivered / planned:.0f} %)" if planned > 0 else ""
    duration = float(summary.get("duration_s") or 0.0)
    lines = [
        "",
        f"Outcome:   {outcome.upper() if code else outcome}"
        + (f" (rule {rule})" if rule else ""),
        f"Cause:     {summary.get('reason') or '-'}",
        f"Dose:      {delivered:.2f} of {planned:.2f} mA*min planned{share}",
        f"Duration:  {_minutes(duration)} of treatment ({duration:.1f} s, clock "
        f"{summary.get('clock')})",
    ]
    if summary.get("output_off_confirmed") and summary.get("output_was_on") is False:
        lines.append("Output:    never switched on by this run")
    elif summary.get("output_off_confirmed"):
        lines.append("Output:    off (confirmed by read-back)")
    elif not summary.get("samples") and not summary.get("instrument"):
        lines.append("Output:    never switched on (no instrument session was opened)")
    else:
        lines.append("Output:    OFF NOT CONFIRMED: switch the SourceMeter off by hand "
                     "(OUTPUT key) and disconnect the leads")
    notable = [e for e in summary.get("events") or []
               if e.get("kind") in ("warning", "trip", "stop", "instrument-error")]
    for i, event in enumerate(notable[:8]):
        label = "Events:    " if i == 0 else "           "
        lines.append(f"{label}{event['kind']} at {event['t']:.1f} s: {event['message']}")
    if len(notable) > 8:
        lines.append(f"           ... and {len(notable) - 8} more in the summary file")
    results = summary.get("results_file")
    if results:
        lines.append(f"Files:     {results}")
        lines.append(f"           {Path(results).with_suffix('.json')}")
        lines.append(f"Report:    ionto report {results}")
    lines.append(f"Exit code: {code} ({EXIT_CODES.get(code, '?')})")
    try:
        stream.write("\n".join(lines) + "\n")
        stream.flush()
    except (AttributeError, OSError, ValueError):
        if stream is sys.stdout:
            _stdout_gone()


# -- the other commands ----------------------------------------------------------------------


def cmd_scenarios(args: argparse.Namespace) -> int:
    """`ionto scenarios`: the simulator's scenarios, one line each."""
    from ionto_instruments.simulator import SCENARIOS

    width = max(len(str(name)) for name in SCENARIOS)
    for name, text in SCENARIOS.items():
        print(f"{str(name):<{width}}  {text}")
    return EXIT_OK


def _add_serial_flags(group: Any) -> None:
    """--baud and --terminator: RS-232 session settings (they must match the instrument's)."""
    for key in ("instrument.baud_rate", "instrument.terminator"):
        add_flag(group, BY_KEY[key])


def cmd_resources(args: argparse.Namespace) -> int:
    """`ionto resources`: VISA resources and which answer as a supported SourceMeter."""
    from ionto_instruments.connect import scan_resources

    if args.sim:
        from ionto_instruments.simulator import MODELS as SIM_MODELS
        from ionto_instruments.simulator import SimulatedSourceMeter

        found = []
        for model in SIM_MODELS:
            simulator = SimulatedSourceMeter(model)
            found += scan_resources(simulator.visa_library)
        where = "simulator"
    else:
        try:
            found = scan_resources(extra=tuple(args.resource), baud_rate=args.baud or 9600,
                                   terminator=args.terminator or "LF")
        except (ValueError, OSError) as exc:
            raise InstrumentUnavailable(
                f"no VISA library: {exc} (pyvisa-py is a dependency: reinstall "
                f"ionto-instruments; `ionto resources --sim` lists the simulator)") from None
        where = "pyvisa"
    if not found:
        print(f"No VISA resources found ({where}).", file=sys.stderr)
        return EXIT_OK
    width = max(len(info.resource) for info in found)
    for info in found:
        model = info.model or "not supported"
        print(f"{info.resource:<{width}}  {model:<13}  {info.idn}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """`ionto report`: draw a results file to PNG or PDF."""
    source = Path(args.results)
    if not source.is_file():
        raise UsageError(f"results file not found: {source}", "results")
    if args.output and Path(args.output).suffix.lower() not in (".png", ".pdf"):
        raise UsageError(f"-o {args.output}: the report is written as .png or .pdf", "output")
    try:
        from .report import make_report
    except ImportError as exc:
        _error("ionto report", f"the report module cannot be loaded: {exc}")
        return EXIT_INTERNAL
    try:
        target = make_report(source, args.output)
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot draw {source}: is it a results file of `ionto run`? "
                         f"({type(exc).__name__}: {exc})", "results") from None
    except OSError as exc:
        raise UsageError(f"cannot write the report: {exc}", "output") from None
    print(target)
    return EXIT_OK


def cmd_gui(args: argparse.Namespace) -> int:
    """`ionto gui`: open the front panel (loaded only now; Qt is heavy)."""
    _not_empty(args, "sim", "--sim", "a scenario name, e.g. contact-loss@5 (or --sim alone)")
    if args.sim and args.resource:
        raise UsageError("--sim and --resource exclude each other", "instrument")
    if args.speed and args.resource:
        raise UsageError("--speed is for the simulator only; a real instrument runs in real "
                         "time", "clock")
    scenario = "normal"
    if args.sim and args.sim != SIM:
        try:
            scenario = check_value(BY_KEY["instrument.scenario"], args.sim, f"--sim {args.sim}")
        except ProtocolError as exc:
            raise UsageError(str(exc), "scenario") from None
    if (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("QT_QPA_PLATFORM")):
        _error("ionto gui", "no display (DISPLAY is not set); run it on a desktop, or try "
                            "`ionto run --sim --speed 60` in a terminal")
        return EXIT_INTERNAL
    try:
        from ionto_instruments.gui.app import run_gui
    except ImportError as exc:
        _error("ionto gui", f"the front panel cannot be loaded ({type(exc).__name__}: {exc}); "
                            f"check that PyQt5 and pyqtgraph are installed")
        return EXIT_INTERNAL
    options: dict[str, Any] = {"scenario": scenario, "resource": args.resource,
                               "model": args.model}
    if args.speed:
        options["speed"] = args.speed
    return int(run_gui(**options))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
