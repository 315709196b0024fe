"""The sleep inhibitor: held while the output is on where the OS allows, a warning elsewhere."""

from __future__ import annotations

import logging
import os
import stat
import sys

import pytest

from ionto_instruments.procedures.keepawake import SleepInhibitor

pytestmark = pytest.mark.skipif(sys.platform in ("win32", "darwin"),
                                reason="these fakes stand in for Linux's systemd-inhibit")


def fake_helper(tmp_path, monkeypatch, body: str) -> None:
    script = tmp_path / "systemd-inhibit"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_held_while_on_and_released_at_the_end(tmp_path, monkeypatch):
    fake_helper(tmp_path, monkeypatch, 'echo "$@" > "$(dirname "$0")/args"; exec sleep 30')
    inhibitor = SleepInhibitor()
    state = inhibitor.acquire()
    assert state.held and state.method == "systemd-inhibit" and not state.warning
    process = inhibitor._process
    assert process is not None and process.poll() is None  # the lock is held by the helper
    assert "--what=sleep:idle" in (tmp_path / "args").read_text()
    final = inhibitor.release()
    assert final.released_at is not None and process.poll() is not None


def test_no_logind_is_a_warning_not_a_failure(tmp_path, monkeypatch, caplog):
    fake_helper(tmp_path, monkeypatch,
                'echo "Failed to connect to bus: No such file or directory" >&2; exit 1')
    with caplog.at_level(logging.WARNING):
        state = SleepInhibitor().acquire()
    assert not state.held and "Failed to connect to bus" in state.warning
    assert "SLEEP NOT INHIBITED" in caplog.text


def test_missing_tool_is_a_warning(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    state = SleepInhibitor().acquire()
    assert not state.held and "not installed" in state.warning
