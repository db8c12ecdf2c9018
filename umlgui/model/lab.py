"""A lab: machines, switches, hubs, the host and the Internet, wired together; plain data + TOML.

One readable file per lab, `labs_dir()/NAME/lab.toml`; the lab directory also holds
Netkit-style files the guests see at /hostlab (`pc1/` overlays, `pc1.startup`, `pc1.shutdown`).

    name = "demo"
    description = "two pcs on a switch"
    notes = "free text"
    [meta]                         # Netkit's LAB_VERSION / LAB_AUTHOR / LAB_EMAIL / LAB_WEB
    author = "me"
    [nodes.pc1]
    kind = "machine"
    position = [0.0, 0.0]
    template = "busybox"
    memory = "64M"
    append = ["ip_eth0=10.0.0.1/24"]
    depends = ["r1"]               # boots after r1 is up (Netkit's lab.dep)
    [nodes.sw]
    kind = "switch"                # or hub, host (a host tap), internet (NAT with DHCP)
    position = [200.0, 0.0]
    ports = 8
    [[links]]
    machine = "pc1"
    card = "eth0"
    network = "sw"
    port = 1
    loss = 10.0                    # impairments, only when set

A link always joins one machine card to one network node: UML cards meet only through a
switch, a hub, a tap or the internet (slirpvde NAT with DHCP). Running a lab turns node `pc1` into the library machine
`LAB-pc1` (hostname `pc1`) and switch `sw` into the umlgui switch `LAB-sw`, so several labs
(and ordinary machines) live side by side without name clashes.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from umlgui import paths
from umlgui.errors import ConfigError, NotFoundError
from umlgui.model.machine import NAME_RE
from umlgui.model.units import format_size, parse_size

MACHINE = "machine"
SWITCH = "switch"
HUB = "hub"
HOST = "host"
INTERNET = "internet"
KINDS = (MACHINE, SWITCH, HUB, HOST, INTERNET)
NETWORK_KINDS = (SWITCH, HUB, HOST, INTERNET)
# Nodes backed by a umlgui switch process (the host node is a switch with the host's tap on it).
SWITCHED_KINDS = (SWITCH, HUB, HOST)

DEFAULT_MEMORY = 64 << 20
DEFAULT_PORTS = 8
MAX_PORTS = 64
MAX_CARDS = 8
IMPAIRMENTS = ("loss", "delay_ms", "jitter_ms", "duplicate")
META_KEYS = ("version", "author", "email", "web")
NODE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$")
CARD_RE = re.compile(r"^eth(\d+)$")
MAX_GLOBAL_NAME = 32   # machine and switch names (see umlgui.model.machine.NAME_RE)


@dataclass
class Node:
    name: str
    kind: str
    x: float = 0.0
    y: float = 0.0
    # machine nodes
    template: str = "busybox"
    memory: int = DEFAULT_MEMORY
    append: list[str] = field(default_factory=list)
    depends: list[str] = field(default_factory=list)
    # switch, hub and host nodes
    ports: int = DEFAULT_PORTS
    address: str = ""               # host node: the host side's address, e.g. 10.0.9.1/24
    notes: str = ""

    @property
    def is_machine(self) -> bool:
        return self.kind == MACHINE

    @property
    def has_ports(self) -> bool:
        """Whether links pick a numbered port here (the Internet gives each card its own NAT port)."""
        return self.kind in SWITCHED_KINDS


@dataclass
class Link:
    machine: str                    # machine node
    card: str                       # "eth0"
    network: str                    # switch, hub, host or internet node
    port: int | None = None         # None on the Internet node
    loss: float = 0.0               # impairments on the switch port towards the machine
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    duplicate: float = 0.0

    @property
    def card_number(self) -> int:
        return int(CARD_RE.match(self.card).group(1))

    def impairments(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in IMPAIRMENTS}

    @property
    def impaired(self) -> bool:
        return any(self.impairments().values())

    def label(self) -> str:
        where = self.network if self.port is None else f"{self.network}:{self.port}"
        return f"{self.machine}:{self.card} — {where}"


@dataclass
class Lab:
    name: str
    description: str = ""
    notes: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)

    # --- names the outside world sees --------------------------------------------------

    @property
    def directory(self) -> Path:
        return lab_dir(self.name)

    def machine_name(self, node: str) -> str:
        """The library machine that runs machine node `node`."""
        return f"{self.name}-{node}"

    def switch_name(self, node: str) -> str:
        """The umlgui switch that runs switch, hub or host node `node`."""
        return f"{self.name}-{node}"

    def machines(self) -> list[Node]:
        return [node for node in self.nodes.values() if node.is_machine]

    def networks(self) -> list[Node]:
        return [node for node in self.nodes.values() if not node.is_machine]

    def node(self, name: str) -> Node:
        if name not in self.nodes:
            raise NotFoundError(f"lab {self.name} has no node {name!r}",
                                f"its nodes are: {', '.join(sorted(self.nodes)) or 'none'}")
        return self.nodes[name]

    # --- editing -------------------------------------------------------------------------

    def add_node(self, node: Node) -> Node:
        self._check_new_name(node.name, node.kind)
        _check_node(self.name, node, f"node {node.name}")
        self.nodes[node.name] = node
        return node

    def remove_node(self, name: str) -> tuple[Node, list[Link]]:
        """Remove a node with its links (returned, so an undo can put them back)."""
        node = self.node(name)
        removed = [link for link in self.links if name in (link.machine, link.network)]
        self.links = [link for link in self.links if link not in removed]
        del self.nodes[name]
        for other in self.machines():
            other.depends = [dep for dep in other.depends if dep != name]
        return node, removed

    def rename_node(self, old: str, new: str) -> None:
        node = self.node(old)
        if new == old:
            return
        self._check_new_name(new, node.kind)
        self.nodes = {(new if key == old else key): value for key, value in self.nodes.items()}
        node.name = new
        for link in self.links:
            link.machine = new if link.machine == old else link.machine
            link.network = new if link.network == old else link.network
        for other in self.machines():
            other.depends = [new if dep == old else dep for dep in other.depends]

    def unique_name(self, stem: str) -> str:
        """`stem1`, `stem2`, ... whichever is free first."""
        number = 1
        while f"{stem}{number}" in self.nodes:
            number += 1
        return f"{stem}{number}"

    def add_link(self, link: Link) -> Link:
        check_link(self, link, f"link {link.label()}")
        self.links.append(link)
        return link

    def remove_link(self, link: Link) -> None:
        self.links.remove(link)

    def _check_new_name(self, name: str, kind: str) -> None:
        check_node_name(self.name, name)
        if name in self.nodes:
            raise ConfigError(f"lab {self.name} already has a node named {name!r}",
                              "choose another name")

    # --- questions -------------------------------------------------------------------

    def links_of(self, node: str) -> list[Link]:
        return [link for link in self.links if node in (link.machine, link.network)]

    def link_on_card(self, machine: str, card: str) -> Link | None:
        return next((l for l in self.links if l.machine == machine and l.card == card), None)

    def link_on_port(self, network: str, port: int) -> Link | None:
        return next((l for l in self.links if l.network == network and l.port == port), None)

    def card_choices(self, machine: str) -> list[tuple[str, Link | None]]:
        """Every card the machine may use with the link on it, if any (for the port menu)."""
        count = max([MAX_CARDS] + [l.card_number + 1 for l in self.links_of(machine) if l.machine == machine])
        return [(f"eth{n}", self.link_on_card(machine, f"eth{n}")) for n in range(count)]

    def port_choices(self, network: str) -> list[tuple[int, Link | None]]:
        node = self.node(network)
        if not node.has_ports:
            return []
        return [(port, self.link_on_port(network, port)) for port in range(1, node.ports + 1)]

    def free_card(self, machine: str) -> str | None:
        return next((card for card, link in self.card_choices(machine) if link is None), None)

    def free_port(self, network: str) -> int | None:
        return next((port for port, link in self.port_choices(network) if link is None), None)

    def total_memory(self, names: list[str] | None = None) -> int:
        return sum(node.memory for node in self.machines() if names is None or node.name in names)

    def start_waves(self, wave_size: int | None = None) -> list[list[str]]:
        """Machine nodes in boot order: each wave only needs machines of earlier waves.

        Dependencies come from `depends` (Netkit's lab.dep); waves hold at most `wave_size`
        machines so a big lab does not boot all at once.
        """
        return start_waves({node.name: node.depends for node in self.machines()},
                           f"lab {self.name}", wave_size)

    def validate(self) -> None:
        check_node_name(self.name, self.name, what="lab")
        for node in self.nodes.values():
            check_node_name(self.name, node.name)
            _check_node(self.name, node, f"node {node.name}")
        seen: list[Link] = []
        for index, link in enumerate(self.links):
            check_link(self, link, f"links[{index}] ({link.label()})", existing=seen)
            seen.append(link)
        self.start_waves()


# --- checks ---------------------------------------------------------------------------

def check_node_name(lab: str, name: str, what: str = "node") -> str:
    if not NODE_NAME_RE.match(name or ""):
        raise ConfigError(f"bad {what} name {name!r}",
                          "use letters, digits, '.', '_' or '-', starting with a letter or digit")
    if what == "node" and len(lab) + 1 + len(name) > MAX_GLOBAL_NAME:
        raise ConfigError(
            f"node name {name!r} is too long for lab {lab!r}: the machine or switch "
            f"{lab}-{name} would have more than {MAX_GLOBAL_NAME} characters",
            "use a shorter node name or a shorter lab name")
    if what == "lab" and not NAME_RE.match(name):
        raise ConfigError(f"bad lab name {name!r}", "use at most 32 letters, digits, '.', '_' or '-'")
    return name


def _check_node(lab: str, node: Node, where: str) -> None:
    if node.kind not in KINDS:
        raise ConfigError(f"{where}: unknown kind {node.kind!r}", f"use one of: {', '.join(KINDS)}")
    if node.is_machine and node.memory < 16 << 20:
        raise ConfigError(f"{where}: memory {format_size(node.memory)} is too small",
                          "give the machine at least 16M (64M for busybox)")
    if node.has_ports and not 1 <= node.ports <= MAX_PORTS:
        raise ConfigError(f"{where}: {node.ports} ports is out of range",
                          f"give a switch or hub 1 to {MAX_PORTS} ports")
    for word in node.append:
        if not word or any(ch.isspace() for ch in word):
            raise ConfigError(f"{where}: kernel word {word!r} is empty or contains spaces",
                              "give each kernel word as its own list item, without spaces")
    if node.name in node.depends:
        raise ConfigError(f"{where} depends on itself", "remove it from its own depends list")


def check_link(lab: Lab, link: Link, where: str, existing: list[Link] | None = None) -> None:
    """A link must join a free card of a machine to a free port of a network node."""
    links = lab.links if existing is None else existing
    if link.machine not in lab.nodes:
        raise ConfigError(f"{where}: no node named {link.machine!r}", "add the machine first")
    if link.network not in lab.nodes:
        raise ConfigError(f"{where}: no node named {link.network!r}", "add the switch or hub first")
    machine, network = lab.nodes[link.machine], lab.nodes[link.network]
    if not machine.is_machine:
        raise ConfigError(f"{where}: {link.machine} is a {machine.kind}, not a machine",
                          "a link joins a machine's card to a switch, hub, host or Internet node")
    if network.is_machine:
        raise ConfigError(f"{where}: {link.machine} and {link.network} are both machines",
                          "UML cards meet through a switch or hub: put one between them")
    match = CARD_RE.match(link.card or "")
    if not match or int(match.group(1)) >= 64:
        raise ConfigError(f"{where}: bad card {link.card!r}", "use eth0, eth1, ...")
    taken = next((l for l in links if l.machine == link.machine and l.card == link.card), None)
    if taken is not None:
        raise ConfigError(f"{where}: {link.machine}'s {link.card} is already linked to "
                          f"{taken.network}", f"use a free card ({lab.free_card(link.machine) or 'none left'}), "
                          "or remove that link first")
    _check_port(lab, link, network, links, where)
    for key in IMPAIRMENTS:
        value = getattr(link, key)
        high = 100.0 if key in ("loss", "duplicate") else 60_000.0
        if not 0 <= value <= high:
            raise ConfigError(f"{where}: {key} {value:g} is out of range", f"give {key} from 0 to {high:g}")


def _check_port(lab: Lab, link: Link, network: Node, links: list[Link], where: str) -> None:
    if not network.has_ports:
        if link.port is not None:
            raise ConfigError(f"{where}: the Internet node {network.name} has no numbered ports",
                              "leave the port out: every card gets its own connection")
        return
    if link.port is None or not 1 <= link.port <= network.ports:
        raise ConfigError(f"{where}: {network.name} has no port {link.port}",
                          f"use a port from 1 to {network.ports}")
    taken = next((l for l in links if l.network == link.network and l.port == link.port), None)
    if taken is not None:
        free = lab.free_port(link.network)
        raise ConfigError(f"{where}: port {link.port} of {link.network} is already used by "
                          f"{taken.machine}:{taken.card}",
                          f"pick a free port ({free if free else 'none left: add ports'}), "
                          "or remove that link first")


def start_waves(depends: dict[str, list[str]], where: str,
                wave_size: int | None = None) -> list[list[str]]:
    """Topological levels of `depends` (name -> prerequisites), split into waves of wave_size."""
    for name, prerequisites in depends.items():
        for needed in prerequisites:
            if needed not in depends:
                raise ConfigError(f"{where}: {name} depends on {needed!r}, which is not a machine of the lab",
                                  f"remove {needed} from {name}'s dependencies or add a machine named {needed}")
    done: set[str] = set()
    levels: list[list[str]] = []
    while len(done) < len(depends):
        ready = sorted(n for n, needs in depends.items() if n not in done and set(needs) <= done)
        if not ready:
            cycle = find_cycle({n: d for n, d in depends.items() if n not in done})
            raise ConfigError(f"{where}: the start order has a cycle: {' -> '.join(cycle)}",
                              "remove one of these dependencies so that some machine can start first")
        levels.append(ready)
        done |= set(ready)
    if not wave_size:
        return levels
    return [level[i:i + wave_size] for level in levels for i in range(0, len(level), wave_size)]


def find_cycle(depends: dict[str, list[str]]) -> list[str]:
    """One dependency cycle, as a closed path (a -> b -> a); [] if there is none."""
    visiting: list[str] = []
    finished: set[str] = set()

    def visit(name: str) -> list[str]:
        if name in visiting:
            return visiting[visiting.index(name):] + [name]
        if name in finished:
            return []
        visiting.append(name)
        for needed in depends.get(name, []):
            found = visit(needed)
            if found:
                return found
        visiting.pop()
        finished.add(name)
        return []

    for start in sorted(depends):
        found = visit(start)
        if found:
            return found
    return []


# --- TOML -----------------------------------------------------------------------------

TOP_KEYS = {"name", "description", "notes", "meta", "nodes", "links"}
NODE_KEYS = {"kind", "position", "template", "memory", "append", "depends", "ports", "address", "notes"}
LINK_KEYS = {"machine", "card", "network", "port", *IMPAIRMENTS}


def to_toml(lab: Lab) -> str:
    """The lab as TOML laid out for people: one table per node, one [[links]] per link, short
    arrays on one line (tomli_w alone spreads every array over several lines)."""
    data = to_dict(lab)
    head = {key: data[key] for key in ("name", "description", "notes") if key in data}
    parts = [tomli_w.dumps(head, multiline_strings=True)]
    if "meta" in data:
        parts.append("[meta]\n" + _table_lines(data["meta"]))
    for name, table in data["nodes"].items():
        parts.append(f"[nodes.{_key(name)}]\n" + _table_lines(table))
    for table in data["links"]:
        parts.append("[[links]]\n" + _table_lines(table))
    return "\n".join(parts)


def _table_lines(table: dict) -> str:
    return "".join(f"{_key(key)} = {_value(value)}\n" for key, value in table.items())


def _key(key: str) -> str:
    return key if re.match(r"^[A-Za-z0-9_-]+$", key) else _value(key)


def _value(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return tomli_w.dumps({"v": value}, multiline_strings=True)[len("v = "):].rstrip("\n")


def to_dict(lab: Lab) -> dict:
    data: dict = {"name": lab.name}
    if lab.description:
        data["description"] = lab.description
    if lab.notes:
        data["notes"] = lab.notes
    if lab.meta:
        data["meta"] = dict(lab.meta)
    data["nodes"] = {name: _node_dict(node) for name, node in lab.nodes.items()}
    data["links"] = [_link_dict(link) for link in lab.links]
    return data


def _node_dict(node: Node) -> dict:
    out: dict = {"kind": node.kind, "position": [round(float(node.x), 1), round(float(node.y), 1)]}
    if node.is_machine:
        out["template"] = node.template
        out["memory"] = format_size(node.memory)
        if node.append:
            out["append"] = list(node.append)
        if node.depends:
            out["depends"] = list(node.depends)
    if node.has_ports:
        out["ports"] = node.ports
    if node.address:
        out["address"] = node.address
    if node.notes:
        out["notes"] = node.notes
    return out


def _link_dict(link: Link) -> dict:
    out: dict = {"machine": link.machine, "card": link.card, "network": link.network}
    if link.port is not None:
        out["port"] = link.port
    for key, value in link.impairments().items():
        if value:
            out[key] = value
    return out


def from_dict(data: dict, source: str) -> Lab:
    _reject_unknown(data, TOP_KEYS, source)
    if "name" not in data:
        raise ConfigError(f"{source}: missing key 'name'", "add name = \"LAB\" at the top")
    lab = Lab(name=_text(data["name"], f"{source}: name"))
    lab.description = _text(data.get("description", ""), f"{source}: description")
    lab.notes = _text(data.get("notes", ""), f"{source}: notes")
    meta = _table(data.get("meta", {}), f"{source} [meta]")
    _reject_unknown(meta, set(META_KEYS), f"{source} [meta]")
    lab.meta = {key: _text(value, f"{source} [meta] {key}") for key, value in meta.items()}
    for name, table in _table(data.get("nodes", {}), f"{source} [nodes]").items():
        lab.nodes[name] = _node_from(name, _table(table, f"{source} [nodes.{name}]"),
                                     f"{source} [nodes.{name}]")
    links = data.get("links", [])
    if not isinstance(links, list):
        raise ConfigError(f"{source}: links must be an array of tables", "write each link as [[links]]")
    lab.links = [_link_from(_table(table, f"{source} links[{i}]"), f"{source} links[{i}]")
                 for i, table in enumerate(links)]
    try:
        lab.validate()
    except ConfigError as error:
        raise ConfigError(f"{source}: {error.problem}", error.fix) from None
    return lab


def _node_from(name: str, table: dict, where: str) -> Node:
    _reject_unknown(table, NODE_KEYS, where)
    if "kind" not in table:
        raise ConfigError(f"{where}: missing key 'kind'", f"add kind = \"...\" ({', '.join(KINDS)})")
    node = Node(name=name, kind=_text(table["kind"], f"{where} kind"))
    position = table.get("position", [0.0, 0.0])
    if (not isinstance(position, list) or len(position) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in position)):
        raise ConfigError(f"{where}: position must be two numbers", "write position = [X, Y]")
    node.x, node.y = float(position[0]), float(position[1])
    node.template = _text(table.get("template", "busybox"), f"{where} template")
    node.memory = parse_size(table.get("memory", format_size(DEFAULT_MEMORY)), f"memory in {where}")
    node.append = _words(table.get("append", []), f"{where} append")
    node.depends = _words(table.get("depends", []), f"{where} depends")
    node.ports = _int(table.get("ports", DEFAULT_PORTS), f"{where} ports")
    node.address = _text(table.get("address", ""), f"{where} address")
    node.notes = _text(table.get("notes", ""), f"{where} notes")
    _check_node("", node, where)
    return node


def _link_from(table: dict, where: str) -> Link:
    _reject_unknown(table, LINK_KEYS, where)
    for key in ("machine", "card", "network"):
        if key not in table:
            raise ConfigError(f"{where}: missing key {key!r}",
                              'a link needs machine = "pc1", card = "eth0", network = "sw" (and port = N)')
    link = Link(_text(table["machine"], f"{where} machine"), _text(table["card"], f"{where} card"),
                _text(table["network"], f"{where} network"),
                _int(table["port"], f"{where} port") if "port" in table else None)
    for key in IMPAIRMENTS:
        value = table.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {key} must be a number, not {value!r}", f"write {key} = 10")
        setattr(link, key, float(value))
    return link


def _reject_unknown(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}",
                          f"allowed keys are: {', '.join(sorted(allowed))}")


def _table(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table", "see docs/labs.md for the lab file format")
    return value


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {value!r}", "put the value in double quotes")
    return value


def _int(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be a whole number, not {value!r}", "write it without quotes, e.g. 8")
    return value


def _words(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        raise ConfigError(f"{where} must be a list of strings", 'write it as ["a", "b"]')
    return list(value)


# --- files ----------------------------------------------------------------------------

def lab_dir(name: str) -> Path:
    return paths.labs_dir() / name


def lab_file(name: str) -> Path:
    return lab_dir(name) / "lab.toml"


def list_names() -> list[str]:
    if not paths.labs_dir().is_dir():
        return []
    return sorted(entry.name for entry in paths.labs_dir().iterdir() if (entry / "lab.toml").is_file())


def exists(name: str) -> bool:
    return lab_file(name).is_file()


def load(name: str) -> Lab:
    check_node_name(name, name, what="lab")
    path = lab_file(name)
    if not path.is_file():
        raise NotFoundError(f"no lab named {name!r}",
                            "see `umlgui lab list`, or import one with `umlgui lab import DIR`")
    lab = load_file(path)
    if lab.name != name:
        raise ConfigError(f"{path}: name = {lab.name!r} but the lab directory is {name!r}",
                          f'write name = "{name}" in the file, or rename the directory')
    return lab


def load_file(path: Path) -> Lab:
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}", "fix the file at that line") from None
    except OSError as error:
        raise NotFoundError(f"cannot read {path}: {error.strerror}", "check the path") from None
    return from_dict(data, str(path))


def save(lab: Lab) -> Path:
    """Write atomically: the canvas saves after every edit, so a crash must never leave half a file."""
    lab.validate()
    return paths.write_atomically(lab_file(lab.name), to_toml(lab))


def create(name: str, description: str = "") -> Lab:
    """A new, empty lab, saved."""
    check_node_name(name, name, what="lab")
    if exists(name):
        raise ConfigError(f"a lab named {name!r} already exists",
                          "choose another name, or open that lab")
    lab = Lab(name=name, description=description)
    save(lab)
    return lab
