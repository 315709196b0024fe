"""The results file (PyMeasure CSV, durable) and the JSON summary written beside it.

Rows are flushed as they are written and fsynced at least once a second, so a crash loses at
most a second. Text cells (the Event sentences) are CSV-quoted, so a comma in a sentence
cannot shift columns: the file loads back with `Results.load` and pandas.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pymeasure.experiment import Procedure, Results
from pymeasure.experiment.results import CSVFormatter

from ionto_instruments import limits as L

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
#: Bytes per results row assumed when checking the free space before a run (rows are ~130 B).
ROW_BYTES_ESTIMATE = 200
#: The application name for the user's state directory (fallback summaries).
APP_NAME = "ionto-instruments"


#: The rule name of a storage fault (a results write or fsync failed, or the file vanished).
STORAGE_FAULT = "storage-fault"


class StorageFault(Exception):
    """The results could not be written (disk full, I/O error, file or folder removed)."""


class StorageUnusable(ValueError):
    """The output folder cannot take the run's files: refused before anything is energized."""


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
    """PyMeasure Results with durable, quoted rows in a file no other run can share.

    A new file is created exclusively (O_EXCL); an empty file reserved by `new_results_file`
    is taken over. `check_storage()` (called by the Procedure after each row) turns a failed
    write or fsync, or the file's removal, into StorageFault.
    """

    def __init__(self, procedure: Procedure, data_filename: str | os.PathLike[str]) -> None:
        path = Path(data_filename)
        reserved = _is_reserved(path)
        if not reserved:
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                reserved = True
            except FileExistsError:
                pass  # an existing results file: PyMeasure loads it (viewing a past run)
        if reserved:
            self._init_new(procedure, str(path))
        else:
            super().__init__(procedure, str(path))
        self.formatter = DurableCSVFormatter(self.procedure.DATA_COLUMNS, self.data_filename)
        procedure.results_file = self.data_filename
        self._fd: int | None = None
        self._size = -1
        self._last_sync = time.monotonic()
        self._write_error: BaseException | None = None
        if reserved:
            procedure.storage_check = self.check_storage
            procedure.storage_close = self.close_storage

    def _init_new(self, procedure: Procedure, filename: str) -> None:
        """PyMeasure's Results.__init__ for a new file, writing the header into our own file
        (PyMeasure would load any existing file, even the empty one we reserved)."""
        if not isinstance(procedure, Procedure):
            raise ValueError("Results require a Procedure object")
        self.procedure = procedure
        self.procedure_class = procedure.__class__
        self.parameters = procedure.parameter_objects()
        self._header_count = -1
        self._metadata_count = -1
        self._last_file_size = 0
        self.formatter = CSVFormatter(columns=self.procedure.DATA_COLUMNS)
        self.data_filename = filename
        self.data_filenames = [filename]
        with open(filename, "r+", encoding=Results.ENCODING) as f:
            f.write(self.header())
            f.write(self.labels())
        self._data = None

    def note_write_error(self, error: BaseException | None) -> None:
        """Record a failed row write (reported by the Worker); the next check raises."""
        if self._write_error is None:
            self._write_error = error or OSError("write failed")

    def check_storage(self) -> None:
        """Raise StorageFault if the last row did not reach the file, or it is gone; fsync
        at most once per FSYNC_INTERVAL_S (so a crash loses at most that much)."""
        if self._write_error is not None:
            raise StorageFault(f"writing {self.data_filename} failed: {_why(self._write_error)}")
        try:
            if self._fd is None:
                self._fd = os.open(self.data_filename, os.O_RDONLY)
            info = os.fstat(self._fd)
            if info.st_nlink == 0 or not _same_file(self.data_filename, info):
                raise StorageFault(f"the results file {self.data_filename} was removed (or its "
                                   f"folder) during the run")
            if info.st_size <= self._size:
                raise StorageFault(f"writing {self.data_filename} failed: the file stopped "
                                   f"growing (disk full?)")
            self._size = info.st_size
            now = time.monotonic()
            if now - self._last_sync >= FSYNC_INTERVAL_S:
                self._last_sync = now
                os.fsync(self._fd)
        except OSError as exc:
            raise StorageFault(f"writing {self.data_filename} failed: {_why(exc)}") from None

    def close_storage(self) -> None:
        """Final fsync and release of the watch descriptor (safe to call twice)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)


def _why(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}"


def _same_file(path: str, info: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    return (now.st_ino, now.st_dev) == (info.st_ino, info.st_dev)


def _is_reserved(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def new_results_file(directory: str | os.PathLike[str], prefix: str = "ionto") -> str:
    """Create a fresh, empty results file in `directory` exclusively and return its name.

    `ionto_<date>_<time>_<n>.csv`: O_EXCL guarantees that runs started at the same instant
    never share a file (PyMeasure's `unique_filename` checks a name, then creates it later).
    """
    folder = Path(directory).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    for n in range(1, 100_000):
        path = folder / f"{prefix}_{stamp}_{n}.csv"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return str(path)
    raise StorageUnusable(f"{folder}: no free results file name for {prefix}_{stamp}")


def planned_file_bytes(total_s: float, interval_s: float) -> int:
    """An upper estimate of a run's results file (rows of the plan plus the header)."""
    rows = (total_s + 60.0) / interval_s
    return int(rows * ROW_BYTES_ESTIMATE) + 8192


def check_output_dir(directory: str | os.PathLike[str], planned_bytes: int = 0) -> None:
    """Refuse (StorageUnusable) a folder that cannot be created or written, or has no room
    for FREE_SPACE_FACTOR (limits table) x the planned file. Probes by creating a file."""
    folder = Path(directory)
    shown = str(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageUnusable(f"{shown}: cannot create the folder: {_why(exc)}") from None
    if not folder.is_dir():
        raise StorageUnusable(f"{shown}: not a folder")
    probe = folder / f".ionto-probe-{os.getpid()}-{time.monotonic_ns()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, b"probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageUnusable(f"{shown}: the folder is not writable: {_why(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    free = shutil.disk_usage(folder).free
    factor = L.FREE_SPACE_FACTOR.value
    needed = int(factor * planned_bytes)
    if free < needed:
        raise StorageUnusable(f"{shown}: only {free / 1e6:.1f} MB free, the run needs about "
                              f"{needed / 1e6:.1f} MB ({factor:g}x its planned file)")


def fallback_summary_dir() -> Path:
    """Where a summary goes when its results folder cannot take it: the user state dir."""
    from platformdirs import user_state_dir

    return Path(user_state_dir(APP_NAME)) / "summaries"


def write_summary_somewhere(summary: dict[str, Any], results_file: str | None) -> str | None:
    """Write the summary beside the results file, else in the user state dir, else print it
    whole on stderr. Return where it went (None: printed)."""
    targets: list[Path] = []
    if results_file:
        targets.append(summary_path(results_file))
        targets.append(fallback_summary_dir() / summary_path(results_file).name)
    else:
        targets.append(fallback_summary_dir() / f"ionto_{datetime.now():%Y%m%d_%H%M%S}.json")
    for i, target in enumerate(targets):
        try:
            if i:
                target.parent.mkdir(parents=True, exist_ok=True)
                summary = {**summary, "summary_file": str(target)}
            write_summary(summary, target)
            return str(target)
        except (OSError, ValueError):
            continue
    try:
        sys.stderr.write("The run's summary could not be written to any file; here it is:\n"
                         + json.dumps(summary, indent=2, default=str) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return None


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
