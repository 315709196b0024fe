"""A one-page figure of a run: current, voltage, impedance and dose against time, plus the summary.

Headless: draws on a `matplotlib.figure.Figure` with the Agg canvas and never touches pyplot.

    make_report("runs/ionto_20250101_120000.csv")            # -> runs/ionto_20250101_120000.png
    make_report("runs/ionto_20250101_120000.csv", "run.pdf")  # a PDF instead
"""

from __future__ import annotations

import io
import logging
import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from ionto_instruments import limits as L

from .contracts import EventKind
from .events import RunEvent, events_from_cells, events_from_summary, parse_cell_sentence
from .plan import DOSE_CAP_MA_MIN, PHASES, ProtocolPlan
from .results import DATA_COLUMNS, load_summary, summary_path

#: Figure size in inches; the PNG is FIGSIZE_IN x dpi pixels (tests rely on it).
FIGSIZE_IN = (11.0, 12.0)

#: Light phase colours, the same on every panel.
PHASE_COLOURS = {
    "pre-flight": "#f0f0f0",
    "contact-check": "#e7defa",
    "ramp-up": "#d9eafb",
    "hold": "#ddf2dd",
    "ramp-down": "#fde9d0",
    "off": "#e6e6e6",
}
UNKNOWN_PHASE_COLOUR = "#f6f6e0"

OUTCOME_COLOURS = {
    "completed": "#1a7f37",
    "stopped": "#1f5fa8",
    "aborted": "#c62828",
    "refused": "#d35400",
    "fault": "#8e24aa",
}

#: Event kind -> line style; "error" is an instrument error drained at shutdown.
EVENT_STYLES: dict[str, dict[str, Any]] = {
    "trip": {"color": "#d62728", "linewidth": 1.6, "linestyle": "-"},
    "warning": {"color": "#f0a30a", "linewidth": 1.2, "linestyle": "--"},
    "stop": {"color": "#6e6e6e", "linewidth": 1.5, "linestyle": "-."},
    "error": {"color": "#8e24aa", "linewidth": 1.0, "linestyle": ":"},
}
EVENT_LABELS = {"trip": "trip (abort)", "warning": "warning", "stop": "operator stop",
                "error": "instrument error"}

#: Fraction of the compliance voltage at which the near-compliance warning fires.
NEAR_COMPLIANCE_FRACTION = L.NEAR_COMPLIANCE_WARN_FRACTION.value

#: Characters per line of the reason (left) and of the values (right) in the summary box.
REASON_WIDTH = 72
VALUE_WIDTH = 40

_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


@dataclass(frozen=True)
class Mark:
    """An event to draw: run time (s), kind (trip/warning/stop/error/info) and sentence."""

    t: float
    kind: str
    message: str


# -- reading ---------------------------------------------------------------------------------


def read_header(path: str | Path) -> tuple[dict[str, str], int]:
    """Return the header entries ("Compliance voltage" -> "40 V") and the '#' line count.

    PyMeasure's own `Results.load` parses the header into the Procedure's Parameters and
    Metadata; entries it reports missing are left out. A header PyMeasure cannot parse (a file
    cut short inside it, an older layout) is read by `read_header_lines` instead.
    """
    from pymeasure.experiment import Results

    from .iontophoresis import ConstantCurrentIontophoresis

    missing = _MissingEntries()
    pymeasure_log = logging.getLogger("pymeasure.experiment.results")
    pymeasure_log.addHandler(missing)
    try:
        results = Results.load(str(path), ConstantCurrentIontophoresis)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception:
        return read_header_lines(path)
    finally:
        pymeasure_log.removeHandler(missing)
    procedure = results.procedure
    values: dict[str, str] = {}
    for parameter in procedure.parameter_objects().values():
        if parameter.name not in missing.names and parameter.is_set():
            values[parameter.name] = _unescape(_with_units(parameter.value, parameter))
    for metadata in procedure.metadata_objects().values():
        if getattr(metadata, "evaluated", False):
            values[metadata.name] = _unescape(str(metadata.value))
    return values, int(getattr(results, "_header_count", 0))


