"""docs/hazards.md names every rule and only tests that exist (IEC 62304-style traceability)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ionto_instruments.procedures.contracts import EMERGENCY_STOP, PRE_FLIGHT
from ionto_instruments.procedures.doc_tables import rules_markdown
from ionto_instruments.procedures.safety import RULE_NAMES

ROOT = Path(__file__).resolve().parent.parent
HAZARDS = ROOT / "docs" / "hazards.md"
TEST_REF = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def _rows() -> list[str]:
    return [line for line in HAZARDS.read_text(encoding="utf-8").splitlines()
            if re.match(r"\| H-\d+ \|", line)]


def test_every_rule_has_a_hazard_row():
    text = "\n".join(_rows())
    in_readme = re.findall(r"^\| `([a-z-]+)`", rules_markdown(), re.MULTILINE)
    assert set(RULE_NAMES) <= set(in_readme)
    for name in {*RULE_NAMES, EMERGENCY_STOP, PRE_FLIGHT, *in_readme}:
        assert f"`{name}`" in text, f"rule {name!r} is not in docs/hazards.md"


def test_every_named_test_exists():
    refs = TEST_REF.findall("\n".join(_rows()))
    assert len(refs) > 20
    functions: dict[str, set[str]] = {}
    for path, name in refs:
        if path not in functions:
            tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
            functions[path] = {node.name for node in ast.walk(tree)
                               if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
        assert name in functions[path], f"{path}::{name} named in docs/hazards.md does not exist"


def test_every_row_has_an_id_a_control_and_a_test():
    ids = []
    for row in _rows():
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 5, row
        ids.append(cells[0])
        assert cells[3] and TEST_REF.search(cells[4]), row
    assert len(ids) == len(set(ids)), "hazard ids must be unique"
