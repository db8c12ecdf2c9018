"""Host tap devices: create and configure them (pyroute2), open them for a switch port.

A tap carries Ethernet frames between the host's network stack and a guest: either a UML card
opens it directly (`ethN=tuntap,TAP`) or a switch makes it one of its ports (`--tap TAP`).

Creating and configuring a tap needs CAP_NET_ADMIN. Without it, `create_tap` raises an error
whose fix is the exact `sudo ip ...` line to run once; afterwards the tap belongs to the user and
`open_tap` / `ethN=tuntap,TAP` need no privilege.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import ipaddress
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import IFT_NO_PI, IFT_TAP
from pyroute2.netlink.rtnl.ifinfmsg.tuntap import TUNDEV, TUNSETIFF

from umlgui.errors import ConfigError, NotFoundError, UmlguiError

IFNAMSIZ = 16
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_PERMISSION_ERRNOS = (errno.EPERM, errno.EACCES)


@dataclass
class TapDevice:
    """A tap as created or found: its name, kernel index, address (CIDR) and bridge."""

    name: str
    index: int
    address: str | None = None
    bridge: str | None = None
    masquerade: str | None = None  # the tool that set up NAT ("nft"/"iptables"), if any

    def card_argument(self, card: int = 0, mac: str | None = None) -> str:
        """The UML command-line word that puts card `ethN` directly on this tap."""
        return tuntap_argument(card, self.name, mac)


def validate_tap_name(name: str) -> str:
    if not _NAME.match(name or "") or name in (".", ".."):
        raise ConfigError(f"invalid tap device name {name!r}",
                          "use 1–15 letters, digits, '_', '.' or '-' (e.g. umltap0)")
    return name


def tuntap_argument(card: int, tap: str, mac: str | None = None) -> str:
    """`ethN=tuntap,TAP[,MAC]` for UML's legacy tuntap transport on an existing tap."""
    validate_tap_name(tap)
    word = f"eth{card}=tuntap,{tap}"
    return f"{word},{mac}" if mac else word


def setup_command(name: str, address: str | None = None, user: str | None = None) -> str:
    """The exact shell line a user with sudo runs to make the tap we could not create."""
    user = user or _user_name()
    steps = [f"sudo ip tuntap add dev {name} mode tap user {user}"]
    if address:
        steps.append(f"sudo ip addr add {address} dev {name}")
    steps.append(f"sudo ip link set {name} up")
    return " && ".join(steps)


def tap_exists(name: str) -> bool:
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def create_tap(name: str, address: str | None = None, *, up: bool = True,
               bridge: str | None = None, masquerade: bool = False,
               owner: int | None = None, group: int | None = None) -> TapDevice:
    """Create (or reuse) tap `name`, give it `address` (CIDR, e.g. "10.0.0.1/24"), bring it up.

    `owner`/`group` (uid/gid) let that user open the tap without privilege later; default: the
    calling user when that is not root. `bridge` enslaves the tap to an existing bridge;
    `masquerade` NATs the tap's subnet out of the host's other interfaces (nft or iptables).
    Raises UmlguiError with the `sudo ip ...` fix when the process lacks CAP_NET_ADMIN.
    """
    validate_tap_name(name)
    network = _parse_address(address) if address else None
    if masquerade and not network:
        raise ConfigError("masquerade needs the tap's address",
                          "pass address='10.0.0.1/24' (the guest side uses the same subnet)")
    if owner is None and os.getuid() != 0:
        owner = os.getuid()
    try:
        with IPRoute() as ipr:
            index = _lookup(ipr, name)
            if index is None:
                ipr.link("add", ifname=name, kind="tuntap", mode="tap", uid=owner, gid=group)
                index = _lookup(ipr, name)
            if address:
                _ensure_address(ipr, index, address)
            if bridge:
                _enslave(ipr, index, bridge)
            if up:
                ipr.link("set", index=index, state="up")
    except (NetlinkError, OSError) as error:
        code = getattr(error, "code", None) or getattr(error, "errno", None)
        if code in _PERMISSION_ERRNOS:
            raise UmlguiError(
                f"no permission to create or configure tap device {name} "
                "(this needs CAP_NET_ADMIN)",
                f"run once: {setup_command(name, address)}") from error
        raise UmlguiError(f"cannot set up tap device {name}: {error}",
                          "check `ip link show` and the kernel log") from error
    nat_tool = enable_masquerade(str(network), name) if masquerade else None
    return TapDevice(name, index, address, bridge, nat_tool)


