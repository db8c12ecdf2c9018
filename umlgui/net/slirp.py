"""Internet access without root: UML's slirp transport (`ethN=slirp,MAC,/usr/bin/slirp`).

UML runs the `slirp` program with its stdin/stdout as the card's wire (SLIP-framed IP); slirp
NATs the guest's connections through ordinary host sockets, so it needs no privilege. The guest
uses slirp's fixed network:

    guest address   10.0.2.15/24 (static; slirp also answers BOOTP/DHCP on some builds)
    gateway         10.0.2.2     also reaches the host itself: 10.0.2.2:PORT -> 127.0.0.1:PORT
    DNS             10.0.2.3

Only IP crosses it (no broadcast, no ARP to other guests): it is a node that connects one card
to the host's network, not a switch port.

Debian's slirp 1.0.17 exits at once unless its stdin is a terminal, which UML's transport never
gives it; `slirp_argument()` therefore points UML at a small launcher that runs slirp on a pty
(`umlgui.net.slirptty`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from umlgui import paths
from umlgui.errors import ConfigError, NotFoundError

GUEST_ADDRESS = "10.0.2.15"
PREFIX_LENGTH = 24
GATEWAY = "10.0.2.2"
HOST_ALIAS = GATEWAY
DNS = "10.0.2.3"


def find_slirp(program: str | None = None) -> str:
    """Absolute path of the slirp program; NotFoundError with the install command if absent."""
    candidate = program or "slirp"
    found = candidate if os.path.isabs(candidate) and os.access(candidate, os.X_OK) else shutil.which(candidate)
    if not found:
        raise NotFoundError(f"the slirp program {candidate!r} is not installed",
                            "install it: sudo apt install slirp")
    return found


def slirp_argument(card: int = 0, mac: str | None = None, program: str | None = None,
                   pty: bool = True) -> str:
    """`ethN=slirp,MAC,PROGRAM` for UML's command line (or mconsole `config`).

    With `pty` (the default) PROGRAM is a launcher that gives slirp the terminal it insists on.
    """
    slirp = find_slirp(program)
    command = str(pty_launcher(slirp)) if pty else slirp
    # UML splits the fields on ',' and turns '_' into spaces; the path must survive both.
    if any(char in command for char in ", _"):
        raise ConfigError(f"slirp command path {command!r} contains ',', '_' or a space",
                          "set UMLGUI_RUNTIME to a plain directory such as /tmp/umlgui-slirp")
    return f"eth{card}=slirp,{mac or ''},{command}"


def pty_launcher(slirp: str) -> Path:
    """Write (once) and return an executable that runs `slirp` on a pty for UML."""
    package_root = Path(__file__).resolve().parents[2]
    script = (
        "#!/bin/sh\n"
        f"export PYTHONPATH={shlex.quote(str(package_root))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        f"exec {shlex.quote(sys.executable)} -m umlgui.net.slirptty {shlex.quote(slirp)} \"$@\"\n")
    launcher = paths.ensure_dir(paths.runtime_home() / "bin", 0o700) / "slirp-pty"
    try:
        current = launcher.read_text()
    except OSError:
        current = None
    if current != script:
        temporary = launcher.with_name("slirp-pty.tmp")
        temporary.write_text(script)
        temporary.chmod(0o755)
        temporary.replace(launcher)
    return launcher


def guest_setup_commands(interface: str = "eth0") -> list[str]:
    """Shell commands a guest runs to use slirp (static addressing; works on every build)."""
    return [f"ip addr add {GUEST_ADDRESS}/{PREFIX_LENGTH} dev {interface}",
            f"ip link set {interface} up",
            f"ip route add default via {GATEWAY}",
            f"echo nameserver {DNS} > /etc/resolv.conf"]
