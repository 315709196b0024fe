"""Without PostgreSQL the record's PostgreSQL tests FAIL, in CI and on a developer's machine
alike: the suite must never pass by skipping them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("ci", ["true", ""])
def test_no_postgresql_fails_in_ci_and_elsewhere(tmp_path, ci: str) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("IONTO_TEST_POSTGRES_URL", "CI", "PYTEST_ADDOPTS")}
    env.update(CI=ci, IONTO_TEST_POSTGRES_BINDIR=str(tmp_path / "no-postgresql"))
    test = "test_records_store.py::test_unknown_schema_revision_says_upgrade_ionto[postgresql]"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(HERE / test)], cwd=HERE.parents[1], env=env, text=True,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "1 error" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]
    assert proc.returncode != 0
    assert "The record must be tested on PostgreSQL" in proc.stdout


def test_a_machine_with_only_python_finds_the_pgserver_wheels_binaries(monkeypatch) -> None:
    """No PostgreSQL on PATH nor in Debian's layout: the test extras' wheel is the server."""
    from . import pgserver

    monkeypatch.delenv(pgserver.BINDIR_VAR, raising=False)
    monkeypatch.setattr(pgserver.shutil, "which", lambda name: None)
    monkeypatch.setattr(pgserver.glob, "glob", lambda pattern: [])
    found = pgserver.find_bindir()
    assert found is not None and found.parts[-3:] == ("pgserver", "pginstall", "bin")
    version = subprocess.run([str(found / "postgres"), "--version"], capture_output=True,
                             text=True, timeout=30, check=True)
    assert "PostgreSQL" in version.stdout
