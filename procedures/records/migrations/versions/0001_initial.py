"""The first schema: subjects, courses, sessions, outcomes, observations, reviews, audit chain.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Every table refuses UPDATE and DELETE at the database (triggers), so the record is
append-only for every client, not only for ionto; `ionto audit verify` still detects an edit
made by someone who drops the triggers first.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
GRADE = sa.String(16)
TABLES = ("subjects", "courses", "sessions", "session_outcomes", "observations", "reviews",
          "audit_entries")


def upgrade() -> None:
    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "courses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subject_id", sa.Integer, sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("drug", sa.String(64), nullable=False),
        sa.Column("protocol_path", sa.Text),
        sa.Column("protocol_sha256", sa.String(64)),
        sa.Column("settings_json", sa.Text, nullable=False),
        sa.Column("trial_count", sa.Integer, nullable=False),
        sa.Column("min_interval_days", sa.Integer, nullable=False),
        sa.Column("weekly_after_days", sa.Integer, nullable=False),
        sa.Column("started_on", TZ, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("course_id", sa.Integer, sa.ForeignKey("courses.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("operator", sa.String(128), nullable=False),
        sa.Column("station", sa.String(128), nullable=False),
        sa.Column("drug", sa.String(64), nullable=False),
        sa.Column("settings_json", sa.Text, nullable=False),
        sa.Column("screening_json", sa.Text, nullable=False),
        sa.Column("screening_date", sa.String(10), nullable=False),
        sa.Column("no_drive", sa.Boolean, nullable=False),
        sa.Column("no_drive_reason", sa.Text, nullable=False),
        sa.Column("override_rule", sa.String(64)),
        sa.Column("override_reason", sa.Text),
        sa.UniqueConstraint("course_id", "number"),
    )
    op.create_table(
        "session_outcomes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id"), nullable=False,
                  unique=True),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(64)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("planned_dose_mA_min", sa.Float),
        sa.Column("delivered_dose_mA_min", sa.Float, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("output_was_on", sa.Boolean, nullable=False),
        sa.Column("results_csv", sa.Text),
        sa.Column("results_csv_sha256", sa.String(64)),
        sa.Column("summary_json", sa.Text),
        sa.Column("summary_json_sha256", sa.String(64)),
    )
    op.create_table(
        "observations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("observed_at", TZ, nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.Column("nrs", sa.Integer),
        *(sa.Column(name, GRADE) for name in (
            "anode_redness", "anode_burn", "cathode_redness", "cathode_burn", "fatigue",
            "dizziness", "dry_mouth_nose", "uneasy_feeling", "dark_urine", "constipation")),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("corrects_id", sa.Integer, sa.ForeignKey("observations.id")),
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("course_id", sa.Integer, sa.ForeignKey("courses.id"), nullable=False),
        sa.Column("decided_on", TZ, nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("new_drug", sa.String(64)),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("corrects_id", sa.Integer, sa.ForeignKey("reviews.id")),
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("who", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("table_name", sa.String(64), nullable=False),
        sa.Column("row_id", sa.Integer, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("corrects_seq", sa.Integer),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
    )
    op.create_index("ix_audit_row", "audit_entries", ["table_name", "row_id"])
    op.create_index("ix_sessions_course", "sessions", ["course_id"])
    op.create_index("ix_observations_session", "observations", ["session_id"])
    _append_only()


def _append_only() -> None:
    """Refuse UPDATE and DELETE on every table, in the database itself."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION ionto_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'the ionto record is append-only: % on % refused',
                    TG_OP, TG_TABLE_NAME;
            END $$ LANGUAGE plpgsql""")
        for table in TABLES:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION ionto_append_only()")
    else:
        for table in TABLES:
            for verb in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, 'the ionto record is append-only: "
                           f"{verb} on {table} refused'); END")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ionto_append_only()")
