"""Our driver classes keep PyMeasure's instrument conventions (its generic instrument tests:
property docstrings start with Control/Measure/Set/Get, an adapter and a name are accepted,
keyword arguments reach the pyvisa adapter)."""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest

from ionto_instruments.keithley2400 import Keithley2400CurrentSource
from ionto_instruments.keithley2450 import Keithley2450CurrentSource
from ionto_instruments.source import CurrentSource
from ionto_instruments.sourcemeter import SourceMeterMixin

CLASSES = [Keithley2400CurrentSource, Keithley2450CurrentSource]


def own_properties():
    """(class, name) of every property our modules define (inherited PyMeasure ones excluded)."""
    found = []
    for cls in CLASSES:
        for owner in (cls, SourceMeterMixin, CurrentSource):
            for name, value in vars(owner).items():
                if isinstance(value, property) and (cls, name) not in found:
                    found.append((cls, name))
    return found


@pytest.mark.parametrize(("cls", "name"), own_properties(),
                         ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_property_docstrings_start_with_pymeasures_verbs(cls, name):
    doc = getattr(cls, name).__doc__ or ""
    assert doc.split(maxsplit=1)[:1] in (["Control"], ["Measure"], ["Set"], ["Get"]), (
        f"{cls.__name__}.{name}: {doc[:40]!r}")


@pytest.mark.parametrize("cls", CLASSES)
def test_adapter_and_name_arguments(cls):
    assert cls(adapter=MagicMock()).name
    assert cls(adapter=MagicMock(), name="Name_Test").name == "Name_Test"


@pytest.mark.parametrize("cls", CLASSES)
def test_kwargs_reach_the_pyvisa_adapter(cls):
    with pytest.raises(ValueError, match="'kwarg_test' is not a valid attribute"):
        cls("ASRL2::INSTR", visa_library="@sim", kwarg_test=True)
