"""A machine definition: what a UML machine is made of, independent of whether it runs.

Stored as one readable TOML file per machine (see `to_toml`/`from_toml`), converted to
the UML command line by `umlgui.model.cmdline`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from umlgui.errors import ConfigError
from umlgui.model.units import format_size, parse_size

ENGINES = ("linux", "tt")
MAX_UBD = 16
MAX_CON = 16
MAX_SSL = 64
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MAC_RE = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")
CONSOLE_RE = re.compile(r"^(con|ssl)(\d+)$")

# Console channels a machine may use. `pty` is the worker's own pty (the embedded
# terminal and `umlgui console`); the others are UML channel specs passed through.
CHANNEL_RE = re.compile(r"^(pty|null|none|xterm|port:\d{1,5}|tty:/\S+)$")

# Positional fields after the transport name in `ethN=transport,...` (UML-INTERFACES §1.5).
ETH_FIELDS: dict[str, tuple[str, ...]] = {
    "daemon": ("mac", "socktype", "socket"),
    "tuntap": ("device", "mac", "gateway"),
    "ethertap": ("device", "mac", "gateway"),
    "slip": ("gateway",),
    "slirp": ("mac", "program", "args"),
    "mcast": ("mac", "group", "port", "ttl"),
    "ucast": ("mac", "remote", "local_port", "remote_port"),
    "vde": ("socket", "mac", "port", "group", "mode", "description"),
}
# Our own transports: a named umlgui switch, turned into `daemon` with its socket at boot,
# and "internet": user-mode NAT with DHCP (umlgui.net.internet), turned into `vde`.
SWITCH_TRANSPORT = "switch"
INTERNET_TRANSPORT = "internet"
VECTOR_TRANSPORT = "vector"


@dataclass
class Disk:
    """ubdN: an image, or a COW file over a read-only backing image."""

    file: str
    backing: str | None = None
    readonly: bool = False
    shared: bool = False        # UML flag `c`: no host locking
    sync: bool = False          # `s`
    data_only: bool = False     # `d`: never treat the file as COW
    no_trim: bool = False       # `t`
    serial: str | None = None

    def flags(self) -> str:
        pairs = ((self.readonly, "r"), (self.sync, "s"), (self.data_only, "d"),
                 (self.shared, "c"), (self.no_trim, "t"))
        return "".join(letter for on, letter in pairs if on)


@dataclass
class Console:
    channel: str = "pty"


@dataclass
class NetCard:
    """ethN (legacy transports, a named switch) or vecN (vector transports)."""

    transport: str
    mac: str | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class Machine:
    name: str
    engine: str = "linux"
    kernel: str = "linux.uml"
    memory: int = 128 << 20
    disks: dict[int, Disk] = field(default_factory=dict)
    consoles: dict[str, Console] = field(default_factory=lambda: {"con0": Console()})
    network: dict[str, NetCard] = field(default_factory=dict)   # "eth0", "vec0"
    hostfs: str | None = None
    hostname: str | None = None
    autologin: bool = False
    append: list[str] = field(default_factory=list)             # extra kernel words
    template: str | None = None
    rootfs: str | None = None                                   # tt engine: base tree
    monitor: bool = False                                       # tt engine: log every syscall
    description: str = ""

    @property
    def umid(self) -> str:
        return self.name

    def console_names(self) -> list[str]:
        return sorted(self.consoles, key=_console_order)

    def next_free_ubd(self) -> int:
        for unit in range(MAX_UBD):
            if unit not in self.disks:
                return unit
        raise ConfigError(f"{self.name} already has {MAX_UBD} disks (ubd0..ubd15)",
                          "remove a disk before adding another")

    def default_mac(self, device: str) -> str:
        """A stable locally administered MAC (fe:fd:...) from the machine and device names."""
        digest = hashlib.sha1(f"{self.name}/{device}".encode()).digest()
        return "fe:fd:" + ":".join(f"{b:02x}" for b in digest[:4])

    def validate(self, check_files: bool = True) -> None:
        validate_machine(self, check_files)


def _console_order(name: str) -> tuple[int, int]:
    match = CONSOLE_RE.match(name)
    return (0 if match.group(1) == "con" else 1, int(match.group(2))) if match else (2, 0)


def guest_disk_name(unit: int) -> str:
    """What the guest calls ubdN: ubd0 is /dev/ubda."""
    return f"ubd{'abcdefghijklmnop'[unit]}"


def parse_ubd_unit(text: str) -> int:
    """'0'..'15', 'a'..'p', or C strtoul forms ('010' is octal 8) as UML parses them."""
    if len(text) == 1 and text.isalpha():
        unit = ord(text.lower()) - ord("a")
    else:
        try:
            unit = int(text, 0) if not (text.startswith("0") and len(text) > 1 and text[1].isdigit()) \
                else int(text, 8)
        except ValueError:
            raise ConfigError(f"bad disk name ubd{text}", "use ubd0..ubd15 or ubda..ubdp") from None
    if not 0 <= unit < MAX_UBD:
        raise ConfigError(f"disk ubd{text} is out of range", "UML has ubd0..ubd15 (ubda..ubdp)")
    return unit


def validate_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise ConfigError(
            f"bad machine name {name!r}",
            "use 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def validate_machine(machine: Machine, check_files: bool = True) -> None:
    validate_name(machine.name)
    if machine.engine not in ENGINES:
        raise ConfigError(f"{machine.name}: unknown engine {machine.engine!r}",
                          f"use one of: {', '.join(ENGINES)}")
    if machine.memory < 16 << 20:
        raise ConfigError(f"{machine.name}: memory {format_size(machine.memory)} is too small",
                          "give the machine at least 16M (64M for busybox, 256M for Debian)")
    _validate_disks(machine, check_files)
    for name, console in machine.consoles.items():
        _validate_console(machine.name, name, console)
    for device, card in machine.network.items():
        _validate_card(machine.name, device, card)
    if machine.monitor and machine.engine != "tt":
        raise ConfigError(f"{machine.name}: the syscall monitor needs the tt engine",
                          "switch the machine to engine tt, or turn the monitor off")
    if machine.engine == "tt" and check_files and machine.rootfs and not Path(machine.rootfs).is_dir():
        raise ConfigError(f"{machine.name}: root tree {machine.rootfs} does not exist",
                          "build the template again: umlgui template build "
                          f"{machine.template or 'busybox'}")


def _validate_disks(machine: Machine, check_files: bool) -> None:
    writable: dict[str, int] = {}
    for unit, disk in machine.disks.items():
        label = f"{machine.name}: disk ubd{unit}"
        if not 0 <= unit < MAX_UBD:
            raise ConfigError(f"{label} is out of range", "UML has ubd0..ubd15")
        for text in (disk.file, disk.backing or ""):
            if "," in text or ":" in text:
                raise ConfigError(f"{label}: file name {text!r} contains ',' or ':'",
                                  "UML uses those as separators; rename the file")
        if disk.data_only and disk.backing:
            raise ConfigError(f"{label}: 'data only' (d) cannot be combined with a COW backing file",
                              "drop the backing file or the d flag")
        if check_files:
            _check_disk_files(label, disk)
        if not disk.readonly and not disk.shared:
            if disk.file in writable:
                raise ConfigError(
                    f"{label} uses {disk.file}, already attached writable as ubd{writable[disk.file]}",
                    "attach each writable image once, or make a COW layer over it")
            writable[disk.file] = unit


def _check_disk_files(label: str, disk: Disk) -> None:
    if disk.backing:
        if not Path(disk.backing).is_file():
            raise ConfigError(f"{label}: backing image {disk.backing} does not exist",
                              "check the path, or rebuild the template it came from")
        # the COW file itself may be missing: UML creates it at first boot
        return
    path = Path(disk.file)
    if not path.exists():
        raise ConfigError(f"{label}: image {disk.file} does not exist",
                          "check the path, or create the image (umlgui disk create)")
    if path.is_dir():
        raise ConfigError(f"{label}: {disk.file} is a directory, not a disk image",
                          "choose an image file")


def _validate_console(machine: str, name: str, console: Console) -> None:
    match = CONSOLE_RE.match(name)
    if not match:
        raise ConfigError(f"{machine}: unknown console {name!r}", "use con0..con15 or ssl0..ssl63")
    limit = MAX_CON if match.group(1) == "con" else MAX_SSL
    if int(match.group(2)) >= limit:
        raise ConfigError(f"{machine}: console {name} is out of range",
                          f"UML has {match.group(1)}0..{match.group(1)}{limit - 1}")
    if not CHANNEL_RE.match(console.channel):
        raise ConfigError(f"{machine}: {name} has an unknown channel {console.channel!r}",
                          "use pty (embedded terminal), port:N, null, none, xterm or tty:/dev/...")


def _validate_card(machine: str, device: str, card: NetCard) -> None:
    if not re.match(r"^(eth|vec)\d+$", device):
        raise ConfigError(f"{machine}: unknown network device {device!r}", "use eth0, eth1, ... or vec0, ...")
    known = (*ETH_FIELDS, SWITCH_TRANSPORT, INTERNET_TRANSPORT) if device.startswith("eth") \
        else (VECTOR_TRANSPORT,)
    if card.transport not in known:
        raise ConfigError(f"{machine}: {device} has an unknown transport {card.transport!r}",
                          f"use one of: {', '.join(known)}")
    if card.mac and not MAC_RE.match(card.mac):
        raise ConfigError(f"{machine}: {device} has a bad MAC address {card.mac!r}",
                          "write six hex pairs separated by colons, e.g. fe:fd:0a:00:00:01")
    if card.mac and int(card.mac[:2], 16) & 1:
        raise ConfigError(f"{machine}: {device} MAC {card.mac} is a multicast address",
                          "the first byte must be even, e.g. fe:fd:...")
    if card.transport == SWITCH_TRANSPORT and not card.options.get("switch"):
        raise ConfigError(f"{machine}: {device} is attached to a switch but names none",
                          "set switch = \"NAME\" in its [network.{device}] table")


# --- TOML ---------------------------------------------------------------------------

TOP_KEYS = {"name", "engine", "kernel", "memory", "disks", "consoles", "network", "hostfs",
            "hostname", "autologin", "append", "template", "rootfs", "monitor", "description"}
DISK_KEYS = {"file", "backing", "readonly", "shared", "sync", "data_only", "no_trim", "serial"}


def to_dict(machine: Machine) -> dict:
    data: dict = {"name": machine.name, "engine": machine.engine, "kernel": machine.kernel,
                  "memory": format_size(machine.memory)}
    for key in ("template", "rootfs", "hostname", "hostfs", "description"):
        value = getattr(machine, key)
        if value:
            data[key] = value
    if machine.autologin:
        data["autologin"] = True
    if machine.monitor:
        data["monitor"] = True
    if machine.append:
        data["append"] = list(machine.append)
    if machine.disks:
        data["disks"] = {f"ubd{unit}": _disk_dict(disk) for unit, disk in sorted(machine.disks.items())}
    data["consoles"] = {name: {"channel": machine.consoles[name].channel}
                        for name in machine.console_names()}
    if machine.network:
        data["network"] = {dev: _card_dict(card) for dev, card in sorted(machine.network.items())}
    return data


def _disk_dict(disk: Disk) -> dict:
    out: dict = {"file": disk.file}
    if disk.backing:
        out["backing"] = disk.backing
    for key in ("readonly", "shared", "sync", "data_only", "no_trim"):
        if getattr(disk, key):
            out[key] = True
    if disk.serial:
        out["serial"] = disk.serial
    return out


def _card_dict(card: NetCard) -> dict:
    out = {"transport": card.transport}
    if card.mac:
        out["mac"] = card.mac
    options = dict(card.options)
    if card.transport == VECTOR_TRANSPORT and "transport" in options:
        # the vector driver's own `transport=` key; stored as `vector` so the keys don't clash
        out["vector"] = options.pop("transport")
    out.update(options)
    return out


def from_dict(data: dict, source: str = "machine file") -> Machine:
    _reject_unknown(data, TOP_KEYS, source)
    if "name" not in data:
        raise ConfigError(f"{source}: missing key 'name'", "add name = \"...\" at the top")
    machine = Machine(name=str(data["name"]))
    machine.engine = str(data.get("engine", "linux"))
    machine.kernel = str(data.get("kernel", "linux.uml"))
    machine.memory = parse_size(data.get("memory", "128M"), f"memory of {machine.name}")
    for key in ("template", "rootfs", "hostname", "hostfs", "description"):
        if key in data:
            setattr(machine, key, str(data[key]))
    machine.autologin = bool(data.get("autologin", False))
    machine.monitor = bool(data.get("monitor", False))
    machine.append = [str(word) for word in data.get("append", [])]
    machine.disks = _disks_from(data.get("disks", {}), source)
    if "consoles" in data:
        machine.consoles = {}
        for name, table in data["consoles"].items():
            _reject_unknown(table, {"channel"}, f"{source} [consoles.{name}]")
            machine.consoles[name] = Console(str(table.get("channel", "pty")))
    for device, table in data.get("network", {}).items():
        table = dict(table)
        transport = str(table.pop("transport", ""))
        mac = table.pop("mac", None)
        options = {k: str(v) for k, v in table.items()}
        if transport == VECTOR_TRANSPORT and "vector" in options:
            options = {"transport": options.pop("vector"), **options}
        machine.network[device] = NetCard(transport, mac, options)
    return machine


def _disks_from(tables: dict, source: str) -> dict[int, Disk]:
    disks: dict[int, Disk] = {}
    for key, table in tables.items():
        if not key.startswith("ubd"):
            raise ConfigError(f"{source}: unknown disk {key!r}", "name disks ubd0..ubd15")
        unit = parse_ubd_unit(key[3:])
        if unit in disks:
            raise ConfigError(f"{source}: duplicate disk ubd{unit} ({key})",
                              "each ubd unit may appear once (ubd0 and ubda are the same disk)")
        _reject_unknown(table, DISK_KEYS, f"{source} [disks.{key}]")
        if "file" not in table:
            raise ConfigError(f"{source} [disks.{key}]: missing key 'file'", "give the image path")
        disks[unit] = Disk(**{k: v for k, v in table.items()})
    return disks


def _reject_unknown(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}",
                          f"allowed keys are: {', '.join(sorted(allowed))}")
