"""slirp: a guest reaches the host's network (here: a server on the host loopback) without root."""

from __future__ import annotations

import http.server
import shutil
import socketserver
import threading

import pytest

from umlgui.errors import ConfigError, NotFoundError
from umlgui.net.slirp import GATEWAY, find_slirp, guest_setup_commands, slirp_argument


def test_slirp_argument_prefers_fullbolt():
    if not shutil.which("slirp-fullbolt"):
        pytest.skip("needs slirp")
    assert slirp_argument(1, "fe:fd:00:00:00:09") == \
        "eth1=slirp,fe:fd:00:00:00:09," + shutil.which("slirp-fullbolt")


def test_missing_slirp_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NotFoundError, match="not installed") as error:
        find_slirp()
    assert "apt install slirp" in error.value.fix


def test_slirp_path_that_uml_would_mangle_is_refused(tmp_path):
    program = tmp_path / "my_slirp"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    with pytest.raises(ConfigError, match="contains"):
        slirp_argument(0, program=str(program))


def test_guest_setup_uses_the_slirp_network():
    assert f"ip route add default via {GATEWAY}" in guest_setup_commands()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello-from-host\n")

    def log_message(self, *args):
        pass


@pytest.mark.uml
@pytest.mark.slow
def test_guest_reaches_a_host_loopback_server_through_slirp(guest_image, guests):
    if not shutil.which("slirp-fullbolt") and not shutil.which("slirp"):
        pytest.skip("needs slirp")
    server = socketserver.TCPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        script = (f"ip route add default via {GATEWAY}; "
                  f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 {GATEWAY} {port}")
        guest = guests("net", guest_image, ip="10.0.2.15", cards=[slirp_argument(0)], script=script)
        output = guest.wait(90)
    finally:
        server.shutdown()
        server.server_close()
    assert guest.result_code() == 0, guest.report()
    assert "hello-from-host" in output
