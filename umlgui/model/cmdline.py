"""Machine <-> UML command line, in both directions.

`to_argv` gives the command line a user would type for the machine (the seeds' style:
`linux ubd0=cow,root_fs mem=128M eth0=...`); `from_argv` turns such a line into a machine.
Round trip: from_argv(to_argv(m)) == m for every valid machine. Consoles on the worker's
pty are written `con0=fd:0,fd:1` (stdio, as when run by hand) and `conN=pts` for others;
the worker swaps in its own pty fds at boot (see umlgui.kernel.linux).
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from umlgui.errors import ConfigError
from umlgui.model.machine import (
    ETH_FIELDS, INTERNET_TRANSPORT, SWITCH_TRANSPORT, VECTOR_TRANSPORT, Console, Disk,
    Machine, NetCard, parse_ubd_unit, validate_name,
)
from umlgui.model.units import format_size, parse_size

UBD_RE = re.compile(r"^ubd([0-9]+|0x[0-9a-fA-F]+|[a-z])([rsdct]*)=(.*)$")
ETH_RE = re.compile(r"^eth(\d+)=(.*)$")
VEC_RE = re.compile(r"^vec(\d+):(.*)$")
CHAN_RE = re.compile(r"^(con|ssl)(\d*)=(.*)$")
# Words the worker manages itself; an imported line's values would point at someone else's dirs.
MANAGED_PREFIXES = ("uml_dir=", "mconsole=")


@dataclass
class ImportResult:
    machine: Machine
    warnings: list[str] = field(default_factory=list)


# --- machine -> argv ------------------------------------------------------------------

def to_argv(machine: Machine, switch_socket=None) -> list[str]:
    """The machine as a UML command line. `switch_socket(name)` resolves named switches."""
    argv = [machine.kernel, f"umid={machine.umid}", f"mem={format_size(machine.memory)}"]
    argv += [disk_arg(unit, disk) for unit, disk in sorted(machine.disks.items())]
    argv += ["con=none", "ssl=none"]
    argv += [f"{name}={user_channel(name, machine.consoles[name].channel)}"
             for name in machine.console_names()]
    argv += [net_arg(machine, dev, switch_socket) for dev in sorted(machine.network)]
    if machine.hostfs:
        argv.append(f"hostfs={machine.hostfs}")
    if machine.hostname:
        argv.append(f"hostname={machine.hostname}")
    if machine.autologin:
        argv.append("autologin=1")
    argv += machine.append
    return argv


def to_shell(machine: Machine, switch_socket=None) -> str:
    return shlex.join(to_argv(machine, switch_socket))


def disk_arg(unit: int, disk: Disk) -> str:
    value = disk.file
    if disk.backing:
        value += f",{disk.backing}"
    if disk.serial:
        value += ("," if disk.backing else ",,") + disk.serial
    return f"ubd{unit}{disk.flags()}={value}"


def user_channel(name: str, channel: str) -> str:
    if channel == "pty":
        return "fd:0,fd:1" if name == "con0" else "pts"
    return channel


def net_arg(machine: Machine, device: str, switch_socket=None) -> str:
    card = machine.network[device]
    if card.transport == VECTOR_TRANSPORT:
        options = dict(card.options)
        if card.mac:
            options["mac"] = card.mac
        return f"{device}:" + ",".join(f"{k}={v}" for k, v in options.items())
    transport, options = card.transport, dict(card.options)
    if transport == SWITCH_TRANSPORT:
        name = options.pop("switch")
        transport = "daemon"
        options = {"socktype": "unix",
                   "socket": str(switch_socket(name)) if switch_socket else f"@switch:{name}"}
    elif transport == INTERNET_TRANSPORT:
        from umlgui.net.internet import internet_dir

        transport, options = "vde", {"socket": str(internet_dir())}
    options["mac"] = card.mac or machine.default_mac(device)
    fields = [options.get(key, "") for key in ETH_FIELDS[transport]]
    while fields and fields[-1] == "":
        fields.pop()
    return f"{device}=" + ",".join([transport, *fields])


# --- argv -> machine ------------------------------------------------------------------

def from_argv(argv: list[str], name: str | None = None, cwd: str | None = None) -> ImportResult:
    """A machine from a UML command line. Relative file names are taken from `cwd`."""
    if not argv:
        raise ConfigError("empty command line", "give the kernel and its arguments, e.g. linux ubd0=root_fs")
    cwd = cwd or os.getcwd()
    # UML's compiled-in con0 is stdio, which is our pty; `con=null` or `con0=none` drop it
    result = ImportResult(Machine(name="imported", kernel=argv[0]))
    machine = result.machine
    defaults: dict[str, str] = {}
    for word in argv[1:]:
        _import_word(result, word, cwd, defaults)
    machine.name = validate_name(name or _umid(argv) or Path(cwd).name)
    if 0 not in machine.disks and machine.engine == "linux":
        # UML opens ./root_fs as ubd0 when none is given
        machine.disks[0] = Disk(file=_absolute("root_fs", cwd))
        result.warnings.append("no ubd0 given: using ./root_fs, as UML does")
    return result


def _umid(argv: list[str]) -> str | None:
    for word in argv[1:]:
        if word.startswith("umid="):
            return word[5:]
    return None


def _import_word(result: ImportResult, word: str, cwd: str, defaults: dict) -> None:
    machine = result.machine
    if word.startswith("umid="):
        return
    if word.startswith("mem="):
        machine.memory = parse_size(word[4:], "mem=")
    elif (match := UBD_RE.match(word)):
        _import_disk(machine, match, cwd)
    elif (match := CHAN_RE.match(word)):
        _import_channel(result, match, defaults.setdefault("explicit", set()))
    elif (match := ETH_RE.match(word)):
        _import_eth(machine, f"eth{match.group(1)}", match.group(2))
    elif (match := VEC_RE.match(word)):
        _import_vector(machine, f"vec{match.group(1)}", match.group(2))
    elif word.startswith("hostfs="):
        machine.hostfs = word[7:]
    elif word.startswith("hostname="):
        machine.hostname = word[9:]
    elif word == "autologin=1":
        machine.autologin = True
    elif word.startswith(MANAGED_PREFIXES):
        result.warnings.append(f"ignored {word!r}: umlgui manages that itself")
    else:
        machine.append.append(word)


def _import_disk(machine: Machine, match: re.Match, cwd: str) -> None:
    unit = parse_ubd_unit(match.group(1))
    if unit in machine.disks:
        raise ConfigError(f"duplicate disk ubd{match.group(1)} on the command line",
                          "each ubd unit may appear once (ubd0 and ubda are the same disk)")
    flags = match.group(2)
    parts = re.split(r"[,:]", match.group(3))
    if not parts[0]:
        raise ConfigError(f"{match.group(0)!r}: no file given", "write ubdN=FILE or ubdN=COW,BACKING")
    disk = Disk(file=_absolute(parts[0], cwd))
    if len(parts) > 1 and parts[1]:
        disk.backing = _absolute(parts[1], cwd)
    if len(parts) > 2 and parts[2]:
        disk.serial = parts[2]
    disk.readonly, disk.sync = "r" in flags, "s" in flags
    disk.data_only, disk.shared, disk.no_trim = "d" in flags, "c" in flags, "t" in flags
    machine.disks[unit] = disk


def _import_channel(result: ImportResult, match: re.Match, explicit: set) -> None:
    kind, number, spec = match.groups()
    if not number:
        if spec in ("null", "none") and kind == "con" and "con0" not in explicit:
            result.machine.consoles.pop("con0", None)
        if spec not in ("null", "none"):
            result.warnings.append(f"ignored {kind}={spec}: give each console its own channel")
        return
    name = f"{kind}{int(number)}"
    explicit.add(name)
    if spec.startswith(("fd:", "pts", "pty")):
        channel = "pty"
    elif spec == "none":
        result.machine.consoles.pop(name, None)
        return
    else:
        channel = spec
    result.machine.consoles[name] = Console(channel)


def _import_eth(machine: Machine, device: str, spec: str) -> None:
    transport, *values = spec.split(",")
    if transport not in ETH_FIELDS:
        raise ConfigError(f"{device}: unknown transport {transport!r}",
                          f"use one of: {', '.join(ETH_FIELDS)}")
    names = ETH_FIELDS[transport]
    if transport == "slirp" and len(values) > 3:
        values = values[:2] + [",".join(values[2:])]
    options = {key: value for key, value in zip(names, values) if value}
    mac = options.pop("mac", None)
    if transport == "vde" and _is_internet(options.get("socket")):
        machine.network[device] = NetCard(INTERNET_TRANSPORT, mac, {})
        return
    if transport == "daemon":
        options.setdefault("socktype", "unix")
        if options.get("socket", "").startswith("@switch:"):
            machine.network[device] = NetCard(SWITCH_TRANSPORT, mac, {"switch": options["socket"][8:]})
            return
    machine.network[device] = NetCard(transport, mac, options)


def _is_internet(socket: str | None) -> bool:
    from umlgui.net.internet import internet_dir

    return socket == str(internet_dir())


def _import_vector(machine: Machine, device: str, spec: str) -> None:
    options = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"{device}: option {item!r} is not key=value", "write vecN:transport=tap,ifname=tap0")
        options[key] = value
    mac = options.pop("mac", None)
    machine.network[device] = NetCard(VECTOR_TRANSPORT, mac, options)


def _absolute(path: str, cwd: str) -> str:
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))

