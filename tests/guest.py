"""Driving a guest console from tests, the way a user at the terminal would."""

from __future__ import annotations

import re
import socket
import time

from umlgui.worker import client


class GuestConsole:
    def __init__(self, name: str, console: str = "con0", replay: bool = True):
        # a wide terminal, so long command lines are echoed unwrapped
        self.sock = client.attach(name, console, replay=replay, cols=250, rows=50)
        self.sock.settimeout(0.2)
        self.output = b""

    def read_until(self, pattern: bytes | str, timeout: float = 30.0) -> bytes:
        regex = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if regex.search(self.output):
                return self.output
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            if not data:
                break
            self.output += data
        if regex.search(self.output):
            return self.output
        raise AssertionError(f"{regex.pattern!r} not seen; console ends with:\n"
                             f"{self.output[-600:].decode(errors='replace')}")

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def login(self) -> None:
        self.read_until(rb"login: ")
        self.send("root\n")
        self.read_until(rb"# ")

    def run(self, command: str, timeout: float = 30.0) -> str:
        """Run a shell command; returns its output (between unique markers)."""
        marker = f"__done_{time.monotonic_ns()}__"
        echoed = f"{marker[:6]}''{marker[6:]}"      # the typed line, as the terminal echoes it
        start = len(self.output)
        self.send(f"{command}; echo {echoed}\n")
        self.read_until(rb"\n" + marker.encode() + rb"\r?\n", timeout)
        text = self.output[start:].decode(errors="replace").replace("\r", "")
        after_echo = text.rsplit(echoed, 1)[1].split("\n", 1)[1]   # line editing may redraw it
        return after_echo.split(marker)[0].strip()

    def close(self) -> None:
        self.sock.close()


def diagnostics(name: str, lines: int = 25) -> str:
    """The machine's state and the tails of its logs, for an assertion message."""
    from umlgui import paths

    parts = [f"{name}: {client.machine_state(name)}"]
    for log in sorted(paths.logs_dir(name).glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts)


def wait_for_state(name: str, wanted: str, timeout: float = 30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = client.machine_state(name)
        if state.state == wanted:
            return state
        time.sleep(0.1)
    raise AssertionError(f"expected {name} to be {wanted}\n{diagnostics(name)}")


def halted_cleanly(state) -> bool:
    """Exit 0, or UML 6.1's rare failure in its own exit after a clean halt, which the worker
    reports as a halt with this message (seen once in CI, never reproduced in 600 halts)."""
    return state.exit_code == 0 or state.message.startswith("the guest halted cleanly")
