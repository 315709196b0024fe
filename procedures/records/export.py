"""Export a course for research: one CSV row per session, the whole course as JSON, and a
NIBS-BIDS-like JSON sidecar per session (stimulation parameters, electrode, measured current
and impedance, ramps, side effects), each results file checked against its stored SHA-256.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import rules
from .audit import file_sha256

if TYPE_CHECKING:
    from .store import Store

CSV_FIELDS = (
    "course", "subject", "session", "started_at", "operator", "station", "drug", "outcome",
    "rule", "planned_dose_mA_min", "delivered_dose_mA_min", "duration_s", "no_drive",
    "override_reason", "screening_date", "nrs_before", "nrs_after", *rules.GRADED_FIELDS,
    "results_csv", "results_csv_sha256", "results_verified",
)
_RANK = {g: i for i, g in enumerate(rules.GRADES)}


def worst_grades(observations: list[dict[str, Any]]) -> dict[str, str | None]:
    """The worst grade of each item over a session's (effective) observations."""
    worst: dict[str, str | None] = dict.fromkeys(rules.GRADED_FIELDS)
    for obs in observations:
        for name, grade in obs["grades"].items():
            if grade is not None and (worst[name] is None or _RANK[grade] > _RANK[worst[name]]):
                worst[name] = grade
    return worst


def nrs_of(observations: list[dict[str, Any]], phase: str) -> int | None:
    """The latest pain score recorded in a phase (before/after), or None."""
    scores = [o["nrs"] for o in observations if o["phase"] == phase and o["nrs"] is not None]
    return scores[-1] if scores else None


def results_parameters(path: str | Path) -> dict[str, str]:
    """The '#Parameters:' block of a PyMeasure results file, name -> text with units."""
    params: dict[str, str] = {}
    section = ""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            body = line[1:].rstrip("\n")
            if not body.startswith("\t"):
                section = body.strip().rstrip(":")
                continue
            name, _, value = body.strip().partition(":")
            if section == "Parameters":
                params[name.strip()] = value.strip()
    return params