class _MissingEntries(logging.Handler):
    """Collects the parameters PyMeasure's header parser reports as not found."""

    _NOT_FOUND = re.compile(r'Parameter "(.+)" not found when loading')

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.names: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        match = self._NOT_FOUND.match(record.getMessage())
        if match is not None:
            self.names.add(match.group(1))


def _with_units(value: Any, parameter: Any) -> str:
    """A parameter's value as the header writes it: '40 V', 'lidocaine', 'False'."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    units = getattr(parameter, "units", None)
    return f"{text} {units}" if units else text


def read_header_lines(path: str | Path) -> tuple[dict[str, str], int]:
    """Fallback for a header PyMeasure cannot parse: its '#\t<Name>: <value>' lines, as text."""
    values: dict[str, str] = {}
    count = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("#"):
                break
            count += 1
            body = line[1:].rstrip("\r\n")
            if not body.startswith("\t"):
                continue
            name, sep, value = body[1:].partition(":")
            if sep:
                values.setdefault(name.strip(), _unescape(value.strip()))
    return values, count


def _unescape(text: str) -> str:
    """Undo PyMeasure's unicode_escape of header values (leave the text alone if it fails)."""
    if "\\" not in text:
        return text
    try:
        return text.encode("latin-1").decode("unicode_escape")
    except (UnicodeError, ValueError):
        return text


def header_float(header: dict[str, str], name: str) -> float | None:
    """The leading number of header entry `name` ('40 V' -> 40.0), or None."""
    match = _NUMBER.match(header.get(name, ""))
    if match is None:
        return None
    value = float(match.group(1))
    return value if math.isfinite(value) else None


def read_rows(path: str | Path, header_lines: int) -> pd.DataFrame:
    """The data rows with every DATA_COLUMNS column present; numbers coerced, text as str."""
    try:
        df = pd.read_csv(path, skiprows=header_lines)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(columns=DATA_COLUMNS)
    except pd.errors.ParserError:  # a crash mid-row (e.g. inside a quoted Event): drop that row
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()[header_lines:]
        df = pd.read_csv(io.StringIO("".join(lines[:-1])))
    for column in DATA_COLUMNS:
        if column not in df.columns:
            df[column] = np.nan
    for column in DATA_COLUMNS:
        if column in ("Phase", "Event"):
            df[column] = df[column].fillna("").astype(str)
        else:
            df[column] = pd.to_numeric(df[column], errors="coerce")
    df = df[np.isfinite(df["Time (s)"].to_numpy(dtype=float))]
    return df.reset_index(drop=True)


def _mark(event: RunEvent) -> Mark:
    """A figure mark of an event; instrument errors are drawn as "error"."""
    kind = "error" if event.kind == EventKind.INSTRUMENT_ERROR else str(event.kind)
    return Mark(event.t, kind, event.message)


def run_marks(df: pd.DataFrame, summary: dict[str, Any] | None) -> list[Mark]:
    """The run's events with their kinds as data (the summary's), in time order.

    A file without a summary (an older version, a run cut short) falls back to its rows.
    """
    events = events_from_summary(summary)
    if events is None:
        return merge_events(events_from_rows(df), summary)
    return [_mark(event) for event in events]


def classify(sentence: str) -> Mark:
    """Compatibility: the kind of one Event sentence ('TRIP: ...') of a file without summary."""
    return _mark(parse_cell_sentence(math.nan, sentence))


def events_from_rows(df: pd.DataFrame) -> list[Mark]:
    """Compatibility: every event sentence in the Event column, at its row's time."""
    return [_mark(event) for event in events_from_cells(df["Time (s)"], df["Event"])]


