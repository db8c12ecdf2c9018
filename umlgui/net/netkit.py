"""Netkit / Kathará labs in and out: `lab.conf`, `lab.dep`, overlay directories, startup scripts.

    lab.conf    pc1[0]=A              eth0 of pc1 on collision domain A ("A/MAC" in Kathará)
                pc1[mem]=128          memory in MB (vstart --mem); pc1[append]="a=1 b=2" kernel words
                machines="pc1 r1"     optional: the machines, else every machine named or a directory
                LAB_DESCRIPTION="..." LAB_VERSION, LAB_AUTHOR, LAB_EMAIL, LAB_WEB
    lab.dep     pc1: r1 r2            pc1 boots once r1 and r2 are up
    pc1/        copied onto pc1's / at boot; pc1.startup / pc1.shutdown run at boot / halt

Importing copies the directory into `labs_dir()/NAME/` next to the new `lab.toml`: machine
`pc1` becomes node `pc1` (library machine `NAME-pc1`, hostname `pc1`, `hostlab=` the lab
directory), collision domain `A` becomes switch node `A` (umlgui switch `NAME-A`).
Options umlgui has no use for (Kathará's image, ipv6, ...) are reported as warnings.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from umlgui.errors import ConfigError, NotFoundError
from umlgui.model import lab as labs
from umlgui.model.lab import Lab, Link, Node
from umlgui.model.units import parse_size

META = {"LAB_DESCRIPTION": None, "LAB_VERSION": "version", "LAB_AUTHOR": "author",
        "LAB_EMAIL": "email", "LAB_WEB": "web"}
ASSIGNMENT_RE = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[([^\]]+)\])?\s*=\s*(.*)$")
DEPENDENCY_RE = re.compile(r"^([A-Za-z0-9_.-]+)\s*:(.*)$")
NOT_MACHINES = {"shared", "_test"}
LAB_FILES = {"lab.conf", "lab.dep", "lab.toml", "lab.ext"}
# vstart options that mean nothing here; kept quiet rather than warned about one by one.
IGNORED_OPTIONS = {"con0", "con1", "xterm", "exec", "hostwd", "hosthome", "eth", "image",
                   "model-fs", "kernel", "num_terms", "shell", "ipv6", "bridged", "port",
                   "privileged", "sysctl", "env", "cpus", "ulimit", "volume", "entrypoint", "args"}
SPACING = 220.0


@dataclass
class NetkitLab:
    """What a Netkit directory says, before it becomes a umlgui lab."""

    directory: Path
    description: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    machines: list[str] = field(default_factory=list)
    interfaces: dict[str, dict[int, str]] = field(default_factory=dict)   # machine -> card -> domain
    memory: dict[str, int] = field(default_factory=dict)
    append: dict[str, list[str]] = field(default_factory=dict)
    template: dict[str, str] = field(default_factory=dict)
    depends: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def domains(self) -> list[str]:
        return sorted({domain for cards in self.interfaces.values() for domain in cards.values()})


# --- reading ----------------------------------------------------------------------------

def read(directory: Path) -> NetkitLab:
    directory = Path(directory).absolute()
    conf = directory / "lab.conf"
    if not conf.is_file():
        raise NotFoundError(f"{directory} has no lab.conf", "give the directory of a Netkit or Kathará lab")
    result = NetkitLab(directory)
    named: list[str] = []
    listed: list[str] | None = None
    for number, line in _lines(conf):
        key, arg, value = _assignment(conf, number, line)
        if arg is None:
            listed = _top_level(result, conf, number, key, value, listed)
            continue
        _check_machine_name(conf, number, key)
        if key not in named:
            named.append(key)
        _machine_option(result, conf, number, key, arg, value)
    result.machines = listed if listed is not None else _machines_from(directory, named)
    for machine in named:
        if machine not in result.machines:
            raise ConfigError(f"{conf}: {machine} is configured but not in machines=\"...\"",
                              f"add {machine} to the machines list, or remove its lines")
    result.depends = read_dependencies(directory / "lab.dep", result.machines)
    if (directory / "shared.startup").is_file() or (directory / "shared").is_dir():
        result.warnings.append("shared/ and shared.startup are not used by umlgui guests; "
                               "copy what they do into each machine's .startup file")
    return result


def _lines(path: Path):
    for number, raw in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        line = _strip_comment(raw).strip()
        if line:
            yield number, line


def _strip_comment(line: str) -> str:
    quote = None
    for index, char in enumerate(line):
        if char in "\"'" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None:
            return line[:index]
    return line


def _assignment(conf: Path, number: int, line: str) -> tuple[str, str | None, str]:
    match = ASSIGNMENT_RE.match(line)
    if not match:
        raise ConfigError(f"{conf}:{number}: cannot read {line!r}",
                          "write machine[N]=DOMAIN, machine[option]=VALUE or LAB_DESCRIPTION=\"...\"")
    key, arg, raw = match.groups()
    try:
        words = shlex.split(raw)
    except ValueError as error:
        raise ConfigError(f"{conf}:{number}: {error} in {line!r}", "close the quotes on that line") from None
    return key, arg, " ".join(words)


def _top_level(result: NetkitLab, conf: Path, number: int, key: str, value: str,
               listed: list[str] | None) -> list[str] | None:
    if key in META:
        if META[key] is None:
            result.description = value
        else:
            result.meta[META[key]] = value
    elif key == "machines":
        listed = value.split()
        for machine in listed:
            _check_machine_name(conf, number, machine)
    else:
        result.warnings.append(f"{conf.name}:{number}: {key} is not used by umlgui")
    return listed


def _check_machine_name(conf: Path, number: int, name: str) -> None:
    if not labs.NODE_NAME_RE.match(name):
        raise ConfigError(f"{conf}:{number}: bad machine name {name!r}",
                          "use letters, digits, '.', '_' or '-', starting with a letter or digit")


def _machine_option(result: NetkitLab, conf: Path, number: int, machine: str, arg: str, value: str) -> None:
    where = f"{conf}:{number}"
    if arg.isdigit():
        _interface(result, where, machine, int(arg), value)
    elif arg == "mem":
        # Netkit counts memory in MB; a suffix (128M) is accepted too
        size = parse_size(value + ("M" if value.isdigit() else ""), f"memory at {where}")
        result.memory[machine] = size
    elif arg == "append":
        result.append.setdefault(machine, []).extend(value.split())
    elif arg == "template":
        result.template[machine] = value
    elif arg in IGNORED_OPTIONS:
        result.warnings.append(f"{conf.name}:{number}: {machine}[{arg}] is not used by umlgui")
    else:
        raise ConfigError(f"{where}: unknown option {machine}[{arg}]",
                          "use an interface number (pc1[0]=A), mem, append or template")


def _interface(result: NetkitLab, where: str, machine: str, card: int, value: str) -> None:
    domain, _, mac = value.partition("/")
    if not labs.NODE_NAME_RE.match(domain):
        raise ConfigError(f"{where}: bad collision domain {domain!r} for {machine}[{card}]",
                          "name the domain with letters, digits, '.', '_' or '-'")
    if card >= 64:
        raise ConfigError(f"{where}: {machine}[{card}]: card eth{card} is out of range", "use 0..63")
    cards = result.interfaces.setdefault(machine, {})
    if card in cards:
        result.warnings.append(f"{where}: {machine}[{card}] given twice; the last one counts")
    cards[card] = domain
    if mac:
        result.warnings.append(f"{where}: {machine}[{card}]: MAC {mac} is ignored; "
                               "umlgui gives each card a stable MAC of its own")


def _machines_from(directory: Path, named: list[str]) -> list[str]:
    """Netkit's rule: every subdirectory is a machine, plus every machine lab.conf names."""
    found = list(named)
    for entry in sorted(directory.iterdir()):
        if (entry.is_dir() and entry.name not in NOT_MACHINES and not entry.name.startswith(".")
                and labs.NODE_NAME_RE.match(entry.name) and entry.name not in found):
            found.append(entry.name)
    return found


