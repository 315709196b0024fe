"""The record on SQLite and PostgreSQL: models, the course rules, corrections, append-only
enforcement, the audit chain catching edits and deletions, schema checks, two writers."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from ionto_instruments.procedures.records import (
    NotFound,
    RecordsUnavailable,
    RecordValueError,
    Store,
)
from ionto_instruments.procedures.records.store import resolve_url, screening_all_no

DONE = {"outcome": "completed", "delivered_dose_mA_min": 40.0, "output_was_on": True,
        "duration_s": 1800.0, "planned_dose_mA_min": 40.0}


def deliver(store: Store, course_id: int, reason: str | None = None,
            summary: dict | None = None):
    """Open a session, and when it is allowed, record it as completed."""
    opened = store.open_session(course_id, "nurse-a", screening=screening_all_no(),
                                override_reason=reason)
    if not opened.refused:
        store.record_outcome(opened.session.id, summary or DONE, "nurse-a")
    return opened


@pytest.fixture
def course(store: Store):
    store.add_subject("S001", "dr-b", note="CRPS right foot")
    return store.start_course("S001", "Marcaine", "dr-b", trial_count=4)


def _raw(store: Store, *statements: str) -> None:
    """Tamper as someone with full database access: disable the append-only triggers first."""
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "postgresql":
            conn.execute(text("SET session_replication_role = replica"))
        else:
            for (name,) in conn.execute(text(
                    "SELECT name FROM sqlite_master WHERE type='trigger'")).all():
                conn.execute(text(f"DROP TRIGGER {name}"))
        for statement in statements:
            conn.execute(text(statement))


# -- models and values ---------------------------------------------------------------------


def test_subject_course_and_bad_values_name_their_field(store: Store, course) -> None:
    assert course.drug == "bupivacaine" and course.trial_count == 4
    assert [s.code for s in store.subjects()] == ["S001"]
    with pytest.raises(RecordValueError, match="already exists"):
        store.add_subject("S001", "dr-b")
    with pytest.raises(RecordValueError) as bad:
        store.add_subject("Jane Doe", "dr-b")
    assert bad.value.field == "subject"
    for count in (3, 9):
        with pytest.raises(RecordValueError, match=r"trial-count: .* range 4-8"):
            store.start_course("S001", "ketamine", "dr-b", trial_count=count)
    with pytest.raises(RecordValueError, match="drug"):
        store.start_course("S001", "aspirin", "dr-b")
    with pytest.raises(RecordValueError, match="start: .* future"):
        store.start_course("S001", "ketamine", "dr-b",
                           started_on=store.now() + timedelta(days=1))
    with pytest.raises(NotFound) as missing:
        store.start_course("S999", "ketamine", "dr-b")
    assert missing.value.field == "subject"
    with pytest.raises(NotFound, match="unknown course 42"):
        store.course(42)


def test_observation_ranges_grades_and_dates(store: Store, course) -> None:
    session = deliver(store, course.id).session
    for nrs in (-1, 11):
        with pytest.raises(RecordValueError, match=r"nrs: .* range 0-10"):
            store.observe(session.id, "before", "nurse-a", nrs=nrs)
    with pytest.raises(RecordValueError, match="fatigue: unknown grade 'awful'"):
        store.observe(session.id, "after", "nurse-a", grades={"fatigue": "awful"})
    with pytest.raises(RecordValueError, match="headache: unknown item"):
        store.observe(session.id, "after", "nurse-a", grades={"headache": "mild"})
    with pytest.raises(RecordValueError, match="date: .* future"):
        store.observe(session.id, "next-day", "nurse-a", grades={"dark_urine": "mild"},
                      observed_at=store.now() + timedelta(days=1))
    obs = store.observe(session.id, "after", "nurse-a", nrs=3,
                        grades={"anode_redness": "mild", "dizziness": "none"}, note="ok")
    assert (obs.nrs, obs.anode_redness, obs.dizziness) == (3, "mild", "none")


def test_a_correction_is_a_new_entry_pointing_to_the_old(store: Store, course) -> None:
    session = deliver(store, course.id).session
    wrong = store.observe(session.id, "after", "nurse-a", nrs=8)
    fixed = store.observe(session.id, "after", "nurse-a", nrs=3, corrects=wrong.id,
                          note="typed 8 for 3")
    assert [o.id for o in store.observations(session.id)] == [fixed.id]
    assert [o.nrs for o in store.observations(session.id, effective=False)] == [8, 3]
    entries = store.audit_entries(1)
    assert entries[0].action == "observations.correct"
    old_entry = next(e for e in store.audit_entries(100)
                     if e.table_name == "observations" and e.row_id == wrong.id)
    assert entries[0].corrects_seq == old_entry.seq
    assert store.verify().ok


# -- the course rules --------------------------------------------------------------------------


def test_first_session_flags_no_driving_then_not(store: Store, course, now) -> None:
    first = deliver(store, course.id)
    assert first.session.no_drive and "MUST NOT DRIVE HOME (first treatment)" in \
        first.session.no_drive_reason
    now.advance(days=3)
    second = deliver(store, course.id)
    assert not second.refused and not second.session.no_drive


def test_too_soon_refused_naming_rule_unless_a_reason_is_recorded(store: Store, course,
                                                                    now) -> None:
    deliver(store, course.id)
    now.advance(days=1)
    refused = deliver(store, course.id)
    assert refused.refused and refused.outcome.rule == "too-soon"
    assert "minimum interval is 2 days" in refused.outcome.reason
    assert "--reason" in refused.verdict.refusals[0].todo
    allowed = deliver(store, course.id, reason="patient travels abroad on Monday")
    assert not allowed.refused
    assert allowed.session.override_reason == "patient travels abroad on Monday"
    assert allowed.session.override_rule == "too-soon"
    numbers = [(s.number, o.outcome) for s, o in store.sessions(course.id)]
    assert numbers == [(1, "completed"), (2, "refused"), (3, "completed")]
    now.advance(days=2)
    assert store.plan_next(course.id).allowed


def test_a_refused_or_undelivered_session_does_not_count(store: Store, course, now) -> None:
    deliver(store, course.id, summary={"outcome": "refused", "rule": "contact-check",
                                       "delivered_dose_mA_min": 0.0, "output_was_on": False})
    verdict = store.plan_next(course.id)
    assert verdict.allowed and verdict.no_drive  # still the first real treatment


def test_trial_count_needs_a_review_then_weekly_continues(store: Store, course, now) -> None:
    for _ in range(4):
        assert not deliver(store, course.id).refused
        now.advance(days=3)
    refused = deliver(store, course.id)
    assert refused.refused and refused.outcome.rule == "review-due"
    assert "ionto course review" in refused.outcome.reason
    store.review(course.id, "continue", "dr-b", "good response: weekly from now")
    assert not deliver(store, course.id).refused


def test_a_burn_puts_the_course_on_hold_until_reviewed(store: Store, course, now) -> None:
    session = deliver(store, course.id).session
    store.observe(session.id, "after", "nurse-a", grades={"cathode_burn": "mild"})
    now.advance(days=3)
    refused = deliver(store, course.id)
    assert refused.refused and refused.outcome.rule == "burn-hold"
    assert "on hold until the pain specialist reviews it" in refused.outcome.reason
    assert deliver(store, course.id, reason="urgent").refused  # a reason does not lift it
    now.advance(hours=1)
    store.review(course.id, "continue", "dr-b", "superficial, healed")
    again = deliver(store, course.id)
    assert not again.refused
    store.observe(again.session.id, "after", "nurse-a", grades={"anode_burn": "severe"})
    now.advance(days=3)
    assert deliver(store, course.id).outcome.rule == "burn-hold"  # a burn after a review too


def test_change_of_medication_flags_no_driving_and_stop_ends(store: Store, course, now) -> None:
    deliver(store, course.id)
    now.advance(days=3)
    with pytest.raises(RecordValueError, match="drug"):
        store.review(course.id, "change-medication", "dr-b", "poor result")
    with pytest.raises(RecordValueError, match="decision"):
        store.review(course.id, "pause", "dr-b")
    store.review(course.id, "change-medication", "dr-b", "poor result", new_drug="ketamine")
    changed = deliver(store, course.id)
    assert changed.session.drug == "ketamine"
    assert changed.session.no_drive and "first treatment with ketamine" in \
        changed.session.no_drive_reason
    now.advance(days=3)
    store.review(course.id, "stop", "dr-b", "no benefit")
    stopped = deliver(store, course.id)
    assert stopped.refused and stopped.outcome.rule == "course-stopped"


def test_screening_with_a_contraindication_is_refused_and_recorded(store: Store,
                                                                  course) -> None:
    answers = {**screening_all_no(), "pacemaker": True}
    opened = store.open_session(course.id, "nurse-a", screening=answers)
    assert opened.refused and opened.outcome.rule == "screening"
    assert "pacemaker" in opened.outcome.reason


# -- append-only and the audit trail ------------------------------------------------------------


def test_the_database_itself_refuses_update_and_delete(store: Store, course) -> None:
    for statement in ("UPDATE subjects SET note = 'x'", "DELETE FROM audit_entries",
                      "UPDATE audit_entries SET who = 'x'"):
        with pytest.raises(Exception, match="append-only"), store.engine.begin() as conn:
            conn.execute(text(statement))
    assert store.verify().ok


def _problems(store: Store) -> list[tuple[str, str]]:
    return [(p.kind, p.where) for p in store.verify().problems]


def test_verify_names_an_edited_row(store: Store, course) -> None:
    session = deliver(store, course.id).session
    assert store.verify().ok
    _raw(store, f"UPDATE session_outcomes SET \"delivered_dose_mA_min\" = 20 "
                f"WHERE session_id = {session.id}")
    assert _problems(store) == [("edited-row", "session_outcomes row 1")]


def test_verify_names_an_edited_and_a_deleted_entry(store: Store, course) -> None:
    deliver(store, course.id)
    _raw(store, "UPDATE audit_entries SET who = 'mallory' WHERE seq = 2")
    assert ("edited-entry", "audit entry 2") in _problems(store)
    _raw(store, "DELETE FROM audit_entries WHERE seq = 3")
    problems = _problems(store)
    assert ("deleted-entry", "audit entry 3") in problems
    assert ("unrecorded-row", "sessions row 1") in problems  # entry 3 recorded that row


def test_verify_names_a_deleted_row_and_a_row_added_behind_its_back(store: Store,
                                                                   course) -> None:
    session = deliver(store, course.id).session
    obs = store.observe(session.id, "after", "nurse-a", nrs=2)
    _raw(store, f"DELETE FROM observations WHERE id = {obs.id}",
         "INSERT INTO subjects (code, note, created_at, created_by) "
         "VALUES ('S666', '', '2026-11-01 00:00:00', 'x')")
    problems = _problems(store)
    assert ("deleted-row", f"observations row {obs.id}") in problems
    assert any(kind == "unrecorded-row" and where.startswith("subjects row")
               for kind, where in problems)


def test_verify_checks_results_files_against_their_hashes(store: Store, course,
                                                          tmp_path) -> None:
    csv = tmp_path / "run.csv"
    csv.write_text("Time (s)\n0\n")
    (tmp_path / "run.json").write_text("{}")
    deliver(store, course.id, summary={**DONE, "results_file": str(csv)})
    report = store.verify()
    assert report.ok and report.files_checked == 2
    csv.write_text("Time (s)\n1\n")
    (tmp_path / "run.json").unlink()
    kinds = sorted(p.kind for p in store.verify().problems)
    assert kinds == ["changed-file", "missing-file"]


# -- opening: unreachable, old or foreign schema ----------------------------------------------


def test_old_schema_is_one_clear_error_and_upgrade_fixes_it(db_url: str) -> None:
    from alembic import command

    from ionto_instruments.procedures.records import store as store_module

    Store(db_url).close()
    engine = store_module.make_engine(resolve_url(db_url))
    with engine.begin() as conn:
        command.downgrade(store_module._alembic_config(conn), "0001")
    with pytest.raises(RecordsUnavailable, match=r"old schema \(revision 0001.*ionto db upgrade"):
        Store(db_url)
    store_module.upgrade(engine)
    engine.dispose()
    Store(db_url).close()


def test_unknown_schema_revision_says_upgrade_ionto(db_url: str) -> None:
    Store(db_url).close()
    engine = create_engine(resolve_url(db_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(RecordsUnavailable, match="newer than this version of ionto"):
        Store(db_url)


def test_unreachable_postgresql_is_one_clear_error(tmp_path) -> None:
    url = f"postgresql://nobody:secret@/records?host={tmp_path}&port=5999"
    with pytest.raises(RecordsUnavailable) as err:
        Store(url)
    message = str(err.value)
    assert message.startswith("cannot reach the records database at") and "IONTO_DB" in message
    assert "secret" not in message


# -- two stations at once ------------------------------------------------------------------


def test_two_writers_lose_nothing_and_the_chain_verifies(db_url: str, now) -> None:
    """Two stations (own engines, own connections) record sessions at the same time."""
    setup = Store(db_url, now=now)
    setup.add_subject("A", "dr")
    setup.add_subject("B", "dr")
    courses = [setup.start_course(code, "bupivacaine", "dr", trial_count=8).id
               for code in ("A", "B")]
    per_writer = 8
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def station(course_id: int) -> None:
        try:
            with Store(db_url, now=now) as mine:
                barrier.wait()
                for i in range(per_writer):
                    opened = mine.open_session(course_id, f"station-{course_id}",
                                               override_reason="test: back to back")
                    mine.record_outcome(opened.session.id, DONE, f"station-{course_id}")
                    mine.observe(opened.session.id, "after", f"station-{course_id}", nrs=i % 11)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=station, args=(c,)) for c in courses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    for course_id in courses:
        sessions = setup.sessions(course_id)
        assert [s.number for s, _ in sessions] == list(range(1, per_writer + 1))
        assert all(o is not None and o.outcome == "completed" for _, o in sessions)
    report = setup.verify()
    assert report.ok, report.problems
    assert report.entries == 2 + 2 + 2 * per_writer * 3
    setup.close()


def test_projected_schedule_twice_weekly_then_review_then_weekly() -> None:
    from datetime import date

    from ionto_instruments.procedures.records.rules import projected_schedule

    start = date(2026, 11, 2)
    plan = projected_schedule(started_on=start, first_free=date(2026, 11, 9), delivered=2,
                              trial_count=4, min_interval_days=2, weekly_after_days=28,
                              reviewed=False)
    assert plan == [(date(2026, 11, 9), "treatment 3 of 4"),
                    (date(2026, 11, 11), "treatment 4 of 4"),
                    (date(2026, 11, 13), "review by the pain specialist (trial complete)")]
    later = projected_schedule(started_on=start, first_free=date(2026, 11, 30), delivered=6,
                               trial_count=6, min_interval_days=2, weekly_after_days=28,
                               reviewed=True, horizon=2)
    assert later == [(date(2026, 11, 30), "treatment 7 (weekly)"),
                     (date(2026, 12, 7), "treatment 8 (weekly)")]
