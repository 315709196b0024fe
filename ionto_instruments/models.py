"""What each supported SourceMeter can do: the model table, looked up from *IDN?.

Sources (docs/scpi.md cites them in full): maximum voltage and current from the 2400 Series
User's Manual (2400S-900-01 Rev. K) §1 specifications / the 2450, 2460, 2461, 2470 datasheets
(largest source range, with its 5 % over-range); 2400-family OVP levels from the 2400 manual
§3 "V-source protection" (p. 3-12) and §18 ":SOURce:VOLTage:PROTection" (p. 18-80/81); the
2450-family OVP tokens (PROTn) from the 2450 Reference Manual (2450-901-01 Rev. B) p. 6-73;
the auto-ohms test currents from the 2400 manual §4 Table 4-1 (p. 4-4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Family = Literal["2400", "2450"]

_IDN_MODEL = re.compile(r"MODEL\s+(\d{4})(?:-[A-Z0-9]+)?")

#: 2450-family OVP settings (V) behind the tokens PROT2 ... PROT180; above: NONE.
PROT_LEVELS_2450: tuple[float, ...] = (2, 5, 10, 20, 40, 60, 80, 100, 120, 140, 160, 180)

#: Auto-ohms test current by ohms range (range in ohms -> test current in A), 2400 manual
#: §4 Table 4-1: the 2400/2401/2410 column and the 2420/2425/2430/2440 column.
AUTO_OHMS_LOW_POWER: tuple[tuple[float, float], ...] = (
    (20.0, 100e-3), (200.0, 10e-3), (2e3, 1e-3), (20e3, 100e-6), (200e3, 10e-6),
    (2e6, 1e-6), (20e6, 1e-6), (200e6, 100e-9))
AUTO_OHMS_HIGH_POWER: tuple[tuple[float, float], ...] = (
    (2.0, 1.0), (20.0, 100e-3), (200.0, 10e-3), (2e3, 1e-3), (20e3, 100e-6), (200e3, 10e-6),
    (2e6, 10e-6), (20e6, 1e-6))


@dataclass(frozen=True)
class ModelSpec:
    """One instrument model: command-set family, output maxima and OVP settings."""

    number: str
    family: Family
    max_voltage_V: float
    max_current_A: float
    #: Finite OVP settings in V, ascending; above the last one the setting is NONE.
    ovp_levels_V: tuple[float, ...]
    #: Auto-ohms test currents by ohms range (2400 family only).
    auto_ohms: tuple[tuple[float, float], ...] = ()

    @property
    def name(self) -> str:
        """Get the name shown to people ("Keithley 2401")."""
        return f"Keithley {self.number}"

    def ovp_for(self, compliance_V: float) -> float | None:
        """The OVP setting at the next level above `compliance_V` (None: NONE, no lower clamp).

        "Above" leaves room for the levels' 5 % tolerance (2400 manual p. 3-12), so OVP never
        clamps below the compliance the run asked for.
        """
        for level in self.ovp_levels_V:
            if level * 0.95 > compliance_V:
                return level
        return None

    def auto_ohms_current(self, ohms: float) -> float:
        """The test current (A, always positive) auto ohms sources into `ohms`."""
        for ohms_range, amps in self.auto_ohms:
            if ohms <= ohms_range:
                return amps
        return self.auto_ohms[-1][1] if self.auto_ohms else 0.0


_LOW = AUTO_OHMS_LOW_POWER
_HIGH = AUTO_OHMS_HIGH_POWER
MODEL_TABLE: dict[str, ModelSpec] = {spec.number: spec for spec in (
    ModelSpec("2400", "2400", 210.0, 1.05, (20, 40, 60, 80, 100, 120, 160), _LOW),
    ModelSpec("2401", "2400", 21.0, 1.05, (20,), _LOW),
    ModelSpec("2410", "2400", 1100.0, 1.05, (20, 40, 100, 200, 300, 400, 500), _LOW),
    ModelSpec("2420", "2400", 63.0, 3.15, (6, 12, 18, 24, 30, 36, 48), _HIGH),
    ModelSpec("2425", "2400", 105.0, 3.15, (10, 20, 30, 40, 50, 60, 80), _HIGH),
    ModelSpec("2430", "2400", 105.0, 3.15, (10, 20, 30, 40, 50, 60, 80), _HIGH),
    ModelSpec("2440", "2400", 42.0, 5.25, (4, 8, 12, 16, 20, 24, 32), _HIGH),
    ModelSpec("2450", "2450", 210.0, 1.05, PROT_LEVELS_2450),
    ModelSpec("2460", "2450", 105.0, 7.35, tuple(v for v in PROT_LEVELS_2450 if v <= 100)),
    ModelSpec("2461", "2450", 105.0, 7.35, tuple(v for v in PROT_LEVELS_2450 if v <= 100)),
    ModelSpec("2470", "2450", 1100.0, 1.05, PROT_LEVELS_2450),
)}


def model_number(idn: str) -> str | None:
    """The four-digit model number of a Keithley *IDN? reply, else None."""
    fields = [field.strip().upper() for field in idn.split(",")]
    if len(fields) < 2 or not fields[0].startswith("KEITHLEY"):
        return None
    match = _IDN_MODEL.fullmatch(fields[1])
    return match.group(1) if match else None


def spec_for_idn(idn: str) -> ModelSpec | None:
    """The ModelSpec of the instrument that answered `idn`, else None."""
    number = model_number(idn)
    return MODEL_TABLE.get(number) if number else None


def models_of(family: Family) -> frozenset[str]:
    """The model numbers of one command-set family."""
    return frozenset(n for n, spec in MODEL_TABLE.items() if spec.family == family)


__all__ = ["AUTO_OHMS_HIGH_POWER", "AUTO_OHMS_LOW_POWER", "MODEL_TABLE", "PROT_LEVELS_2450",
           "ModelSpec", "model_number", "models_of", "spec_for_idn"]
