"""The drivers' ceilings: out-of-range currents and compliances never reach the wire.

Both models, via expected_protocol with no pairs beyond the constructor's (any write fails the
test) and via a recording adapter (a spy on the wire) for property-based checks.
"""

from __future__ import annotations

import math
import threading
import time
from unittest.mock import MagicMock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymeasure.adapters import Adapter
from pymeasure.test import expected_protocol

from ionto_instruments.keithley2400 import Keithley2400CurrentSource
from ionto_instruments.keithley2450 import Keithley2450CurrentSource
from ionto_instruments.source import MAX_COMPLIANCE_V, MAX_CURRENT_A
from ionto_instruments.sourcemeter import strict_range_with_units

FORMAT_2400 = (":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS", None)
MODELS = {
    "2400": (Keithley2400CurrentSource, [FORMAT_2400], ":SOURCE:CURRENT"),
    "2450": (Keithley2450CurrentSource, [], ":SOUR:CURR:LEV"),
}


@pytest.fixture(params=sorted(MODELS))
def model(request):
    return MODELS[request.param]


def silent(model):
    """expected_protocol allowing only the constructor's commands: any write fails."""
    cls, constructor_pairs, _ = model
    return expected_protocol(cls, constructor_pairs)


class RecordingAdapter(Adapter):
    """A spy on the wire: records every write except the error-queue checks, which it
    answers with an empty queue."""

    def __init__(self):
        super().__init__()
        self.connection = MagicMock()
        self.writes: list[str] = []
        self._reply = ""

    def _write(self, command, **kwargs):
        if command == "SYST:ERR?":
            self._reply = '0,"No error"'
            return
        self.writes.append(command)

    def _read(self, **kwargs):
        reply, self._reply = self._reply, ""
        return reply


def recorded(model):
    """The driver on a recording adapter, with the constructor's writes cleared."""
    cls, _, _ = model
    adapter = RecordingAdapter()
    smu = cls(adapter)
    adapter.writes.clear()
    return smu, adapter


# -- the absolute 4 mA ceiling ------------------------------------------------------------

BAD_CURRENTS = [4.0001e-3, 5e-3, 0.1, 1.0, -4.0001e-3, -4.1e-3, -1.0, math.nan, math.inf,
                -math.inf]


@pytest.mark.parametrize("amps", BAD_CURRENTS)
def test_current_beyond_4_mA_never_reaches_the_wire(model, amps):
    with silent(model) as smu, pytest.raises(ValueError) as info:
        smu.set_current(amps)
    message = str(info.value)
    assert "source current" in message and "[-0.004, 0.004] A" in message
    assert f"{amps:g} A" in message


@pytest.mark.parametrize("amps", BAD_CURRENTS)
def test_source_current_property_is_guarded_too(model, amps):
    with silent(model) as smu, pytest.raises(ValueError, match="source current"):
        smu.source_current = amps


@pytest.mark.parametrize("value", ["0.001", None, True, [1e-3], 1e-3j])
def test_current_that_is_not_a_number_is_refused(model, value):
    with silent(model) as smu, pytest.raises(ValueError, match="must be a number"):
        smu.set_current(value)


def test_ramp_beyond_the_ceiling_sends_nothing(model):
    with silent(model) as smu, pytest.raises(ValueError, match="source current"):
        smu.ramp_to_current(4.5e-3)


# -- the session's narrowed (current density) ceiling -------------------------------------


def test_narrowed_ceiling_refuses_above_it(model):
    with silent(model) as smu:
        assert smu.limit_current_density(1.0, 0.5) == pytest.approx(5e-4)
        for amps in (6e-4, -6e-4, 4e-3):
            with pytest.raises(ValueError, match=r"\[-0.0005, 0.0005\] A"):
                smu.set_current(amps)
            with pytest.raises(ValueError, match=r"\[-0.0005, 0.0005\] A"):
                smu.source_current = amps  # the dynamic property learned the ceiling
            with pytest.raises(ValueError):
                smu.ramp_to_current(amps)


def test_narrowed_ceiling_allows_up_to_it(model):
    _, constructor_pairs, command = model
    cls = model[0]
    no_error = ("SYST:ERR?", '0,"No error"')
    pairs = [*constructor_pairs, (f"{command} 0.0005", None), no_error,
             (f"{command} -0.0005", None), no_error]
    with expected_protocol(cls, pairs) as smu:
        smu.limit_current_density(1.0, 0.5)
        smu.set_current(5e-4)
        smu.set_current(-5e-4)


def test_density_ceiling_never_exceeds_4_mA(model):
    with silent(model) as smu:
        assert smu.limit_current_density(100.0, 2.0) == MAX_CURRENT_A
        with pytest.raises(ValueError, match=r"\[-0.004, 0.004\] A"):
            smu.set_current(4.5e-3)


