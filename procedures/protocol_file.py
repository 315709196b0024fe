"""Protocol files: the settings of one run in TOML, so a protocol can be reviewed and reused.

A protocol file has up to three tables; every key is optional (the Procedure's defaults
apply), and a command-line flag overrides the file. Unknown tables and keys are errors, so a
typo can never fall back to a default silently. Read with the standard library's `tomllib`.

    [protocol]
    drug = "dexamethasone"          # --drug        name or brand (Decadron, ...); sets the sign
    current_mA = 2.0                # --current     target current (magnitude), mA
    duration_min = 25               # --duration    treatment time (maximum if dose-controlled)
    ramp_up_s = 30                  # --ramp-up
    ramp_down_s = 30                # --ramp-down
    dose_mA_min = 40                # --dose        dose-controlled: stop at this dose, mA*min
    electrode_area_cm2 = 10         # --area
    max_density_mA_cm2 = 0.5        # --max-density
    compliance_V = 40               # --compliance
    interval_s = 0.2                # --interval    sample interval

    [subject]
    kind = "phantom"                # --subject     human | phantom | in-vitro
    screening_confirmed = false     # --screening-confirmed (required for a human subject)
    id = "P-017"                    # --subject-id
    session_id = "2024-05-03-a"     # --session-id
    note = "left forearm"           # --note

    [instrument]
    model = "keithley2400"          # --model       keithley2400 | keithley2450
    resource = "GPIB0::24::INSTR"   # --resource    a real instrument; omit for the simulator
    baud_rate = 9600                # --baud        RS-232 (ASRL) only: as set on the instrument
    terminator = "LF"               # --terminator  RS-232 only: LF | CR | CRLF | LFCR
    scenario = "normal"             # --sim         simulator only: NAME or NAME@MINUTE
    seed = 0                        # --seed        simulator only

Numbers may be written as integers or floats; booleans are `true`/`false`; text is quoted.
Keys belong in their table (a bare `current_mA = 2` at the top is an error). `resource` and
`scenario` exclude each other; `--sim` on the command line ignores the file's `resource`. With
a `resource`, `[subject] kind` (or `--subject`) is required: it never defaults on hardware.
"""

from __future__ import annotations

import difflib
import math
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ionto_instruments import limits as L
from ionto_instruments.limits import Range, ascii_unit
from ionto_instruments.transport import SERIAL_BAUD_RATES, SERIAL_TERMINATORS

#: Instrument models and subject kinds, spelled as the Procedure spells them (a test guards it).
MODELS: tuple[str, ...] = ("keithley2400", "keithley2450")
SUBJECT_KINDS: tuple[str, ...] = ("human", "phantom", "in-vitro")
TABLES: tuple[str, ...] = ("protocol", "subject", "instrument")


@dataclass(frozen=True)
class Setting:
    """One setting, declared once: TOML key, Procedure parameter, flag, type, unit and range.

    The command line's flags (`add_flag`), the protocol-file checks and the range checks
    are all generated from these declarations; `limit` is the entry of the limits table.
    """

    key: str
    parameter: str
    flag: str
    kind: type
    unit: str = ""
    choices: tuple[Any, ...] = ()
    limit: Range | None = None
    metavar: str | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if self.limit is not None and not self.unit:
            object.__setattr__(self, "unit", ascii_unit(self.limit.unit))

    def help_text(self) -> str:
        """The flag's help: what it sets, its unit and allowed range from the limits table."""
        text = self.help or self.name.replace("_", " ")
        if self.limit is not None:
            text += f" [{self.limit.minimum:g}, {self.limit.maximum:g}] {self.unit}"
        return text

    @property
    def table(self) -> str:
        """The TOML table the key lives in."""
        return self.key.partition(".")[0]

    @property
    def name(self) -> str:
        """The key inside its table."""
        return self.key.partition(".")[2]

    @property
    def dest(self) -> str:
        """The argparse destination of the flag."""
        return self.flag.lstrip("-").replace("-", "_")


