"""Fixtures for the network tests: an isolated umlgui home, running switches, fake UML peers."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from umlgui.net.client import start_switch, stop_switch
from umlgui.net.daemon import DaemonPeer, ethernet_frame, parse_mac

from net_support import BROADCAST, mac  # noqa: F401  (fixtures below use them)


@pytest.fixture
def net_home(tmp_path, monkeypatch):
    """UMLGUI_HOME in tmp_path and a short runtime dir (unix socket paths are limited to 108 bytes)."""
    runtime = tempfile.mkdtemp(prefix="umn", dir="/tmp")
    monkeypatch.setenv("UMLGUI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UMLGUI_RUNTIME", runtime)
    yield tmp_path
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def switch_factory(net_home):
    """start(name, **options) -> SwitchHandle; every switch is stopped at teardown."""
    started = []

    def start(name="sw", **options):
        handle = start_switch(name, **options)
        started.append(name)
        return handle

    yield start
    for name in started:
        try:
            stop_switch(name)
        except Exception:
            pass


class Peer:
    """A fake UML card: a DaemonPeer with a MAC, plus helpers to talk on the switch."""

    def __init__(self, control, mac: str):
        self.link = DaemonPeer.connect(control)
        self.mac_text = mac
        self.mac = parse_mac(mac)

    def send_to(self, destination: bytes, payload: bytes = b"test") -> bytes:
        frame = ethernet_frame(destination, self.mac, payload)
        self.link.send(frame)
        return frame

    def recv(self, timeout: float = 1.0) -> bytes | None:
        return self.link.recv(timeout)

    def drain(self, quiet: float = 0.2) -> list[bytes]:
        return self.link.recv_all(quiet)

    def close(self) -> None:
        self.link.close()


@pytest.fixture
def peers():
    """connect(handle, mac) -> Peer; all closed at teardown."""
    made = []

    def connect(handle, mac):
        peer = Peer(handle.control, mac)
        made.append(peer)
        return peer

    yield connect
    for peer in made:
        peer.close()




# ---- real-kernel fixtures --------------------------------------------------------------


@pytest.fixture(scope="session")
def guest_image():
    """A busybox ext4 root built once per session (see netguest.build_base_image)."""
    if not shutil.which("linux.uml") or not shutil.which("mkfs.ext4"):
        pytest.skip("needs linux.uml (user-mode-linux) and mkfs.ext4 (e2fsprogs)")
    from netguest import build_base_image

    directory = Path(tempfile.mkdtemp(prefix="umni", dir="/tmp"))
    yield build_base_image(directory)
    subprocess.run(["chmod", "-R", "u+w", str(directory)], check=False)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def guests(tmp_path):
    """boot(name, **Guest options) -> Guest; every guest's process group is killed at teardown."""
    from netguest import Guest

    booted = []

    def boot(name, base, **options):
        guest = Guest(name, base, tmp_path / "guests", **options)
        booted.append(guest)
        return guest

    yield boot
    for guest in booted:
        guest.kill()
