"""Front-panel pieces without a run: incremental file tail, chunked curves, dialog, indicators."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pyqtgraph as pg
import pytest

from ionto_instruments.gui.alerts import TripAlert
from ionto_instruments.gui.charts import ChartsWidget
from ionto_instruments.gui.chunked_curve import ChunkedCurve
from ionto_instruments.gui.dialogs import ScreeningDialog
from ionto_instruments.gui.indicators import (
    SafetyLight,
    SimulationBanner,
    format_duration,
    format_number,
)
from ionto_instruments.gui.results_tail import ResultsTail
from ionto_instruments.gui.window import describe_summary, drug_description
from ionto_instruments.procedures.contracts import EventKind
from ionto_instruments.procedures.results import DATA_COLUMNS, IontoResults
from ionto_instruments.procedures.runner import make_procedure
from ionto_instruments.procedures.screening import CONTRAINDICATIONS
from ionto_instruments.simulator import SCENARIOS


def _row(i: int, event: str = "") -> dict:
    return {"Time (s)": 0.2 * i, "Phase": "hold" if i >= 10 else "ramp-up",
            "Setpoint (mA)": 2.0, "Current (mA)": 2.0 + 0.001 * i, "Voltage (V)": 6.0,
            "Impedance (kohm)": 3.0, "Dose (mA*min)": 0.01 * i,
            "Current density (mA/cm^2)": 0.2, "Compliance": 0, "Event": event}


@pytest.fixture
def results_file(tmp_path):
    procedure = make_procedure({})
    results = IontoResults(procedure, tmp_path / "run.csv")
    return results, procedure


def _append(results, rows, tail: str = "\n") -> None:
    text = "\n".join(results.formatter.format(r) for r in rows)
    with open(results.data_filename, "a", encoding="utf-8") as f:
        f.write(text + tail)


def test_tail_reads_only_new_complete_rows(results_file):
    results, _ = results_file
    tail = ResultsTail(results.data_filename)
    assert len(tail.read_new()) == 0 and tail.offset == 0  # header only: nothing consumed
    results.store_metadata()  # PyMeasure rewrites the header before the first row
    _append(results, [_row(0, 'TRIP: a sentence, with a comma "and quotes"'), _row(1)])
    block = tail.read_new()
    assert tail.columns == DATA_COLUMNS
    assert len(block) == 2 and block.numbers["Current (mA)"][1] == pytest.approx(2.001)
    assert block.text["Event"][0] == 'TRIP: a sentence, with a comma "and quotes"'
    offset = tail.offset
    assert len(tail.read_new()) == 0 and tail.offset == offset
    # a half-written line is kept until its newline arrives
    line = results.formatter.format(_row(2))
    with open(results.data_filename, "a", encoding="utf-8") as f:
        f.write(line[:10])
    assert len(tail.read_new()) == 0
    with open(results.data_filename, "a", encoding="utf-8") as f:
        f.write(line[10:] + "\n")
    block = tail.read_new()
    assert len(block) == 1 and block.numbers["Time (s)"][0] == pytest.approx(0.4)
    assert tail.rows_read == 3


def test_tail_handles_nan_marker_rows(results_file):
    results, _ = results_file
    marker = {c: math.nan for c in DATA_COLUMNS} | {"Time (s)": 1.0, "Phase": "off",
                                                     "Event": "STOP: off"}
    _append(results, [_row(0), marker])
    block = ResultsTail(results.data_filename).read_new()
    assert len(block) == 2 and math.isnan(block.numbers["Current (mA)"][1])


def test_completed_chunks_are_never_touched_again(qtbot):
    plot = pg.PlotItem()
    curve = ChunkedCurve(plot, pg.mkPen("y"), chunk_size=128)
    x = np.arange(300, dtype=float)
    curve.append(x[:150], x[:150] * 2)
    assert len(curve.items) == 2
    frozen = curve.items[0]
    calls = []
    frozen.setData = lambda *a, **k: calls.append(a)  # a frozen chunk's data is never re-set
    curve.append(x[150:], x[150:] * 2)
    curve.append(np.array([300.0, math.nan]), np.array([600.0, 1.0]))  # NaN dropped
    assert calls == []
    assert len(curve.items) == 3
    xs, ys = curve.data()
    assert np.array_equal(xs, np.arange(301.0)) and np.array_equal(ys, xs * 2)
    # consecutive chunks share their joint point, so the line has no gap
    assert curve.items[1].getOriginalDataset()[0][0] == curve.items[0].getOriginalDataset()[0][-1]


def test_downsampled_chunks_keep_every_peak_and_the_newest_point(qtbot):
    plot = pg.PlotItem()
    curve = ChunkedCurve(plot, pg.mkPen("y"), chunk_size=64)
    x = np.arange(200, dtype=float)
    y = np.zeros(200)
    y[128] = 50.0  # the last point of the second chunk: drawn again as the third's first
    y[199] = 99.0  # the newest point, in the live chunk
    curve.append(x, y)
    curve.set_density(0.05)  # 20 points per pixel: completed chunks downsampled by 16
    assert curve.ds == 16
    frozen, live = curve.items[:-1], curve.items[-1]
    assert all(item.opts["downsample"] == 16 for item in frozen)
    assert live.opts["downsample"] == 1
    shown = np.concatenate([item.curve.getData()[1] for item in curve.items])
    assert shown.max() == 99.0 and 50.0 in shown
    with pytest.raises(ValueError):
        ChunkedCurve(plot, None, chunk_size=100)


def test_run_curves_draw_phases_limits_and_trip_marks(qtbot, results_file):
    """An old file without a summary: the kind comes from the Event text (compatibility)."""
    results, procedure = results_file
    procedure.results_file = None  # as Results.load gives it: not a live run
    charts = ChartsWidget()
    qtbot.addWidget(charts)
    curves = charts.new_curve(SimpleNamespace(data_filename=results.data_filename,
                                              procedure=procedure))
    charts.load(curves)
    _append(results, [_row(i) for i in range(20)] + [_row(20, "TRIP: too hot")])
    assert curves.update_data() == 21
    phases = curves.phases()
    assert [p for p, _, _ in phases] == ["ramp-up", "hold"]
    assert phases[0][2] == pytest.approx(phases[1][1])  # contiguous shading
    assert curves.event_marks == [(EventKind.TRIP, pytest.approx(4.0 / 60.0))]
    assert charts.focus is curves and curves.focused
    low, high = charts.dose_plot.getViewBox().viewRange()[0]
    assert high >= 30  # the time axis shows the planned 30-minute protocol
    charts.remove(curves)
    assert charts.focus is None and not curves.attached
    charts.load(curves)
    assert curves.attached and charts.focus is curves


def test_live_run_events_are_drawn_from_their_kind_not_the_text(qtbot, results_file):
    results, procedure = results_file
    charts = ChartsWidget()
    qtbot.addWidget(charts)
    curves = charts.new_curve(results)
    charts.load(curves)
    _append(results, [_row(i, "TRIP: this text is not read") for i in range(5)])
    procedure._event(0.4, EventKind.PAUSE, "Paused by the operator")
    procedure._event(0.6, EventKind.WARNING, "Near compliance")
    procedure._event(0.8, EventKind.WARNING, "Near compliance")  # a repeat is drawn once
    assert curves.update_data() == 5
    assert [kind for kind, _ in curves.event_marks] == [EventKind.PAUSE, EventKind.WARNING]
    procedure._event(0.9, EventKind.TRIP, "Overcurrent")
    _append(results, [_row(5)])
    curves.update_data()
    assert [kind for kind, _ in curves.event_marks][-1] == EventKind.TRIP


def test_screening_dialog_ok_only_when_all_answered(qtbot):
    dialog = ScreeningDialog()
    qtbot.addWidget(dialog)
    assert not dialog.ok_button.isEnabled()
    keys = [c.key for c in CONTRAINDICATIONS]
    for key in keys[:-1]:
        dialog.answer(key, False)
        assert not dialog.ok_button.isEnabled()
    dialog.answer(keys[-1], False)
    assert dialog.ok_button.isEnabled()
    assert dialog.answers() == {k: False for k in keys}
    dialog.answer("pacemaker", True)
    assert dialog.answers()["pacemaker"] is True
    assert "refused" in dialog.verdict.text().lower()
    dialog.answer("pacemaker", False)  # exclusive: yes and no cannot both be checked
    assert dialog.answers()["pacemaker"] is False


def test_indicators_format_and_latch(qtbot):
    assert format_number(math.nan, 2) == "---"
    assert format_number(-0.0001, 3, signed=True) == "+0.000"
    assert format_number(-1.5, 2, signed=True) == "-1.50"
    assert format_duration(125.4) == "02:05" and format_duration(None) == "--:--"
    assert format_duration(3725) == "62:05"
    assert format_number(3432968.0, 2, max_chars=7) == "3432968"
    assert format_number(34329680.0, 2, max_chars=7) == "3.4e+07"
    assert format_number(123.456, 2, max_chars=5) == "123.5"
    light = SafetyLight()
    qtbot.addWidget(light)
    light.set_state("tripped", "Contact lost")
    assert light.state() == "tripped" and light.color() == "#e03131"
    alert = TripAlert()
    qtbot.addWidget(alert)
    signals = []
    alert.acknowledged.connect(lambda: signals.append(1))
    alert.raise_alert("Contact lost: impedance rose", "SAFETY TRIP (impedance-high)")
    assert alert.is_active() and alert.text() == "Contact lost: impedance rose"
    alert.button.click()
    assert not alert.is_active() and signals == [1]


def test_simulation_banner_scenario_and_speed(qtbot):
    banner = SimulationBanner(SCENARIOS, "contact-loss@1", math.inf)
    qtbot.addWidget(banner)
    assert banner.scenario() == "contact-loss@1"
    assert math.isinf(banner.speed())
    banner.set_speed(250.0)
    assert banner.speed() == 250.0
    banner.set_scenario("drying")
    assert banner.scenario() == "drying"


def test_drug_and_summary_texts():
    assert "cathode" in drug_description("dexamethasone")
    assert "anode" in drug_description("lidocaine")
    assert "unknown drug" in drug_description("aspirin")
    text = describe_summary({"outcome": "aborted", "rule": "contact-lost",
                             "delivered_dose_mA_min": 1.5, "planned_dose_mA_min": 59.0,
                             "duration_s": 90.0, "output_off_confirmed": False})
    assert "TRIPPED" in text and "NOT CONFIRMED" in text
    assert "No summary" in describe_summary(None)


def test_a_caption_too_wide_for_the_safety_light_ends_in_an_ellipsis(qtbot) -> None:
    """A cut caption must look cut ("…", full text in the tooltip), never like a whole word."""
    light = SafetyLight()
    qtbot.addWidget(light)
    light.resize(260, 70)
    light.show()
    qtbot.waitExposed(light)
    light.set_state("tripped", "Contact lost", caption="SAFETY TRIP (impedance-high)")
    shown = light.caption.text()
    assert shown.endswith("\u2026") and shown != "SAFETY TRIP (impedance-high)"
    assert light.caption.toolTip() == "SAFETY TRIP (impedance-high)"
    light.resize(900, 70)
    qtbot.waitUntil(lambda: light.caption.text() == "SAFETY TRIP (impedance-high)")


def test_a_mark_line_taken_off_its_plot_has_an_empty_bounding_rect(qtbot) -> None:
    """pyqtgraph's own InfiniteLine raises here, inside Qt's scene indexing (a crash)."""
    import pyqtgraph as pg

    from ionto_instruments.gui.charts import MarkLine

    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    line = MarkLine(pos=1.0, angle=90)
    widget.getPlotItem().addItem(line)
    assert not line.boundingRect().isNull()
    widget.getPlotItem().removeItem(line)
    assert line.boundingRect().isNull()