def _number(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return None


def measured(path: str | Path) -> dict[str, Any]:
    """Measured current and impedance of a run from its results file, over the hold phase
    (over the samples with current flowing when the run never reached the hold)."""
    import pandas as pd

    data = pd.read_csv(path, comment="#")
    if data.empty:
        return {}
    hold = data[data["Phase"] == "hold"]
    rows = hold if not hold.empty else data[data["Current (mA)"].abs() > 0]
    impedance = rows["Impedance (kohm)"].replace([math.inf, -math.inf], math.nan).dropna()

    def r(value: Any) -> float | None:
        value = float(value)
        return None if math.isnan(value) else round(value, 6)

    return {
        "MeasuredCurrent": {"Mean": r(rows["Current (mA)"].mean()) if len(rows) else None,
                            "MaxAbs": r(data["Current (mA)"].abs().max()),
                            "Units": "mA", "Phase": "hold" if not hold.empty else "all"},
        "Impedance": {"Start": r(impedance.iloc[0]) if len(impedance) else None,
                      "End": r(impedance.iloc[-1]) if len(impedance) else None,
                      "Min": r(impedance.min()) if len(impedance) else None,
                      "Max": r(impedance.max()) if len(impedance) else None, "Units": "kOhm",
                      "Phase": "hold" if not hold.empty else "current on"},
        "Samples": len(data),
    }


def sidecar(view: dict[str, Any], session: dict[str, Any]) -> dict[str, Any]:
    """A NIBS-BIDS-like sidecar for one session (keys in BIDS CamelCase)."""
    from ..drugs import get_drug

    drug = get_drug(session["drug"])
    path = session["results_csv"]
    verified = None
    params: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if path and session["results_csv_sha256"]:
        try:
            verified = file_sha256(path) == session["results_csv_sha256"]
            params = results_parameters(path)
            extra = measured(path)
        except (OSError, KeyError, ValueError):
            verified = False
    obs = session["observations"]
    return {
        "StimulationTechnique": "iontophoresis (constant-current DC)",
        "Subject": view["subject"], "Course": view["course"], "Session": session["number"],
        "AcquisitionDateTime": str(session["started_at"]), "Operator": session["operator"],
        "Drug": drug.key, "DrugLabel": drug.label, "ActiveElectrode": drug.active_electrode,
        "Polarity": drug.polarity,
        "StimulationParameters": {
            "TargetCurrent": _number(params.get("Target current")), "TargetCurrentUnits": "mA",
            "RampUp": _number(params.get("Ramp-up")), "RampDown": _number(params.get("Ramp-down")),
            "RampUnits": "s", "TreatmentTime": _number(params.get("Treatment time")),
            "TreatmentTimeUnits": "min",
            "ComplianceVoltage": _number(params.get("Compliance voltage")),
            "ComplianceVoltageUnits": "V",
            "MaxCurrentDensity": _number(params.get("Maximum current density")),
            "MaxCurrentDensityUnits": "mA/cm^2",
            "SampleInterval": _number(params.get("Sample interval")),
            "SampleIntervalUnits": "s"},
        "ElectrodeSize": {"Area": _number(params.get("Electrode area")), "Units": "cm^2"},
        **extra,
        "Outcome": session["outcome"], "Rule": session["rule"],
        "PlannedDose": session["planned_dose_mA_min"],
        "DeliveredDose": session["delivered_dose_mA_min"], "DoseUnits": "mA*min",
        "Duration": session["duration_s"], "DurationUnits": "s",
        "PainNRS": {"Before": nrs_of(obs, "before"), "After": nrs_of(obs, "after")},
        "SideEffects": worst_grades(obs), "SideEffectScale": list(rules.GRADES),
        "MustNotDriveHome": session["no_drive"],
        "ResultsFile": path, "ResultsFileSHA256": session["results_csv_sha256"],
        "ResultsFileVerified": verified,
    }


def export_course(store: Store, course_id: int | str, output: Path) -> list[Path]:
    """Write the course's CSV, JSON and per-session sidecars into `output`; return the paths."""
    from .cli import course_view

    view = course_view(store, course_id)
    output.mkdir(parents=True, exist_ok=True)
    stem = f"course-{view['course']}"
    written: list[Path] = []
    sidecars: dict[int, dict[str, Any]] = {}
    for session in view["sessions"]:
        sidecars[session["number"]] = sidecar(view, session)
    csv_path = output / f"{stem}_sessions.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for s in view["sessions"]:
            obs = s["observations"]
            writer.writerow({
                "course": view["course"], "subject": view["subject"], "session": s["number"],
                "started_at": s["started_at"], "operator": s["operator"],
                "station": s["station"], "drug": s["drug"], "outcome": s["outcome"],
                "rule": s["rule"], "planned_dose_mA_min": s["planned_dose_mA_min"],
                "delivered_dose_mA_min": s["delivered_dose_mA_min"],
                "duration_s": s["duration_s"], "no_drive": s["no_drive"],
                "override_reason": s["override_reason"], "screening_date": s["screening_date"],
                "nrs_before": nrs_of(obs, "before"), "nrs_after": nrs_of(obs, "after"),
                **worst_grades(obs), "results_csv": s["results_csv"],
                "results_csv_sha256": s["results_csv_sha256"],
                "results_verified": sidecars[s["number"]]["ResultsFileVerified"]})
    written.append(csv_path)
    json_path = output / f"{stem}.json"
    json_path.write_text(json.dumps(view, indent=2, default=str, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    written.append(json_path)
    for number, data in sidecars.items():
        path = output / f"sub-{view['subject']}_course-{view['course']}_ses-{number}_stim.json"
        path.write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        written.append(path)
    return written
