"""Running a lab: switches first, then machines in waves; halting it; live link changes.

Qt-free: the CLI calls these directly, the topology editor through run_job. Lab node `pc1`
runs as library machine `LAB-pc1` (hostname `pc1`), switch node `sw` as umlgui switch
`LAB-sw`; the host node is a switch with a host tap on it, the Internet node gives each card
its own NAT port. Machine definitions are (re)written from the lab before they boot, so the lab
file is the one place their cards, memory and kernel words are kept.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil

from umlgui.errors import ConfigError, StateError, UmlguiError
from umlgui.jobs import Progress
from umlgui.model import lab as labs
from umlgui.model import library
from umlgui.model.cmdline import net_arg
from umlgui.model.lab import Lab, Link, Node
from umlgui.model.machine import Machine, NetCard
from umlgui.model.units import human_size
from umlgui.net import client as switches
from umlgui.worker import client
from umlgui.worker import state as st

# Host memory kept free for the host itself, and what each machine costs beyond its RAM
# (worker, kernel page tables, helpers), so a lab that "just fits" does not push the host to swap.
HOST_RESERVE = 256 << 20
PER_MACHINE_OVERHEAD = 24 << 20
LAB_MARK = "of lab"
BOOT_TIMEOUT = 120.0
HALT_TIMEOUT = 30.0
SHUTDOWN_SCRIPT_TIMEOUT = 15.0  # a Netkit .shutdown script's time before the machine is halted


def default_wave_size() -> int:
    return max(2, os.cpu_count() or 2)


# --- machine definitions --------------------------------------------------------------

def machine_description(lab: Lab, node: str) -> str:
    return f"node {node} {LAB_MARK} {lab.name}"


def owned_by(machine: Machine, lab: Lab) -> bool:
    return machine.description.endswith(f"{LAB_MARK} {lab.name}")


def lab_kernel_words(lab: Lab, node: Node) -> list[str]:
    """Words every lab machine gets: the lab directory at /hostlab (overlay and scripts)."""
    directory = str(lab.directory)
    if any(ch.isspace() or ch == "," for ch in directory):
        raise ConfigError(f"the lab directory {directory} contains a space or a comma",
                          "the guest kernel's command line cannot carry it; set UMLGUI_HOME "
                          "to a path without spaces")
    return [f"hostlab={directory}"]


def card_for(lab: Lab, link: Link, machine: Machine) -> NetCard:
    network = lab.nodes[link.network]
    mac = machine.default_mac(link.card)
    if network.kind == labs.INTERNET:
        # NAT with DHCP (vde_switch + slirpvde), started on demand by the machine's worker
        return NetCard("internet", mac)
    return NetCard("switch", mac, {"switch": lab.switch_name(network.name)})


def materialize(lab: Lab, node_name: str, progress: Progress | None = None) -> Machine:
    """Create or update the library machine of machine node `node_name` from the lab."""
    node = lab.node(node_name)
    name = lab.machine_name(node_name)
    if library.exists(name):
        machine = library.load(name)
        if not owned_by(machine, lab):
            raise ConfigError(f"a machine named {name} already exists and is not part of lab {lab.name}",
                              f"rename or remove that machine (umlgui rm {name}), "
                              "or give the lab another name")
    else:
        machine = library.new_machine(name, template=node.template, progress=progress)
    apply_node(lab, node, machine)
    library.save(machine)
    return machine


def apply_node(lab: Lab, node: Node, machine: Machine) -> None:
    from umlgui.templates.base import ensure_built

    machine.hostname = node.name
    machine.memory = node.memory
    machine.description = machine_description(lab, node.name)
    template_words = list(ensure_built(machine.template).kernel_args) if machine.template else []
    machine.append = template_words + list(node.append) + lab_kernel_words(lab, node)
    machine.network = {link.card: card_for(lab, link, machine)
                       for link in lab.links if link.machine == node.name}


# --- memory ---------------------------------------------------------------------------

def check_memory(lab: Lab, names: list[str], available: int | None = None) -> None:
    """Refuse to boot machines whose memory the host cannot give (Marionnet's host crashes)."""
    if not names:
        return
    needed = sum(lab.nodes[name].memory + PER_MACHINE_OVERHEAD for name in names)
    if available is None:
        available = psutil.virtual_memory().available
    usable = available - HOST_RESERVE
    if needed > usable:
        biggest = max(names, key=lambda name: lab.nodes[name].memory)
        raise StateError(
            f"lab {lab.name}: booting {len(names)} machine(s) needs {human_size(needed)} "
            f"but the host has {human_size(max(usable, 0))} of memory to spare "
            f"({human_size(available)} available, {human_size(HOST_RESERVE)} kept for the host)",
            f"halt other machines or labs, boot fewer machines, or lower their memory "
            f"(e.g. {biggest} has {human_size(lab.nodes[biggest].memory)}: set memory = \"64M\" "
            "in its [nodes] table, or pc1[mem]=64 in a Netkit lab.conf)")
    _check_shm(lab, needed)


def _check_shm(lab: Lab, needed: int) -> None:
    # UML keeps guest RAM in a file under TMPDIR (tmpfs); a full tmpfs kills guests at random
    shm = os.environ.get("TMPDIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else "/tmp")
    try:
        free = shutil.disk_usage(shm).free
    except OSError:
        return
    if needed > free:
        raise StateError(f"lab {lab.name}: its machines need {human_size(needed)} of guest memory "
                         f"but {shm} (where UML keeps it) has only {human_size(free)} free",
                         f"enlarge it (mount -o remount,size=2G {shm}) or boot fewer machines")


# --- states -------------------------------------------------------------------------------

def machine_state(lab: Lab, node: str) -> st.MachineState:
    return client.machine_state(lab.machine_name(node))


def node_states(lab: Lab) -> dict[str, str]:
    """Each node's state: machines as their workers say, networks running or stopped."""
    states: dict[str, str] = {}
    for node in lab.nodes.values():
        if node.is_machine:
            states[node.name] = machine_state(lab, node.name).state
        elif node.kind == labs.INTERNET:
            states[node.name] = st.RUNNING
        else:
            states[node.name] = st.RUNNING if switch_running(lab, node.name) else st.STOPPED
    return states


def switch_client(lab: Lab, node: str, timeout: float = 3.0) -> switches.SwitchClient:
    name = lab.switch_name(node)
    return switches.SwitchClient(switches.mgmt_path_for(switches.control_path(name)), name, timeout)


def switch_running(lab: Lab, node: str) -> bool:
    return switch_client(lab, node).is_running()


def switch_status(lab: Lab, node: str) -> dict:
    """The switch's status; a dead switch is reported with how to bring it back."""
    try:
        return switch_client(lab, node).status()
    except switches.SwitchNotRunning:
        raise switches.SwitchNotRunning(
            f"switch {lab.switch_name(node)} of lab {lab.name} (node {node}) is not running",
            f"start it again with `umlgui lab up {lab.name}` (it starts only what is not running); "
            "machines that were plugged into it reconnect when you reboot them") from None


def tap_name(lab: Lab, node: str) -> str:
    """A host tap name for the host node; Linux allows only 15 characters."""
    return "ul" + hashlib.sha1(f"{lab.name}/{node}".encode()).hexdigest()[:10]


# --- up and down --------------------------------------------------------------------

@dataclass
class UpReport:
    started_switches: list[str]
    booted: list[str]
    already_running: list[str]


def up(lab: Lab, progress: Progress | None = None, wave_size: int | None = None,
       timeout: float = BOOT_TIMEOUT, only: list[str] | None = None) -> UpReport:
    """Start the lab's switches, then its machines in waves (lab.dep order), each wave waiting
    until its machines show a prompt. Only what is not running is started; `only` limits the
    machines (their switches still start)."""
    progress = progress or Progress()
    lab.validate()
    waves = lab.start_waves(wave_size or default_wave_size())
    wanted = set(only) if only is not None else {node.name for node in lab.machines()}
    running = {name for name in wanted if machine_state(lab, name).live}
    to_boot = [[name for name in wave if name in wanted - running] for wave in waves]
    to_boot = [wave for wave in to_boot if wave]
    check_memory(lab, [name for wave in to_boot for name in wave])
    started = start_networks(lab, progress)
    booted: list[str] = []
    for index, wave in enumerate(to_boot):
        progress.step(f"wave {index + 1} of {len(to_boot)}: {', '.join(wave)}", index / len(to_boot))
        for name in wave:
            materialize(lab, name, progress)
        boot_wave(lab, wave, timeout)
        booted += wave
    progress.step("applying link impairments", 1.0)
    for link in lab.links:
        if link.impaired and (link.machine in booted):
            apply_impairments(lab, link)
    return UpReport(started, booted, sorted(running))


def start_networks(lab: Lab, progress: Progress | None = None) -> list[str]:
    started = []
    for node in lab.networks():
        if node.kind == labs.INTERNET or switches.serving(lab.switch_name(node.name)):
            continue      # ours, or a C uml_switch someone started on the same socket
        if progress:
            progress.step(f"starting {node.kind} {node.name}")
        tap = None
        if node.kind == labs.HOST:
            from umlgui.host.tap import create_tap

            tap = tap_name(lab, node.name)
            create_tap(tap, node.address or None)
        switches.start_switch(lab.switch_name(node.name), hub=node.kind == labs.HUB, tap=tap)
        started.append(node.name)
    return started


def boot_wave(lab: Lab, names: list[str], timeout: float = BOOT_TIMEOUT) -> None:
    """Start every machine of the wave, then wait for all of them; report every failure."""
    failures: list[str] = []
    started = []
    for name in names:
        try:
            client.start(lab.machine_name(name))
            started.append(name)
        except UmlguiError as error:
            failures.append(f"{name}: {error.problem}")

    def wait(name: str) -> str | None:
        try:
            client.wait_until_ready(lab.machine_name(name), timeout)
            return None
        except UmlguiError as error:
            return f"{name}: {error.problem}"

    with ThreadPoolExecutor(max_workers=max(1, len(started))) as pool:
        failures += [problem for problem in pool.map(wait, started) if problem]
    if failures:
        raise UmlguiError(f"lab {lab.name}: some machines did not boot:\n" + "\n".join(failures),
                          f"see each machine's log (umlgui log {lab.name}-NODE); the others keep running")


def down(lab: Lab, progress: Progress | None = None, timeout: float = HALT_TIMEOUT,
         only: list[str] | None = None, keep_networks: bool = False) -> list[str]:
    """Halt the lab's running machines together (killing those that hang), then stop its switches."""
    progress = progress or Progress()
    names = [node.name for node in lab.machines() if only is None or node.name in only]
    live = [name for name in names if machine_state(lab, name).live]
    progress.step(f"halting {', '.join(live) or 'nothing'}", 0.0)
    with ThreadPoolExecutor(max_workers=max(1, len(live))) as pool:
        list(pool.map(lambda name: _halt_lab_machine(lab, name, timeout), live))
    if only is None and not keep_networks:
        progress.step("stopping switches", 0.9)
        stop_networks(lab)
    return live


def _halt_lab_machine(lab: Lab, node: str, timeout: float) -> None:
    """Halt a lab machine; one with a Netkit `NODE.shutdown` script powers off from inside
    first, so the script runs (Netkit's lhalt does the same), within SHUTDOWN_SCRIPT_TIMEOUT."""
    name = lab.machine_name(node)
    if (lab.directory / f"{node}.shutdown").is_file() and "cad-halt" in _template_features(name):
        # Ctrl-Alt-Del powers such a guest off instead of rebooting it while this marker is in
        # /hostlab (see Template.features)
        marker = lab.directory / f".umlgui-halt-{node}"
        marker.touch()
        try:
            client.mconsole(name, "cad")
            deadline = time.time() + SHUTDOWN_SCRIPT_TIMEOUT
            while time.time() < deadline and client.machine_state(name).live:
                time.sleep(0.2)
        except UmlguiError:
            pass                                   # halted the plain way below
        finally:
            marker.unlink(missing_ok=True)
    halt_machine(name, timeout)


def _template_features(name: str) -> list[str]:
    from umlgui.templates.base import get_template

    try:
        template = library.load(name).template
        return get_template(template).built().features if template else []
    except UmlguiError:
        return []


def halt_machine(name: str, timeout: float = HALT_TIMEOUT) -> None:
    try:
        client.halt(name)
    except StateError:
        return                                     # already stopped
    except UmlguiError:
        pass                                       # hung mconsole: killed below
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not client.machine_state(name).live:
            return
        time.sleep(0.2)
    try:
        client.kill(name)
    except StateError:
        pass


def stop_networks(lab: Lab) -> None:
    for node in lab.networks():
        if node.kind == labs.INTERNET:
            continue
        switches.stop_switch(lab.switch_name(node.name))
        if node.kind == labs.HOST:
            from umlgui.host.tap import delete_tap

            try:
                delete_tap(tap_name(lab, node.name))
            except UmlguiError:
                pass                               # a tap we may not remove is harmless


# --- ports, impairments, capture -------------------------------------------------------

def port_of_link(lab: Lab, link: Link, status: dict | None = None) -> int | None:
    """The live switch port a link's card is plugged into, or None if it is not plugged in.

    Ports are numbered by the switch in connection order, so the lab's port number is only a
    label; the card is found by its MAC once it has sent a frame, else by the kernel's pid.
    """
    network = lab.nodes[link.network]
    if not network.has_ports:
        return None
    status = status if status is not None else switch_status(lab, link.network)
    machine_name = lab.machine_name(link.machine)
    mac = Machine(name=machine_name).default_mac(link.card)
    ports = status.get("ports", [])
    for port in ports:
        if mac in port.get("macs", []):
            return port["number"]
    kernel_pid = client.machine_state(machine_name).kernel_pid
    if not kernel_pid:
        return None
    candidates = [port for port in ports if port.get("peer_pid") and
                  _same_process_tree(port["peer_pid"], kernel_pid)]
    if len(candidates) == 1:
        return candidates[0]["number"]
    # several cards of one machine on one switch: the nth card connected nth (at boot, in order)
    same_machine = sorted(l.card_number for l in lab.links
                          if l.machine == link.machine and l.network == link.network)
    if len(candidates) == len(same_machine) and link.card_number in same_machine:
        ordered = sorted(candidates, key=lambda port: port.get("connected", 0))
        return ordered[same_machine.index(link.card_number)]["number"]
    return None


def _same_process_tree(pid: int, kernel_pid: int) -> bool:
    if pid == kernel_pid:
        return True
    try:
        return any(parent.pid == kernel_pid for parent in psutil.Process(pid).parents())
    except psutil.Error:
        return False


def require_port(lab: Lab, link: Link) -> int:
    port = port_of_link(lab, link)
    if port is None:
        raise StateError(f"{link.machine}:{link.card} is not plugged into {lab.switch_name(link.network)}",
                         f"boot {link.machine} first (umlgui lab up {lab.name})")
    return port


def apply_impairments(lab: Lab, link: Link) -> dict:
    """Set the link's loss, delay, jitter and duplication on the switch port towards its card."""
    if not lab.nodes[link.network].has_ports:
        raise ConfigError(f"{link.label()} goes to the Internet node, which has no switch port to impair",
                          "put a switch between the machine and the Internet node")
    port = require_port(lab, link)
    return switch_client(lab, link.network).set_port(port, **link.impairments())


def capture_link(lab: Lab, link: Link, file: str | None = None) -> str:
    """Start capturing the link's frames into a pcap file in the lab's `captures/` directory."""
    port = require_port(lab, link)
    if file is None:
        directory = lab.directory / "captures"
        directory.mkdir(parents=True, exist_ok=True)
        file = str(directory / f"{link.machine}-{link.card}-{time.strftime('%Y%m%d-%H%M%S')}.pcap")
    switch_client(lab, link.network).capture_start(file, port)
    return file


def stop_capture(lab: Lab, network: str) -> dict:
    return switch_client(lab, network).capture_stop()


# --- live link changes -----------------------------------------------------------------

_plug_lock = threading.Lock()


def plug(lab: Lab, link: Link) -> bool:
    """Hot-plug the link's card into a running machine (mconsole `config ethN=...`).

    Also rewrites the machine's definition so the card is there at the next boot. Returns
    False when the machine is not running (nothing to plug; it gets the card at boot)."""
    name = lab.machine_name(link.machine)
    if not client.machine_state(name).live:
        return False
    with _plug_lock:
        if lab.nodes[link.network].has_ports and not switch_running(lab, link.network):
            start_networks(lab)
        machine = library.load(name)
        machine.network[link.card] = card_for(lab, link, machine)
        command = f"config {net_arg(machine, link.card, switches.control_path)}"
        _checked_mconsole(name, command, link.card)
        library.save(machine)
    if link.impaired:
        apply_impairments(lab, link)
    return True


def unplug(lab: Lab, link: Link) -> bool:
    """Hot-unplug the link's card (mconsole `remove ethN`); False if the machine is not running."""
    name = lab.machine_name(link.machine)
    if not client.machine_state(name).live:
        return False
    with _plug_lock:
        _checked_mconsole(name, f"remove {link.card}", link.card)
        machine = library.load(name)
        machine.network.pop(link.card, None)
        library.save(machine)
    return True


def _checked_mconsole(name: str, command: str, card: str) -> str:
    reply = client.mconsole(name, command)
    err = int(reply.get("err", 0) or 0)
    text = str(reply.get("text", "")).strip()
    if err == 0:
        return text
    if command.startswith("remove") and "open" in text.lower():
        fix = f"take the interface down in {name} first (ip link set {card} down), then remove the link again"
    elif command.startswith("remove"):
        fix = f"{card} is not plugged in on the running machine; nothing to remove"
    elif "already" in text.lower():
        fix = f"{card} already exists on the running machine: use another card, or reboot {name}"
    else:
        fix = "check the machine's state and its kernel log"
    raise UmlguiError(f"{name} refused `{command}`: {text or f'error {err}'}", fix)