def read_dependencies(path: Path, machines: list[str]) -> dict[str, list[str]]:
    """lab.dep: `pc1: r1 r2` lines; checks names and cycles."""
    depends: dict[str, list[str]] = {name: [] for name in machines}
    if not path.is_file():
        return depends
    lines = list(_lines(path))
    joined = _join_continuations(lines)
    for number, line in joined:
        match = DEPENDENCY_RE.match(line)
        if not match:
            raise ConfigError(f"{path}:{number}: cannot read {line!r}", "write MACHINE: MACHINE1 MACHINE2")
        target, needed = match.group(1), match.group(2).split()
        for name in (target, *needed):
            if name not in depends:
                raise ConfigError(f"{path}:{number}: unknown machine {name!r}",
                                  f"the lab's machines are: {', '.join(machines)}; "
                                  "fix the name or add the machine to lab.conf")
        depends[target] += [name for name in needed if name not in depends[target]]
    labs.start_waves(depends, str(path))
    return depends


def _join_continuations(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in lines:
        if pending is not None:
            number, line = pending[0], pending[1] + " " + line
            pending = None
        if line.endswith("\\"):
            pending = (number, line[:-1])
        else:
            joined.append((number, line))
    if pending is not None:
        joined.append(pending)
    return joined


# --- into a umlgui lab --------------------------------------------------------------------

def to_lab(netkit: NetkitLab, name: str, template: str = "busybox") -> Lab:
    lab = Lab(name=name, description=netkit.description, meta=dict(netkit.meta))
    domain_nodes = _domain_node_names(netkit)
    for index, domain in enumerate(netkit.domains()):
        lab.add_node(Node(domain_nodes[domain], labs.SWITCH, x=index * SPACING, y=0.0,
                          ports=max(labs.DEFAULT_PORTS, _users(netkit, domain))))
    for machine in netkit.machines:
        lab.add_node(Node(machine, labs.MACHINE, template=netkit.template.get(machine, template),
                          memory=netkit.memory.get(machine, labs.DEFAULT_MEMORY),
                          append=netkit.append.get(machine, []),
                          depends=list(netkit.depends.get(machine, []))))
    for machine in netkit.machines:
        for card, domain in sorted(netkit.interfaces.get(machine, {}).items()):
            network = domain_nodes[domain]
            lab.add_link(Link(machine, f"eth{card}", network, lab.free_port(network)))
    _place_machines(lab, netkit)
    lab.validate()
    return lab


def _domain_node_names(netkit: NetkitLab) -> dict[str, str]:
    # a collision domain may share its name with a machine; nodes need distinct names
    return {domain: (f"cd-{domain}" if domain in netkit.machines else domain) for domain in netkit.domains()}


def _users(netkit: NetkitLab, domain: str) -> int:
    return sum(1 for cards in netkit.interfaces.values() for d in cards.values() if d == domain)


def _place_machines(lab: Lab, netkit: NetkitLab) -> None:
    """Machines above and below the row of switches, each near the switches it uses."""
    taken = {True: [], False: []}   # x positions used on the upper and the lower row
    for index, machine in enumerate(sorted(netkit.machines, key=lambda m: _mean_x(lab, m))):
        upper = index % 2 == 0
        x = _mean_x(lab, machine)
        while any(abs(x - other) < SPACING * 0.6 for other in taken[upper]):
            x += SPACING * 0.6
        taken[upper].append(x)
        node = lab.nodes[machine]
        node.x, node.y = x, -SPACING if upper else SPACING


def _mean_x(lab: Lab, machine: str) -> float:
    xs = [lab.nodes[link.network].x for link in lab.links if link.machine == machine]
    return sum(xs) / len(xs) if xs else 0.0


def import_lab(directory: Path, name: str | None = None, template: str = "busybox") -> tuple[Lab, list[str]]:
    """Copy a Netkit lab into labs_dir()/NAME and write its lab.toml; returns (lab, warnings)."""
    source = Path(directory).absolute()
    netkit = read(source)
    name = name or _name_from(source)
    labs.check_node_name(name, name, what="lab")
    if labs.exists(name):
        raise ConfigError(f"a lab named {name!r} already exists",
                          f"import under another name: umlgui lab import {directory} OTHER_NAME")
    lab = to_lab(netkit, name, template)
    target = labs.lab_dir(name)
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"{target} already exists and is not empty",
                          "import under another name, or remove that directory")
    _copy_lab_files(source, target, netkit.machines)
    labs.save(lab)
    return lab, netkit.warnings


