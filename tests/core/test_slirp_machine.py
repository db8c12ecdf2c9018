"""A umlgui machine with a slirp card reaches the host without root or setup."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from guest import GuestConsole
from umlgui.model import library
from umlgui.model.machine import NetCard
from umlgui.net.slirp import find_slirp
from umlgui.worker import client

pytestmark = [pytest.mark.uml, pytest.mark.slow]


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello-from-host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_with_card(name: str, transport: str, **options) -> None:
    """Boot a new busybox machine whose eth0 uses `transport`."""
    machine = library.new_machine(name)
    machine.network["eth0"] = NetCard(transport, machine.default_mac("eth0"), options)
    library.save(machine)
    client.start(name)


def logged_in(name: str) -> GuestConsole:
    client.wait_until_ready(name, timeout=60)
    console = GuestConsole(name)
    console.login()
    return console


def test_slirp_card_gets_an_address_and_reaches_the_host(home):
    server = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    start_with_card("net1", "slirp", program=find_slirp())
    try:
        console = logged_in("net1")
        assert "10.0.2.15/24" in console.run("ip -4 addr show eth0")
        port = server.server_address[1]
        assert console.run(f"wget -q -O - http://10.0.2.2:{port}/") == "hello-from-host"
    finally:
        client.kill("net1")
        server.shutdown()


def test_internet_card_gets_an_address_by_dhcp_without_root(home):
    """The `internet` transport: VDE switch + slirpvde started on demand, DHCP in the guest."""
    from umlgui.net.internet import stop_internet

    start_with_card("net2", "internet")
    try:
        console = logged_in("net2")
        deadline = time.time() + 20
        while "inet 10.0.2." not in (out := console.run("ip -4 addr show eth0")):
            assert time.time() < deadline, out
        assert "default via 10.0.2.2" in console.run("ip route")
        assert "nameserver 10.0.2.3" in console.run("cat /etc/resolv.conf")
    finally:
        client.kill("net2")
        stop_internet()


def test_a_switch_that_is_not_running_is_started_at_boot(home):
    from umlgui.net import client as switches

    start_with_card("sw1host", "switch", switch="lan9")
    try:
        client.wait_until_ready("sw1host", timeout=60)
        status = switches.switch_handle("lan9").client().status()
        assert len(status["ports"]) == 1
    finally:
        client.kill("sw1host")
        switches.stop_switch("lan9")


def test_internet_card_without_vde_says_what_to_install(home, monkeypatch):
    from umlgui.errors import NotFoundError
    from umlgui.net import internet

    monkeypatch.setattr(internet.shutil, "which", lambda name: None)
    monkeypatch.setattr(internet, "_switch_pid", lambda directory: None)
    with pytest.raises(NotFoundError, match="vde_switch is not installed") as info:
        internet.ensure_internet("nowhere")
    assert "apt-get install vde2" in info.value.fix
