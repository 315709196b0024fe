"""How hardware is reached: the VISA library to use and the RS-232 session settings.

Light on purpose (no pyvisa import at module level) so protocol files and the command line
can name the choices without loading the drivers.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: RS-232 terminators of the 2400 front panel (MENU > COMMUNICATION > RS-232 > TERMINATOR).
SERIAL_TERMINATORS: dict[str, str] = {"LF": "\n", "CR": "\r", "CRLF": "\r\n", "LFCR": "\n\r"}
#: Baud rates the 2400 (and the 2450's RS-232 adapter settings) offer.
SERIAL_BAUD_RATES: tuple[int, ...] = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600,
                                      115200)
DEFAULT_BAUD_RATE = 9600
DEFAULT_TERMINATOR = "LF"


def is_serial(resource: str) -> bool:
    """True for an RS-232 resource string (``ASRL...``)."""
    return resource.strip().upper().startswith("ASRL")


def serial_options(resource: str, baud_rate: int = DEFAULT_BAUD_RATE,
                   terminator: str = DEFAULT_TERMINATOR) -> dict[str, Any]:
    """pyvisa session options for `resource`: baud and terminators for RS-232, else none.

    ValueError names the allowed values; the instrument's own front-panel settings must match.
    """
    if terminator not in SERIAL_TERMINATORS:
        raise ValueError(f"RS-232 terminator {terminator!r} is not one of "
                         f"{', '.join(SERIAL_TERMINATORS)}")
    if isinstance(baud_rate, bool) or baud_rate not in SERIAL_BAUD_RATES:
        raise ValueError(f"RS-232 baud rate {baud_rate!r} is not one of "
                         f"{', '.join(map(str, SERIAL_BAUD_RATES))}")
    if not is_serial(resource):
        return {}
    term = SERIAL_TERMINATORS[terminator]
    return {"baud_rate": int(baud_rate), "read_termination": term, "write_termination": term}


def visa_library() -> str:
    """The pyvisa library spec for hardware: the installed VISA (NI, Keysight...) else '@py'.

    pyvisa-py is a dependency, so a fresh install talks to LAN, serial (and, with the extras,
    USB-TMC and GPIB) instruments without a vendor VISA. PYVISA_LIBRARY overrides both.
    """
    if os.environ.get("PYVISA_LIBRARY"):
        return os.environ["PYVISA_LIBRARY"]
    from pyvisa.ctwrapper import IVIVisaLibrary

    try:
        if IVIVisaLibrary.get_library_paths():
            return ""
    except Exception as exc:  # a broken vendor install must not block pyvisa-py
        log.warning("looking for a vendor VISA library failed: %s", exc)
    return "@py"


__all__ = ["DEFAULT_BAUD_RATE", "DEFAULT_TERMINATOR", "SERIAL_BAUD_RATES", "SERIAL_TERMINATORS",
           "is_serial", "serial_options", "visa_library"]
