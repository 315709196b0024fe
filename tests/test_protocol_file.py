"""Protocol files (TOML): keys, types, ranges and errors that name the file, line or key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ionto_instruments.connect import SUPPORTED_MODELS
from ionto_instruments.procedures import protocol_file
from ionto_instruments.procedures.iontophoresis import SUBJECT_KINDS, ConstantCurrentIontophoresis
from ionto_instruments.procedures.protocol_file import (
    BY_KEY,
    SETTINGS,
    ProtocolError,
    Sourced,
    check_ranges,
    load_protocol,
    parse_protocol,
    to_parameters,
)
from ionto_instruments.procedures.runner import make_procedure

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_choices_are_the_procedures():
    assert tuple(SUPPORTED_MODELS) == protocol_file.MODELS
    assert tuple(SUBJECT_KINDS) == protocol_file.SUBJECT_KINDS


def test_every_setting_sets_a_procedure_parameter_and_is_documented():
    parameters = ConstantCurrentIontophoresis().parameter_objects()
    doc = protocol_file.__doc__ or ""
    for setting in SETTINGS:
        assert setting.parameter in parameters, setting
        table = doc.split(f"[{setting.table}]", 1)[1]
        assert f"\n    {setting.name} = " in table, f"{setting.key} is not in the docstring"
        assert setting.flag in doc, setting.flag


def test_a_full_file_loads_typed_values_with_their_origin(tmp_path):
    path = write(tmp_path, """
[protocol]
drug = "Decadron"
current_mA = 2
duration_min = 25.0
dose_mA_min = 40
[subject]
kind = "human"
screening_confirmed = true
id = "P-1"
[instrument]
model = "keithley2450"
scenario = "Impedance-Drop@12"
seed = 3
""")
    values = load_protocol(path)
    assert values["protocol.drug"].value == "dexamethasone"  # brand name normalized
    assert values["protocol.current_mA"].value == 2.0
    assert isinstance(values["protocol.current_mA"].value, float)
    assert values["instrument.scenario"].value == "impedance-drop@12"
    assert values["instrument.seed"].value == 3
    assert values["protocol.current_mA"].origin == f"{path}: protocol.current_mA"
    parameters = to_parameters(values)
    assert parameters["dose_controlled"] is True
    assert parameters["dose_target"] == 40.0
    assert parameters["subject_kind"] == "human"
    procedure = make_procedure(parameters)
    procedure.preflight()
    assert procedure.drug == "dexamethasone"


@pytest.mark.parametrize("name", ["dexamethasone_cathode.toml", "bupivacaine_30min.toml"])
def test_the_example_files_load_and_pass_preflight(name):
    values = load_protocol(EXAMPLES / name)
    check_ranges(values)
    procedure = make_procedure(to_parameters(values))
    plan = procedure.preflight()
    if name.startswith("dexamethasone"):
        assert plan.polarity == -1
        assert plan.dose_target_mA_min == 40.0
    else:
        assert plan.polarity == 1
        assert plan.total_min == 30.0


@pytest.mark.parametrize(("text", "fragments"), [
    ("[protocol]\ncurent_mA = 2\n", ["protocol.curent_mA", "did you mean 'current_mA'"]),
    ("[protocl]\ncurrent_mA = 2\n", ["'protocl'", "did you mean 'protocol'"]),
    ("current_mA = 2\n", ["'current_mA'", "[protocol]"]),
    ("[subject]\nsubject_id = 'x'\n", ["subject.subject_id", "the keys of [subject]"]),
    ("protocol = 3\n", ["'protocol' must be a table"]),
])
def test_unknown_tables_and_keys_are_errors_naming_the_key(tmp_path, text, fragments):
    path = write(tmp_path, text)
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    message = str(info.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(("text", "key", "fragment"), [
    ('[protocol]\ncurrent_mA = "2"\n', "protocol.current_mA", "must be a number (mA)"),
    ("[protocol]\ncurrent_mA = true\n", "protocol.current_mA", "got a boolean"),
    ("[protocol]\ncurrent_mA = nan\n", "protocol.current_mA", "finite"),
    ("[protocol]\nduration_min = inf\n", "protocol.duration_min", "finite"),
    ("[instrument]\nseed = 1.5\n", "instrument.seed", "must be an integer"),
    ('[subject]\nscreening_confirmed = "yes"\n', "subject.screening_confirmed", "true or false"),
    ('[subject]\nkind = "patient"\n', "subject.kind", "human, phantom, in-vitro"),
    ('[instrument]\nmodel = "keithley6221"\n', "instrument.model", "keithley2400"),
    ('[protocol]\ndrug = "morphine"\n', "protocol.drug", "unknown drug"),
    ('[instrument]\nscenario = "meltdown"\n', "instrument.scenario", "unknown scenario"),
    ('[instrument]\nresource = " "\n', "instrument.resource", "must not be empty"),
    ("[subject]\nid = 17\n", "subject.id", "text"),
])
def test_wrong_types_and_values_name_the_key(tmp_path, text, key, fragment):
    with pytest.raises(ProtocolError) as info:
        load_protocol(write(tmp_path, text))
    assert info.value.key == key
    assert key in str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(("key", "value", "range_text"), [
    ("protocol.current_mA", 12.0, "[0.05, 4] mA"),
    ("protocol.duration_min", 0.1, "[0.5, 60] min"),
    ("protocol.compliance_V", 100.0, "[1, 80] V"),
    ("protocol.interval_s", 5.0, "[0.05, 2] s"),
    ("protocol.dose_mA_min", 90.0, "[0.1, 80] mA*min"),
])
def test_out_of_range_values_name_the_key_and_the_allowed_range(tmp_path, key, value, range_text):
    table, name = key.split(".")
    values = load_protocol(write(tmp_path, f"[{table}]\n{name} = {value}\n"))
    with pytest.raises(ProtocolError) as info:
        check_ranges(values)
    assert info.value.key == key
    assert key in str(info.value)
    assert range_text in str(info.value)


def test_in_range_values_pass_the_range_check():
    values = {key: Sourced(value, "test") for key, value in [
        ("protocol.current_mA", 4.0), ("protocol.duration_min", 0.5),
        ("protocol.interval_s", 0.05), ("instrument.seed", 0)]}
    check_ranges(values)


def test_bad_toml_syntax_names_the_file_and_the_line(tmp_path):
    path = write(tmp_path, "[protocol]\ncurrent_mA = 2\nduration_min = \n")
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    assert str(info.value).startswith(f"{path}, line 3: invalid TOML")
    assert info.value.line == 3


def test_a_missing_or_binary_file_is_a_clear_error(tmp_path):
    with pytest.raises(ProtocolError, match="cannot read protocol file"):
        load_protocol(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ProtocolError, match="UTF-8"):
        load_protocol(binary)


def test_an_empty_file_sets_nothing(tmp_path):
    assert load_protocol(write(tmp_path, "# nothing\n")) == {}
    assert parse_protocol({"protocol": {}}) == {}


def test_check_value_keeps_integers_for_integer_settings():
    assert protocol_file.check_value(BY_KEY["instrument.seed"], 7, "x") == 7
    value = protocol_file.check_value(BY_KEY["protocol.ramp_up_s"], 0, "x")
    assert value == 0.0 and isinstance(value, float) and not math.isnan(value)