SETTINGS: tuple[Setting, ...] = (
    Setting("protocol.drug", "drug", "--drug", str, metavar="NAME",
            help="drug (bupivacaine, dexamethasone, clonidine, ketamine, lidocaine, none); "
                 "sets the polarity"),
    Setting("protocol.current_mA", "target_current", "--current", float,
            limit=L.TARGET_CURRENT, metavar="MA",
            help="target current magnitude in mA (the drug sets the sign)"),
    Setting("protocol.duration_min", "treatment_time", "--duration", float,
            limit=L.TREATMENT_TIME, metavar="MIN",
            help="treatment time in minutes, ramps included (maximum with --dose)"),
    Setting("protocol.ramp_up_s", "ramp_up", "--ramp-up", float, limit=L.RAMP, metavar="S",
            help="ramp-up time in s"),
    Setting("protocol.ramp_down_s", "ramp_down", "--ramp-down", float, limit=L.RAMP,
            metavar="S", help="ramp-down time in s"),
    Setting("protocol.dose_mA_min", "dose_target", "--dose", float, limit=L.DOSE_TARGET,
            metavar="MAMIN", help="dose-controlled: stop at this dose in mA*min"),
    Setting("protocol.electrode_area_cm2", "electrode_area", "--area", float,
            limit=L.ELECTRODE_AREA, metavar="CM2", help="electrode area in cm^2"),
    Setting("protocol.max_density_mA_cm2", "max_density", "--max-density", float,
            limit=L.MAX_DENSITY_SETTING, metavar="MA_PER_CM2",
            help="maximum current density in mA/cm^2"),
    Setting("protocol.compliance_V", "compliance_voltage", "--compliance", float,
            limit=L.COMPLIANCE_VOLTAGE, metavar="V", help="compliance voltage in V"),
    Setting("protocol.interval_s", "sample_interval", "--interval", float,
            limit=L.SAMPLE_INTERVAL, metavar="S", help="sample interval in s"),
    Setting("subject.kind", "subject_kind", "--subject", str, choices=SUBJECT_KINDS,
            help="who is treated (default phantom on the simulator; required with --resource)"),
    Setting("subject.screening_confirmed", "screening_confirmed", "--screening-confirmed", bool,
            help="the contraindication screening was done (required for human)"),
    Setting("subject.id", "subject_id", "--subject-id", str, metavar="ID",
            help="subject identifier for the records"),
    Setting("subject.session_id", "session_id", "--session-id", str, metavar="ID",
            help="session identifier for the records"),
    Setting("subject.note", "operator_note", "--note", str, metavar="TEXT",
            help="operator note for the records"),
    Setting("instrument.model", "instrument_model", "--model", str, choices=MODELS,
            help="instrument model (default keithley2400)"),
    Setting("instrument.resource", "resource", "--resource", str, metavar="VISA",
            help="VISA resource of a real SourceMeter, e.g. GPIB0::24::INSTR"),
    Setting("instrument.baud_rate", "baud_rate", "--baud", int, choices=SERIAL_BAUD_RATES,
            metavar="N", help="RS-232 (ASRL) baud rate as set on the instrument (default 9600)"),
    Setting("instrument.terminator", "serial_terminator", "--terminator", str,
            choices=tuple(SERIAL_TERMINATORS),
            help="RS-232 terminator as set on the instrument (default LF)"),
    Setting("instrument.scenario", "scenario", "--sim", str, metavar="SCENARIO[@MINUTE]",
            help="run on the simulator, optionally with a fault scenario (see `ionto "
                 "scenarios`), e.g. contact-loss@5"),
    Setting("instrument.seed", "seed", "--seed", int, metavar="N",
            help="simulator random seed"),
)
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}
BY_PARAMETER: dict[str, Setting] = {s.parameter: s for s in SETTINGS}

def add_flag(group: Any, setting: Setting, type_: Any = None, **overrides: Any) -> None:
    """Add `setting`'s command-line flag to an argparse parser or group, from its declaration.

    Flags default to None (absent: the protocol file or the Procedure's default applies);
    `type_` parses the text (default: the setting's kind). `--sim` takes an optional value.
    """
    options: dict[str, Any] = {"help": setting.help_text()}
    if setting.kind is bool:
        options.update(action="store_true", default=None)
    else:
        options.update(type=type_ or setting.kind, metavar=setting.metavar)
        if setting.choices:
            options["choices"] = setting.choices
            if setting.metavar is None:
                del options["metavar"]
    if setting.parameter == "scenario":
        options.update(nargs="?", type=str)
    options.update(overrides)
    group.add_argument(setting.flag, **options)


