"""Skin phantom: the resistance between the electrodes, and the meter's measurement noise.

Skin resistance falls once DC flows (hydration, pores opening): R(t) = R∞ + (R0 − R∞)·e^(−t/τ),
where t is the time since the output was first switched on after the last *RST; before that
R = R0. Defaults follow docs/evidence.md ("Skin under DC"): R0 = 15 kΩ, R∞ = 3 kΩ, τ = 2 min.

Measurement noise is Gaussian and seeded, so a run is repeatable: on V a relative part
(default σ = 0.3 % of the reading) plus an absolute part (σ = 1 mV); on I an absolute part
(σ = 10 nA). Faults are applied on top by `scenarios.Scenario.resistance`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PhantomParams:
    """Skin model and noise parameters (SI units: ohm, s, V, A)."""

    r0: float = 15e3
    r_inf: float = 3e3
    tau: float = 120.0
    v_noise_rel: float = 0.003
    v_noise_abs: float = 1e-3
    i_noise_abs: float = 10e-9

    def __post_init__(self) -> None:
        for name in ("r0", "r_inf", "tau"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"phantom {name} must be a finite number > 0, got {value!r}")
        for name in ("v_noise_rel", "v_noise_abs", "i_noise_abs"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"phantom {name} must be a finite number >= 0, got {value!r}")


class SkinPhantom:
    """The skin resistance over time and a seeded noise source for readings."""

    def __init__(self, params: PhantomParams | None = None, seed: int = 0) -> None:
        self.params = params or PhantomParams()
        self._rng = random.Random(seed)

    def resistance(self, time_on: float | None) -> float:
        """Return R in ohm `time_on` seconds after current first flowed (None: not yet)."""
        p = self.params
        if time_on is None or time_on <= 0:
            return p.r0
        return p.r_inf + (p.r0 - p.r_inf) * math.exp(-time_on / p.tau)

    def measure(self, voltage: float, current: float) -> tuple[float, float]:
        """Return (V, I) as the meter would read them: the true values plus noise."""
        p = self.params
        gauss = self._rng.gauss
        v = voltage * (1.0 + p.v_noise_rel * gauss(0.0, 1.0)) + p.v_noise_abs * gauss(0.0, 1.0)
        i = current + p.i_noise_abs * gauss(0.0, 1.0)
        return v, i

    def voltage_noise(self) -> float:
        """Return the meter's reading across an open relay: absolute voltage noise only."""
        return self.params.v_noise_abs * self._rng.gauss(0.0, 1.0)
