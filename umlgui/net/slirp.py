"""Internet access without root: UML's slirp transport (`ethN=slirp,MAC,PROGRAM`).

UML runs PROGRAM with its stdin/stdout as the card's wire (SLIP-framed IP); slirp NATs the
guest's connections through ordinary host sockets, so it needs no privilege. The guest uses
slirp's fixed network:

    guest address   10.0.2.15/24 (static)
    gateway         10.0.2.2     also reaches the host itself: 10.0.2.2:PORT -> 127.0.0.1:PORT
    DNS             10.0.2.3

Only IP crosses it (no broadcast, no ARP to other guests): it connects one card to the host's
network; it is not a switch port.

Which program: Debian's package installs `/usr/bin/slirp` and `/usr/bin/slirp-fullbolt`. On this
host (slirp 1.0.17) plain `slirp` prints its banner and exits with status 1 before forwarding
anything (UML logs "helper_wait : process ... exited with status 0x100"), with or without a
terminal; `slirp-fullbolt` (no modem-speed emulation) works. We therefore prefer slirp-fullbolt.
"""

from __future__ import annotations

import os
import shutil

from umlgui.errors import ConfigError, NotFoundError

GUEST_ADDRESS = "10.0.2.15"
PREFIX_LENGTH = 24
GATEWAY = "10.0.2.2"
HOST_ALIAS = GATEWAY
DNS = "10.0.2.3"
PROGRAMS = ("slirp-fullbolt", "slirp")  # in order of preference


def find_slirp(program: str | None = None) -> str:
    """Absolute path of the slirp program; NotFoundError with the install command if absent."""
    candidates = (program,) if program else PROGRAMS
    for candidate in candidates:
        if os.path.isabs(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
        elif found := shutil.which(candidate):
            return found
    raise NotFoundError(f"the slirp program ({' or '.join(candidates)}) is not installed",
                        "install it: sudo apt install slirp")


def slirp_argument(card: int = 0, mac: str | None = None, program: str | None = None) -> str:
    """`ethN=slirp,MAC,PROGRAM` for UML's command line (or mconsole `config`)."""
    path = find_slirp(program)
    # UML splits the fields on ',' and turns '_' into spaces; the path must survive both.
    if any(char in path for char in ", _"):
        raise ConfigError(f"slirp path {path!r} contains ',', '_' or a space",
                          "link slirp-fullbolt to a plain path such as /usr/local/bin/slirp-fullbolt")
    return f"eth{card}=slirp,{mac or ''},{path}"


def guest_setup_commands(interface: str = "eth0") -> list[str]:
    """Shell commands a guest runs to use slirp (static addressing)."""
    return [f"ip addr add {GUEST_ADDRESS}/{PREFIX_LENGTH} dev {interface}",
            f"ip link set {interface} up",
            f"ip route add default via {GATEWAY}",
            f"echo nameserver {DNS} > /etc/resolv.conf"]