def merge_events(rows: list[Mark], summary: dict[str, Any] | None) -> list[Mark]:
    """The rows' events plus summary events the rows lack (e.g. errors drained at shutdown)."""
    marks = list(rows)
    seen = {(m.kind, m.message) for m in rows}
    for event in events_from_summary(summary) or []:
        mark = _mark(event)
        if (mark.kind, mark.message) not in seen:
            marks.append(mark)
            seen.add((mark.kind, mark.message))
    return sorted(marks, key=lambda m: m.t)


def phase_spans(times_s: np.ndarray, phases: list[str]) -> list[tuple[str, float, float]]:
    """Contiguous (phase, start s, end s); each span runs to the next one's first sample."""
    spans: list[tuple[str, float, float]] = []
    if len(times_s) == 0:
        return spans
    steps = np.diff(times_s)
    step = float(np.median(steps)) if len(steps) and np.median(steps) > 0 else 0.2
    start = 0
    for i in range(1, len(phases) + 1):
        if i == len(phases) or phases[i] != phases[start]:
            end = float(times_s[i]) if i < len(phases) else float(times_s[-1]) + step
            spans.append((phases[start] or "?", float(times_s[start]), end))
            start = i
    return spans


# -- what the summary box says ------------------------------------------------------------------


@dataclass
class _Facts:
    outcome: str | None
    rule: str | None
    reason: str
    delivered: float | None
    planned: float | None
    duration_s: float | None
    samples: int | None
    instrument: str
    simulated: bool
    scenario: str | None
    off_confirmed: bool | None
    drug: str
    target_mA: float | None


def _planned_from_header(header: dict[str, str]) -> float | None:
    """The planned dose the header parameters describe, or None if they do not add up."""
    try:
        if header.get("Dose-controlled", "").strip().lower() == "true":
            return header_float(header, "Dose target")
        values = [header_float(header, n) for n in
                  ("Target current", "Ramp-up", "Treatment time", "Ramp-down")]
        if any(v is None for v in values):
            return None
        target, up, total, down = (float(v) for v in values)  # type: ignore[arg-type]
        plan = ProtocolPlan(target_mA=target, ramp_up_s=up, total_min=total, ramp_down_s=down)
        return plan.planned_dose_mA_min
    except (ValueError, ArithmeticError):
        return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _facts(summary: dict[str, Any] | None, header: dict[str, str], df: pd.DataFrame) -> _Facts:
    """What the box reports: from the summary when there is one, else from the results file."""
    dose = df["Dose (mA*min)"].to_numpy(dtype=float)
    finite_dose = dose[np.isfinite(dose)]
    measured = df[np.isfinite(df["Current (mA)"].to_numpy(dtype=float))]
    if summary is not None:
        return _Facts(
            outcome=summary.get("outcome"), rule=summary.get("rule"),
            reason=str(summary.get("reason") or ""),
            delivered=_number(summary.get("delivered_dose_mA_min")),
            planned=_number(summary.get("planned_dose_mA_min")),
            duration_s=_number(summary.get("duration_s")),
            samples=int(summary["samples"]) if _number(summary.get("samples")) is not None
            else None,
            instrument=str(summary.get("instrument") or header.get("Instrument", "")),
            simulated=bool(summary.get("simulated")),
            scenario=summary.get("scenario") or header.get("Simulator scenario"),
            off_confirmed=summary.get("output_off_confirmed"),
            drug=str(summary.get("drug") or header.get("Drug", "")),
            target_mA=_number(summary.get("target_current_mA"))
            or header_float(header, "Target current"))
    treating = measured[measured["Phase"].isin(["ramp-up", "hold", "ramp-down"])]
    duration = None
    if len(treating):
        duration = float(df["Time (s)"].iloc[-1] - treating["Time (s)"].iloc[0])
    return _Facts(
        outcome=None, rule=None, reason="", delivered=float(finite_dose[-1]) if len(finite_dose)
        else None, planned=_planned_from_header(header), duration_s=duration,
        samples=len(measured), instrument=header.get("Instrument", ""),
        simulated=header.get("Simulated", "").strip().lower() == "true",
        scenario=header.get("Simulator scenario"), off_confirmed=None,
        drug=header.get("Drug", ""), target_mA=header_float(header, "Target current"))


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, secs = divmod(max(seconds, 0.0), 60.0)
    return f"{int(minutes)} min {secs:04.1f} s"


