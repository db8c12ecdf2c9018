"""Networks a machine needs before it boots: named switches, and "internet" with DHCP.

The `internet` card transport is user-mode NAT *with* a DHCP server, no root needed: a
per-user VDE switch (`vde_switch`) with `slirpvde -dhcp` plugged in, the card joining it
through UML's built-in `vde` transport. (UML's own `slirp` transport is a SLIP link, on
which no DHCP client can run.) Guests get 10.0.2.15.. by DHCP, gateway 10.0.2.2, DNS 10.0.2.3.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from umlgui import paths
from umlgui.errors import NotFoundError, UmlguiError
from umlgui.host.process import is_alive, kill_tree, with_argument

INTERNET_TRANSPORT = "internet"


def internet_dir(name: str = "internet") -> Path:
    """The VDE switch directory (its `ctl` socket lives inside): UML's `ethN=vde,DIR`."""
    return paths.runtime_home() / "vde" / name


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise NotFoundError(f"{name} is not installed, and the internet card needs it",
                            "install VDE: sudo apt-get install vde2")
    return found


def internet_running(name: str = "internet") -> bool:
    directory = internet_dir(name)
    return _switch_pid(directory) is not None and bool(_slirp_pids(directory))


def _switch_pid(directory: Path) -> int | None:
    try:
        pid = int(Path(f"{directory}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_alive(pid) else None


def _slirp_pids(directory: Path) -> list[int]:
    return [pid for pid in with_argument(str(directory)) if is_alive(pid)
            and Path(f"/proc/{pid}/comm").read_text().strip() == "slirpvde"]


def ensure_internet(name: str = "internet", timeout: float = 5.0) -> Path:
    """Start the VDE switch and slirpvde (detached, they outlive the GUI) unless they run."""
    directory = internet_dir(name)
    directory.parent.mkdir(parents=True, exist_ok=True)
    if _switch_pid(directory) is None:
        shutil.rmtree(directory, ignore_errors=True)
        _run([_tool("vde_switch"), "-s", str(directory), "-d", "-p", f"{directory}.pid"])
        _wait_for(lambda: (directory / "ctl").exists(), timeout, "the VDE switch")
    if not _slirp_pids(directory):
        _run([_tool("slirpvde"), "-s", str(directory), "-dhcp", "-daemon"])
        _wait_for(lambda: bool(_slirp_pids(directory)), timeout, "slirpvde")
    return directory


def stop_internet(name: str = "internet") -> bool:
    directory = internet_dir(name)
    pids = _slirp_pids(directory)
    switch = _switch_pid(directory)
    for pid in pids + ([switch] if switch else []):
        kill_tree(pid)
    shutil.rmtree(directory, ignore_errors=True)
    Path(f"{directory}.pid").unlink(missing_ok=True)
    return bool(pids or switch)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise UmlguiError(f"{Path(argv[0]).name} failed: {result.stderr.strip() or result.returncode}",
                          "see whether another umlgui runtime directory holds it, or reinstall vde2")


def _wait_for(ready, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not ready():
        if time.time() > deadline:
            raise UmlguiError(f"{what} did not come up within {timeout:.0f} s",
                              "run `umlgui switch list` and check for leftover processes")
        time.sleep(0.05)


def prepare_networks(machine) -> list[str]:
    """Make sure what the machine's cards plug into is up; returns what was started (for the log).

    A named switch that is not running is started with default settings, since UML would
    otherwise boot with the card silently missing (UML-INTERFACES §4.2).
    """
    from umlgui.net import client as switches

    started = []
    for device, card in sorted(machine.network.items()):
        if card.transport == INTERNET_TRANSPORT and not internet_running():
            ensure_internet()
            started.append("internet (vde_switch + slirpvde)")
        elif card.transport == "switch":
            name = card.options["switch"]
            if not switches.serving(name):
                switches.start_switch(name)
                started.append(f"switch {name}")
    return started
