"""A umlgui machine with a slirp card reaches the host without root or setup."""

from __future__ import annotations

import http.server
import threading

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


def test_slirp_card_gets_an_address_and_reaches_the_host(home):
    server = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    machine = library.new_machine("net1")
    machine.network["eth0"] = NetCard("slirp", machine.default_mac("eth0"), {"program": find_slirp()})
    library.save(machine)
    client.start("net1")
    try:
        client.wait_until_ready("net1", timeout=60)
        console = GuestConsole("net1")
        console.login()
        assert "10.0.2.15/24" in console.run("ip -4 addr show eth0")
        port = server.server_address[1]
        assert console.run(f"wget -q -O - http://10.0.2.2:{port}/") == "hello-from-host"
    finally:
        client.kill("net1")
        server.shutdown()
