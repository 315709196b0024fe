"""The simulated SourceMeter: skin phantom, SMU model, faults, pyvisa backend.

    sim = SimulatedSourceMeter("keithley2400", scenario="impedance-drop@12", clock=clock)
    adapter = VISAAdapter(sim.resource_name, visa_library=sim.visa_library)

Every instance has its own pyvisa library and therefore fresh instrument state.
"""

from __future__ import annotations

from typing import Any

import pyvisa

from ..clock import Clock, RealClock
from .backend import SimSourceMeterLibrary
from .model import Command, Dialect, SourceMeterModel
from .phantom import PhantomParams, SkinPhantom
from .scenarios import SCENARIOS, Fault, Scenario, parse_scenario

#: model name -> (SCPI dialect, VISA address in the YAML, name shown to people)
MODELS: dict[str, tuple[Dialect, str, str]] = {
    "keithley2400": ("2400", "GPIB0::24::INSTR", "Keithley 2400"),
    "keithley2450": ("2450", "USB0::0x05E6::0x2450::04412345::INSTR", "Keithley 2450"),
}


class SimulatedSourceMeter:
    """A simulated Keithley SourceMeter on a skin phantom, reachable through pyvisa.

    `instrument` picks the model number of the family ("2401", "2470"; default the family's
    first); `load_ohm` puts a fixed resistor across the leads instead of the phantom;
    `language` and `interlock` set a 2450-family unit's command set and interlock state.
    """

    def __init__(self, model: str = "keithley2400", scenario: str | Scenario = "normal",
                 clock: Clock | None = None, seed: int = 0,
                 phantom: PhantomParams | None = None, io_latency: float = 0.0,
                 instrument: str | None = None, line_frequency: float = 60.0,
                 load_ohm: float | None = None, language: str = "SCPI",
                 interlock: bool = True) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown simulated model {model!r}; choose one of "
                             f"{', '.join(MODELS)}")
        dialect, self.resource_name, self.title = MODELS[model]
        self.model_name = model
        self.scenario = parse_scenario(scenario)
        self.clock = clock if clock is not None else RealClock()
        self.visa_library = SimSourceMeterLibrary.create(model)
        self.model = SourceMeterModel(dialect, self.clock, self.scenario, phantom, seed,
                                      io_latency, instrument=instrument,
                                      line_frequency=line_frequency, load_ohm=load_ohm,
                                      language=language, interlock=interlock)
        self.title = self.model.spec.name
        self.visa_library.attach(self.model, seed)

    def open_resource(self, **kwargs: Any) -> pyvisa.resources.MessageBasedResource:
        """Open a pyvisa session to the instrument (terminations default to "\\n")."""
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        manager = pyvisa.ResourceManager(self.visa_library)
        return manager.open_resource(self.resource_name, **kwargs)

    def describe(self) -> str:
        """One line for banners: "simulated Keithley 2400, scenario normal, clock real"."""
        load = (f", {self.model.load_ohm:g} ohm resistor" if self.model.load_ohm is not None
                else "")
        return (f"simulated {self.title}{load}, scenario {self.scenario.name}, "
                f"clock {self.clock.name}")

    def __repr__(self) -> str:
        return f"<SimulatedSourceMeter {self.describe()}>"


__all__ = [
    "MODELS",
    "SCENARIOS",
    "Command",
    "Fault",
    "PhantomParams",
    "Scenario",
    "SimSourceMeterLibrary",
    "SimulatedSourceMeter",
    "SkinPhantom",
    "SourceMeterModel",
    "parse_scenario",
]
