"""Run a protocol from Python without the GUI: wait for the end, return the summary.

Uses PyMeasure's own Worker and Recorder (the GUI's path), but never `Worker.join()`: PyMeasure's
StoppableThread.join(timeout) *stops* the worker when the timeout expires, aborting the run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from pymeasure.experiment import Worker

from ionto_instruments.clock import Clock

from .iontophoresis import ConstantCurrentIontophoresis, LiveStatus
from .plan import InvalidParameter
from .results import IontoResults, new_results_file


def make_procedure(values: Mapping[str, Any] | None = None,
                   **kwargs: Any) -> ConstantCurrentIontophoresis:
    """Build the Procedure from parameter values; InvalidParameter names a bad field and range."""
    procedure = ConstantCurrentIontophoresis()
    parameters = procedure.parameter_objects()
    for name, value in {**(values or {}), **kwargs}.items():
        if name not in parameters:
            raise InvalidParameter(name, f"unknown parameter; valid: {', '.join(parameters)}")
        parameter = parameters[name]
        try:
            value = parameter.convert(value)
        except ValueError as exc:
            low, high = getattr(parameter, "minimum", None), getattr(parameter, "maximum", None)
            units = getattr(parameter, "units", None) or ""
            if low is not None and high is not None:
                raise InvalidParameter(parameter.name, f"{value!r} is outside the allowed range "
                                       f"[{low:g}, {high:g}] {units}".rstrip()) from None
            choices = getattr(parameter, "choices", None)
            if choices:
                raise InvalidParameter(parameter.name, f"{value!r} is not one of "
                                       f"{', '.join(map(str, choices))}") from None
            raise InvalidParameter(parameter.name, str(exc)) from None
        setattr(procedure, name, value)
    procedure.refresh_parameters()
    return procedure


def run_protocol(procedure: ConstantCurrentIontophoresis, output_dir: str | os.PathLike[str] = ".",
                 prefix: str = "ionto", clock: Clock | None = None,
                 on_update: Callable[[LiveStatus], None] | None = None,
                 poll_s: float = 0.1) -> dict[str, Any]:
    """Run `procedure` to its end, writing results + summary into `output_dir`; return summary.

    `on_update` is called with the live status about every `poll_s` seconds (progress lines).
    """
    if clock is not None:
        procedure.clock = clock
    results = IontoResults(procedure, new_results_file(output_dir, prefix))
    worker = Worker(results)
    worker.start()
    while worker.is_alive():
        threading.Thread.join(worker, poll_s)
        if on_update is not None:
            on_update(procedure.live)
    if on_update is not None:
        on_update(procedure.live)
    if procedure.summary is None:
        raise RuntimeError("the run ended without a summary; see the log")
    return procedure.summary