def _wrap(text: str, width: int, max_lines: int) -> str:
    lines = textwrap.wrap(text, width, break_on_hyphens=False) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1].rstrip() + "…"
    return "\n".join(lines)


def _box_rows(facts: _Facts, has_summary: bool) -> list[tuple[str, str, str]]:
    """(key, value, colour) lines of the box's right-hand column."""
    if facts.planned is not None and facts.delivered is not None and facts.planned > 0:
        dose = (f"{facts.delivered:.2f} of {facts.planned:.2f} mA·min planned "
                f"({100 * facts.delivered / facts.planned:.0f} %)")
    elif facts.delivered is not None:
        dose = f"{facts.delivered:.2f} mA·min (planned: unknown)"
    else:
        dose = "unknown"
    ink = "#222222"
    rows = [("Dose", dose, ink), ("Duration", _duration_text(facts.duration_s), ink),
            ("Samples", "unknown" if facts.samples is None else str(facts.samples), ink),
            ("Instrument", _wrap(facts.instrument or "unknown", VALUE_WIDTH, 2), ink)]
    if facts.simulated:
        rows.append(("", _wrap(f"SIMULATED, scenario {facts.scenario or 'unknown'}",
                               VALUE_WIDTH - 6, 2), "#d35400"))
    if not facts.off_confirmed and facts.samples == 0 and not facts.instrument:
        off = ("never on: no instrument session", "#555555")
    elif facts.off_confirmed is None:
        off = ("not known (no summary)" if not has_summary else "not recorded", "#555555")
    elif facts.off_confirmed:
        off = ("confirmed", "#1a7f37")
    else:
        off = ("NOT CONFIRMED: switch the\nSourceMeter off by hand", "#c62828")
    rows.append(("Output off", *off))
    return rows


def _draw_summary(ax: Axes, facts: _Facts, has_summary: bool, json_name: str) -> None:
    """The text box: outcome (coloured), rule, reason, dose, duration, samples, instrument."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("#fbfbfb")
    for spine in ax.spines.values():
        spine.set_edgecolor("#b0b0b0")
    text = {"transform": ax.transAxes, "va": "top", "parse_math": False}
    if has_summary:
        outcome = (facts.outcome or "unknown").upper()
        colour = OUTCOME_COLOURS.get(str(facts.outcome), "#333333")
        headline = outcome + (f"  ·  rule: {facts.rule}" if facts.rule else "")
        reason = facts.reason or "(no reason recorded)"
    else:
        colour = "#555555"
        headline = "OUTCOME UNKNOWN"
        reason = (f"No summary file ({json_name}) beside the results file: outcome, rule and "
                  f"reason are unknown; the numbers on the right come from the results file.")
    ax.text(0.015, 0.93, headline, fontsize=16, fontweight="bold", color=colour, **text)
    ax.text(0.015, 0.74, _wrap(reason, REASON_WIDTH, 7), fontsize=9.5, color="#222222",
            linespacing=1.35, **text)
    y = 0.93
    for key, value, ink in _box_rows(facts, has_summary):
        bold = "bold" if key in ("", "Output off") else "normal"
        ax.text(0.565, y, key, fontsize=10, color="#555555", **text)
        ax.text(0.655, y, value, fontsize=10, color=ink, fontweight=bold, **text)
        y -= 0.11 + 0.095 * value.count("\n")


# -- the panels ------------------------------------------------------------------------------


def _shade(ax: Axes, spans: list[tuple[str, float, float]]) -> None:
    for phase, start, end in spans:
        colour = PHASE_COLOURS.get(phase, UNKNOWN_PHASE_COLOUR)
        ax.axvspan(start / 60.0, end / 60.0, color=colour, zorder=0, linewidth=0)


def _mark_events(ax: Axes, marks: list[Mark]) -> None:
    for kind, style in EVENT_STYLES.items():
        times = [m.t / 60.0 for m in marks if m.kind == kind]
        if times:
            ax.vlines(times, 0, 1, transform=ax.get_xaxis_transform(), zorder=3, **style)


def _trip_label(mark: Mark, facts: _Facts, last_trip: Mark | None) -> str:
    """'TRIP: <rule>' from the summary when it is the run's trip, else from the sentence."""
    if facts.rule and (mark.message == facts.reason or mark is last_trip):
        return f"TRIP: {facts.rule}"
    head = mark.message.split(":", 1)[0]
    return f"TRIP: {head}" if len(head) <= 40 else "TRIP"