def test_widening_the_dynamic_values_does_not_lift_the_hard_ceiling(model):
    with silent(model) as smu:
        smu.source_current_values = (-1.0, 1.0)  # what a careless caller could do
        with pytest.raises(ValueError, match=r"\[-0.004, 0.004\] A"):
            smu.source_current = 5e-3


def test_widening_the_dynamic_values_does_not_lift_the_session_ceiling(model):
    with silent(model) as smu:
        smu.limit_current_density(1.0, 0.5)
        smu.source_current_values = (-1.0, 1.0)
        with pytest.raises(ValueError, match=r"\[-0.0005, 0.0005\] A"):
            smu.set_current(1e-3)


@settings(max_examples=300, deadline=None)
@given(amps=st.floats(allow_nan=True, allow_infinity=True),
       area=st.floats(0.01, 1000.0), density=st.floats(0.001, 2.0))
def test_set_current_writes_only_within_the_ceiling(amps, area, density):
    for spec in MODELS.values():
        smu, adapter = recorded(spec)
        ceiling = smu.limit_current_density(area, density)
        try:
            smu.set_current(amps)
        except ValueError:
            assert adapter.writes == []
            assert not abs(amps) <= ceiling
        else:
            assert abs(amps) <= ceiling <= MAX_CURRENT_A
            (command,) = adapter.writes
            prefix, sent = command.rsplit(" ", 1)
            assert prefix == spec[2]
            # %g keeps 6 significant digits: at most a rounding step above the ceiling.
            assert abs(float(sent)) <= ceiling * (1 + 1e-5)


# -- compliance voltage in (0, 80] V ------------------------------------------------------

BAD_COMPLIANCES = [81, 80.0001, 210, 0, -0.0, -5, -80, math.nan, math.inf]


@pytest.mark.parametrize("volts", BAD_COMPLIANCES)
def test_bad_compliance_never_reaches_the_wire(model, volts):
    with silent(model) as smu, pytest.raises(ValueError) as info:
        smu.configure_current_source(volts)
    message = str(info.value)
    assert "compliance voltage" in message and "(0, 80] V" in message
    assert f"{volts:g} V" in message


@pytest.mark.parametrize("volts", BAD_COMPLIANCES)
def test_compliance_property_is_guarded_too(model, volts):
    with silent(model) as smu, pytest.raises(ValueError, match="compliance voltage"):
        smu.compliance_voltage = volts


def test_compliance_81_message():
    with silent(MODELS["2400"]) as smu, pytest.raises(ValueError) as info:
        smu.configure_current_source(81)
    assert str(info.value) == ("compliance voltage 81 V is outside the allowed range "
                               "(0, 80] V")


@pytest.mark.parametrize(("kwargs", "quantity"), [
    ({"source_range": 5e-3}, "source current range"),
    ({"source_range": 0}, "source current range"),
    ({"source_range": -1e-3}, "source current range"),
    ({"source_range": math.nan}, "source current range"),
    ({"nplc": 0}, "integration time"),
    ({"nplc": 11}, "integration time"),
    ({"nplc": math.nan}, "integration time"),
])
def test_bad_configuration_arguments_send_nothing(model, kwargs, quantity):
    with silent(model) as smu, pytest.raises(ValueError, match=quantity):
        smu.configure_current_source(40, **kwargs)


def test_bad_ceiling_hook_argument_is_refused(model):
    with silent(model) as smu, pytest.raises(ValueError, match="current ceiling"):
        smu._apply_current_ceiling(5e-3)


# -- the validator factory ----------------------------------------------------------------


def test_validator_factory_messages():
    amps = strict_range_with_units("test current", "A")
    assert amps(1e-3, (-2e-3, 2e-3)) == 1e-3
    with pytest.raises(ValueError, match=r"^test current 0.003 A is outside the allowed range "
                                         r"\[-0.002, 0.002\] A$"):
        amps(3e-3, (-2e-3, 2e-3))
    volts = strict_range_with_units("test voltage", "V", low_open=True,
                                    hard_limits=(0, MAX_COMPLIANCE_V))
    assert volts(80, (0, 500)) == 80.0
    with pytest.raises(ValueError, match=r"\(0, 80\] V"):
        volts(81, (0, 500))
    with pytest.raises(ValueError, match="test voltage 0 V"):
        volts(0, (0, 500))


# -- emergency off cannot be made to block forever ----------------------------------------


@pytest.mark.parametrize("lock_timeout", [math.nan, -1, 0, "soon", None])
def test_emergency_off_with_odd_timeouts_does_not_block(model, lock_timeout):
    smu, adapter = recorded(model)
    holding, done = threading.Event(), threading.Event()

    def hold_lock():
        with smu.io_lock:
            holding.set()
            done.wait(5)

    holder = threading.Thread(target=hold_lock, daemon=True)
    holder.start()
    assert holding.wait(5)
    start = time.monotonic()
    smu.emergency_off(lock_timeout=lock_timeout)
    assert time.monotonic() - start < 1
    assert adapter.writes == [model[0].OUTPUT_OFF_COMMAND]
    done.set()
    holder.join(5)
