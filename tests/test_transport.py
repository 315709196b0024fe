"""Reaching hardware without a vendor VISA: pyvisa-py fallback, LAN socket, RS-232 settings.

The LAN test talks to a real TCP socket through pyvisa-py, the serial test to pyserial's
loopback port through pyvisa-py: no mocks between the driver and the bytes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from ionto_instruments import transport
from ionto_instruments.connect import open_source, scan_resources
from ionto_instruments.source import InstrumentError
from procedures.cli import main
from procedures.protocol_file import ProtocolError, parse_protocol, to_parameters

IDN_2400 = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4109876,C32   Oct  4 2010 14:20:11/A02  /S/K"


@pytest.fixture
def py_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the test independent of a vendor VISA that may be installed on the machine."""
    monkeypatch.delenv("PYVISA_LIBRARY", raising=False)
    monkeypatch.setattr("pyvisa.ctwrapper.IVIVisaLibrary.get_library_paths",
                        staticmethod(lambda *a, **k: ()))


@pytest.fixture
def socket_instrument() -> Iterator[tuple[int, list[str]]]:
    """A LAN instrument on 127.0.0.1 that answers *IDN? and SYST:ERR? (raw SOCKET, LF)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                buffer = b""
                conn.settimeout(0.2)
                while not stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    buffer += data
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        text = line.decode().strip()
                        received.append(text)
                        if text == "*IDN?":
                            conn.sendall(IDN_2400.encode() + b"\n")
                        elif text == "SYST:ERR?":
                            conn.sendall(b'0,"No error"\n')

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, received
    stop.set()
    thread.join(2)
    server.close()


def test_visa_library_falls_back_to_pyvisa_py(py_backend: None) -> None:
    assert transport.visa_library() == "@py"


def test_visa_library_prefers_an_installed_vendor_visa(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYVISA_LIBRARY", raising=False)
    monkeypatch.setattr("pyvisa.ctwrapper.IVIVisaLibrary.get_library_paths",
                        staticmethod(lambda *a, **k: ("/usr/lib/libvisa.so",)))
    assert transport.visa_library() == ""
    monkeypatch.setenv("PYVISA_LIBRARY", "@ivi")
    assert transport.visa_library() == "@ivi"


def test_serial_options_apply_to_rs232_only() -> None:
    assert transport.serial_options("GPIB0::24::INSTR", 19200, "CR") == {}
    assert transport.serial_options("ASRL/dev/ttyUSB0::INSTR", 19200, "CR") == {
        "baud_rate": 19200, "read_termination": "\r", "write_termination": "\r"}
    with pytest.raises(ValueError, match="terminator 'TAB' is not one of LF, CR"):
        transport.serial_options("ASRL1::INSTR", 9600, "TAB")
    with pytest.raises(ValueError, match="baud rate 1234 is not one of"):
        transport.serial_options("ASRL1::INSTR", 1234, "LF")


def test_open_source_over_lan_socket_without_a_vendor_visa(
        py_backend: None, socket_instrument: tuple[int, list[str]]) -> None:
    port, received = socket_instrument
    source = open_source(f"TCPIP0::127.0.0.1::{port}::SOCKET", model="keithley2400")
    try:
        assert source.identify().startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2400")
        assert not source.simulated
    finally:
        source.close()
    assert received[0] == "*IDN?"


def test_ionto_resources_asks_a_given_lan_address(
        py_backend: None, socket_instrument: tuple[int, list[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    port, _ = socket_instrument
    address = f"TCPIP0::127.0.0.1::{port}::SOCKET"
    assert main(["resources", "--resource", address]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(address))
    assert "keithley2400" in line and "MODEL 2400" in line


def test_serial_baud_and_terminator_reach_the_port(py_backend: None) -> None:
    """pyserial's loopback echoes what is written: it comes back only if both ends use CR."""
    found = scan_resources(extra=("ASRLloop://::INSTR",), baud_rate=19200, terminator="CR",
                           timeout_ms=300)
    loop = next(info for info in found if info.resource == "ASRLloop://::INSTR")
    assert loop.idn == "*IDN?"  # the echo, read up to the CR terminator
    assert loop.model is None


def test_open_source_refuses_bad_serial_settings_before_opening() -> None:
    with pytest.raises(InstrumentError, match="baud rate 1234"):
        open_source("ASRL/dev/ttyUSB0::INSTR", baud_rate=1234)


def test_protocol_file_and_flags_carry_serial_settings(
        capsys: pytest.CaptureFixture[str]) -> None:
    values = parse_protocol({"instrument": {"resource": "ASRL/dev/ttyUSB0::INSTR",
                                            "baud_rate": 19200, "terminator": "CR"}})
    assert to_parameters(values) == {"resource": "ASRL/dev/ttyUSB0::INSTR", "baud_rate": 19200,
                                     "serial_terminator": "CR"}
    with pytest.raises(ProtocolError, match="1234 is not one of 300, 600"):
        parse_protocol({"instrument": {"baud_rate": 1234}})
    with pytest.raises(SystemExit):
        main(["run", "--baud", "1234"])
    assert "--baud" in capsys.readouterr().err


def test_emergency_off_on_a_raw_socket_writes_abort_then_off(
        py_backend: None, socket_instrument: tuple[int, list[str]]) -> None:
    """A raw LAN socket has no device clear (pyvisa-py's only drains, and spins on a dropped
    socket): the driver writes the abort command, then the off."""
    port, received = socket_instrument
    source = open_source(f"TCPIP0::127.0.0.1::{port}::SOCKET", model="keithley2400")
    try:
        source.emergency_off()
        source.identify()  # a round trip: everything written before it has arrived
    finally:
        source.close()
    assert received[-3:] == [":ABORT", "OUTPUT 0", "*IDN?"]
