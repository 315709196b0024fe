"""The record's tables (SQLAlchemy 2): subjects, courses, sessions, outcomes, observations,
reviews, and the append-only audit chain that covers every row of them.

Rows are only ever inserted. A correction is a new row pointing to the one it corrects
(`corrects_id`), and every insert has exactly one audit entry holding the row's content.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the record's tables."""


class Subject(Base):
    """A treated person under a pseudonymous code (no names)."""

    __tablename__ = "subjects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(128))


class Course(Base):
    """A course of treatments for one subject: drug, protocol and the plan of the trial."""

    __tablename__ = "courses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    drug: Mapped[str] = mapped_column(String(64))
    protocol_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    protocol_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    settings_json: Mapped[str] = mapped_column(Text, default="{}")
    trial_count: Mapped[int] = mapped_column(Integer)
    min_interval_days: Mapped[int] = mapped_column(Integer)
    weekly_after_days: Mapped[int] = mapped_column(Integer)
    started_on: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")


class TreatmentSession(Base):
    """One attempt at a treatment, written BEFORE anything is energized (refused ones too)."""

    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("course_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    operator: Mapped[str] = mapped_column(String(128))
    station: Mapped[str] = mapped_column(String(128), default="")
    drug: Mapped[str] = mapped_column(String(64))
    settings_json: Mapped[str] = mapped_column(Text, default="{}")
    screening_json: Mapped[str] = mapped_column(Text, default="{}")
    screening_date: Mapped[str] = mapped_column(String(10))
    no_drive: Mapped[bool] = mapped_column(Boolean, default=False)
    no_drive_reason: Mapped[str] = mapped_column(Text, default="")
    override_rule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    override_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class SessionOutcome(Base):
    """How a session ended, with the results files referenced by SHA-256."""

    __tablename__ = "session_outcomes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), unique=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    planned_dose_mA_min: Mapped[float | None] = mapped_column(Float, nullable=True)
    delivered_dose_mA_min: Mapped[float] = mapped_column(Float, default=0.0)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    output_was_on: Mapped[bool] = mapped_column(Boolean, default=False)
    results_csv: Mapped[str | None] = mapped_column(Text, nullable=True)
    results_csv_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    summary_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary_json_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Observation(Base):
    """The before/after form of a session (or next-day items reported later)."""

    __tablename__ = "observations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    phase: Mapped[str] = mapped_column(String(16))
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(String(128))
    nrs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    anode_redness: Mapped[str | None] = mapped_column(String(16), nullable=True)
    anode_burn: Mapped[str | None] = mapped_column(String(16), nullable=True)
    cathode_redness: Mapped[str | None] = mapped_column(String(16), nullable=True)
    cathode_burn: Mapped[str | None] = mapped_column(String(16), nullable=True)
    fatigue: Mapped[str | None] = mapped_column(String(16), nullable=True)
    dizziness: Mapped[str | None] = mapped_column(String(16), nullable=True)
    dry_mouth_nose: Mapped[str | None] = mapped_column(String(16), nullable=True)
    uneasy_feeling: Mapped[str | None] = mapped_column(String(16), nullable=True)
    dark_urine: Mapped[str | None] = mapped_column(String(16), nullable=True)
    constipation: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("observations.id"),
                                                    nullable=True)


class Review(Base):
    """The pain specialist's decision on a course: continue, change medication or stop."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    decided_on: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reviewer: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(32))
    new_drug: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id"), nullable=True)


class AuditEntry(Base):
    """One link of the hash chain: who, when, what, the previous entry's hash and its own."""

    __tablename__ = "audit_entries"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    who: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    table_name: Mapped[str] = mapped_column(String(64))
    row_id: Mapped[int] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)
    corrects_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


#: Every audited table, by table name.
AUDITED: dict[str, type[Base]] = {
    m.__tablename__: m
    for m in (Subject, Course, TreatmentSession, SessionOutcome, Observation, Review)
}
