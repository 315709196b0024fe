"""A treatment course in a record, from Python: a subject, a course, two simulated sessions
(the second too soon, so refused, then allowed with a reason), the before/after forms, the
audit check and a research export.

To show the course rules, this example records its simulator runs as if they were treatments
(a station marks a simulator run with `open_session(..., simulated=True)`: it never counts), so
its record is always a throwaway SQLite file in a temporary directory, never IONTO_DB's: a
clinic's record must not receive demonstration sessions. Runs use the virtual clock.

    python examples/course_records.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from ionto_instruments.clock import VirtualClock
from ionto_instruments.procedures.records import Store
from ionto_instruments.procedures.records.export import export_course
from ionto_instruments.procedures.records.store import screening_all_no
from ionto_instruments.procedures.runner import make_procedure, run_protocol


def treat(store: Store, course_id: int, output: Path, reason: str | None = None) -> None:
    """Open the course's next session (the rules decide), run it, record its outcome."""
    opened = store.open_session(course_id, "nurse-a", screening=screening_all_no(),
                                override_reason=reason)
    if opened.refused:
        print(f"Session {opened.session.number}: {opened.verdict.refusals[0].message}")
        return
    if opened.session.no_drive:
        print(opened.session.no_drive_reason)
    procedure = make_procedure(target_current=1.5, treatment_time=2.0, drug=opened.verdict.drug,
                               subject_kind="human", screening_confirmed=True,
                               subject_id="S101",
                               session_id=f"c{course_id}-{opened.session.number}")
    summary = run_protocol(procedure, output_dir=output, clock=VirtualClock())
    store.record_outcome(opened.session.id, summary, "nurse-a")
    store.observe(opened.session.id, "before", "nurse-a", nrs=7)
    store.observe(opened.session.id, "after", "nurse-a", nrs=4,
                  grades={"anode_redness": "mild", "fatigue": "none"})
    print(f"Session {opened.session.number}: {summary['outcome']}, "
          f"{summary['delivered_dose_mA_min']:.2f} mA*min")


def main() -> int:
    """Run the example; exit 0 when the record verifies."""
    output = Path(os.environ.get("IONTO_OUTPUT") or tempfile.mkdtemp(prefix="ionto-course-"))
    url = f"sqlite:///{output / 'records.sqlite3'}"  # never IONTO_DB: these runs are demos
    with Store(url) as store:
        store.add_subject("S101", "dr-b", note="CRPS right hand")
        course = store.start_course("S101", "bupivacaine", "dr-b", trial_count=6)
        treat(store, course.id, output)
        treat(store, course.id, output)  # the same day: refused by 'too-soon'
        treat(store, course.id, output, reason="patient travels on Monday")
        report = store.verify()
        print(f"Audit trail: {'intact' if report.ok else report.problems}, "
              f"{report.entries} entries, {report.files_checked} results files checked")
        for path in export_course(store, course.id, output / "export"):
            print(f"Exported {path.name}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
