"""`ionto run`'s exit codes say the same in its help and in the README, every cause included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from procedures import cli

README = Path(__file__).resolve().parent.parent / "README.md"

#: Causes that lead `ionto run` to each code, owned by different parts (guard, records).
CAUSES = {
    cli.EXIT_SAFETY: ("burn-risk", "contact check", "course rule"),
    cli.EXIT_INSTRUMENT: ("instrument fault", "storage fault", "guard", "records database"),
}


def _readme_row(code: int) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Scripted runs"):text.index("### From Python")]
    match = re.search(rf"^\| {code} \| (.+) \|$", section, re.MULTILINE)
    assert match, f"README: no row for exit code {code}"
    return match.group(1)


@pytest.mark.parametrize("code", sorted(CAUSES))
def test_help_and_readme_name_every_cause_of_an_exit_code(code):
    for cause in CAUSES[code]:
        assert cause in cli.EXIT_CODES[code], (code, cause, "help")
        assert cause in _readme_row(code), (code, cause, "README")
