"""The leaflet's contraindications as data, and the screening that refuses a treatment.

Every question must be answered with a real True/False before a run; any "yes", any missing
answer, any answer that is not a bool and any unknown key refuses, with a sentence saying
which. The keys are stable: command-line flags, files and summaries use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Contraindication:
    """One contraindication: stable key, short label, the yes/no question, why it matters."""

    key: str
    label: str
    question: str
    rationale: str


#: The leaflet's list (Amstelland Hospital, Pain Medicine), in the leaflet's order.
CONTRAINDICATIONS: tuple[Contraindication, ...] = (
    Contraindication(
        "pregnancy", "a (possible) pregnancy",
        "Is the patient pregnant, or could she be pregnant?",
        "The drugs used are potentially harmful to the unborn child."),
    Contraindication(
        "hypersensitivity", "hypersensitivity to one of the drugs",
        "Is the patient hypersensitive to the anaesthetic (Marcaine), dexamethasone, "
        "clonidine (Catapresan) or ketamine?",
        "These are the drugs delivered by the treatment."),
    Contraindication(
        "adrenal-tumour", "an adrenal tumour",
        "Does the patient have an adrenal tumour?",
        "Listed by the leaflet as a contraindication."),
    Contraindication(
        "hypertensive-heart", "heart complaints from high blood pressure",
        "Does the patient have heart complaints due to high blood pressure?",
        "Listed by the leaflet as a contraindication."),
    Contraindication(
        "heart-rhythm", "a heart rhythm disorder",
        "Does the patient have a heart rhythm disorder?",
        "Listed by the leaflet as a contraindication."),
    Contraindication(
        "pacemaker", "a pacemaker",
        "Does the patient have a pacemaker?",
        "Listed by the leaflet as a contraindication; current flows through the body."),
)

CONTRAINDICATION_KEYS: tuple[str, ...] = tuple(c.key for c in CONTRAINDICATIONS)
_BY_KEY = {c.key: c for c in CONTRAINDICATIONS}


@dataclass(frozen=True)
class ScreeningResult:
    """The outcome of screening: passed or not, one sentence, the keys behind a refusal."""

    passed: bool
    reason: str
    positive: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        """True when the treatment must not start."""
        return not self.passed


def _join(items: list[str]) -> str:
    """Join phrases as "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def evaluate_screening(answers: Mapping[str, bool]) -> ScreeningResult:
    """Screen the answers (key -> True when the contraindication applies) before a treatment."""
    positive = tuple(k for k in CONTRAINDICATION_KEYS if answers.get(k) is True)
    missing = tuple(k for k in CONTRAINDICATION_KEYS if answers.get(k) is None)
    invalid = tuple(k for k in CONTRAINDICATION_KEYS
                    if k in answers and answers[k] is not None
                    and not isinstance(answers[k], bool))
    unknown = tuple(sorted(str(k) for k in answers if k not in _BY_KEY))
    parts: list[str] = []
    if positive:
        parts.append(f"Treatment refused: the patient reported "
                     f"{_join([_BY_KEY[k].label for k in positive])}. Discuss with the pain "
                     f"specialist before treating.")
    if missing:
        parts.append(f"Screening incomplete: no answer for {_join(list(missing))}.")
    if invalid:
        parts.append(f"Screening invalid: the answer for {_join(list(invalid))} is not yes or "
                     f"no.")
    if unknown:
        parts.append(f"Screening invalid: unknown question {_join(list(unknown))} (valid: "
                     f"{', '.join(CONTRAINDICATION_KEYS)}).")
    if parts:
        return ScreeningResult(False, " ".join(parts), positive, missing, invalid, unknown)
    return ScreeningResult(True, f"Screening passed: no contraindications reported "
                                 f"({len(CONTRAINDICATIONS)} questions answered no).")


__all__ = [
    "CONTRAINDICATIONS",
    "CONTRAINDICATION_KEYS",
    "Contraindication",
    "ScreeningResult",
    "evaluate_screening",
]
