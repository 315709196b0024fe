"""`ionto sim serve` and `ionto guard`: the processes of the fail-safe beyond the run."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
from typing import Any

from ionto_instruments.simulator import MODELS, SCENARIOS
from ionto_instruments.simulator.server import DEFAULT_PORT, SimServer

from . import guard as guard_process
from .cli_shared import EXIT_INVALID
from .cli_shared import Formatter as _Formatter

SERVE_EPILOG = """\
examples:
  ionto sim serve --model keithley2450
  ionto run --resource TCPIP0::127.0.0.1::5025::SOCKET --model keithley2450 --subject phantom

The first line on stdout is JSON: {"scpi_port": P, "control_port": C, "resource": ..., "pid": N}.
The control port speaks JSON lines: {"cmd": "state"}, {"cmd": "fault", "scenario": NAME},
{"cmd": "load", "ohm": R}, {"cmd": "drop"}, {"cmd": "shutdown"} (see README, "The simulator
as a LAN instrument"). Ctrl-C or SIGTERM stops the server.
"""


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


GUARD_EPILOG = """\
`ionto run` and `ionto gui` start the guard themselves before the output can go on; run it by
hand only to test an instrument's second session:
  ionto guard --resource TCPIP0::127.0.0.1::5025::SOCKET --model keithley2450 --timeout 3

It prints ARMED once its own session answers *IDN?, then trips (output off with read-back,
a JSON note, a CSV event row, CRITICAL log) when stdin closes without DONE or no HB line
arrives for the timeout. Exit codes: 0 done, 3 tripped, 4 not armed.
"""


def register(commands: Any) -> None:
    """Add `ionto sim serve` to the `ionto` subcommands."""
    sim = commands.add_parser("sim", formatter_class=_Formatter,
                              help="the simulated SourceMeter as its own process",
                              description="Serve the simulated SourceMeter over TCP.")
    verbs = sim.add_subparsers(dest="sim_command", metavar="VERB", required=True)
    serve = verbs.add_parser(
        "serve", formatter_class=_Formatter, epilog=SERVE_EPILOG,
        help="serve the simulator as a SCPI instrument on a TCP port",
        description="Run the simulated SourceMeter and its skin phantom as a SCPI-over-TCP "
                    "instrument (raw socket, newline-terminated), with a JSON control port.")
    serve.add_argument("--model", choices=list(MODELS), default="keithley2400",
                       help="instrument model (default keithley2400)")
    serve.add_argument("--scenario", default="normal", metavar="NAME[@MINUTE]",
                       help=f"fault scenario: {', '.join(SCENARIOS)}")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"SCPI port (default {DEFAULT_PORT}; 0 picks a free one)")
    serve.add_argument("--control-port", type=int, default=None,
                       help="control port (default: SCPI port + 1; any free one with --port 0)")
    serve.add_argument("--speed", type=_positive_float, default=1.0, metavar="X",
                       help="the phantom's and the fault minutes' clock runs X times faster")
    serve.add_argument("--seed", type=int, default=0, help="noise seed")
    serve.add_argument("--max-connections", type=int, default=0, metavar="N",
                       help="refuse SCPI connections beyond N (1 emulates a one-session "
                            "transport such as serial); default 0: any number")
    serve.add_argument("-v", "--verbose", action="store_true", help="log every output change")
    serve.set_defaults(handler=cmd_sim_serve)

    guard = commands.add_parser(
        "guard", formatter_class=_Formatter, epilog=GUARD_EPILOG,
        help="the fail-safe guard process (started by every real-time run)",
        description="Arm against a SourceMeter and switch its output off when the heartbeats "
                    "on stdin stop (HB per sample, DONE at the end). Runs start it themselves.")
    guard_process.build_parser(guard)
    guard.set_defaults(handler=guard_process.run_guard)


def cmd_sim_serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM or a control-channel shutdown; return the exit code."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = SimServer(args.model, scenario=args.scenario, host=args.host, port=args.port,
                           control_port=args.control_port, speed=args.speed, seed=args.seed,
                           max_connections=args.max_connections)
    except ValueError as exc:
        print(f"ionto sim serve: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"ionto sim serve: error: cannot listen on {args.host}:{args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID

    def stop(signum: int, frame: object) -> None:
        server.shutdown()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(json.dumps({"scpi_port": server.port, "control_port": server.control_port,
                          "resource": server.resource_name, "pid": os.getpid(),
                          "model": args.model, "scenario": server.model.scenario.name}),
              flush=True)
        print(f"Simulated {server.sim.title} ({server.model.scenario.name}, clock "
              f"{server.sim.clock.name}) at {server.resource_name}; control port "
              f"{server.control_port}. Ctrl-C stops.", file=sys.stderr, flush=True)
        while not server.wait(0.5):
            pass
    finally:
        server.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
