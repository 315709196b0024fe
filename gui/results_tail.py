"""Read a growing PyMeasure results CSV incrementally (Qt-free, so it is usable anywhere).

Only the bytes appended since the last read are parsed (a byte offset), so the per-tick cost
does not grow with the file.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field

import numpy as np

TIME = "Time (s)"
PHASE = "Phase"
SETPOINT = "Setpoint (mA)"
CURRENT = "Current (mA)"
VOLTAGE = "Voltage (V)"
IMPEDANCE = "Impedance (kohm)"
DOSE = "Dose (mA*min)"
EVENT = "Event"
TEXT_COLUMNS = (PHASE, EVENT)


def _to_float(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return math.nan


@dataclass
class RowBlock:
    """Rows parsed from the file: numeric columns as float arrays, text columns as lists."""

    numbers: dict[str, np.ndarray] = field(default_factory=dict)
    text: dict[str, list[str]] = field(default_factory=dict)
    count: int = 0

    def __len__(self) -> int:
        return self.count


class ResultsTail:
    """Read a growing PyMeasure CSV incrementally: only complete lines appended since last time.

    The header (comment lines, then the column labels) is re-read until the first data line
    exists, because PyMeasure rewrites the file once to insert the metadata before any row.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.offset = 0
        self.columns: list[str] | None = None
        self.rows_read = 0
        self._partial = b""

    def read_new(self) -> RowBlock:
        """Return the rows appended since the last call (possibly none)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return RowBlock()
        if not data:
            return RowBlock()
        buffer = self._partial + data
        cut = buffer.rfind(b"\n")
        if cut < 0:
            self._partial = buffer
            self.offset += len(data)
            return RowBlock()
        complete = buffer[:cut + 1]
        lines = complete.decode("utf-8", errors="replace").splitlines()
        if self.columns is None:
            lines = [line for line in lines if line and not line.startswith("#")]
            if len(lines) < 2:  # labels only (or nothing): re-read the header next time
                return RowBlock()
            self.columns = next(csv.reader([lines[0]]))
            lines = lines[1:]
        self._partial = buffer[cut + 1:]
        self.offset += len(data)
        return self._parse([line for line in lines if line and not line.startswith("#")])

    def _parse(self, lines: list[str]) -> RowBlock:
        columns = self.columns or []
        rows = [row for row in csv.reader(lines) if len(row) == len(columns)]
        if not rows:
            return RowBlock()
        self.rows_read += len(rows)
        block = RowBlock(count=len(rows))
        for index, name in enumerate(columns):
            cells = [row[index] for row in rows]
            if name in TEXT_COLUMNS:
                block.text[name] = cells
                continue
            try:
                block.numbers[name] = np.asarray(cells, dtype=float)
            except ValueError:  # an empty cell or a stray word: parse one by one
                block.numbers[name] = np.fromiter((_to_float(c) for c in cells), float,
                                                  len(cells))
        return block