def _name_from(directory: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", directory.name).strip("-.") or "lab"
    return name[:16]


def _copy_lab_files(source: Path, target: Path, machines: list[str]) -> None:
    """Everything of the lab but its descriptions: overlays, scripts, shared files, notes."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name in LAB_FILES or entry.name.startswith("."):
            continue
        destination = target / entry.name
        if entry.is_dir():
            shutil.copytree(entry, destination, symlinks=True)
        else:
            shutil.copy2(entry, destination)
    for name in ("lab.conf", "lab.dep"):
        if (source / name).is_file():
            # kept for reference; lab.toml is what umlgui reads from now on
            shutil.copy2(source / name, target / f"{name}.orig")


# --- writing ------------------------------------------------------------------------------

def export_lab(lab: Lab, directory: Path) -> list[str]:
    """Write lab.conf, lab.dep and the lab's files into `directory`; returns warnings."""
    directory = Path(directory).absolute()
    if directory.exists() and (directory / "lab.conf").exists():
        raise ConfigError(f"{directory} already holds a lab.conf", "export into a new or empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    (directory / "lab.conf").write_text(lab_conf_text(lab, warnings))
    dep = lab_dep_text(lab)
    if dep:
        (directory / "lab.dep").write_text(dep)
    _copy_exported_files(lab, directory)
    for node in lab.machines():
        (directory / node.name).mkdir(exist_ok=True)    # Netkit finds machines by directory
    return warnings


def lab_conf_text(lab: Lab, warnings: list[str]) -> str:
    lines = [f"# {lab.name}, exported by umlgui"]
    if lab.description:
        lines.append(f"LAB_DESCRIPTION={_quote(lab.description)}")
    for key, meta in META.items():
        if meta and lab.meta.get(meta):
            lines.append(f"{key}={_quote(lab.meta[meta])}")
    lines.append(f"machines={_quote(' '.join(node.name for node in lab.machines()))}")
    for node in lab.machines():
        lines.append("")
        for link in sorted((l for l in lab.links if l.machine == node.name), key=lambda l: l.card_number):
            network = lab.nodes[link.network]
            if network.kind in (labs.HOST, labs.INTERNET):
                warnings.append(f"{node.name}:{link.card} is on the {network.kind} node {network.name}, "
                                "which Netkit labs cannot describe; left out")
                continue
            lines.append(f"{node.name}[{link.card_number}]={network.name}")
        lines.append(f"{node.name}[mem]={node.memory >> 20}")
        if node.append:
            lines.append(f"{node.name}[append]={_quote(' '.join(node.append))}")
        if node.template != "busybox":
            lines.append(f"{node.name}[template]={node.template}")
    return "\n".join(lines) + "\n"


def lab_dep_text(lab: Lab) -> str:
    return "".join(f"{node.name}: {' '.join(node.depends)}\n" for node in lab.machines() if node.depends)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _copy_exported_files(lab: Lab, directory: Path) -> None:
    source = lab.directory
    if not source.is_dir():
        return
    for entry in source.iterdir():
        if entry.name in LAB_FILES or entry.name.startswith(".") or entry.name.endswith(".orig") \
                or entry.name == "captures":
            continue
        destination = directory / entry.name
        if entry.is_dir():
            shutil.copytree(entry, destination, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(entry, destination)
