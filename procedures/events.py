"""Events as data: what happened during a run (phase change, warning, trip, stop) with its kind.

The Procedure records each event as a `RunEvent` (`procedure.events`, live) and writes them in
the summary (`events`: `{t, kind, message}`). Readers take the kind from there, never from the
text. The `Event` column of the results file keeps the human-readable sentence ("TRIP: ...");
only files without a summary (older versions, a crash before the end) fall back to reading the
kind from that text, in `events_from_cells`, the one place that does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .contracts import EventKind

#: Events in one `Event` cell are joined with this separator.
CELL_SEPARATOR = " | "
_PREFIX = re.compile(r"^([A-Z][A-Z-]*[A-Z]): (.*)$", re.DOTALL)


@dataclass(frozen=True)
class RunEvent:
    """Something that happened during a run, at run time `t` (s), of a `kind`, in a sentence."""

    t: float
    kind: EventKind
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The summary's form: `{t, kind, message}`; t rounded as the rows' `Time (s)`."""
        return {"t": round(self.t, 4), "kind": str(self.kind), "message": self.message}

    def cell_text(self) -> str:
        """The sentence as written in the results file's `Event` column."""
        if self.kind == EventKind.INFO:
            return self.message
        return f"{self.kind.upper()}: {self.message}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunEvent | None:
        """Read a summary event; None when it is unusable (no finite time, unknown kind)."""
        try:
            t = float(data.get("t", math.nan))
            kind = EventKind(str(data.get("kind", EventKind.INFO)).lower())
            message = str(data.get("message", ""))
        except (AttributeError, TypeError, ValueError):
            return None
        return cls(t, kind, message) if math.isfinite(t) else None


def events_from_summary(summary: Mapping[str, Any] | None) -> list[RunEvent] | None:
    """The summary's events in time order, or None when the summary has no event list."""
    raw = (summary or {}).get("events")
    if not isinstance(raw, list):
        return None
    events = [e for e in (RunEvent.from_dict(d) for d in raw if isinstance(d, Mapping)) if e]
    return sorted(events, key=lambda e: e.t)


def parse_cell_sentence(t: float, sentence: str) -> RunEvent:
    """Compatibility only: the kind of one `Event` sentence written without a summary."""
    text = sentence.strip()
    match = _PREFIX.match(text)
    if match is None:
        return RunEvent(t, EventKind.INFO, text)
    word = match.group(1).lower()
    try:
        kind = EventKind(word)
    except ValueError:
        kind = EventKind.INSTRUMENT_ERROR if word.endswith("error") else EventKind.INFO
    return RunEvent(t, kind, match.group(2).strip())


def events_from_cells(times: Iterable[float], cells: Iterable[Any]) -> list[RunEvent]:
    """Compatibility only: the events of an `Event` column (files without a summary)."""
    events = []
    for t, cell in zip(times, cells, strict=True):
        for sentence in str(cell).split(CELL_SEPARATOR):
            if sentence.strip() and sentence.strip().lower() != "nan":
                events.append(parse_cell_sentence(float(t), sentence))
    return events


def load_events(results_file: str, rows: Any = None) -> list[RunEvent]:
    """The events of a results file: from its summary, else (old or cut-short files) its rows.

    `rows` is the file's DataFrame when the caller has it (columns `Time (s)` and `Event`).
    """
    from .results import load_summary

    events = events_from_summary(load_summary(results_file))
    if events is not None:
        return events
    if rows is None:
        import pandas as pd

        rows = pd.read_csv(results_file, comment="#")
    if "Event" not in rows or "Time (s)" not in rows:
        return []
    return events_from_cells(rows["Time (s)"], rows["Event"].fillna(""))


__all__ = ["CELL_SEPARATOR", "RunEvent", "events_from_cells", "events_from_summary",
           "load_events", "parse_cell_sentence"]
