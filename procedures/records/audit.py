"""The hash chain: canonical row content, entry hashes, and verification of the whole record.

Entry n's hash is SHA-256 over entry n-1's hash and entry n's own fields, so editing or
deleting any entry breaks every link after it; each audited row must equal the payload of
its one entry, so editing or deleting a row is named too. Results files are checked against
the SHA-256 stored when they were recorded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from .models import AUDITED, AuditEntry, Base, SessionOutcome

GENESIS = "0" * 64
CHUNK = 2000


def iso(when: datetime) -> str:
    """A timestamp as UTC ISO text with microseconds (naive values are UTC, as SQLite returns)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def row_content(row: Base) -> dict[str, Any]:
    """The row's columns as JSON-ready values (timestamps as UTC ISO text)."""
    content: dict[str, Any] = {}
    for column in inspect(type(row)).columns:
        value = getattr(row, column.key)
        content[column.key] = iso(value) if isinstance(value, datetime) else value
    return content


def canonical(data: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, so the same content always hashes the same."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def entry_hash(prev_hash: str, seq: int, at: str, who: str, action: str, table_name: str,
               row_id: int, payload: str, corrects_seq: int | None) -> str:
    """The hash of one entry, chained to the previous entry's hash."""
    body = canonical([seq, at, who, action, table_name, row_id, payload, corrects_seq])
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Problem:
    """One finding of `audit verify`: what kind, which entry or row, and a sentence."""

    kind: str
    where: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"kind": self.kind, "where": self.where, "message": self.message}


@dataclass
class VerifyReport:
    """The result of verifying the chain, the rows and the results files."""

    entries: int = 0
    rows: int = 0
    files_checked: int = 0
    head_hash: str = GENESIS
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "entries": self.entries, "rows": self.rows,
                "files_checked": self.files_checked, "head_hash": self.head_hash,
                "problems": [p.as_dict() for p in self.problems]}


def _content(mapping: Any) -> dict[str, Any]:
    """A row read with SQLAlchemy Core as JSON-ready values (as `row_content` for objects)."""
    return {key: iso(value) if isinstance(value, datetime) else value
            for key, value in mapping.items()}


def verify(db: Session, check_files: bool = True) -> VerifyReport:
    """Walk the chain in order, then match every audited row to its entry, then the files.

    Reads plain rows (SQLAlchemy Core) in chunks: 10,000 entries take about a second.
    """
    report = VerifyReport()
    prev_hash, expected_seq = GENESIS, 1
    inserted: dict[tuple[str, int], tuple[int, str]] = {}
    table = AuditEntry.__table__
    last_seq = 0
    while True:
        batch = db.execute(select(table).where(table.c.seq > last_seq)
                           .order_by(table.c.seq).limit(CHUNK)).mappings().all()
        if not batch:
            break
        for entry in batch:
            seq = entry["seq"]
            report.entries += 1
            where = f"audit entry {seq}"
            if seq != expected_seq:
                missing = (f"{expected_seq}" if seq == expected_seq + 1
                           else f"{expected_seq}-{seq - 1}")
                report.problems.append(Problem(
                    "deleted-entry", f"audit entry {missing}",
                    f"audit entry {missing} is missing (deleted): the chain jumps from "
                    f"{expected_seq - 1} to {seq}"))
            elif entry["prev_hash"] != prev_hash:
                report.problems.append(Problem(
                    "broken-link", where,
                    f"{where} does not point to the hash of entry {seq - 1}: an earlier "
                    f"entry was edited or replaced"))
            recomputed = entry_hash(entry["prev_hash"], seq, iso(entry["at"]), entry["who"],
                                    entry["action"], entry["table_name"], entry["row_id"],
                                    entry["payload"], entry["corrects_seq"])
            if recomputed != entry["hash"]:
                report.problems.append(Problem(
                    "edited-entry", where,
                    f"{where} ({entry['action']} {entry['table_name']} {entry['row_id']}) was "
                    f"edited: its content no longer matches its hash"))
            if entry["action"].endswith((".insert", ".correct")):
                inserted[(entry["table_name"], entry["row_id"])] = (seq, entry["payload"])
            prev_hash, expected_seq, last_seq = entry["hash"], seq + 1, seq
    report.head_hash = prev_hash
    _verify_rows(db, report, inserted)
    if check_files:
        _verify_files(db, report)
    return report


def _verify_rows(db: Session, report: VerifyReport,
                 inserted: dict[tuple[str, int], tuple[int, str]]) -> None:
    """Every audited row equals its entry's payload; every entry's row still exists."""
    for name, model in AUDITED.items():
        table = model.__table__
        seen: set[int] = set()
        last_id = 0
        while True:
            rows = db.execute(select(table).where(table.c.id > last_id).order_by(table.c.id)
                              .limit(CHUNK)).mappings().all()
            if not rows:
                break
            for row in rows:
                report.rows += 1
                row_id = last_id = row["id"]
                seen.add(row_id)
                where = f"{name} row {row_id}"
                found = inserted.get((name, row_id))
                if found is None:
                    report.problems.append(Problem(
                        "unrecorded-row", where,
                        f"{where} has no audit entry: it was added outside the record"))
                elif canonical(_content(row)) != found[1]:
                    report.problems.append(Problem(
                        "edited-row", where,
                        f"{where} was edited after audit entry {found[0]} recorded it"))
        for (entry_table, row_id), (seq, _) in inserted.items():
            if entry_table == name and row_id not in seen:
                report.problems.append(Problem(
                    "deleted-row", f"{name} row {row_id}",
                    f"{name} row {row_id} recorded by audit entry {seq} was deleted"))


def _verify_files(db: Session, report: VerifyReport) -> None:
    """Each referenced results file exists and still has its stored SHA-256."""
    for outcome in db.scalars(select(SessionOutcome).order_by(SessionOutcome.id)):
        for path, digest in ((outcome.results_csv, outcome.results_csv_sha256),
                             (outcome.summary_json, outcome.summary_json_sha256)):
            if not path or not digest:
                continue
            report.files_checked += 1
            where = f"session {outcome.session_id} file {path}"
            try:
                actual = file_sha256(path)
            except OSError as exc:
                report.problems.append(Problem(
                    "missing-file", where,
                    f"{where} cannot be read ({exc.strerror or exc})"))
                continue
            if actual != digest:
                report.problems.append(Problem(
                    "changed-file", where,
                    f"{where} changed since it was recorded (SHA-256 differs)"))
