"""Start, stop, list and talk to switch processes (Qt-free; the GUI and CLI use this).

Each switch is a detached `python3 -m umlgui.net.switch --daemon` process that outlives the GUI.

    runtime_home()/switches/NAME.ctl        control socket (UML: ethN=daemon,MAC,unix,NAME.ctl)
    runtime_home()/switches/NAME.ctl.mgmt   management socket (JSON lines)
    runtime_home()/switches/NAME.ctl.pid    pid of the running switch
    switches_dir()/NAME/switch.json         how it was started (hub, tap, aging)
    switches_dir()/NAME/state.json          last state written by the switch (running/stopped)
    switches_dir()/NAME/switch.log          its log
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from umlgui import paths
from umlgui.host.process import is_alive
from umlgui.errors import ConfigError, NotFoundError, StateError, UmlguiError
from umlgui.net.sockets import claim_socket_path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
# Error classes a switch may name in a refusal ("kind"), so callers can catch them precisely.
_ERROR_KINDS = {cls.__name__: cls for cls in (ConfigError, NotFoundError, StateError, UmlguiError)}
CONTROL_SUFFIX = ".ctl"
MGMT_SUFFIX = ".mgmt"


class SwitchNotRunning(StateError):
    """Nothing answers on a switch's sockets: the process is gone (or never started)."""


def validate_switch_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"invalid switch name {name!r}",
                          "use up to 32 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return name


def mgmt_path_for(control: str | os.PathLike) -> Path:
    """The management socket that belongs to control socket `control`."""
    return Path(f"{os.fspath(control)}{MGMT_SUFFIX}")


def sockets_dir() -> Path:
    return paths.runtime_home() / "switches"


def control_path(name: str) -> Path:
    """Where switch `name` listens for UML cards: `ethN=daemon,MAC,unix,<this path>`."""
    return sockets_dir() / f"{validate_switch_name(name)}{CONTROL_SUFFIX}"


def switch_dir(name: str) -> Path:
    """Logs, state and settings of switch `name`."""
    return paths.switches_dir() / validate_switch_name(name)


def start_command(name: str) -> str:
    return f"umlgui switch start {name}"


def daemon_card_argument(card: int, control: str | os.PathLike, mac: str | None = None) -> str:
    """`ethN=daemon,MAC,unix,CTL` for a UML card on the switch listening on `control`."""
    return f"eth{card}=daemon,{mac or ''},unix,{os.fspath(control)}"


@dataclass
class SwitchHandle:
    """A running switch: its sockets, pid and log."""

    name: str
    control: Path
    mgmt: Path
    pid: int | None
    log: Path

    def client(self, timeout: float = 5.0) -> "SwitchClient":
        return SwitchClient(self.mgmt, name=self.name, timeout=timeout)

    def card_argument(self, card: int = 0, mac: str | None = None) -> str:
        """The UML command-line word that plugs card `ethN` into this switch."""
        return daemon_card_argument(card, self.control, mac)

    def stop(self, timeout: float = 5.0) -> bool:
        return stop_switch(self.name, timeout)


@dataclass
class SwitchInfo:
    """A switch known on this machine, running or not."""

    name: str
    running: bool
    pid: int | None
    control: Path
    hub: bool = False
    tap: str | None = None
    aging: float | None = None
    state: dict = field(default_factory=dict)