def delete_tap(name: str) -> bool:
    """Remove tap `name`; False when it did not exist."""
    validate_tap_name(name)
    try:
        with IPRoute() as ipr:
            index = _lookup(ipr, name)
            if index is None:
                return False
            ipr.link("del", index=index)
            return True
    except NetlinkError as error:
        if error.code in _PERMISSION_ERRNOS:
            raise UmlguiError(f"no permission to delete tap device {name}",
                              f"run: sudo ip link del {name}") from error
        raise


def open_tap(name: str) -> int:
    """Attach to existing tap `name` (IFF_TAP | IFF_NO_PI) and return a non-blocking fd.

    Every read returns one Ethernet frame, every write sends one, as uml_switch's `-tap` does.
    """
    validate_tap_name(name)
    # TUNSETIFF on a missing name would quietly create a throw-away tap (down, no address).
    if not tap_exists(name):
        raise NotFoundError(f"tap device {name} does not exist",
                            f"create it first: {setup_command(name)}")
    try:
        fd = os.open(TUNDEV, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as error:
        raise NotFoundError(f"{TUNDEV} does not exist: the host has no tun/tap support",
                            "load the module: sudo modprobe tun") from error
    except PermissionError as error:
        raise UmlguiError(f"no permission to open {TUNDEV}",
                          "add your user to the group owning /dev/net/tun, or run as root") from error
    request = struct.pack("16sH", name.encode(), IFT_TAP | IFT_NO_PI)
    try:
        fcntl.ioctl(fd, TUNSETIFF, request)
    except OSError as error:
        os.close(fd)
        if error.errno in _PERMISSION_ERRNOS:
            raise UmlguiError(f"no permission to use tap device {name}",
                              f"create it for your user once: {setup_command(name)}") from error
        raise UmlguiError(f"cannot attach to tap device {name}: {error.strerror}",
                          f"check that {name} is a tap device: ip -d link show {name}") from error
    return fd


def enable_masquerade(source_cidr: str, tap: str) -> str:
    """NAT traffic from `source_cidr` leaving through any interface but `tap`.

    Uses nft when installed, else iptables; also turns on IPv4 forwarding. Returns the tool used.
    """
    ipaddress.ip_network(source_cidr, strict=False)
    if shutil.which("nft"):
        commands = [
            ["nft", "add", "table", "ip", "umlgui"],
            ["nft", "add", "chain", "ip", "umlgui", "postrouting",
             "{ type nat hook postrouting priority 100 ; }"],
            ["nft", "add", "rule", "ip", "umlgui", "postrouting",
             "ip", "saddr", source_cidr, "oifname", "!=", tap, "masquerade"],
        ]
        tool = "nft"
    elif shutil.which("iptables"):
        commands = [["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", source_cidr,
                     "!", "-o", tap, "-j", "MASQUERADE"]]
        tool = "iptables"
    else:
        raise NotFoundError("neither nft nor iptables is installed, so the tap cannot be NATed",
                            "install one (sudo apt install nftables), or use slirp "
                            "(ethN=slirp,,/usr/bin/slirp) for internet access without root")
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise UmlguiError(f"`{' '.join(command)}` failed: {result.stderr.strip()}",
                              f"run it as root, or set up NAT for {source_cidr} yourself")
    _enable_forwarding()
    return tool


def _enable_forwarding() -> None:
    try:
        with open("/proc/sys/net/ipv4/ip_forward", "w") as forward:
            forward.write("1\n")
    except OSError as error:
        raise UmlguiError("cannot enable IPv4 forwarding",
                          "run: sudo sysctl -w net.ipv4.ip_forward=1") from error


def _parse_address(address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        interface = ipaddress.ip_interface(address)
    except ValueError as error:
        raise ConfigError(f"invalid tap address {address!r}",
                          "give the host side's address with its prefix, e.g. 10.0.0.1/24") from error
    if "/" not in address:
        raise ConfigError(f"tap address {address!r} has no prefix length",
                          f"add one, e.g. {address}/24")
    return interface.network


def _lookup(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _ensure_address(ipr: IPRoute, index: int, address: str) -> None:
    interface = ipaddress.ip_interface(address)
    present = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index)}
    if (str(interface.ip), interface.network.prefixlen) not in present:
        ipr.addr("add", index=index, address=str(interface.ip), prefixlen=interface.network.prefixlen)


def _enslave(ipr: IPRoute, index: int, bridge: str) -> None:
    master = _lookup(ipr, bridge)
    if master is None:
        raise NotFoundError(f"bridge {bridge} does not exist",
                            f"create it: sudo ip link add {bridge} type bridge && sudo ip link set {bridge} up")
    ipr.link("set", index=index, master=master)


def _user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())
