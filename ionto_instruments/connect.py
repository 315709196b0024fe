"""Open a current source: the simulated SourceMeter when no resource is given, else hardware.

Both paths go through the same driver classes and PyMeasure's VISAAdapter; only the pyvisa
library underneath differs.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

from .clock import Clock, RealClock
from .keithley2400 import Keithley2400CurrentSource
from .keithley2450 import Keithley2450CurrentSource
from .source import CurrentSource, InstrumentError
from .transport import (
    DEFAULT_BAUD_RATE,
    DEFAULT_TERMINATOR,
    SERIAL_BAUD_RATES,
    SERIAL_TERMINATORS,
    is_serial,
    serial_options,
    visa_library,
)

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: Instrument model names used on the command line, in protocol files and in the GUI.
SUPPORTED_MODELS: dict[str, type] = {
    "keithley2400": Keithley2400CurrentSource,
    "keithley2450": Keithley2450CurrentSource,
}


def driver_for(model: str) -> type:
    """Return the driver class for a model name; raise ValueError listing the valid names."""
    try:
        return SUPPORTED_MODELS[model]
    except KeyError:
        raise ValueError(f"unknown instrument model {model!r}: choose one of "
                         f"{', '.join(SUPPORTED_MODELS)}") from None


def open_source(resource: str | None = None, model: str = "keithley2400",
                scenario: str = "normal", clock: Clock | None = None, seed: int = 0,
                baud_rate: int = DEFAULT_BAUD_RATE, terminator: str = DEFAULT_TERMINATOR,
                **sim_options: object) -> CurrentSource:
    """Open and identify a current source; the simulator (clearly marked) when `resource` is None.

    `baud_rate` and `terminator` apply to an RS-232 (ASRL) resource only. Raises
    InstrumentError naming the address when nothing answers or the IDN is wrong; nothing is
    energized either way.
    """
    driver = driver_for(model)
    if resource:
        try:
            options = serial_options(resource, baud_rate, terminator)
        except ValueError as exc:
            raise InstrumentError(f"{resource!r}: {exc}") from None
        return driver.open(resource, visa_library(), **options)
    from .simulator import SimulatedSourceMeter

    simulator = SimulatedSourceMeter(model=model, scenario=scenario, clock=clock or RealClock(),
                                     seed=seed, **sim_options)
    source = driver.open(simulator.resource_name, visa_library=simulator.visa_library)
    source.simulated = True
    source.simulator = simulator
    log.info("Using the SIMULATED SourceMeter: %s", simulator.describe())
    return source


@dataclass(frozen=True)
class ResourceInfo:
    """One VISA resource and what answered there."""

    resource: str
    idn: str
    model: str | None

    @property
    def supported(self) -> bool:
        return self.model is not None


def scan_resources(library: object | None = None, timeout_ms: int = 500,
                   extra: tuple[str, ...] = (), baud_rate: int = DEFAULT_BAUD_RATE,
                   terminator: str = DEFAULT_TERMINATOR) -> list[ResourceInfo]:
    """List the VISA resources pyvisa sees (plus `extra` addresses, e.g. a LAN instrument
    that is not discovered) and which answer as a supported SourceMeter. `library` defaults
    to `visa_library()`; `baud_rate` and `terminator` apply to RS-232 resources."""
    import pyvisa

    manager = pyvisa.ResourceManager(visa_library() if library is None else library)
    try:
        try:
            with warnings.catch_warnings():  # pyvisa-py's hints about optional discovery extras
                warnings.simplefilter("ignore", UserWarning)
                names = tuple(manager.list_resources())
        except pyvisa.errors.VisaIOError:
            names = ()
        names += tuple(name for name in extra if name not in names)
        found = []
        for name in names:
            idn, model = "", None
            options = {"read_termination": "\n", "write_termination": "\n"}
            options |= serial_options(name, baud_rate, terminator)
            try:
                with manager.open_resource(name, open_timeout=timeout_ms, **options) as inst:
                    inst.timeout = timeout_ms
                    idn = inst.query("*IDN?").strip()
            except Exception as exc:  # any instrument may misbehave; report and move on
                idn = f"(no answer: {type(exc).__name__})"
            for key, cls in SUPPORTED_MODELS.items():
                if cls.idn_matches(idn):
                    model = key
                    break
            found.append(ResourceInfo(name, idn, model))
        return found
    finally:
        manager.close()


__all__ = ["DEFAULT_BAUD_RATE", "DEFAULT_TERMINATOR", "SERIAL_BAUD_RATES", "SERIAL_TERMINATORS",
           "SUPPORTED_MODELS", "InstrumentError", "ResourceInfo", "driver_for", "is_serial",
           "open_source", "scan_resources", "serial_options", "visa_library"]
