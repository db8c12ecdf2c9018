"""Labs on the real kernel: busybox machines on real umlgui switches and hubs.

Each test boots three 48M machines in one wave (they boot in parallel) and pings through them.
"""

from __future__ import annotations

import time

import pytest
from guest import GuestConsole
from test_lab_netkit import write_router_lab

from umlgui.model import lab as labs
from umlgui.model.lab import Lab, Link, Node
from umlgui.net import client as switches
from umlgui.net import lab_runner, netkit
from umlgui.worker import client

pytestmark = [pytest.mark.uml, pytest.mark.slow]


@pytest.fixture
def lab_home(home):
    yield home
    # a failed test must not leave switch processes behind
    for info in switches.list_switches():
        if info.running:
            switches.stop_switch(info.name)


def login(lab: Lab, node: str) -> GuestConsole:
    console = GuestConsole(lab.machine_name(node))
    console.login()
    return console


def pings(console: GuestConsole, address: str, count: int = 2) -> bool:
    output = console.run(f"ping -c {count} -W 2 {address} >/dev/null 2>&1 && echo PING-OK || echo PING-FAIL",
                         timeout=count * 3 + 10)
    return "PING-OK" in output


def switch_and_hub_lab() -> Lab:
    lab = Lab("sh", description="three machines on a switch and a hub")
    lab.add_node(Node("sw", labs.SWITCH))
    lab.add_node(Node("hub", labs.HUB))
    for number in (1, 2, 3):
        name = f"pc{number}"
        lab.add_node(Node(name, labs.MACHINE, memory=48 << 20,
                          append=[f"ip_eth0=10.0.1.{number}/24", f"ip_eth1=10.0.2.{number}/24"]))
        lab.add_link(Link(name, "eth0", "sw", number))
        lab.add_link(Link(name, "eth1", "hub", number))
    labs.save(lab)
    return lab


def test_three_machines_on_a_switch_and_a_hub(lab_home):
    lab = switch_and_hub_lab()
    report = lab_runner.up(lab)
    assert sorted(report.booted) == ["pc1", "pc2", "pc3"]
    assert switches.SwitchClient(switches.mgmt_path_for(switches.control_path("sh-hub"))).status()["hub"]
    pc1, pc3 = login(lab, "pc1"), login(lab, "pc3")
    for address in ("10.0.1.2", "10.0.1.3", "10.0.2.2", "10.0.2.3"):
        assert pings(pc1, address), f"pc1 cannot reach {address}"
    assert pings(pc3, "10.0.1.1") and pings(pc3, "10.0.2.2")

    # 100 % loss on pc2's switch port stops the ping over the switch, not over the hub
    link = lab.link_on_card("pc2", "eth0")
    port = lab_runner.port_of_link(lab, link)
    assert port is not None
    sw = lab_runner.switch_client(lab, "sw")
    sw.set_port(port, loss=100.0)
    assert not pings(pc1, "10.0.1.2", count=2)
    assert pings(pc1, "10.0.2.2")
    sw.set_port(port, loss=0.0)
    assert pings(pc1, "10.0.1.2")

    # impairments kept in the lab land on the same port
    link.delay_ms = 30.0
    lab_runner.apply_impairments(lab, link)
    impairments = next(p for p in sw.status()["ports"] if p["number"] == port)["impairments"]
    assert impairments["delay_ms"] == 30.0

    # a link added to the running lab is hot-plugged (mconsole config eth2=...); kernel
    # messages about the new card would land in the middle of the console's command lines
    for console in (pc1, pc3):
        console.run("dmesg -n 1")
    lab.add_node(Node("sw2", labs.SWITCH))
    lab.add_link(Link("pc1", "eth2", "sw2", 1))
    lab.add_link(Link("pc3", "eth2", "sw2", 2))
    assert lab_runner.plug(lab, lab.link_on_card("pc1", "eth2"))
    assert lab_runner.plug(lab, lab.link_on_card("pc3", "eth2"))
    for console, address in ((pc1, "10.0.3.1/24"), (pc3, "10.0.3.3/24")):
        # short lines: the guest's line editor redraws lines wider than its terminal
        console.run(f"ip addr add {address} dev eth2")
        console.run("ip link set eth2 up")
    assert pings(pc1, "10.0.3.3")
    # removing a card that is up is refused with the fix; once down it goes
    with pytest.raises(Exception) as error:
        lab_runner.unplug(lab, lab.link_on_card("pc1", "eth2"))
    assert "ip link set eth2 down" in error.value.fix
    pc1.run("ip link set eth2 down")
    assert lab_runner.unplug(lab, lab.link_on_card("pc1", "eth2"))
    pc1.close()
    pc3.close()

    halted = lab_runner.down(lab)
    assert sorted(halted) == ["pc1", "pc2", "pc3"]
    assert not any(client.is_running(lab.machine_name(n)) for n in ("pc1", "pc2", "pc3"))
    assert not lab_runner.switch_running(lab, "sw") and not lab_runner.switch_running(lab, "hub")


def test_netkit_router_lab_routes_between_subnets(lab_home, tmp_path):
    lab, warnings = netkit.import_lab(write_router_lab(tmp_path / "netkit"), "nk")
    assert warnings == []
    report = lab_runner.up(lab)
    assert report.booted == ["r1", "pc1", "pc2"]
    # lab.dep: r1 was up before pc1 and pc2 started
    r1_started = client.machine_state("nk-r1").started
    assert all(client.machine_state(f"nk-{pc}").started > r1_started for pc in ("pc1", "pc2"))

    pc1 = login(lab, "pc1")
    assert pc1.run("hostname") == "pc1"
    assert "10.0.1.10/24" in pc1.run("ip addr show eth0")
    assert pings(pc1, "10.0.2.10"), "pc1 cannot reach pc2 through r1"
    assert "ttl=63" in pc1.run("ping -c 1 -W 2 10.0.2.10")        # one router on the way
    r1 = login(lab, "r1")
    assert r1.run("cat /etc/lab-motd") == "router of the two-subnet lab"   # r1/ overlay
    pc1.close()
    r1.close()

    lab_runner.down(lab)
    deadline = time.time() + 10
    while any(client.is_running(f"nk-{n}") for n in ("r1", "pc1", "pc2")) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(client.is_running(f"nk-{n}") for n in ("r1", "pc1", "pc2"))
    # r1.shutdown ran inside r1 as it went down, and wrote through /hostlab
    assert (lab.directory / "r1.bye").read_text() == "r1 went down cleanly\n"
    assert not list(lab.directory.glob(".umlgui-halt-*"))


def test_the_same_lab_works_on_the_real_uml_switch(lab_home, tmp_path):
    """Replace our switches with Debian's C uml_switch on the same sockets: the lab still routes."""
    lab, _ = netkit.import_lab(write_router_lab(tmp_path / "netkit"), "cs")
    pids = [switches.start_uml_switch(lab.switch_name(node.name)) for node in lab.networks()]
    try:
        report = lab_runner.up(lab)
        assert report.started_switches == []      # lab up took the running uml_switches as they are
        pc1 = login(lab, "pc1")
        assert pings(pc1, "10.0.2.10"), "pc1 cannot reach pc2 through r1 over uml_switch"
        pc1.close()
        for pid in pids:
            assert open(f"/proc/{pid}/comm").read().strip() == "uml_switch"
    finally:
        lab_runner.down(lab)
        for node in lab.networks():
            switches.stop_switch(lab.switch_name(node.name))
