"""The results file (PyMeasure CSV, durable) and the JSON summary written beside it.

Rows are flushed as they are written and fsynced at least once a second, so a crash loses at
most a second. Text cells (the Event sentences) are CSV-quoted, so a comma in a sentence
cannot shift columns: the file loads back with `Results.load` and pandas.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from pymeasure.experiment import Procedure, Results
from pymeasure.experiment.results import CSVFormatter, unique_filename

from .contracts import Outcome

#: The results file's columns: a contract (the README and the issues fix them).
DATA_COLUMNS = [
    "Time (s)",
    "Phase",
    "Setpoint (mA)",
    "Current (mA)",
    "Voltage (V)",
    "Impedance (kohm)",
    "Dose (mA*min)",
    "Current density (mA/cm^2)",
    "Compliance",
    "Event",
]

#: The outcomes a summary may report.
OUTCOMES: tuple[str, ...] = tuple(Outcome)

FSYNC_INTERVAL_S = 1.0


def _quote(text: str) -> str:
    """Return `text` as one CSV cell, quoted only when it needs to be."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([text.replace("\n", " ")])
    return buffer.getvalue()


class DurableCSVFormatter(CSVFormatter):
    """CSV rows with quoted text cells; fsyncs the file at most once per interval.

    PyMeasure's FileHandler flushes each row before formatting the next one, so syncing here
    makes every earlier row durable without replacing PyMeasure's Recorder.
    """

    def __init__(self, columns: list[str], path: str | os.PathLike[str],
                 fsync_interval_s: float = FSYNC_INTERVAL_S) -> None:
        super().__init__(columns=columns)
        self.path = str(path)
        self.fsync_interval_s = fsync_interval_s
        self._last_sync = time.monotonic()

    def format(self, record: dict[str, Any]) -> str:
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval_s:
            self._last_sync = now
            sync_file(self.path)
        quoted = {k: (_quote(v) if isinstance(v, str) else v) for k, v in record.items()}
        return super().format(quoted)


def sync_file(path: str | os.PathLike[str]) -> None:
    """fsync `path` (its written data reaches the disk); silently skip if it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY if os.name != "nt" else os.O_RDWR)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class IontoResults(Results):
    """PyMeasure Results with durable, quoted rows; tells the procedure where its file is."""

    def __init__(self, procedure: Procedure, data_filename: str | os.PathLike[str]) -> None:
        super().__init__(procedure, str(data_filename))
        self.formatter = DurableCSVFormatter(self.procedure.DATA_COLUMNS, self.data_filename)
        procedure.results_file = self.data_filename


def new_results_file(directory: str | os.PathLike[str], prefix: str = "ionto") -> str:
    """Return a fresh, unique results file name in `directory` (created if needed)."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    return unique_filename(str(directory), prefix=f"{prefix}_", datetimeformat="%Y%m%d_%H%M%S")


def summary_path(results_file: str | os.PathLike[str]) -> Path:
    """The JSON summary's path beside a results file (same stem, .json)."""
    return Path(results_file).with_suffix(".json")


def write_summary(summary: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the summary atomically (temp file, fsync, rename) so a reader never sees half."""
    target = Path(path)
    tmp = target.with_suffix(target.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=False, allow_nan=False, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return target


def load_summary(results_file: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Load the JSON summary beside a results file, or None when there is none."""
    path = summary_path(results_file)
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)
