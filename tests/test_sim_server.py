"""`ionto sim serve`: the simulator as a LAN instrument, reached through pyvisa-py like hardware."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from ionto_instruments.connect import open_source
from ionto_instruments.simulator.server import ControlClient, SimServer
from ionto_instruments.source import InstrumentFault


@pytest.fixture
def server():
    with SimServer("keithley2450", port=0) as srv:
        yield srv


def open_driver(srv: SimServer, model: str = "keithley2450"):
    source = open_source(srv.resource_name, model=model)
    source.configure_current_source(compliance_voltage=40)
    return source


@pytest.mark.parametrize("model", ["keithley2400", "keithley2450"])
def test_drivers_run_on_the_server_through_pyvisa_py(model):
    """The real driver over TCP: configure, source, read V = I·R, ground truth agrees."""
    with SimServer(model, port=0) as srv:
        source = open_driver(srv, model)
        with ControlClient(srv.control_port) as control:
            control.request("load", ohm=5000.0)
            source.set_current(1e-3)
            source.output_on()
            reading = source.read()
            assert reading.current == pytest.approx(1e-3, abs=1e-7)
            assert reading.voltage == pytest.approx(5.0, rel=0.02)
            state = control.state()
            assert state["output"] is True and state["setpoint_A"] == pytest.approx(1e-3)
            assert [c["on"] for c in state["changes"]] == [True]
            source.emergency_off()
            assert source.output_enabled() is False
            assert [c["on"] for c in control.state()["changes"]] == [True, False]
        source.close()


def test_server_outlives_its_clients_and_serializes_them(server):
    """A client that goes away leaves the output on; two clients never see each other's replies."""
    first = open_driver(server)
    first.set_current(2e-3)
    first.output_on()
    first.adapter.connection.close()  # the run "dies": no off command
    time.sleep(0.1)
    assert server.state()["output"] is True  # the instrument does not care

    clients = [open_source(server.resource_name, model="keithley2450") for _ in range(2)]
    bad: list[str] = []

    def hammer(source, query, expected):
        for _ in range(60):
            reply = source.ask(query).strip()
            if reply != expected:
                bad.append(reply)

    threads = [threading.Thread(target=hammer, args=(clients[0], ":SOUR:CURR?", "0.002")),
               threading.Thread(target=hammer, args=(clients[1], "OUTPUT?", "1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert bad == []
    assert server.state()["connections"] >= 2
    for source in clients:
        source.close()


def test_control_channel_faults_and_drop(server):
    source = open_driver(server)
    source.set_current(1e-3)
    source.output_on()
    with ControlClient(server.control_port) as control:
        assert control.request("fault", scenario="io-timeout")["scenario"].startswith("io-timeout")
        with pytest.raises(InstrumentFault, match="TMO|Timeout"):
            source.read()
        control.request("fault", scenario="normal")
        source.adapter.connection.clear()
        assert control.request("drop")["dropped"] >= 1
        with pytest.raises(InstrumentFault):
            source.output_enabled()
        source.reopen()  # a new session reaches the instrument, as after a LAN drop
        assert source.output_enabled() is True
        with pytest.raises(RuntimeError, match="unknown command"):
            control.request("explode")
        with pytest.raises(RuntimeError, match="load"):
            control.request("load", ohm=-1)
    source.close()


def test_one_session_transport_refuses_a_second_connection():
    with SimServer("keithley2400", port=0, max_connections=1) as srv:
        first = open_source(srv.resource_name, model="keithley2400")
        with pytest.raises(Exception):  # noqa: B017 - pyvisa-py reports it variously
            second = open_source(srv.resource_name, model="keithley2400")
            second.close()
        assert first.identify().startswith("KEITHLEY")
        first.close()


def test_ionto_sim_serve_process_prints_its_ports_and_stops_on_request():
    process = subprocess.Popen(
        [sys.executable, "-m", "ionto_instruments.procedures.cli", "sim", "serve", "--port",
         "0", "--model", "keithley2450", "--scenario", "contact-loss@3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(process.stdout.readline())
        assert ready["resource"].endswith("::SOCKET") and ready["model"] == "keithley2450"
        with ControlClient(ready["control_port"]) as control:
            state = control.state()
            assert state["scenario"] == "contact-loss@3" and state["output"] is False
            control.request("shutdown")
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
