"""Every bad input in docs/bad-inputs.md exits 2 with one line and no traceback; the edge
inputs that are not errors behave as documented there."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ionto_instruments.procedures import cli

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "bad-inputs.md"
IONTO = [sys.executable, "-m", "ionto_instruments.procedures.cli"]


def documented_rows() -> list[tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- BEGIN bad inputs -->", 1)[1].split("<!-- END bad inputs -->")[0]
    return re.findall(r"^\| `(.+?)` \| `(.+?)` \|$", block, re.M)


ROWS = documented_rows()


def test_the_list_is_long_enough_to_mean_something():
    assert len(ROWS) >= 30


@pytest.fixture
def placeholders(tmp_path: Path) -> dict[str, str]:
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000)
    bom_bad = tmp_path / "bom_bad.toml"
    bom_bad.write_bytes(b"\xef\xbb\xbf[protocol]\ncurrent_mA = \n")
    regular = tmp_path / "plain-file"
    regular.write_text("x")
    nonutf8 = tmp_path / "latin1.toml"
    nonutf8.write_bytes("[subject]\nnote = \"Fu\xdf\"\n".encode("latin-1"))
    unknown = tmp_path / "typo.toml"
    unknown.write_text("[protocol]\ncurent_mA = 2\n")
    return {"fifo": str(fifo), "deep": str(deep), "bom_bad": str(bom_bad),
            "file": str(regular), "nonutf8": str(nonutf8), "unknown_key": str(unknown)}


@pytest.mark.parametrize("arguments, excerpt", ROWS, ids=[a for a, _ in ROWS])
def test_each_documented_bad_input_exits_2_with_one_line(arguments, excerpt, placeholders,
                                                         tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["run", *(part.format(**placeholders) for part in shlex.split(arguments))]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "out")]
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert excerpt in lines[0], err
    assert "Traceback" not in err
    assert not list((tmp_path / "out").glob("*.csv")) if (tmp_path / "out").exists() else True


def test_the_gui_refuses_an_empty_scenario_before_loading_qt(capsys):
    assert cli.main(["gui", "--sim", ""]) == 2
    assert "--sim is empty" in capsys.readouterr().err


def test_a_valid_protocol_file_with_a_utf8_bom_runs(tmp_path):
    protocol = tmp_path / "bom.toml"
    protocol.write_bytes(b"\xef\xbb\xbf[protocol]\ncurrent_mA = 1.0\nduration_min = 1\n")
    proc = subprocess.run([*IONTO, "run", str(protocol), "--fast", "--json", "--output", "o"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["outcome"] == "completed" and summary["target_current_mA"] == 1.0


@pytest.mark.parametrize("how", ["closed", "broken-pipe"])
def test_a_closed_stdout_does_not_change_the_exit_code(tmp_path, how):
    command = [*IONTO, "run", "--fast", "--duration", "1", "--json", "--output", "o"]
    if how == "closed":
        proc = subprocess.run(" ".join(map(shlex.quote, command)) + " >&-", shell=True,
                              cwd=tmp_path, capture_output=False, stderr=subprocess.PIPE,
                              text=True, timeout=120)
        err = proc.stderr
    else:
        read, write = os.pipe()
        os.close(read)  # nobody will ever read the JSON
        proc = subprocess.run(command, cwd=tmp_path, stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=120)
        os.close(write)
        err = proc.stderr
    assert proc.returncode == 0, err
    assert "Outcome:   completed" in err and "Traceback" not in err
    assert list((tmp_path / "o").glob("*.json"))


def test_disconnect_at_minute_0_injects_a_lost_session(tmp_path, capsys):
    code = cli.main(["run", "--sim", "disconnect@0", "--fast", "--json", "--output",
                     str(tmp_path)])
    summary = json.loads(capsys.readouterr().out)
    assert code == 4
    assert (summary["outcome"], summary["rule"]) == ("fault", "instrument-fault")
    assert "CONN_LOST" in summary["reason"] and summary["output_was_on"] is False
