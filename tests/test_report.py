"""The run report: one PNG/PDF figure from a results file and its summary, headless."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.image import imread
from matplotlib.text import Text

from ionto_instruments.procedures.report import (
    EVENT_STYLES,
    FIGSIZE_IN,
    build_figure,
    classify,
    events_from_rows,
    make_report,
    merge_events,
    read_header,
    read_rows,
)
from ionto_instruments.procedures.results import (
    DATA_COLUMNS,
    DurableCSVFormatter,
    summary_path,
    write_summary,
)

IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4123456,C30 SIMULATED"
TRIP_DROP = ("Impedance drop: impedance fell to 0.7712 kΩ, 20 % of its maximum of 3.856 kΩ in "
             "the last 2 s (limit 60 %): current may be concentrating in a hot spot. Check the "
             "skin under the patch for redness or burning, and the patch for lifted edges.")
WARN_V = ("Voltage near compliance: 32.5 V is above 80 % of the 40 V compliance (32 V): the "
          "skin resistance is high or rising. Check the gel and the patch contact.")
TRIP_CONTACT = ("Contact check refused: at 2 mA an impedance of 60 kΩ needs 120 V, above 80 % "
                "of the 40 V compliance (32 V). Moisten the gel and re-seat the patch, lower "
                "the current, or raise the compliance voltage.")


# -- synthetic results files, written the way the Procedure and PyMeasure write them ----------


def write_results(path: Path, rows: list[dict[str, Any]], params: dict[str, str] | None = None,
                  metadata: dict[str, str] | None = None) -> Path:
    """Write PyMeasure's '#' header (Results.header + store_metadata) and the quoted CSV rows."""
    params = {"Target current": "2 mA", "Ramp-up": "30 s", "Treatment time": "30 min",
              "Ramp-down": "30 s", "Dose-controlled": "False", "Dose target": "40 mA*min",
              "Electrode area": "10 cm^2", "Compliance voltage": "40 V",
              "Sample interval": "0.2 s", "Drug": "lidocaine", "Subject": "phantom",
              "Operator note": "gel re-wet, patch B\\u03a9", "VISA resource": "",
              "Simulator scenario": "normal", **(params or {})}
    metadata = {"Instrument": IDN, "Simulated": "True", "Started": "2025-03-01T09:00:00+00:00",
                "Software version": "0.1.0", **(metadata or {})}
    lines = ["#Procedure: <ionto_instruments.procedures.iontophoresis."
             "ConstantCurrentIontophoresis>", "#Parameters:"]
    lines += [f"#\t{name}: {value}" for name, value in params.items()]
    lines += ["#Metadata:"] + [f"#\t{name}: {value}" for name, value in metadata.items()]
    lines += ["#Data:"]
    formatter = DurableCSVFormatter(DATA_COLUMNS, path)
    lines.append(formatter.format_header())
    lines += [formatter.format(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(t: float, phase: str, setpoint: float, current: float, r_kohm: float, dose: float,
        event: str = "") -> dict[str, Any]:
    voltage = current * r_kohm
    impedance = voltage / current if abs(current) > 1e-6 else math.nan
    return {"Time (s)": round(t, 4), "Phase": phase, "Setpoint (mA)": round(setpoint, 6),
            "Current (mA)": current, "Voltage (V)": voltage, "Impedance (kohm)": impedance,
            "Dose (mA*min)": dose, "Current density (mA/cm^2)": abs(current) / 10.0,
            "Compliance": 0, "Event": event}


def marker(t: float, phase: str, dose: float, event: str) -> dict[str, Any]:
    """The final row: NaN measurements, setpoint 0, the dose so far, the pending events."""
    out = {c: math.nan for c in DATA_COLUMNS}
    out.update({"Time (s)": round(t, 4), "Phase": phase, "Setpoint (mA)": 0.0,
                "Dose (mA*min)": dose, "Compliance": 0, "Event": event})
    return out


def simulate(minutes: float = 30.0, polarity: int = 1, trip_at_min: float | None = None,
             contact_kohm: float = 15.0, refuse: bool = False, dt: float = 0.2,
             target: float = 2.0) -> tuple[list[dict[str, Any]], float]:
    """Rows of a ramped run on a phantom (15 -> 3 kOhm); returns (rows, delivered dose)."""
    rows: list[dict[str, Any]] = []
    dose, last = 0.0, None
    pending = ["PHASE: Phase: pre-flight", "PHASE: Phase: contact-check"]

    def add(t: float, phase: str, setpoint: float, r_kohm: float, extra: str = "") -> None:
        nonlocal dose, last
        current = setpoint * (1.0 + 0.002 * math.sin(7.0 * t))
        if last is not None:
            dose += (abs(last[1]) + abs(current)) / 2.0 * (t - last[0]) / 60.0
        last = (t, current)
        if extra:
            pending.append(extra)
        rows.append(row(t, phase, setpoint, current, r_kohm, dose, " | ".join(pending)))
        pending.clear()

    k = 0
    while k * dt < 2.0 + 1e-9:
        add(k * dt, "contact-check", polarity * 0.05, contact_kohm)
        k += 1
    if refuse:
        pending.append(f"TRIP: {TRIP_CONTACT}")
        rows.append(marker(k * dt, "contact-check", dose, " | ".join(pending)))
        return rows, dose
    pending.append(f"Contact check passed: skin impedance {contact_kohm:.1f} kOhm at 0.05 mA")
    start, total, ramp = k * dt, minutes * 60.0, 30.0
    warned = False
    phase = ""
    while True:
        tt = k * dt - start
        if tt >= total:
            break
        new = "ramp-up" if tt < ramp else "hold" if tt < total - ramp else "ramp-down"
        if new != phase:
            pending.append(f"PHASE: Phase: {new}")
            phase = new
        setpoint = polarity * target * min(1.0, tt / ramp, max(0.0, (total - tt) / ramp))
        r_kohm = 3.0 + 12.0 * math.exp(-tt / 120.0)
        if trip_at_min is not None and tt >= trip_at_min * 60.0 - 30.0 and not warned:
            warned = True
            add(k * dt, phase, setpoint, 16.3, f"WARNING: {WARN_V}")
            k += 1
            continue
        if trip_at_min is not None and tt >= trip_at_min * 60.0:
            add(k * dt, phase, setpoint, 0.2 * r_kohm, f"TRIP: {TRIP_DROP}")
            return rows, dose
        add(k * dt, phase, setpoint, r_kohm)
        k += 1
    pending.append("PHASE: Phase: off")
    rows.append(marker(k * dt, "off", dose, " | ".join(pending)))
    return rows, dose


def summary_for(path: Path, rows: list[dict[str, Any]], dose: float, **fields: Any) -> Path:
    """Write the JSON summary beside `path` the way the Procedure's shutdown does."""
    events = []
    for r in rows:
        for sentence in filter(None, str(r["Event"]).split(" | ")):
            kind, _, message = sentence.partition(": ")
            if not message or not kind.isupper():
                kind, message = "INFO", sentence
            events.append({"t": r["Time (s)"], "kind": kind.lower(), "message": message})
    summary = {"outcome": "completed", "rule": None,
               "reason": f"Treatment completed: {dose:.2f} mA*min delivered",
               "planned_dose_mA_min": 59.0, "delivered_dose_mA_min": round(dose, 4),
               "duration_s": 1800.0, "samples": sum(1 for r in rows
                                                    if not math.isnan(r["Current (mA)"])),
               "output_off_confirmed": True, "instrument": IDN, "simulated": True,
               "scenario": "normal", "results_file": str(path), "software_version": "0.1.0",
               "drug": "lidocaine", "target_current_mA": 2.0, "events": events, **fields}
    return write_summary(summary, summary_path(path))


# -- helpers to look into a figure ---------------------------------------------------------------


def texts(fig) -> str:
    """Every text in the figure, wrapped lines joined with single spaces."""
    return " ".join(" ".join(t.get_text().split()) for t in fig.findobj(Text))


def vline_minutes(ax, kind: str) -> list[float]:
    """x (min) of the event lines of one kind drawn on an axes."""
    colour = to_rgba(EVENT_STYLES[kind]["color"])
    found = []
    for coll in ax.collections:
        if isinstance(coll, LineCollection) and np.allclose(coll.get_colors()[0], colour):
            found += [float(seg[0][0]) for seg in coll.get_segments()]
    return found


def rows_of(path: Path):
    return read_rows(path, read_header(path)[1])


def png_size(path: Path) -> tuple[int, int]:
    image = imread(path)
    return image.shape[1], image.shape[0]


# -- tests ---------------------------------------------------------------------------------------


@pytest.fixture
def completed(tmp_path: Path) -> Path:
    rows, dose = simulate(minutes=30.0)
    path = write_results(tmp_path / "ionto_completed.csv", rows)
    summary_for(path, rows, dose)
    return path


@pytest.fixture
def aborted(tmp_path: Path) -> Path:
    rows, dose = simulate(minutes=30.0, trip_at_min=12.0)
    path = write_results(tmp_path / "ionto_aborted.csv", rows,
                         params={"Simulator scenario": "impedance-drop@12"})
    summary_for(path, rows, dose, outcome="aborted", rule="impedance-drop", reason=TRIP_DROP,
                duration_s=rows[-1]["Time (s)"] - 2.2, scenario="impedance-drop@12")
    return path


def test_completed_run_png_has_the_fixed_pixel_size_and_default_name(completed: Path) -> None:
    out = make_report(completed)
    assert out == completed.with_suffix(".png")
    assert png_size(out) == (round(FIGSIZE_IN[0] * 120), round(FIGSIZE_IN[1] * 120))
    assert png_size(make_report(completed, completed.with_name("small.png"), dpi=40)) == (
        round(FIGSIZE_IN[0] * 40), round(FIGSIZE_IN[1] * 40))
    # not a blank canvas: the phase shading and the data lines are there
    image = imread(out)[..., :3]
    assert (image < 0.9).any(axis=-1).mean() > 0.02


def test_completed_run_figure_shows_phases_limits_and_summary(completed: Path) -> None:
    fig = build_figure(completed)
    box, current, voltage, impedance, dose = fig.axes
    assert voltage.get_shared_x_axes().joined(current, dose)
    words = texts(fig)
    for expected in ("COMPLETED", "contact-check", "ramp-up", "hold", "ramp-down", "off",
                     "compliance 40 V", "planned 59.0 mA·min", "cap 80 mA·min",
                     "SIMULATED, scenario normal", "confirmed", "30 min 00.0 s"):
        assert expected in words, expected
    assert re.search(r"59\.\d\d of 59\.00 mA·min planned \((99|100) %\)", words)
    assert impedance.get_yscale() == "linear"  # 15 -> 3 kOhm is less than a decade
    assert max(current.lines[1].get_xdata()) == pytest.approx(30.04, abs=0.01)  # minutes
    assert any(line.get_ydata()[0] == 40.0 for line in voltage.lines)  # compliance line
    assert vline_minutes(current, "trip") == []


def test_aborted_run_marks_the_trip_with_its_rule_on_every_panel(aborted: Path) -> None:
    rows = rows_of(aborted)
    trip_min = rows["Time (s)"].iloc[-1] / 60.0
    fig = build_figure(aborted)
    for ax in fig.axes[1:]:
        assert vline_minutes(ax, "trip") == pytest.approx([trip_min])
        assert len(vline_minutes(ax, "warning")) == 1
    words = texts(fig)
    assert "TRIP: impedance-drop" in words
    assert "ABORTED · rule: impedance-drop" in words
    assert "Impedance drop: impedance fell to 0.7712 kΩ, 20 % of its" in words  # wrapped reason
    assert "SIMULATED, scenario impedance-drop@12" in words
    assert fig.axes[3].get_yscale() == "log"  # 15 kOhm ... 0.77 kOhm spans > 1 decade
    assert png_size(make_report(aborted)) == (1320, 1440)


def test_a_quoted_event_with_commas_stays_one_cell(aborted: Path) -> None:
    raw = aborted.read_text(encoding="utf-8")
    assert f'"TRIP: {TRIP_DROP}"' in raw  # the formatter quoted it
    header, count = read_header(aborted)
    assert header["Compliance voltage"] == "40 V"
    assert header["Operator note"] == "gel re-wet, patch BΩ"  # unicode_escape undone
    assert header["Instrument"] == IDN
    rows = read_rows(aborted, count)
    assert list(rows.columns) == DATA_COLUMNS
    marks = events_from_rows(rows)
    trips = [m for m in marks if m.kind == "trip"]
    assert [m.message for m in trips] == [TRIP_DROP]
    assert [m.kind for m in marks if m.message == WARN_V] == ["warning"]


def test_refused_run_with_a_few_contact_check_rows(tmp_path: Path) -> None:
    rows, dose = simulate(refuse=True, contact_kohm=60.0)
    path = write_results(tmp_path / "ionto_refused.csv", rows,
                         params={"Simulator scenario": "high-impedance"})
    summary_for(path, rows, dose, outcome="refused", rule="contact-check", reason=TRIP_CONTACT,
                duration_s=0.0, scenario="high-impedance")
    fig = build_figure(path)
    words = texts(fig)
    assert "REFUSED · rule: contact-check" in words
    assert "TRIP: contact-check" in words
    assert "SIMULATED, scenario high-impedance" in words
    assert vline_minutes(fig.axes[1], "trip") == pytest.approx([rows[-1]["Time (s)"] / 60.0])
    assert png_size(make_report(path)) == (1320, 1440)


def test_refused_before_any_row_draws_empty_panels(tmp_path: Path) -> None:
    path = write_results(tmp_path / "ionto_preflight.csv", [], params={"Subject": "human"},
                         metadata={"Instrument": "", "Simulated": ""})
    write_summary({"outcome": "refused", "rule": "pre-flight",
                   "reason": "Refused before energizing: screening: a human subject requires "
                             "the contraindication screening to be confirmed",
                   "planned_dose_mA_min": None, "delivered_dose_mA_min": 0.0,
                   "duration_s": 0.0, "samples": 0, "output_off_confirmed": False,
                   "instrument": "", "simulated": False, "scenario": None,
                   "events": [{"t": 0.0, "kind": "phase", "message": "Phase: pre-flight"}]},
                  summary_path(path))
    fig = build_figure(path)
    words = texts(fig)
    assert "REFUSED · rule: pre-flight" in words
    assert words.count("no measurements recorded") == 4
    assert "SIMULATED" not in words
    assert "never on: no instrument session" in words
    assert png_size(make_report(path)) == (1320, 1440)


def test_anion_run_plots_the_signed_current_and_a_negative_compliance_line(
        tmp_path: Path) -> None:
    rows, dose = simulate(minutes=3.0, polarity=-1)
    path = write_results(tmp_path / "ionto_anion.csv", rows,
                         params={"Drug": "dexamethasone", "Treatment time": "3 min"})
    summary_for(path, rows, dose, drug="dexamethasone", planned_dose_mA_min=5.0,
                duration_s=180.0)
    fig = build_figure(path)
    current, voltage = fig.axes[1], fig.axes[2]
    measured = np.asarray(current.lines[2].get_ydata(), dtype=float)
    assert np.nanmin(measured) == pytest.approx(-2.0, abs=0.01)
    assert np.nanmax(measured) <= 0  # the first ramp sample is -0.0
    hold = rows_of(path).query("Phase == 'hold'")
    assert (hold["Current (mA)"] < 0).all() and (hold["Setpoint (mA)"] < 0).all()
    assert any(line.get_ydata()[0] == -40.0 for line in voltage.lines)
    assert "drug: dexamethasone · target -2 mA" in texts(fig)


def test_missing_summary_still_reports_from_the_file(tmp_path: Path) -> None:
    rows, dose = simulate(minutes=5.0)
    path = write_results(tmp_path / "ionto_nosummary.csv", rows,
                         params={"Treatment time": "5 min"})
    assert not summary_path(path).exists()
    fig = build_figure(path)
    words = texts(fig)
    assert "OUTCOME UNKNOWN" in words
    assert "No summary file (ionto_nosummary.json)" in words
    planned = 2.0 * 4.0 + 2.0 * 60.0 / 2.0 / 60.0  # from the header: hold + two ramps
    assert f"{dose:.2f} of {planned:.2f} mA·min planned" in words
    assert "SIMULATED, scenario normal" in words  # from the header's metadata
    assert png_size(make_report(path)) == (1320, 1440)


def test_header_without_compliance_falls_back(tmp_path: Path) -> None:
    rows, _ = simulate(minutes=1.0)
    path = write_results(tmp_path / "ionto_old.csv", rows)
    path.write_text("".join(line for line in path.read_text(encoding="utf-8")
                            .splitlines(keepends=True) if "Compliance voltage" not in line),
                    encoding="utf-8")
    assert "compliance limit unknown" in texts(build_figure(path))


def test_pdf_output(completed: Path, tmp_path: Path) -> None:
    out = make_report(completed, tmp_path / "sub" / "report.pdf")
    assert out == tmp_path / "sub" / "report.pdf"
    assert out.read_bytes()[:5] == b"%PDF-"


def test_nonexistent_csv_raises_with_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ionto_missing.csv"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        make_report(missing)
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize(("sentence", "kind"), [
    ("TRIP: Compliance: the voltage reached 38 V", "trip"),
    ("WARNING: Voltage near compliance: 32.1 V", "warning"),
    ("STOP: Stop requested by the operator: ramping down", "stop"),
    ("INSTRUMENT-ERROR: -113,\"Undefined header\"", "error"),
    ("PHASE: Phase: hold", "phase"),
    ("Contact check passed: skin impedance 14.9 kOhm at 0.05 mA", "info"),
])
def test_event_sentences_are_classified_by_prefix(sentence: str, kind: str) -> None:
    assert classify(sentence).kind == kind


def test_summary_only_events_are_added_once(aborted: Path) -> None:
    rows = events_from_rows(rows_of(aborted))
    extra = {"t": 725.0, "kind": "instrument-error", "message": '-113,"Undefined header"'}
    summary = {"events": [{"t": 0.0, "kind": "trip", "message": TRIP_DROP}, extra]}
    merged = merge_events(rows, summary)
    assert [m.kind for m in merged].count("trip") == 1
    assert merged[-1].kind == "error" and merged[-1].t == 725.0


def test_report_of_a_real_run_on_the_simulator(run_protocol_on_sim) -> None:
    run = run_protocol_on_sim(treatment_time=2.0, scenario="impedance-drop@1")
    assert run.summary["outcome"] == "aborted"
    out = make_report(run.results_file)
    assert png_size(out) == (1320, 1440)
    fig = build_figure(run.results_file)
    trip_min = run.rows["Time (s)"].iloc[-1] / 60.0
    assert vline_minutes(fig.axes[4], "trip") == pytest.approx([trip_min])
    words = texts(fig)
    assert "TRIP: impedance-drop" in words
    assert f"SIMULATED, scenario {run.summary['scenario']}" in words


def test_trip_without_summary_is_labelled_from_its_sentence(aborted: Path) -> None:
    summary_path(aborted).unlink()
    words = texts(build_figure(aborted))
    assert "TRIP: Impedance drop" in words
    assert "OUTCOME UNKNOWN" in words


def test_a_row_cut_off_by_a_crash_is_skipped(aborted: Path) -> None:
    text = aborted.read_text(encoding="utf-8")
    aborted.write_text(text[: text.rindex("(limit 60 %)")], encoding="utf-8")  # inside quotes
    summary_path(aborted).unlink()
    rows = rows_of(aborted)
    assert rows["Phase"].iloc[-1] == "hold" and len(rows) > 3500
    assert png_size(make_report(aborted)) == (1320, 1440)
