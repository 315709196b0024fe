"""The record store: where it lives, its schema check, and every write as one audited insert.

The default is a SQLite file in the user's data directory (no setup); `--db URL` or the
`IONTO_DB` variable points every station at one PostgreSQL server instead. Each write runs in
one transaction that first takes the chain's lock (PostgreSQL: a transaction advisory lock;
SQLite: BEGIN IMMEDIATE), so concurrent writers extend the hash chain one at a time.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..drugs import get_drug
from ..screening import CONTRAINDICATION_KEYS, evaluate_screening
from . import rules
from .audit import GENESIS, VerifyReport, canonical, entry_hash, file_sha256, iso, row_content
from .audit import verify as verify_chain
from .models import (
    AuditEntry,
    Base,
    Course,
    Observation,
    Review,
    SessionOutcome,
    Subject,
    TreatmentSession,
)
from .rules import RecordValueError

ENV_VAR = "IONTO_DB"
APP_NAME = "ionto-instruments"
#: Key of the PostgreSQL advisory lock that serializes the head of the audit chain.
CHAIN_LOCK_KEY = 0x10470
SQLITE_BUSY_TIMEOUT_S = 30
PG_CONNECT_TIMEOUT_S = 5
MIGRATIONS = Path(__file__).with_name("migrations")


class RecordsUnavailable(Exception):
    """The record cannot be used: unreachable, or a schema this software does not match."""


class NotFound(LookupError):
    """An unknown subject, course or session ID; `field` names which (exit 2 on the CLI)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def default_url() -> str:
    """The embedded default: a SQLite file in the user's data directory."""
    from platformdirs import user_data_dir

    return f"sqlite:///{Path(user_data_dir(APP_NAME, appauthor=False)) / 'records.sqlite3'}"


def resolve_url(url: str | None = None) -> str:
    """--db URL, else $IONTO_DB, else the default; postgresql:// uses psycopg 3, a path SQLite."""
    url = (url or os.environ.get(ENV_VAR) or "").strip() or default_url()
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix):]
    return url


def display_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file of `url` when it does not exist yet (None for PostgreSQL or memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def make_engine(url: str, *, create_dirs: bool = False) -> Engine:
    """An engine whose transactions serialize writers (SQLite: BEGIN IMMEDIATE); `create_dirs`
    makes a new SQLite file's folder (only where a new database is meant)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if create_dirs and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True,
                         connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S})


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The schema revision this software needs."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_alembic_config(None)).get_current_head())


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(None))
    return {rev.revision for rev in script.walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to this software's revision (under the chain lock on PostgreSQL)."""
    from alembic import command

    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK_KEY})
        command.upgrade(_alembic_config(connection), "head")


@dataclass(frozen=True)
class OpenedSession:
    """A session as written before the run: its row, the rules' verdict, refused or not."""

    session: TreatmentSession
    verdict: rules.NextSession
    outcome: SessionOutcome | None = None

    @property
    def refused(self) -> bool:
        """True when a course rule refused the session (its outcome is already recorded)."""
        return self.outcome is not None