def _label_events(ax: Axes, marks: list[Mark], facts: _Facts) -> None:
    """Trip and stop labels just above the top panel, each at its line."""
    trips = [m for m in marks if m.kind == "trip"]
    last_trip = trips[-1] if trips else None
    low, high = ax.get_xlim()
    for mark in marks:
        if mark.kind == "trip":
            label, colour = _trip_label(mark, facts, last_trip), EVENT_STYLES["trip"]["color"]
        elif mark.kind == "stop":
            label, colour = "STOP", EVENT_STYLES["stop"]["color"]
        else:
            continue
        x = mark.t / 60.0
        right_half = high > low and (x - low) / (high - low) > 0.5
        ax.text(x, 1.015, ("▼ " + label) if not right_half else (label + " ▼"),
                transform=ax.get_xaxis_transform(), ha="right" if right_half else "left",
                va="bottom", fontsize=9, color=colour, fontweight="bold", clip_on=False,
                parse_math=False)


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, what, transform=ax.transAxes, ha="center", va="center", fontsize=10,
            color="#777777", style="italic", zorder=6)


def _legend(ax: Axes) -> None:
    """The panel's legend outside its right edge, so it never hides data or events."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False,
              borderaxespad=0.0, handlelength=1.8)


def _polarity(df: pd.DataFrame) -> float:
    """-1 when the run drove negative current (an anion), else +1."""
    setpoint = df["Setpoint (mA)"].to_numpy(dtype=float)
    setpoint = setpoint[np.isfinite(setpoint)]
    if len(setpoint) and abs(setpoint.min()) > abs(setpoint.max()):
        return -1.0
    return 1.0


def _plot_current(ax: Axes, tm: np.ndarray, df: pd.DataFrame, empty: bool) -> None:
    current = df["Current (mA)"].to_numpy(dtype=float)
    setpoint = df["Setpoint (mA)"].to_numpy(dtype=float)
    ax.axhline(0.0, color="#999999", linewidth=0.6, zorder=1)
    ax.plot(tm, setpoint, color="#333333", linestyle="--", linewidth=1.0, label="setpoint",
            zorder=3)
    ax.plot(tm, current, color="#1f77b4", linewidth=1.3, label="measured", zorder=4)
    ax.set_ylabel("Current (mA)")
    if not empty and not np.isfinite(current).any():
        _no_data(ax, "no current readings")
    _legend(ax)


def _plot_voltage(ax: Axes, tm: np.ndarray, df: pd.DataFrame, compliance: float | None,
                  empty: bool) -> None:
    voltage = df["Voltage (V)"].to_numpy(dtype=float)
    ax.axhline(0.0, color="#999999", linewidth=0.6, zorder=1)
    ax.plot(tm, voltage, color="#2ca02c", linewidth=1.3, label="voltage", zorder=4)
    if compliance is not None:
        limit = _polarity(df) * compliance
        ax.axhline(limit, color="#c62828", linestyle=":", linewidth=1.5, zorder=2,
                   label=f"compliance\n{limit:g} V")
        ax.axhline(NEAR_COMPLIANCE_FRACTION * limit, color="#f0a30a", linestyle=":",
                   linewidth=1.0, zorder=2,
                   label=f"warning at\n{100 * NEAR_COMPLIANCE_FRACTION:.0f} %")
    else:
        ax.text(0.01, 0.95, "compliance limit unknown (no 'Compliance voltage' in the header)",
                transform=ax.transAxes, va="top", fontsize=8, color="#777777", zorder=6)
    ax.set_ylabel("Voltage (V)")
    if not empty and not np.isfinite(voltage).any():
        _no_data(ax, "no voltage readings")
    _legend(ax)


def _plot_impedance(ax: Axes, tm: np.ndarray, df: pd.DataFrame, empty: bool) -> None:
    impedance = np.abs(df["Impedance (kohm)"].to_numpy(dtype=float))
    valid = np.isfinite(impedance) & (impedance > 0)
    shown = np.where(valid, impedance, np.nan)
    ax.plot(tm, shown, color="#9467bd", linewidth=1.3, label="|V / I|", zorder=4)
    ax.set_ylabel("Impedance (kΩ)")
    if valid.any():
        low, high = float(shown[valid].min()), float(shown[valid].max())
        if high > 10.0 * low:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    elif not empty:
        _no_data(ax, "no impedance readings (current too small to divide by)")
    _legend(ax)


def _plot_dose(ax: Axes, tm: np.ndarray, df: pd.DataFrame, planned: float | None,
               empty: bool) -> None:
    dose = df["Dose (mA*min)"].to_numpy(dtype=float)
    finite = np.isfinite(dose)
    ax.plot(tm[finite], dose[finite], color="#d62728", linewidth=1.5, label="delivered",
            zorder=4)
    if planned is not None:
        ax.axhline(planned, color="#1f5fa8", linestyle="--", linewidth=1.2, zorder=2,
                   label=f"planned\n{planned:.1f} mA·min")
    highest = max([planned or 0.0, *dose[finite].tolist()], default=0.0)
    if highest >= 0.25 * DOSE_CAP_MA_MIN:  # the cap is close enough to show without squashing
        ax.axhline(DOSE_CAP_MA_MIN, color="#c62828", linestyle=":", linewidth=1.5, zorder=2,
                   label=f"cap\n{DOSE_CAP_MA_MIN:g} mA·min")
        ax.set_ylim(0.0, max(highest, DOSE_CAP_MA_MIN) * 1.08)
    else:
        ax.plot([], [], color="#c62828", linestyle=":", linewidth=1.5,
                label=f"cap {DOSE_CAP_MA_MIN:g} mA·min\n(above the plot)")
        ax.set_ylim(0.0, max(highest * 1.15, 1.0))
    ax.set_ylabel("Dose (mA·min)")
    if not empty and not finite.any():
        _no_data(ax, "no dose recorded")
    _legend(ax)


# -- the report ------------------------------------------------------------------------------


def build_figure(results_csv: str | Path, dpi: int = 120) -> Figure:
    """The report figure for `results_csv` (and its JSON summary, if any), not yet saved."""
    source = Path(results_csv)
    if not source.is_file():
        raise FileNotFoundError(f"results file not found: {source}")
    header, header_lines = read_header(source)
    df = read_rows(source, header_lines)
    try:
        summary = load_summary(source)
    except (OSError, ValueError):
        summary = None
    if not isinstance(summary, dict):
        summary = None
    facts = _facts(summary, header, df)
    marks = run_marks(df, summary)
    times = df["Time (s)"].to_numpy(dtype=float)
    tm = times / 60.0
    spans = phase_spans(times, df["Phase"].tolist())
    compliance = header_float(header, "Compliance voltage")

    empty = len(times) == 0
    fig = Figure(figsize=FIGSIZE_IN, dpi=dpi)
    FigureCanvasAgg(fig)
    box = fig.add_subplot(fig.add_gridspec(1, 1, left=0.075, right=0.975, top=0.925,
                                           bottom=0.765)[0])
    grid = fig.add_gridspec(4, 1, left=0.075, right=0.855, top=0.72, bottom=0.085, hspace=0.08)
    first = fig.add_subplot(grid[0])
    panels = [first] + [fig.add_subplot(grid[i], sharex=first) for i in range(1, 4)]

    fig.suptitle(f"Iontophoresis run: {source.name}", fontsize=14, fontweight="bold",
                 y=0.985, parse_math=False)
    version = (summary or {}).get("software_version") or header.get("Software version", "")
    target_mA = None if facts.target_mA is None else _polarity(df) * abs(facts.target_mA)
    subtitle = [f"drug: {facts.drug}" if facts.drug else "",
                f"target {target_mA:g} mA" if target_mA is not None else "",
                f"started {header['Started']}" if header.get("Started") else "",
                f"ionto-instruments {version}" if version else ""]
    fig.text(0.5, 0.953, "  ·  ".join(s for s in subtitle if s), ha="center", fontsize=9.5,
             color="#555555", parse_math=False)

    _draw_summary(box, facts, summary is not None, summary_path(source).name)
    _plot_current(panels[0], tm, df, empty)
    _plot_voltage(panels[1], tm, df, compliance, empty)
    _plot_impedance(panels[2], tm, df, empty)
    _plot_dose(panels[3], tm, df, facts.planned, empty)

    for ax in panels:
        _shade(ax, spans)
        _mark_events(ax, marks)
        ax.grid(True, color="#cccccc", linewidth=0.5, alpha=0.7, zorder=1)
        ax.set_axisbelow(True)
        ax.margins(x=0.01)
    for ax in panels[:-1]:
        ax.tick_params(labelbottom=False)
    if empty:
        event_times = [m.t / 60.0 for m in marks if math.isfinite(m.t)]
        panels[0].set_xlim(0.0, max([1.0, *event_times]) * 1.05)
        for ax in panels:
            _no_data(ax, "no measurements recorded")
    _label_events(panels[0], marks, facts)
    panels[-1].set_xlabel("Time since the start of the run (min)")
    _legend_below(fig, spans, marks)
    return fig


def _legend_below(fig: Figure, spans: list[tuple[str, float, float]], marks: list[Mark]) -> None:
    """One legend under the panels: the phases present, then the event kinds with counts."""
    handles: list[Any] = []
    present = list(dict.fromkeys(phase for phase, _, _ in spans))
    order = [p for p in PHASES if p in present] + [p for p in present if p not in PHASES]
    for phase in order:
        handles.append(Patch(facecolor=PHASE_COLOURS.get(phase, UNKNOWN_PHASE_COLOUR),
                             edgecolor="#999999", linewidth=0.5, label=phase))
    for kind, style in EVENT_STYLES.items():
        count = sum(1 for m in marks if m.kind == kind)
        if count:
            handles.append(Line2D([], [], label=f"{EVENT_LABELS[kind]} ({count})", **style))
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6),
                   fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.0))


def make_report(results_csv: str | Path, output: str | Path | None = None,
                dpi: int = 120) -> Path:
    """Draw the run in `results_csv` to `output` (default: same stem, .png; .pdf for a PDF).

    Returns the written path; FileNotFoundError names a missing results file.
    """
    source = Path(results_csv)
    fig = build_figure(source, dpi=dpi)
    target = Path(output) if output is not None else source.with_suffix(".png")
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=dpi)
    return target


__all__ = ["FIGSIZE_IN", "Mark", "build_figure", "classify", "events_from_rows", "header_float",
           "make_report", "merge_events", "phase_spans", "read_header", "read_header_lines",
           "read_rows", "run_marks"]
