"""Without PostgreSQL the record's PostgreSQL tests skip on a developer's machine but FAIL in
CI (CI=true): CI must never pass by skipping them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("ci, expected", [("true", "1 error"), ("", "1 skipped")])
def test_no_postgresql_fails_in_ci_and_skips_elsewhere(tmp_path, ci: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("IONTO_TEST_POSTGRES_URL", "CI", "PYTEST_ADDOPTS")}
    env.update(CI=ci, IONTO_TEST_POSTGRES_BINDIR=str(tmp_path / "no-postgresql"))
    test = "test_records_store.py::test_unknown_schema_revision_says_upgrade_ionto[postgresql]"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(HERE / test)], cwd=HERE.parents[1], env=env, text=True,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert expected in proc.stdout, proc.stdout[-2000:]
    assert (proc.returncode != 0) == bool(ci)
    if ci:
        assert "CI must test the record on PostgreSQL" in proc.stdout
