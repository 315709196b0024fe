"""Treatment courses and their records: subjects, courses, sessions, observations, reviews,
and an append-only hash-chained audit trail (SQLAlchemy 2 + Alembic; SQLite or PostgreSQL).

Names load lazily so that `ionto` starts without importing SQLAlchemy until a record is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Store": "store", "NotFound": "store", "OpenedSession": "store",
    "RecordsUnavailable": "store", "resolve_url": "store", "VerifyReport": "audit",
    "NO_DRIVE_TEXT": "rules", "NextSession": "rules", "RecordValueError": "rules",
    "Refusal": "rules",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