_TYPE_WORDS = {float: "a number", int: "an integer", str: "text (a quoted string)",
               bool: "true or false"}
_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


class ProtocolError(ValueError):
    """A protocol file or a setting is unusable; the message names the file, line or key."""

    def __init__(self, message: str, key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.line = line


@dataclass(frozen=True)
class Sourced:
    """A setting's value and where it came from ("--current", "protocol.current_mA in x.toml")."""

    value: Any
    origin: str


def _toml_type(value: object) -> str:
    """Name a TOML value's type for an error message."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             dict: "a table", list: "an array"}
    return next((word for t, word in names.items() if type(value) is t),
                f"a {type(value).__name__}")


def check_value(setting: Setting, value: Any, origin: str) -> Any:
    """Return `value` checked and normalized for `setting`; ProtocolError names the origin.

    Checks the type, that numbers are finite, the choices, the drug and the scenario name.
    Ranges are checked against the Procedure's limits by `check_ranges`.
    """
    kind = setting.kind
    unit = f" ({setting.unit})" if setting.unit else ""
    if kind is float and type(value) in (int, float):
        value = float(value)
    if type(value) is not kind:
        raise ProtocolError(f"{origin}: must be {_TYPE_WORDS[kind]}{unit}, got "
                            f"{_toml_type(value)}: {value!r}", key=setting.key)
    if kind is float and not math.isfinite(value):
        raise ProtocolError(f"{origin}: must be a finite number{unit}, got {value!r}",
                            key=setting.key)
    if setting.choices and value not in setting.choices:
        raise ProtocolError(f"{origin}: {value!r} is not one of "
                            f"{', '.join(map(str, setting.choices))}", key=setting.key)
    if setting.parameter == "drug":
        from .drugs import get_drug

        try:
            return get_drug(value).key
        except ValueError as exc:
            raise ProtocolError(f"{origin}: {exc}", key=setting.key) from None
    if setting.parameter == "scenario":
        from ionto_instruments.simulator.scenarios import parse_scenario

        try:
            return parse_scenario(value).name
        except ValueError as exc:
            raise ProtocolError(f"{origin}: {exc}", key=setting.key) from None
    if setting.parameter == "resource" and not value.strip():
        raise ProtocolError(f"{origin}: the VISA resource must not be empty "
                            f"(omit it to run on the simulator)", key=setting.key)
    return value


def _suggest(word: str, candidates: list[str]) -> str:
    """Return ' (did you mean X?)' for a near miss, else ''."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_protocol(data: Mapping[str, Any], name: str = "<protocol>") -> dict[str, Sourced]:
    """Check a parsed TOML document; return {dotted key: Sourced}. ProtocolError if unusable."""
    values: dict[str, Sourced] = {}
    for table, content in data.items():
        if table not in TABLES:
            owner = next((s for s in SETTINGS if s.name == table), None)
            if owner is not None:
                raise ProtocolError(f"{name}: key {table!r} belongs in the [{owner.table}] "
                                    f"table: write it under [{owner.table}]", key=table)
            hint = _suggest(table, list(TABLES))
            raise ProtocolError(f"{name}: unknown table or key {table!r}{hint}; the tables are "
                                f"[{'], ['.join(TABLES)}]", key=table)
        if not isinstance(content, dict):
            raise ProtocolError(f"{name}: {table!r} must be a table ([{table}]), got "
                                f"{_toml_type(content)}", key=table)
        names = [s.name for s in SETTINGS if s.table == table]
        for key, value in content.items():
            dotted = f"{table}.{key}"
            setting = BY_KEY.get(dotted)
            if setting is None:
                raise ProtocolError(
                    f"{name}: unknown key {dotted!r}{_suggest(key, names)}; the keys of "
                    f"[{table}] are {', '.join(names)}", key=dotted)
            origin = f"{name}: {dotted}"
            values[dotted] = Sourced(check_value(setting, value, origin), origin)
    return values


def load_protocol(path: str | Path) -> dict[str, Sourced]:
    """Read and check a protocol file; return {dotted key: Sourced}. ProtocolError if unusable."""
    path = Path(path)
    limit = int(L.PROTOCOL_FILE_MAX.value * 1e6)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would hang, /dev/zero never end
            raise ProtocolError(f"{path}: not a regular file; a protocol file is a TOML text "
                                f"file")
        if info.st_size > limit:
            raise ProtocolError(f"{path}: {info.st_size / 1e6:.1f} MB is too large for a "
                                f"protocol file (at most {L.PROTOCOL_FILE_MAX.text()})")
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
        if len(raw) > limit:
            raise ProtocolError(f"{path}: too large for a protocol file (at most "
                                f"{L.PROTOCOL_FILE_MAX.text()})")
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark is allowed and dropped
    except OSError as exc:
        raise ProtocolError(f"cannot read protocol file {str(path)!r}: "
                            f"{exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ProtocolError(f"{path}: not a text file in UTF-8") from None
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise ProtocolError(f"{path}: invalid TOML: arrays or tables nested too "
                            f"deeply") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _LINE.search(message)
        if match is None:
            raise ProtocolError(f"{path}: invalid TOML: {message}") from None
        line, column = int(match.group(1)), int(match.group(2))
        raise ProtocolError(f"{path}, line {line}: invalid TOML: {message[:match.start()]} "
                            f"(column {column})", line=line) from None
    return parse_protocol(data, str(path))


def parameter_limits() -> dict[str, tuple[float, float, str]]:
    """Return {parameter: (minimum, maximum, units)} of the Procedure's numeric parameters."""
    from pymeasure.experiment import FloatParameter, IntegerParameter

    from .iontophoresis import ConstantCurrentIontophoresis

    limits = {}
    for setting in SETTINGS:
        parameter = getattr(ConstantCurrentIontophoresis, setting.parameter, None)
        if isinstance(parameter, FloatParameter | IntegerParameter):
            limits[setting.parameter] = (parameter.minimum, parameter.maximum,
                                         parameter.units or "")
    return limits


def check_ranges(values: Mapping[str, Sourced]) -> None:
    """Raise ProtocolError naming the origin and the allowed range of the first value outside it."""
    for key, sourced in values.items():
        setting = BY_KEY[key]
        if setting.limit is None:
            continue
        low, high, units = setting.limit.minimum, setting.limit.maximum, setting.unit
        if not low <= sourced.value <= high:
            label = _label(setting.parameter)
            raise ProtocolError(f"{sourced.origin}: {label} {sourced.value:g} {units} is outside "
                                f"the allowed range [{low:g}, {high:g}] {units}".rstrip(),
                                key=key)


def _label(parameter: str) -> str:
    """The Procedure's human name of a parameter, in lower case ("target current")."""
    from .iontophoresis import ConstantCurrentIontophoresis

    described = getattr(ConstantCurrentIontophoresis, parameter, None)
    return str(getattr(described, "name", parameter)).lower()


def to_parameters(values: Mapping[str, Sourced]) -> dict[str, Any]:
    """Return the Procedure parameter values for the given settings (dose implies dose mode)."""
    parameters = {BY_KEY[key].parameter: sourced.value for key, sourced in values.items()}
    if "dose_target" in parameters:
        parameters["dose_controlled"] = True
    return parameters


def origin_of(field: str, values: Mapping[str, Sourced]) -> str | None:
    """Return where the setting behind a Procedure field name ("Target current") came from."""
    from .iontophoresis import ConstantCurrentIontophoresis

    wanted = field.strip().lower()
    for key, sourced in values.items():
        parameter = BY_KEY[key].parameter
        described = getattr(ConstantCurrentIontophoresis, parameter, None)
        names = {parameter.lower(), str(getattr(described, "name", "")).lower(),
                 BY_KEY[key].name.lower()}
        if wanted in names:
            return sourced.origin
    return None


__all__ = ["BY_KEY", "BY_PARAMETER", "MODELS", "SETTINGS", "SUBJECT_KINDS", "TABLES",
           "ProtocolError", "Setting", "Sourced", "add_flag", "check_ranges", "check_value",
           "load_protocol", "origin_of", "parameter_limits", "parse_protocol", "to_parameters"]
