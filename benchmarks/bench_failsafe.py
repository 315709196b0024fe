"""Fail-safe figures, measured at the simulator server (real clock, real processes).

    python benchmarks/bench_failsafe.py            # kill -9, SIGSTOP, guard CPU/RSS (~2 min)
    python benchmarks/bench_failsafe.py --soak 30 --load 2   # 30-min x1 run under CPU load

- kill -9 of the run -> output off at the instrument (goal <= 2 s); baseline: the same run
  without the guard, where the output is still on 10 s later (as on a real SourceMeter);
- SIGSTOP of the run -> off (goal <= heartbeat timeout + 1 s);
- the guard's CPU time and resident memory over a healthy run, beside the run's own and a
  bare Python interpreter's;
- `--soak MIN`: a full real-time protocol of MIN minutes (30 by default in the issue) with
  `--load N` busy processes hogging the CPU: the guard must never trip (no note, completed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ionto_instruments.procedures.guard import heartbeat_timeout
from ionto_instruments.simulator.polling import poll_until
from ionto_instruments.simulator.server import SimServer

INTERVAL_S = 0.2
TIMEOUT_S = heartbeat_timeout(INTERVAL_S)


def _run(srv: SimServer, out: Path, minutes: float = 0.5, extra: tuple[str, ...] = ()
         ) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ionto_instruments.procedures.cli", "run", "--resource",
         srv.resource_name, "--subject", "phantom", "--current", "2", "--duration",
         f"{minutes:g}", "--ramp-up", "1", "--ramp-down", "2", "--interval", str(INTERVAL_S),
         "--output", str(out), "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _holding(srv: SimServer) -> bool:
    state = srv.state()
    return state["output"] and abs(state["setpoint_A"] - 2e-3) < 1e-9


def _off_after(srv: SimServer, since: float) -> float | None:
    state = srv.state()
    if state["output"]:
        return None
    return next((c["monotonic"] - since for c in state["changes"]
                 if not c["on"] and c["monotonic"] >= since), None)


def _guard_pid(run_pid: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"ionto_instruments.procedures.guard" in args and str(run_pid).encode() in args:
                return int(entry.name)
    return None


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def kill_to_off(repeats: int = 5) -> list[float]:
    """Seconds from kill -9 of the run to output off at the instrument."""
    times = []
    for _ in range(repeats):
        with SimServer("keithley2400", port=0) as srv, tempfile.TemporaryDirectory() as out:
            run = _run(srv, Path(out))
            poll_until(lambda srv=srv: _holding(srv), 60, step=0.01)
            killed = time.monotonic()
            run.kill()
            run.wait()
            off = poll_until(lambda srv=srv, k=killed: _off_after(srv, k), 10, step=0.01)
            times.append(off if off is not None else float("inf"))
    return times


def kill_without_guard() -> bool:
    """Baseline: the output is still on 10 s after the run died (no guard: in-process path)."""
    with SimServer("keithley2400", port=0) as srv:
        code = (
            "import sys, time\n"
            "from ionto_instruments.connect import open_source\n"
            f"s = open_source({srv.resource_name!r}, model='keithley2400')\n"
            "s.configure_current_source(40); s.set_current(2e-3); s.output_on()\n"
            "print('on', flush=True); time.sleep(60)\n")
        run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        run.stdout.readline()
        run.kill()
        run.wait()
        time.sleep(10)
        return srv.state()["output"]


def stop_to_off(repeats: int = 3) -> list[float]:
    """Seconds from SIGSTOP of the run to output off at the instrument."""
    times = []
    for _ in range(repeats):
        with SimServer("keithley2400", port=0) as srv, tempfile.TemporaryDirectory() as out:
            run = _run(srv, Path(out))
            poll_until(lambda srv=srv: _holding(srv), 60, step=0.01)
            stopped = time.monotonic()
            run.send_signal(signal.SIGSTOP)
            off = poll_until(lambda srv=srv, s=stopped: _off_after(srv, s), TIMEOUT_S + 10,
                             step=0.01)
            run.send_signal(signal.SIGCONT)
            run.communicate(timeout=30)
            times.append(off if off is not None else float("inf"))
    return times


def guard_footprint(seconds: float = 30.0) -> dict[str, float]:
    """CPU and RSS of the guard vs the run vs a bare interpreter, over a healthy hold."""
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    time.sleep(1.0)
    bare_rss = _rss_mb(bare.pid)
    bare.kill()
    bare.wait()
    with SimServer("keithley2400", port=0) as srv, tempfile.TemporaryDirectory() as out:
        run = _run(srv, Path(out), minutes=1.0)
        poll_until(lambda: _holding(srv), 60, step=0.01)
        guard = _guard_pid(run.pid)
        cpu0, run_cpu0, t0 = _cpu_s(guard), _cpu_s(run.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, run_cpu1, t1 = _cpu_s(guard), _cpu_s(run.pid), time.monotonic()
        result = {"guard_cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
                  "run_cpu_pct": 100 * (run_cpu1 - run_cpu0) / (t1 - t0),
                  "guard_rss_mb": _rss_mb(guard), "run_rss_mb": _rss_mb(run.pid),
                  "bare_python_rss_mb": bare_rss}
        run.kill()
        run.wait()
    return result


def run() -> list[tuple[str, float, str]]:
    """The rows for run_benchmarks.py."""
    kills = kill_to_off()
    stops = stop_to_off()
    baseline_on = kill_without_guard()
    foot = guard_footprint()
    return [
        ("kill -9 -> off at the instrument, median (5 runs)", statistics.median(kills), "s"),
        ("kill -9 -> off at the instrument, max (goal <= 2 s)", max(kills), "s"),
        ("baseline without guard: output still on 10 s after kill -9 (1 = yes)",
         float(baseline_on), ""),
        ("SIGSTOP -> off, median (3 runs)", statistics.median(stops), "s"),
        (f"SIGSTOP -> off, max (goal <= timeout {TIMEOUT_S:g} s + 1 s)", max(stops), "s"),
        ("guard CPU over a healthy hold", foot["guard_cpu_pct"], "%"),
        ("run CPU over the same hold (baseline)", foot["run_cpu_pct"], "%"),
        ("guard resident memory", foot["guard_rss_mb"], "MB"),
        ("run resident memory (baseline)", foot["run_rss_mb"], "MB"),
        ("bare python interpreter resident memory (baseline)", foot["bare_python_rss_mb"], "MB"),
    ]


def soak(minutes: float, load: int) -> int:
    """A real-time run of `minutes` under `load` busy processes; 0 if it completed untripped."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    try:
        with SimServer("keithley2400", port=0) as srv, tempfile.TemporaryDirectory() as out:
            started = time.monotonic()
            run = _run(srv, Path(out), minutes=minutes)
            stdout, _ = run.communicate(timeout=minutes * 60 + 120)
            summary = json.loads(stdout)
            notes = list(Path(out).glob("*.guard.json"))
            print(json.dumps({
                "minutes": minutes, "cpu_hogs": load, "outcome": summary["outcome"],
                "rule": summary["rule"], "guard_tripped": summary["guard"]["tripped"],
                "guard_notes": len(notes), "samples": summary["samples"],
                "max_schedule_lateness_s": summary["max_schedule_lateness_s"],
                "heartbeat_timeout_s": TIMEOUT_S,
                "wall_s": round(time.monotonic() - started, 1)}), flush=True)
            return 0 if summary["outcome"] == "completed" and not notes else 1
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--soak", type=float, metavar="MIN",
                        help="instead: one real-time run of MIN minutes under CPU load")
    parser.add_argument("--load", type=int, default=2, help="busy processes during --soak")
    args = parser.parse_args()
    if args.soak:
        return soak(args.soak, args.load)
    for label, value, unit in run():
        print(f"  {label:72s} {value:10.3f} {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
