"""The drug library (polarity = sign of the current) and the contraindication screening."""

from __future__ import annotations

import dataclasses

import pytest

from ionto_instruments.procedures.drugs import ANODE, CATHODE, DRUGS, Drug, get_drug
from ionto_instruments.procedures.screening import (
    CONTRAINDICATION_KEYS,
    CONTRAINDICATIONS,
    Contraindication,
    evaluate_screening,
)

# -- drugs -----------------------------------------------------------------------------------


def test_library_holds_the_leaflet_drugs_the_reference_and_none() -> None:
    assert set(DRUGS) == {"bupivacaine", "dexamethasone", "clonidine", "ketamine",
                          "lidocaine", "none"}
    assert all(key == drug.key for key, drug in DRUGS.items())


@pytest.mark.parametrize(("key", "charge", "electrode", "polarity"), [
    ("bupivacaine", +1, ANODE, +1),
    ("dexamethasone", -1, CATHODE, -1),     # an anion: "must be delivered from the cathode"
    ("clonidine", +1, ANODE, +1),
    ("ketamine", +1, ANODE, +1),
    ("lidocaine", +1, ANODE, +1),
    ("none", 0, ANODE, +1),                 # saline from the anode, by convention
])
def test_polarity_follows_the_charge(key: str, charge: int, electrode: str,
                                     polarity: int) -> None:
    drug = DRUGS[key]
    assert (drug.charge, drug.active_electrode, drug.polarity) == (charge, electrode, polarity)
    assert drug.setpoint_mA(2.0) == pytest.approx(2.0 * polarity)
    assert drug.setpoint_mA(-2.0) == pytest.approx(2.0 * polarity)


def test_dexamethasone_is_the_only_negative_current() -> None:
    assert [d.key for d in DRUGS.values() if d.polarity < 0] == ["dexamethasone"]
    assert "negative" in DRUGS["dexamethasone"].terminal_hint
    assert "positive" in DRUGS["bupivacaine"].terminal_hint


def test_every_drug_has_a_one_line_hint_and_evidence() -> None:
    for drug in DRUGS.values():
        assert drug.terminal_hint.startswith("Drug electrode on HI (red), return on LO (black)")
        assert "\n" not in drug.terminal_hint and len(drug.terminal_hint) <= 100
        assert drug.evidence and "\n" not in drug.evidence
    assert "inferred" in DRUGS["clonidine"].evidence
    assert "inferred" in DRUGS["ketamine"].evidence
    assert "inferred" not in DRUGS["dexamethasone"].evidence
    assert "cathode" in DRUGS["dexamethasone"].evidence
    assert "convention" in DRUGS["none"].evidence


@pytest.mark.parametrize(("spelling", "key"), [
    ("bupivacaine", "bupivacaine"), ("Marcaine", "bupivacaine"), ("MARCAINE", "bupivacaine"),
    ("Decadron", "dexamethasone"), ("dexamethasone sodium phosphate", "dexamethasone"),
    ("  Dexamethasone ", "dexamethasone"), ("catapresan", "clonidine"),
    ("Ketamine", "ketamine"), ("Lidocaine", "lidocaine"),
    ("saline", "none"), ("Saline", "none"), ("none", "none"), ("no drug", "none"),
])
def test_get_drug_accepts_keys_names_brands_and_saline(spelling: str, key: str) -> None:
    assert get_drug(spelling) is DRUGS[key]


@pytest.mark.parametrize("spelling", ["aspirin", "", "bupi", "marcain"])
def test_unknown_drug_lists_the_valid_keys(spelling: str) -> None:
    with pytest.raises(ValueError) as info:
        get_drug(spelling)
    for key in DRUGS:
        assert key in str(info.value)


def test_drug_is_frozen_and_validates_its_polarity() -> None:
    drug = DRUGS["bupivacaine"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        drug.polarity = -1  # type: ignore[misc]
    with pytest.raises(ValueError):
        dataclasses.replace(drug, polarity=-1)              # a cation from the cathode
    with pytest.raises(ValueError):
        Drug("x", "x", "", +1, CATHODE, +1, "hint", "evidence")


def test_labels_show_the_brand() -> None:
    assert DRUGS["bupivacaine"].label == "bupivacaine (Marcaine)"
    assert DRUGS["ketamine"].label == "ketamine"


# -- screening -------------------------------------------------------------------------------


def all_no() -> dict[str, bool]:
    return {key: False for key in CONTRAINDICATION_KEYS}


def test_contraindications_are_the_leaflet_list_with_stable_keys() -> None:
    assert CONTRAINDICATION_KEYS == ("pregnancy", "hypersensitivity", "adrenal-tumour",
                                     "hypertensive-heart", "heart-rhythm", "pacemaker")
    text = " ".join(c.question for c in CONTRAINDICATIONS).lower()
    for word in ("pregnant", "marcaine", "dexamethasone", "clonidine", "ketamine", "adrenal",
                 "high blood pressure", "rhythm", "pacemaker"):
        assert word in text
    assert all(c.question.endswith("?") for c in CONTRAINDICATIONS)


def test_all_no_passes() -> None:
    result = evaluate_screening(all_no())
    assert result.passed and not result.refused
    assert result.positive == result.missing == ()


@pytest.mark.parametrize("contraindication", CONTRAINDICATIONS, ids=lambda c: c.key)
def test_any_yes_refuses_naming_it(contraindication: Contraindication) -> None:
    answers = {**all_no(), contraindication.key: True}
    result = evaluate_screening(answers)
    assert result.refused
    assert result.positive == (contraindication.key,)
    assert contraindication.label in result.reason
    assert "\n" not in result.reason


def test_several_yes_are_all_named() -> None:
    result = evaluate_screening({**all_no(), "pacemaker": True, "heart-rhythm": True})
    assert result.positive == ("heart-rhythm", "pacemaker")
    assert "a heart rhythm disorder and a pacemaker" in result.reason


def test_missing_answers_refuse_naming_them() -> None:
    answers = all_no()
    del answers["pregnancy"]
    answers["pacemaker"] = None  # type: ignore[assignment]
    result = evaluate_screening(answers)
    assert result.refused and result.positive == ()
    assert result.missing == ("pregnancy", "pacemaker")
    assert "pregnancy" in result.reason and "pacemaker" in result.reason
    assert evaluate_screening({}).missing == CONTRAINDICATION_KEYS


def test_answers_that_are_not_booleans_refuse() -> None:
    result = evaluate_screening({**all_no(), "pregnancy": "no"})  # type: ignore[dict-item]
    assert result.refused and result.invalid == ("pregnancy",)
    assert evaluate_screening({**all_no(), "pacemaker": 0}).refused  # type: ignore[dict-item]


def test_unknown_questions_refuse_naming_them() -> None:
    result = evaluate_screening({**all_no(), "pregnant": False})
    assert result.refused and result.unknown == ("pregnant",)
    assert "pregnant" in result.reason and "valid" in result.reason
