"""The record: time to record a session, and `audit verify` over 10,000 entries, on SQLite
and on a throwaway PostgreSQL (the same server helper as the tests), each beside a baseline.

Baselines: recording a session (three write transactions) beside three bare one-row INSERT
transactions on the same database (the floor of durable writes); verify beside reading the
same entries without checking them. The PostgreSQL server keeps its durable defaults (fsync
on), as a clinic's would.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select, text

from ionto_instruments.procedures.records import Store
from ionto_instruments.procedures.records.models import AuditEntry, Subject
from ionto_instruments.procedures.records.store import screening_all_no

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "records"))
import pgserver  # noqa: E402

SESSIONS = 60
ENTRIES = 10_000
SUMMARY = {"outcome": "completed", "delivered_dose_mA_min": 40.0, "output_was_on": True,
           "duration_s": 1800.0, "planned_dose_mA_min": 40.0}


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def record_session_ms(store: Store) -> tuple[float, float]:
    """Median ms to write one session (open + outcome + after form), and a bare INSERT."""
    store.add_subject("BENCH", "bench")
    course = store.start_course("BENCH", "bupivacaine", "bench", trial_count=8)
    times = []
    for i in range(SESSIONS):
        if i and i % 8 == 0:
            store.review(course.id, "continue", "bench")
        start = time.perf_counter()
        opened = store.open_session(course.id, "bench", screening=screening_all_no(),
                                    override_reason="benchmark")
        store.record_outcome(opened.session.id, SUMMARY, "bench")
        store.observe(opened.session.id, "after", "bench", nrs=3, grades={"fatigue": "mild"})
        times.append(time.perf_counter() - start)
    bare = []
    with store.engine.connect() as conn:
        conn.execute(text("CREATE TABLE bench_floor (id INTEGER, note TEXT)"))
        conn.commit()
        for i in range(SESSIONS):
            start = time.perf_counter()
            for _ in range(3):  # a session is three write transactions
                conn.execute(text("INSERT INTO bench_floor VALUES (:i, 'x')"), {"i": i})
                conn.commit()
            bare.append(time.perf_counter() - start)
        conn.execute(text("DROP TABLE bench_floor"))
        conn.commit()
    return _median_ms(times), _median_ms(bare)


def verify_s(store: Store) -> tuple[float, float, int]:
    """Seconds for `audit verify` (no files) over >= ENTRIES entries, and to only read them."""
    with store._write() as db:  # fill fast: one transaction, the same audited inserts
        have = db.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0
        for i in range(ENTRIES - have):
            store._append(db, "bench", Subject(code=f"B{i:06d}", note="", created_at=store.now(),
                                               created_by="bench"))
    start = time.perf_counter()
    report = store.verify(check_files=False)
    verify_time = time.perf_counter() - start
    assert report.ok, report.problems[:3]
    start = time.perf_counter()
    with store._read() as db:
        for table in ("audit_entries", "subjects"):
            db.execute(text(f"SELECT * FROM {table}")).all()
    read_time = time.perf_counter() - start
    return verify_time, read_time, report.entries


def _rows(name: str, store: Store) -> list[tuple[str, float, str]]:
    session, bare = record_session_ms(store)
    verify, read, entries = verify_s(store)
    return [
        (f"{name}: record a session (open + outcome + form, 5 entries)", session, "ms"),
        (f"{name}:   baseline: three bare one-row INSERT transactions", bare, "ms"),
        (f"{name}: audit verify, {entries} entries + rows", verify, "s"),
        (f"{name}:   baseline: read the same entries and rows", read, "s"),
    ]


def run() -> list[tuple[str, float, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Store(f"sqlite:///{tmp}/bench.sqlite3") as store:
        rows += _rows("SQLite", store)
    if pgserver.find_bindir() is not None:
        url, root = pgserver.start(durable=True)
        try:
            with Store(url) as store:
                rows += _rows("PostgreSQL", store)
        finally:
            pgserver.stop(root)
    return rows


if __name__ == "__main__":
    for label, value, unit in run():
        print(f"  {label:62s} {value:12.3f} {unit}")
