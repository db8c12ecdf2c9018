"""Talking to machine workers: start one, ask its state, attach to a console, send commands.

Used by the CLI and the GUI alike; neither ever talks to a kernel process directly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from umlgui import paths
from umlgui.errors import StateError, UmlguiError
from umlgui.host.process import is_alive, kill_tree
from umlgui.model import library
from umlgui.worker import protocol
from umlgui.worker import state as st


def socket_path(name: str) -> Path:
    return paths.run_dir(name) / "worker.sock"


def machine_state(name: str) -> st.MachineState:
    """The state as the worker last wrote it; a vanished worker's live state becomes crashed."""
    state = st.read_state(paths.run_dir(name) / "state.json")
    if state is None:
        return st.MachineState(name=name)
    if state.live and not is_alive(state.worker_pid):
        state.state = st.CRASHED
        state.message = "the machine's worker process died; its kernel was left alone"
        if is_alive(state.kernel_pid):
            state.message += f" (kernel pid {state.kernel_pid} still runs: umlgui kill {name})"
    return state


def is_running(name: str) -> bool:
    return machine_state(name).live


def start(name: str) -> st.MachineState:
    """Start the machine's worker (which boots the kernel) and return once it answers."""
    library.load(name)
    if is_running(name):
        raise StateError(f"{name} is already running", f"attach to it: umlgui console {name}")
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "umlgui.worker", name], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise _worker_start_error(name, proc.stderr)
    return status(name)


def _worker_start_error(name: str, stderr: str) -> UmlguiError:
    for line in reversed(stderr.strip().splitlines()):
        try:
            reply = json.loads(line)
        except ValueError:
            continue
        return UmlguiError(reply.get("error", "the worker failed"), reply.get("fix"))
    log = paths.logs_dir(name) / "worker.log"
    return UmlguiError(f"could not start {name}'s worker: {stderr.strip() or 'no message'}",
                       f"see {log}")


class WorkerConnection:
    """One request to a worker."""

    def __init__(self, name: str, timeout: float = 15.0):
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(socket_path(name)))
        except (FileNotFoundError, ConnectionRefusedError):
            self.sock.close()
            state = machine_state(name)
            raise StateError(f"{name} is not running ({state.state})",
                             f"boot it first: umlgui boot {name}") from None
        self.rest = b""

    def request(self, message: dict) -> dict:
        try:
            self.sock.sendall(protocol.encode(message))
            reply, self.rest = protocol.read_line(self.sock)
        except (ConnectionResetError, BrokenPipeError):
            # the worker ended (its machine stopped) between our connect and its accept
            reply = None
        if reply is None:
            raise UmlguiError(f"{self.name}'s worker closed the connection",
                              f"see {paths.logs_dir(self.name) / 'worker.log'}")
        if not reply.get("ok"):
            raise UmlguiError(reply.get("error", "worker error"), reply.get("fix"))
        return reply

    def close(self) -> None:
        self.sock.close()


def call(name: str, op: str, timeout: float = 15.0, **fields) -> dict:
    conn = WorkerConnection(name, timeout)
    try:
        return conn.request({"op": op, **fields})
    finally:
        conn.close()


def status(name: str) -> st.MachineState:
    try:
        reply = call(name, "status", timeout=5.0)
    except (StateError, OSError):
        return machine_state(name)
    reply.pop("ok", None)
    return st.MachineState.from_dict(reply)


def mconsole(name: str, command: str, timeout: float = 20.0) -> dict:
    return call(name, "mconsole", timeout=timeout, command=command)


def halt(name: str) -> dict:
    try:
        return call(name, "halt", timeout=20.0)
    except UmlguiError:
        if not is_running(name):
            return {"ok": True}      # it stopped anyway, which is what was asked
        raise


def reboot(name: str) -> dict:
    return call(name, "reboot", timeout=20.0)


def kill(name: str) -> dict:
    """Kill the machine's whole process group; also works on a kernel whose worker died."""
    try:
        return call(name, "kill", timeout=5.0)
    except StateError:
        state = st.read_state(paths.run_dir(name) / "state.json")
        if state and is_alive(state.kernel_pid):
            kill_tree(state.kernel_pid, marker=f"uml_dir={paths.run_dir(name)}/")
            state.state, state.exit_code = st.KILLED, 137
            st.write_state(paths.run_dir(name) / "state.json", state)
            return {"ok": True}
        raise


def type_text(name: str, text: str, console: str = "con0") -> None:
    call(name, "input", console=console, text=text)


def attach(name: str, console: str = "con0", replay: bool = True,
           cols: int | None = None, rows: int | None = None) -> socket.socket:
    """A socket carrying the console's raw bytes (replayed scrollback first)."""
    conn = WorkerConnection(name, timeout=10.0)
    message = {"op": "attach", "console": console, "replay": replay}
    if cols and rows:
        message.update(cols=cols, rows=rows)
    conn.request(message)
    conn.sock.settimeout(None)
    if conn.rest:
        # bytes that arrived with the reply belong to the stream: hand them back in order
        return _PrefixedSocket(conn.sock, conn.rest)
    return conn.sock


class _PrefixedSocket(socket.socket):
    """A socket whose first recv() returns bytes already read past the JSON reply."""

    def __init__(self, sock: socket.socket, prefix: bytes):
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self._prefix = prefix

    def recv(self, size: int, *args) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return super().recv(size, *args)


def resize(name: str, console: str, cols: int, rows: int) -> None:
    call(name, "resize", console=console, cols=cols, rows=rows)


def watch(name: str, timeout: float | None = None) -> Iterator[st.MachineState]:
    """State changes as they happen (the current state first) until the worker ends."""
    conn = WorkerConnection(name)
    try:
        first = conn.request({"op": "watch"})
        first.pop("ok", None)
        yield st.MachineState.from_dict(first)
        conn.sock.settimeout(timeout)
        buffer = conn.rest
        while True:
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                event = json.loads(line)
                event.pop("event", None)
                yield st.MachineState.from_dict(event)
            chunk = conn.sock.recv(65536)
            if not chunk:
                final = machine_state(name)
                yield final
                return
            buffer += chunk
    finally:
        conn.close()


def wait_until_ready(name: str, timeout: float = 120.0) -> st.MachineState:
    """Block until a prompt shows on con0 (state running); raise with the last console lines."""
    deadline = time.time() + timeout
    last = None
    try:
        for state in watch(name, timeout=timeout):
            last = state
            if state.state == st.RUNNING and state.ready:
                return state
            if not state.live:
                break
            if time.time() > deadline:
                break
    except (socket.timeout, TimeoutError):
        pass
    last = machine_state(name) if last is None or not last.live else last
    tail = console_tail(name)
    what = (f"{name} stopped while booting ({last.state}, exit status {last.exit_code})"
            if not last.live else f"{name} showed no prompt within {timeout:.0f} s")
    if last.message:
        what += f"\n{last.message}"
    raise UmlguiError(f"{what}; last console lines:\n{tail}",
                      f"see the whole log: umlgui log {name}")


def console_tail(name: str, lines: int = 15, console: str = "con0") -> str:
    log = paths.logs_dir(name) / f"{console}.log"
    try:
        data = log.read_bytes()[-8192:]
    except OSError:
        return "(no console output)"
    text = data.decode(errors="replace").replace("\r", "")
    return "\n".join(text.splitlines()[-lines:])
