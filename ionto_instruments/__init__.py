"""ionto-instruments: a SourceMeter as a safe iontophoresis current source (hardware layer)."""

from importlib.metadata import PackageNotFoundError, version

from .clock import Clock, RealClock, ScaledClock, VirtualClock, make_clock
from .source import (
    MAX_COMPLIANCE_V,
    MAX_CURRENT_A,
    MAX_DENSITY_MA_CM2,
    CurrentSource,
    InstrumentError,
    InstrumentFault,
    Reading,
    UnparsableReading,
    WrongInstrument,
)

try:
    __version__ = version("ionto-instruments")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "MAX_COMPLIANCE_V",
    "MAX_CURRENT_A",
    "MAX_DENSITY_MA_CM2",
    "Clock",
    "CurrentSource",
    "InstrumentError",
    "InstrumentFault",
    "Reading",
    "RealClock",
    "ScaledClock",
    "UnparsableReading",
    "VirtualClock",
    "WrongInstrument",
    "__version__",
    "make_clock",
]