class SwitchClient:
    """Talks to one switch's management socket: one JSON line out, one JSON line back.

    Every method raises UmlguiError when the switch refuses (its problem and fix) and
    SwitchNotRunning when no switch process answers.
    """

    def __init__(self, mgmt_path: str | os.PathLike, name: str | None = None, timeout: float = 5.0):
        self.mgmt_path = Path(mgmt_path)
        self.name = name or _name_from_mgmt(self.mgmt_path)
        self.timeout = timeout

    def request(self, op: str, **fields) -> dict:
        """Send `{"op": op, **fields}`; return the reply (without "ok") or raise its error."""
        line = json.dumps({"op": op, **fields}).encode() + b"\n"
        with self._connect() as sock:
            try:
                sock.sendall(line)
                reply_line = _read_line(sock)
            except socket.timeout as error:
                raise UmlguiError(f"switch {self.name} did not answer within {self.timeout:g} s",
                                  f"see its log {switch_log_hint(self.name)}; if it hangs, "
                                  f"stop it (umlgui switch stop {self.name}) and start it again") from error
            except OSError as error:
                raise SwitchNotRunning(f"switch {self.name} closed the connection ({error.strerror})",
                                       f"start it with `{start_command(self.name)}`") from error
        if not reply_line:
            if op == "quit":
                return {}
            raise SwitchNotRunning(f"switch {self.name} closed the connection without answering",
                                   f"see its log {switch_log_hint(self.name)}")
        reply = json.loads(reply_line)
        if not reply.pop("ok", False):
            error_class = _ERROR_KINDS.get(reply.get("kind"), UmlguiError)
            raise error_class(reply.get("error") or "the switch refused the request", reply.get("fix"))
        return reply

    def status(self) -> dict:
        """Ports (number, kind, peer_pid, up, macs, counters, impairments), MAC table, hub flag,
        capture."""
        return self.request("status")

    def set_port(self, port: int, *, up: bool | None = None, loss: float | None = None,
                 delay_ms: float | None = None, jitter_ms: float | None = None,
                 duplicate: float | None = None) -> dict:
        """Change port `port`: up/down and impairments (loss/duplicate in %, delay/jitter in ms);
        None keeps a setting."""
        changes = {"up": up, "loss": loss, "delay_ms": delay_ms, "jitter_ms": jitter_ms,
                   "duplicate": duplicate}
        return self.request("set_port", port=port,
                            **{key: value for key, value in changes.items() if value is not None})

    def capture_start(self, file: str | os.PathLike, port: int | None = None) -> dict:
        """Write every frame (or only port `port`'s, both directions) to pcap `file`."""
        fields = {"file": os.path.abspath(os.fspath(file))}
        if port is not None:
            fields["port"] = port
        return self.request("capture_start", **fields)

    def capture_stop(self) -> dict:
        """Close the capture file; returns its name and the number of frames written."""
        return self.request("capture_stop")

    def quit(self) -> None:
        self.request("quit")

    def is_running(self) -> bool:
        try:
            self.request("status")
            return True
        except SwitchNotRunning:
            return False

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(os.fspath(self.mgmt_path))
        except (FileNotFoundError, ConnectionRefusedError) as error:
            sock.close()
            raise SwitchNotRunning(
                f"switch {self.name} is not running (nothing answers on {self.mgmt_path})",
                f"start it with `{start_command(self.name)}` (or python3 -m umlgui.net.switch "
                f"--name {self.name} --control {_control_from_mgmt(self.mgmt_path)} --daemon)") from error
        except OSError as error:
            sock.close()
            raise UmlguiError(f"cannot reach switch {self.name} at {self.mgmt_path}: {error}",
                              "check the runtime directory's permissions") from error
        return sock


def start_switch(name: str, hub: bool = False, tap: str | None = None, *,
                 aging: float | None = None, timeout: float = 10.0) -> SwitchHandle:
    """Start switch `name` as a detached process; return once its control socket accepts.

    Raises StateError if it already runs, UmlguiError with the switch's own message otherwise.
    """
    control = control_path(name)
    if SwitchClient(mgmt_path_for(control), name).is_running():
        raise StateError(f"switch {name} is already running",
                         f"use it as it is, or stop it first: umlgui switch stop {name}")
    paths.ensure_dir(sockets_dir(), 0o700)
    # Checked here too so the caller gets the precise error class, not the launcher's text.
    claim_socket_path(control, "control")
    claim_socket_path(mgmt_path_for(control), "management")
    directory = paths.ensure_dir(switch_dir(name))
    settings = {"name": name, "hub": hub, "tap": tap, "aging": aging}
    (directory / "switch.json").write_text(json.dumps(settings, indent=1) + "\n")
    log_file = directory / "switch.log"
    command = [sys.executable, "-m", "umlgui.net.switch", "--name", name, "--control", str(control),
               "--daemon", "--log", str(log_file), "--state", str(directory / "state.json")]
    if hub:
        command.append("--hub")
    if tap:
        command += ["--tap", tap]
    if aging is not None:
        command += ["--aging", str(aging)]
    try:
        launcher = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=timeout, env=_child_environment())
    except subprocess.TimeoutExpired as error:
        raise UmlguiError(f"switch {name} did not start within {timeout:g} s",
                          f"see {log_file}") from error
    if launcher.returncode != 0:
        message = launcher.stderr.strip().removeprefix(f"switch {name}: ")
        problem, _, fix = message.partition("\n  fix: ")
        raise UmlguiError(problem or f"switch {name} failed to start (exit {launcher.returncode})",
                          fix or f"see {log_file}")
    _wait_for_control(control, time.monotonic() + timeout, name)
    return SwitchHandle(name, control, mgmt_path_for(control), _read_pid(control), log_file)


