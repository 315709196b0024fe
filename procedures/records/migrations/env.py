"""Alembic environment: migrations run programmatically on the connection the store passes."""

from __future__ import annotations

from alembic import context

from ionto_instruments.procedures.records.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the store always passes its connection
    raise RuntimeError("run the record's migrations through ionto (ionto db upgrade)")
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
