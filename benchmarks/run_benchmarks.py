"""Run every benchmark and print one table: figures measured, each beside its baseline."""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

MODULES = ["bench_io", "bench_hardware", "bench_protocol", "bench_gui", "bench_records",
           "bench_kill9"]


def main(names: list[str]) -> int:
    """Run the named benchmark modules (all by default) and print their rows."""
    for name in names or MODULES:
        module = importlib.import_module(name)
        start = time.perf_counter()
        rows = module.run()
        print(f"\n== {name} ({time.perf_counter() - start:.0f} s)")
        for label, value, unit in rows:
            print(f"  {label:62s} {value:12.3f} {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