class Store:
    """The record: open it (schema checked), write through audited inserts, read it back."""

    def __init__(self, url: str | None = None, *, create: bool = True,
                 now: Callable[[], datetime] | None = None) -> None:
        self.url = resolve_url(url)
        self.now = now or (lambda: datetime.now(UTC))
        where = display_url(self.url)
        try:
            missing = missing_sqlite_file(self.url)
            if missing is not None and not create:
                raise RecordsUnavailable(f"there is no records database at {where}")
            self.engine = make_engine(self.url, create_dirs=create)
            revision = current_revision(self.engine)
            if revision is None:
                tables = set(inspect(self.engine).get_table_names())
                if tables & set(Base.metadata.tables):
                    raise RecordsUnavailable(
                        f"the database at {where} has record tables but no schema revision: it "
                        f"was not created by ionto; use another database (--db URL)")
                if not create:
                    raise RecordsUnavailable(f"the database at {where} has no record yet")
                upgrade(self.engine)
            elif revision != head_revision():
                if revision in _known_revisions():
                    raise RecordsUnavailable(
                        f"the record at {where} has an old schema (revision {revision}; this "
                        f"version of ionto needs {head_revision()}): back it up, then run "
                        f"`ionto db upgrade --db URL`")
                raise RecordsUnavailable(
                    f"the record at {where} has schema revision {revision}, newer than this "
                    f"version of ionto knows ({head_revision()}): upgrade ionto on this station")
        except (OperationalError, DBAPIError) as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise RecordsUnavailable(
                f"cannot reach the records database at {where}: {reason}. Check --db URL or "
                f"{ENV_VAR}, and that the server is running") from None
        except RecordsUnavailable:
            raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def where(self) -> str:
        """The database URL for messages (password hidden)."""
        return display_url(self.url)

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions and the chain --------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction holding the chain lock from its first statement."""
        with self._sessions() as db, db.begin():
            if self.engine.dialect.name == "postgresql":
                db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK_KEY})
            yield db

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._sessions() as db, db.begin():
            yield db

    def _append(self, db: Session, who: str, row: Base, corrects_seq: int | None = None,
                action: str = "insert") -> AuditEntry:
        """Insert `row` and the chain entry that records it, after the current head."""
        db.add(row)
        db.flush()
        head = db.execute(select(AuditEntry.seq, AuditEntry.hash)
                          .order_by(AuditEntry.seq.desc()).limit(1)).first()
        seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS)
        at = self.now()
        table = row.__tablename__
        row_id = row.id  # type: ignore[attr-defined]
        payload = canonical(row_content(row))
        name = f"{table}.{action}"
        entry = AuditEntry(seq=seq, at=at, who=who, action=name, table_name=table,
                           row_id=row_id, payload=payload, corrects_seq=corrects_seq,
                           prev_hash=prev,
                           hash=entry_hash(prev, seq, iso(at), who, name, table, row_id,
                                           payload, corrects_seq))
        db.add(entry)
        db.flush()
        return entry

    def _entry_seq(self, db: Session, table: str, row_id: int) -> int | None:
        return db.scalar(select(AuditEntry.seq).where(AuditEntry.table_name == table,
                                                      AuditEntry.row_id == row_id))

    # -- subjects --------------------------------------------------------------------------

    def add_subject(self, code: str, who: str, note: str = "") -> Subject:
        """Add a subject under a pseudonymous code (letters, digits, . _ -; 1-64 chars)."""
        code = check_code(code)
        with self._write() as db:
            if db.scalar(select(Subject).where(Subject.code == code)) is not None:
                raise RecordValueError("subject", f"{code!r} already exists")
            subject = Subject(code=code, note=note, created_at=self.now(), created_by=who)
            self._append(db, who, subject)
            return subject

    def subjects(self) -> list[Subject]:
        """All subjects, by code."""
        with self._read() as db:
            return list(db.scalars(select(Subject).order_by(Subject.code)))

    def subject(self, code: str) -> Subject:
        """One subject by code; NotFound if unknown."""
        with self._read() as db:
            return self._subject(db, code)

    def _subject(self, db: Session, code: str) -> Subject:
        subject = db.scalar(select(Subject).where(Subject.code == code))
        if subject is None:
            raise NotFound("subject", f"unknown subject {code!r} (see `ionto subject list`)")
        return subject

    # -- courses ---------------------------------------------------------------------------

    def start_course(self, subject_code: str, drug: str, who: str, *,
                     trial_count: int = rules.TRIAL_COUNT_DEFAULT,
                     min_interval_days: int = rules.MIN_INTERVAL_DEFAULT_DAYS,
                     weekly_after_days: int = rules.WEEKLY_AFTER_DEFAULT_DAYS,
                     protocol_path: str | None = None,
                     settings: Mapping[str, Any] | None = None,
                     started_on: datetime | None = None, note: str = "") -> Course:
        """Start a course: subject, drug, protocol file or settings, and the plan."""
        drug_key = check_drug(drug)
        rules.check_range("trial-count", trial_count, rules.TRIAL_COUNT_RANGE)
        rules.check_range("min-interval", min_interval_days, rules.MIN_INTERVAL_RANGE_DAYS)
        rules.check_range("weekly-after", weekly_after_days, rules.WEEKLY_AFTER_RANGE_DAYS)
        now = self.now()
        started = rules.check_not_future("start", to_utc(started_on or now), now)
        protocol_sha = None
        if protocol_path:
            try:
                protocol_sha = file_sha256(protocol_path)
            except OSError as exc:
                raise RecordValueError("protocol", f"{protocol_path}: cannot be read "
                                       f"({exc.strerror or exc})") from None
            protocol_path = str(Path(protocol_path).resolve())
        with self._write() as db:
            subject = self._subject(db, subject_code)
            course = Course(subject_id=subject.id, drug=drug_key, protocol_path=protocol_path,
                            protocol_sha256=protocol_sha,
                            settings_json=canonical(dict(settings or {})),
                            trial_count=trial_count, min_interval_days=min_interval_days,
                            weekly_after_days=weekly_after_days, started_on=started,
                            created_at=now, created_by=who, note=note)
            self._append(db, who, course)
            return course

    def course(self, course_id: int | str) -> Course:
        """One course by ID; NotFound if unknown."""
        with self._read() as db:
            return self._course(db, course_id)

    def _course(self, db: Session, course_id: int | str) -> Course:
        try:
            key = int(str(course_id).strip())
        except ValueError:
            raise NotFound("course", f"course ID {course_id!r} is not a number "
                                     f"(see `ionto course list`)") from None
        course = db.get(Course, key)
        if course is None:
            raise NotFound("course", f"unknown course {course_id} (see `ionto course list`)")
        return course

    def courses(self, subject_code: str | None = None) -> list[Course]:
        """All courses, or one subject's, oldest first."""
        with self._read() as db:
            query = select(Course).order_by(Course.id)
            if subject_code is not None:
                query = query.where(Course.subject_id == self._subject(db, subject_code).id)
            return list(db.scalars(query))

    def subject_of(self, course: Course) -> Subject:
        """The subject of a course."""
        with self._read() as db:
            subject = db.get(Subject, course.subject_id)
            assert subject is not None
            return subject

    def review(self, course_id: int | str, decision: str, who: str, note: str = "", *,
               new_drug: str | None = None, decided_on: datetime | None = None,
               corrects: int | None = None) -> Review:
        """Record the specialist's review: continue, change medication (to a drug) or stop."""
        rules.check_choice("decision", decision, rules.DECISIONS)
        if decision == "change-medication":
            if not new_drug:
                raise RecordValueError("drug", "change-medication needs the new drug (--drug)")
            new_drug = check_drug(new_drug)
        elif new_drug:
            raise RecordValueError("drug", f"a new drug goes with change-medication, not "
                                           f"{decision}")
        now = self.now()
        decided = rules.check_not_future("date", to_utc(decided_on or now), now)
        with self._write() as db:
            course = self._course(db, course_id)
            corrects_seq = None
            if corrects is not None:
                old = db.get(Review, corrects)
                if old is None or old.course_id != course.id:
                    raise NotFound("corrects", f"review {corrects} is not a review of course "
                                               f"{course.id}")
                corrects_seq = self._entry_seq(db, "reviews", old.id)
            review = Review(course_id=course.id, decided_on=decided, recorded_at=now,
                            reviewer=who, decision=decision, new_drug=new_drug, note=note,
                            corrects_id=corrects)
            self._append(db, who, review, corrects_seq,
                         action="correct" if corrects is not None else "insert")
            return review

    # -- the rules --------------------------------------------------------------------------

    def plan_next(self, course_id: int | str, override_reason: str | None = None,
                  ) -> rules.NextSession:
        """The rules' verdict on the next session of the course, now."""
        with self._read() as db:
            return self._verdict(db, self._course(db, course_id), override_reason)

    def _verdict(self, db: Session, course: Course,
                 override_reason: str | None) -> rules.NextSession:
        sessions = list(db.scalars(select(TreatmentSession)
                                   .where(TreatmentSession.course_id == course.id)))
        outcomes = {o.session_id: o for o in db.scalars(
            select(SessionOutcome).join(TreatmentSession)
            .where(TreatmentSession.course_id == course.id))}
        burned = set(db.scalars(
            select(Observation.session_id).join(TreatmentSession)
            .where(TreatmentSession.course_id == course.id)
            .where(Observation.anode_burn.in_(rules.GRADES[1:])
                   | Observation.cathode_burn.in_(rules.GRADES[1:]))))
        past = [rules.PastSession(s.number, to_utc(s.started_at), s.drug,
                                  treated(s, outcomes.get(s.id)),
                                  s.id in burned and not is_simulated(s))
                for s in sessions]
        reviews = [rules.PastReview(to_utc(r.decided_on), r.decision, r.new_drug)
                   for r in db.scalars(select(Review).where(Review.course_id == course.id))]
        subject_sessions = db.execute(
            select(TreatmentSession, SessionOutcome).join(Course)
            .outerjoin(SessionOutcome, SessionOutcome.session_id == TreatmentSession.id)
            .where(Course.subject_id == course.subject_id)).all()
        earlier = {s.drug for s, o in subject_sessions if treated(s, o)}
        return rules.next_session(
            course_drug=course.drug, trial_count=course.trial_count,
            min_interval_days=course.min_interval_days,
            weekly_after_days=course.weekly_after_days, started_on=to_utc(course.started_on),
            sessions=past, reviews=reviews, earlier_drugs_of_subject=earlier,
            now=self.now(), override_reason=override_reason, course_id=course.id)

    # -- sessions -----------------------------------------------------------------------------

    def open_session(self, course_id: int | str, operator: str, *,
                     settings: Mapping[str, Any] | None = None,
                     screening: Mapping[str, bool] | None = None,
                     override_reason: str | None = None, station: str | None = None,
                     simulated: bool = False) -> OpenedSession:
        """Write the session before anything is energized; a refused one gets its outcome now.

        The rules are decided inside the same locked transaction, so two stations cannot both
        start a too-soon session of one course. A simulated session (no instrument, nothing
        real energized) is marked so in its settings and never counts as a treatment.
        """
        operator = check_who(operator)
        answers = dict(screening) if screening is not None else None
        with self._write() as db:
            course = self._course(db, course_id)
            verdict = self._verdict(db, course, override_reason)
            refusals = list(verdict.refusals)
            if answers is not None:
                result = evaluate_screening(answers)
                if result.refused:
                    refusals.append(rules.Refusal(
                        rules.SCREENING, result.reason,
                        "Discuss with the pain specialist; answer every question."))
            now = self.now()
            overridden = (override_reason and override_reason.strip()
                          and any(n.startswith("Minimum interval overridden") for n in
                                  verdict.notes))
            flag = verdict.no_drive and not refusals and not simulated
            session = TreatmentSession(
                course_id=course.id, number=verdict.number, started_at=now, operator=operator,
                station=station if station is not None else socket.gethostname(),
                drug=verdict.drug,
                settings_json=canonical({**dict(settings or {}),
                                         **({SIMULATED: True} if simulated else {})}),
                screening_json=canonical({"answers": answers} if answers is not None else {}),
                screening_date=now.astimezone().date().isoformat(),
                no_drive=flag,
                no_drive_reason=rules.no_drive_sentence(verdict.no_drive_reason) if flag else "",
                override_rule=rules.TOO_SOON if overridden else None,
                override_reason=override_reason.strip() if overridden else None)
            self._append(db, operator, session)
            outcome = None
            if refusals:
                outcome = SessionOutcome(
                    session_id=session.id, recorded_at=now, outcome="refused",
                    rule=refusals[0].rule, reason=" ".join(r.message for r in refusals),
                    planned_dose_mA_min=None, delivered_dose_mA_min=0.0, duration_s=0.0,
                    output_was_on=False)
                self._append(db, operator, outcome)
            verdict = rules.NextSession(verdict.number, verdict.drug, verdict.earliest,
                                        tuple(refusals), verdict.no_drive,
                                        verdict.no_drive_reason, verdict.notes)
            return OpenedSession(session, verdict, outcome)

    def record_outcome(self, session_id: int, summary: Mapping[str, Any],
                       who: str) -> SessionOutcome:
        """Record how a session ended from its run summary; the files are hashed now."""
        csv_path = summary.get("results_file")
        json_path = str(Path(csv_path).with_suffix(".json")) if csv_path else None
        hashes: dict[str, str | None] = {}
        for key, path in (("csv", csv_path), ("json", json_path)):
            try:
                hashes[key] = file_sha256(path) if path else None
            except OSError:
                hashes[key] = None
        with self._write() as db:
            session = db.get(TreatmentSession, session_id)
            if session is None:
                raise NotFound("session", f"unknown session {session_id}")
            if db.scalar(select(SessionOutcome)
                         .where(SessionOutcome.session_id == session_id)) is not None:
                raise RecordValueError("session", f"session {session_id} already has its "
                                                  f"outcome; corrections are observations")
            outcome = SessionOutcome(
                session_id=session_id, recorded_at=self.now(),
                outcome=str(summary.get("outcome") or "unknown"), rule=summary.get("rule"),
                reason=str(summary.get("reason") or ""),
                planned_dose_mA_min=_float_or_none(summary.get("planned_dose_mA_min")),
                delivered_dose_mA_min=float(summary.get("delivered_dose_mA_min") or 0.0),
                duration_s=float(summary.get("duration_s") or 0.0),
                output_was_on=bool(summary.get("output_was_on")
                                   or (summary.get("delivered_dose_mA_min") or 0) > 0),
                results_csv=str(Path(csv_path).resolve()) if hashes["csv"] else None,
                results_csv_sha256=hashes["csv"],
                summary_json=(str(Path(json_path).resolve())
                              if json_path and hashes["json"] else None),
                summary_json_sha256=hashes["json"])
            self._append(db, check_who(who), outcome)
            return outcome

    def sessions(self, course_id: int | str) -> list[tuple[TreatmentSession,
                                                            SessionOutcome | None]]:
        """A course's sessions with their outcomes (None while a run is going or was lost)."""
        with self._read() as db:
            course = self._course(db, course_id)
            return [tuple(row) for row in db.execute(  # type: ignore[misc]
                select(TreatmentSession, SessionOutcome)
                .outerjoin(SessionOutcome, SessionOutcome.session_id == TreatmentSession.id)
                .where(TreatmentSession.course_id == course.id)
                .order_by(TreatmentSession.number))]

    def session_by_number(self, course_id: int | str, number: int | None = None,
                          ) -> TreatmentSession:
        """A course's session by number (the latest when None); NotFound if there is none."""
        sessions = self.sessions(course_id)
        if not sessions:
            raise NotFound("session", f"course {course_id} has no session yet")
        if number is None:
            return sessions[-1][0]
        for session, _ in sessions:
            if session.number == number:
                return session
        raise NotFound("session", f"course {course_id} has no session {number} "
                                  f"(1-{sessions[-1][0].number})")

    # -- observations and reviews ---------------------------------------------------------

    def observe(self, session_id: int, phase: str, who: str, *, nrs: int | None = None,
                grades: Mapping[str, str | None] | None = None, note: str = "",
                observed_at: datetime | None = None, corrects: int | None = None,
                ) -> Observation:
        """Record a before/after/next-day form; `corrects` points to the observation it fixes."""
        rules.check_choice("phase", phase, rules.PHASES)
        if nrs is not None:
            rules.check_range("nrs", nrs, rules.NRS_RANGE)
        grades = dict(grades or {})
        for name, value in grades.items():
            if name not in rules.GRADED_FIELDS:
                raise RecordValueError(name, f"unknown item; valid: "
                                             f"{', '.join(rules.GRADED_FIELDS)}")
            rules.check_grade(name, value)
        now = self.now()
        observed = rules.check_not_future("date", to_utc(observed_at or now), now)
        with self._write() as db:
            session = db.get(TreatmentSession, session_id)
            if session is None:
                raise NotFound("session", f"unknown session {session_id}")
            corrects_seq = None
            if corrects is not None:
                old = db.get(Observation, corrects)
                if old is None or old.session_id != session_id:
                    raise NotFound("corrects", f"observation {corrects} is not an observation "
                                               f"of session {session.number}")
                corrects_seq = self._entry_seq(db, "observations", old.id)
            row = Observation(session_id=session_id, phase=phase, observed_at=observed,
                              recorded_at=now, recorded_by=check_who(who), nrs=nrs, note=note,
                              corrects_id=corrects,
                              **{name: grades.get(name) for name in rules.GRADED_FIELDS})
            self._append(db, who, row, corrects_seq,
                         action="correct" if corrects is not None else "insert")
            return row

    def observations(self, session_id: int, effective: bool = True) -> list[Observation]:
        """A session's observations, oldest first; `effective` drops corrected ones."""
        with self._read() as db:
            rows = list(db.scalars(select(Observation)
                                   .where(Observation.session_id == session_id)
                                   .order_by(Observation.id)))
        if effective:
            corrected = {r.corrects_id for r in rows if r.corrects_id is not None}
            rows = [r for r in rows if r.id not in corrected]
        return rows

    def reviews(self, course_id: int | str) -> list[Review]:
        """A course's reviews, oldest first."""
        with self._read() as db:
            course = self._course(db, course_id)
            return list(db.scalars(select(Review).where(Review.course_id == course.id)
                                   .order_by(Review.id)))

    # -- audit -----------------------------------------------------------------------------------

    def verify(self, check_files: bool = True) -> VerifyReport:
        """Verify the hash chain, every audited row and the results files."""
        with self._read() as db:
            return verify_chain(db, check_files)

    def audit_entries(self, limit: int = 50) -> list[AuditEntry]:
        """The latest audit entries, newest first."""
        with self._read() as db:
            return list(db.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())
                                   .limit(limit)))