def serving(name: str) -> bool:
    """Whether some switch (ours, or the C uml_switch) accepts UML ports on `name`'s socket."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(control_path(name)))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def start_uml_switch(name: str, hub: bool = False, timeout: float = 10.0) -> int:
    """Run Debian's C `uml_switch` on `name`'s control socket instead of ours; returns its pid.

    Machines and labs use it exactly like our switch (same socket path); what it lacks is our
    management socket: no counters, impairments or capture.
    """
    program = shutil.which("uml_switch")
    if not program:
        raise NotFoundError("uml_switch is not installed", "sudo apt-get install uml-utilities")
    if serving(name):
        raise StateError(f"switch {name} is already running", f"stop it first: umlgui switch stop {name}")
    control = control_path(name)
    control.parent.mkdir(parents=True, exist_ok=True)
    control.unlink(missing_ok=True)
    log = switch_dir(name) / "uml_switch.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen([program, "-unix", str(control)] + (["-hub"] if hub else []),
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    Path(f"{control}.pid").write_text(f"{process.pid}\n")
    threading.Thread(target=process.wait, daemon=True).start()   # reap it when it ends
    deadline = time.monotonic() + timeout
    while not serving(name):
        if process.poll() is not None or time.monotonic() > deadline:
            raise UmlguiError(f"uml_switch for {name} did not start", f"see {log}")
        time.sleep(0.02)
    return process.pid


def stop_switch(name: str, timeout: float = 5.0) -> bool:
    """Stop switch `name` (ours: ask it to quit; either: SIGTERM, then SIGKILL). False if not running."""
    control = control_path(name)
    pid = _read_pid(control)
    try:
        SwitchClient(mgmt_path_for(control), name, timeout=timeout).quit()
        asked = True
    except UmlguiError:
        asked = False
    if pid is None or not is_alive(pid):
        return asked
    for signum in (None, signal.SIGTERM, signal.SIGKILL):
        if signum is not None:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not is_alive(pid):
                _remove_leftovers(control)
                return True
            time.sleep(0.02)
    raise UmlguiError(f"switch {name} (pid {pid}) does not stop", f"kill it: kill -9 {pid}")


def switch_handle(name: str) -> SwitchHandle:
    """The handle of running switch `name`; SwitchNotRunning if it is not running."""
    control = control_path(name)
    SwitchClient(mgmt_path_for(control), name).request("status")
    return SwitchHandle(name, control, mgmt_path_for(control), _read_pid(control),
                        switch_dir(name) / "switch.log")


def list_switches() -> list[SwitchInfo]:
    """Every switch started here (switches_dir) or listening in the runtime dir, sorted by name."""
    names = set()
    if paths.switches_dir().is_dir():
        names |= {entry.name for entry in paths.switches_dir().iterdir()
                  if (entry / "switch.json").is_file()}
    if sockets_dir().is_dir():
        names |= {entry.name[:-len(CONTROL_SUFFIX)] for entry in sockets_dir().iterdir()
                  if entry.name.endswith(CONTROL_SUFFIX)}
    return [_info(name) for name in sorted(names) if _NAME.match(name)]


def switch_log_hint(name: str) -> str:
    try:
        return str(switch_dir(name) / "switch.log")
    except ConfigError:
        return "(no log)"


def _info(name: str) -> SwitchInfo:
    control = control_path(name)
    settings = _read_json(switch_dir(name) / "switch.json")
    state = _read_json(switch_dir(name) / "state.json")
    client = SwitchClient(mgmt_path_for(control), name, timeout=2.0)
    running = client.is_running()
    pid = _read_pid(control) if running else None
    return SwitchInfo(name, running, pid, control, bool(settings.get("hub")), settings.get("tap"),
                      settings.get("aging"), state)


def _wait_for_control(control: Path, deadline: float, name: str) -> None:
    while True:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(os.fspath(control))
            return
        except OSError:
            if time.monotonic() > deadline:
                raise UmlguiError(f"switch {name} started but its control socket {control} "
                                  "does not accept connections", f"see {switch_log_hint(name)}")
            time.sleep(0.02)
        finally:
            probe.close()


def _read_pid(control: Path) -> int | None:
    try:
        return int(Path(f"{control}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _remove_leftovers(control: Path) -> None:
    for path in (control, mgmt_path_for(control), Path(f"{control}.pid")):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.strip()


def _name_from_mgmt(mgmt: Path) -> str:
    name = mgmt.name
    for suffix in (MGMT_SUFFIX, CONTROL_SUFFIX):
        name = name.removesuffix(suffix)
    return name


def _control_from_mgmt(mgmt: Path) -> Path:
    return Path(os.fspath(mgmt).removesuffix(MGMT_SUFFIX))


def _child_environment() -> dict:
    # The switch must import this very package, wherever it was imported from.
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env
