"""Fixtures of the record's tests: a SQLite file per test, and a fresh database per test on a
real PostgreSQL server (the one .ci/run started, else a throwaway one started here).

The binaries come from the machine or from the `pgserver` wheel of the test extras. Without
any, and without IONTO_TEST_POSTGRES_URL, the PostgreSQL tests fail: they never skip.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from . import pgserver

_counter = itertools.count(1)


class FakeNow:
    """A settable 'now' for the course rules (days pass at once)."""

    def __init__(self) -> None:
        self.value = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.value

    def advance(self, days: float = 0, hours: float = 0) -> None:
        self.value += timedelta(days=days, hours=hours)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """The URL of a PostgreSQL server's maintenance database."""
    url = os.environ.get(pgserver.URL_VAR)
    if url:
        yield url
        return
    if pgserver.find_bindir() is None:
        pytest.fail(f"The record must be tested on PostgreSQL, which is not available: set "
                    f"{pgserver.URL_VAR}, or install the test extras (the pgserver wheel) or "
                    f"the PostgreSQL server binaries (initdb, pg_ctl)")
    url, root = pgserver.start()
    try:
        yield url
    finally:
        pgserver.stop(root)


def _database_url(admin_url: str, name: str) -> str:
    base, _, query = admin_url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> Iterator[str]:
    """A database with the record's schema, copied for each test (faster than migrating)."""
    import psycopg
    from psycopg import sql

    from ionto_instruments.procedures.records import Store

    name = f"ionto_template_{os.getpid()}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    Store(_database_url(pg_admin_url, name)).close()
    yield name
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                      .format(sql.Identifier(name)))


@pytest.fixture
def pg_url(pg_admin_url: str, pg_template: str) -> Iterator[str]:
    """A fresh database with the current schema on the PostgreSQL server, dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"ionto_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}")
                      .format(sql.Identifier(name), sql.Identifier(pg_template)))
    yield _database_url(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                      .format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Each test that takes it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.sqlite3'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def now() -> FakeNow:
    return FakeNow()


@pytest.fixture
def store(db_url: str, now: FakeNow):
    from ionto_instruments.procedures.records import Store

    with Store(db_url, now=now) as opened:
        yield opened


@pytest.fixture(autouse=True)
def _no_user_records(monkeypatch, tmp_path) -> None:
    """Never touch the user's real record: the default database lives in tmp_path."""
    monkeypatch.setenv("IONTO_DB", f"sqlite:///{tmp_path / 'default.sqlite3'}")