def delivered(outcome: SessionOutcome | None) -> bool:
    """True when a session may have delivered current (no outcome yet counts: be careful)."""
    if outcome is None:
        return True
    return bool(outcome.output_was_on or outcome.delivered_dose_mA_min > 0)


#: The settings key that marks a session run on the simulator (hashed with the row).
SIMULATED = "simulated"


def is_simulated(session: TreatmentSession) -> bool:
    """True when the session ran on the simulator: nothing real was energized."""
    return bool(loads(session.settings_json or "{}").get(SIMULATED))


def treated(session: TreatmentSession, outcome: SessionOutcome | None) -> bool:
    """True when the session counts as a treatment: not simulated, and it may have delivered."""
    return not is_simulated(session) and delivered(outcome)


def to_utc(when: datetime) -> datetime:
    """Aware UTC (naive values, as SQLite returns them, are UTC)."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def check_code(code: str) -> str:
    """A pseudonymous subject code: 1-64 letters, digits, '.', '_' or '-'."""
    code = str(code).strip()
    if not 1 <= len(code) <= 64 or not all(c.isalnum() or c in "._-" for c in code):
        raise RecordValueError("subject", f"{code!r} is not a valid pseudonymous code "
                                          f"(1-64 letters, digits, '.', '_' or '-')")
    return code


def check_drug(name: str) -> str:
    """The drug library's key for a drug name; RecordValueError naming the choices."""
    try:
        return get_drug(name).key
    except ValueError as exc:
        raise RecordValueError("drug", str(exc)) from None


def check_who(who: str | None) -> str:
    """The operator's name (default: the login name), 1-128 characters."""
    who = (who or "").strip() or default_operator()
    if len(who) > 128:
        raise RecordValueError("operator", "at most 128 characters")
    return who


def default_operator() -> str:
    """The login name of whoever runs ionto."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def screening_all_no() -> dict[str, bool]:
    """The answers behind `--screening-confirmed`: every contraindication answered no."""
    return dict.fromkeys(CONTRAINDICATION_KEYS, False)


def loads(text_value: str) -> Any:
    """Parse a JSON column."""
    return json.loads(text_value) if text_value else {}
