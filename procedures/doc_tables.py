"""The README's tables of limits, parameters and rules, generated from `ionto_instruments.limits`.

`tests/test_limits.py` fails when the README differs; rewrite it with
``python -m ionto_instruments.procedures.doc_tables README.md``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ionto_instruments import limits as L
from ionto_instruments.limits import Range

from .safety import RULE_NAMES, describe_rule

_BLOCK = re.compile(r"(<!-- BEGIN generated: (?P<name>[a-z-]+) -->\n)(.*?)(<!-- END generated -->)",
                    re.DOTALL)


def _range_row(label: str, limit: Range, default: str | None = None, note: str = "") -> str:
    unit = f" {limit.unit}" if limit.unit else ""
    shown = default if default is not None else f"{limit.default:g}{unit}"
    allowed = f"{limit.minimum:g}–{limit.maximum:g}{unit}"
    return f"| {label} | {shown} | {allowed}{f' ({note})' if note else ''} |"


def parameters_markdown() -> str:
    """The README's parameter table: default and allowed range of every setting."""
    from .drugs import DRUGS
    from .iontophoresis import SUBJECT_KINDS

    ramp = L.RAMP
    rows = [
        "| parameter | default | allowed |",
        "|---|---|---|",
        _range_row("target current", L.TARGET_CURRENT, note="magnitude; the drug sets the sign"),
        _range_row("ramp-up / ramp-down", ramp,
                   default=f"{ramp.default:g} {ramp.unit} / {ramp.default:g} {ramp.unit}"),
        _range_row("treatment time (ramps included)", L.TREATMENT_TIME,
                   note="the maximum when dose-controlled"),
        _range_row("dose target (optional)", L.DOSE_TARGET, default="off",
                   note="the hold ends when the *measured* dose reaches it"),
        _range_row("electrode area", L.ELECTRODE_AREA),
        _range_row("maximum current density", L.MAX_DENSITY_SETTING),
        _range_row("compliance voltage", L.COMPLIANCE_VOLTAGE),
        _range_row("sample interval", L.SAMPLE_INTERVAL),
        f"| drug | none (saline) | {', '.join(DRUGS)} |",
        "| subject | phantom | "
        + ", ".join(f"{k} (needs confirmed screening)" if k == "human" else k
                    for k in SUBJECT_KINDS) + " |",
    ]
    return "\n".join(rows)


def rules_markdown() -> str:
    """The README's rule table: each rule's trip condition with the table's values."""
    rows = ["| rule | trips when (defaults from `ionto_instruments.limits`, all in "
            "`SafetyConfig`) |", "|---|---|"]
    for name in RULE_NAMES:
        label = f"`{name}` (warning)" if name == "near-compliance" else f"`{name}`"
        rows.append(f"| {label} | {describe_rule(name)} |")
    rows.append("| `emergency-stop` | the operator's emergency stop (not a burn-risk rule; "
                "outcome `aborted`) |")
    rows.append("| `pre-flight` | parameters refused before anything was energized "
                "(outcome `refused`) |")
    rows.append("| `storage-fault` | a results write or fsync failed, or the results file or its "
                "folder vanished: ramp down (still monitored), then off; outcome `fault`, "
                "exit 4 |")
    return "\n".join(rows)


GENERATORS = {"limits": L.markdown_table, "parameters": parameters_markdown,
              "rules": rules_markdown}


def render(text: str) -> str:
    """Return `text` with every generated block replaced by its current content."""

    def fill(match: re.Match[str]) -> str:
        body = GENERATORS[match.group("name")]()
        return f"{match.group(1)}{body}\n{match.group(4)}"

    return _BLOCK.sub(fill, text)


def blocks(text: str) -> dict[str, str]:
    """The generated blocks found in `text`: {name: content}."""
    return {m.group("name"): m.group(3) for m in _BLOCK.finditer(text)}


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated blocks of the files named on the command line."""
    for name in (argv if argv is not None else sys.argv[1:]):
        path = Path(name)
        path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
