"""The drugs of the leaflet and the polarity each needs: the sign of the source current.

A drug goes under the electrode of its own charge: a cation is driven from the anode (+), an
anion from the cathode (−). With the drug (active) electrode wired to the SourceMeter's HI
terminal and the return electrode to LO, positive current delivers a cation and negative
current delivers an anion (docs/evidence.md, "Drug polarity"). So `polarity` is the sign of the
setpoint and the wiring never changes.
"""

from __future__ import annotations

from dataclasses import dataclass

ANODE = "anode (+)"
CATHODE = "cathode (−)"
_HINT_POSITIVE = "Drug electrode on HI (red), return on LO (black); positive current (HI is +)"
_HINT_NEGATIVE = "Drug electrode on HI (red), return on LO (black); negative current (HI is −)"


@dataclass(frozen=True)
class Drug:
    """One drug: its charge, the electrode it is delivered from, and the current's sign."""

    key: str
    name: str
    brand: str
    charge: int
    active_electrode: str
    polarity: int
    terminal_hint: str
    evidence: str
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.polarity not in (-1, 1):
            raise ValueError(f"{self.key}: polarity must be +1 or -1")
        if self.charge not in (-1, 0, 1) or (self.charge and self.charge != self.polarity):
            raise ValueError(f"{self.key}: charge must be 0 or match the polarity")
        expected = ANODE if self.polarity > 0 else CATHODE
        if self.active_electrode != expected:
            raise ValueError(f"{self.key}: polarity {self.polarity:+d} needs the {expected}")

    def setpoint_mA(self, magnitude_mA: float) -> float:
        """Return the signed setpoint for a current of `magnitude_mA` with this drug."""
        return self.polarity * abs(magnitude_mA)

    @property
    def label(self) -> str:
        """Name with brand for people, e.g. "bupivacaine (Marcaine)"."""
        return f"{self.name} ({self.brand})" if self.brand else self.name


def _drug(key: str, name: str, brand: str, charge: int, evidence: str,
          aliases: tuple[str, ...] = (), polarity: int | None = None) -> Drug:
    """Build a Drug whose electrode, polarity and hint follow from its charge."""
    sign = polarity if polarity is not None else charge
    return Drug(key=key, name=name, brand=brand, charge=charge,
                active_electrode=ANODE if sign > 0 else CATHODE, polarity=sign,
                terminal_hint=_HINT_POSITIVE if sign > 0 else _HINT_NEGATIVE,
                evidence=evidence, aliases=aliases)


#: The drug library, by stable key (the leaflet's four, lidocaine as reference, and none).
DRUGS: dict[str, Drug] = {d.key: d for d in (
    _drug("bupivacaine", "bupivacaine", "Marcaine", +1,
          "Cation: a weak base, protonated in the patch; delivered from the anode "
          "(docs/evidence.md drug polarity table)."),
    _drug("dexamethasone", "dexamethasone sodium phosphate", "Decadron", -1,
          "Anion: \"must be delivered from the cathode\" (Sylvestre et al., via docs/evidence.md).",
          aliases=("dexamethasone phosphate",)),
    _drug("clonidine", "clonidine", "Catapresan", +1,
          "Cation (amine salt); anode inferred from the charge, no direct source found "
          "(docs/evidence.md)."),
    _drug("ketamine", "ketamine", "", +1,
          "Cation (amine salt); anode inferred from the charge, no direct source found "
          "(docs/evidence.md)."),
    _drug("lidocaine", "lidocaine", "", +1,
          "Cation; the reference drug for anodal iontophoresis (docs/evidence.md drug polarity "
          "table)."),
    _drug("none", "saline (no drug)", "", 0,
          "No drug: a saline or sham run is delivered from the anode (positive current) by "
          "this project's convention, not for a pharmacological reason.",
          aliases=("saline", "no drug", "no-drug", "sham"), polarity=+1),
)}


def _lookup_table() -> dict[str, str]:
    """Map every accepted spelling (key, name, brand, alias; lower case) to a drug key."""
    table: dict[str, str] = {}
    for drug in DRUGS.values():
        for spelling in (drug.key, drug.name, drug.brand, *drug.aliases):
            if spelling:
                table[spelling.casefold()] = drug.key
    return table


_LOOKUP = _lookup_table()


def get_drug(name: str) -> Drug:
    """Return the drug for a key, name, brand or alias (any case); ValueError if unknown."""
    key = _LOOKUP.get(" ".join(str(name).split()).casefold())
    if key is None:
        raise ValueError(f"unknown drug {name!r}: choose one of {', '.join(DRUGS)} "
                         f"(brand names Marcaine, Decadron, Catapresan and 'saline' also work)")
    return DRUGS[key]


__all__ = ["ANODE", "CATHODE", "DRUGS", "Drug", "get_drug"]
