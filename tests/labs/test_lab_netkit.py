"""Netkit / Kathará labs: import, export, round trip, and malformed lab.conf / lab.dep files."""

from __future__ import annotations

from pathlib import Path

import pytest

from umlgui.errors import ConfigError, NotFoundError
from umlgui.model import lab as labs
from umlgui.model.lab import Link, Node
from umlgui.net import netkit

ROUTER_LAB_CONF = """\
# two subnets joined by a router
LAB_DESCRIPTION="Two subnets joined by a router"
LAB_VERSION=1.0
LAB_AUTHOR="O'Brien"   # quotes and comments
LAB_EMAIL=me@example.org
LAB_WEB="https://example.org/lab"

r1[0]=A
r1[1]=B
r1[mem]=48
pc1[0]="A"
pc1[mem]=48
pc2[0]=B
pc2[mem]=48M
pc2[append]="ip_eth0=10.0.2.10/24,10.0.2.1 quiet"
"""


def write_router_lab(directory: Path) -> Path:
    """The two-subnet lab of the end-to-end test: static addresses and routes in .startup files."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "lab.conf").write_text(ROUTER_LAB_CONF)
    (directory / "lab.dep").write_text("pc1: r1\npc2: r1\n")
    (directory / "r1.startup").write_text(
        "ip addr add 10.0.1.1/24 dev eth0\nip link set eth0 up\n"
        "ip addr add 10.0.2.1/24 dev eth1\nip link set eth1 up\n"
        "echo 1 > /proc/sys/net/ipv4/ip_forward\n")
    (directory / "r1.shutdown").write_text("echo r1 went down cleanly > /hostlab/r1.bye\n")
    (directory / "pc1.startup").write_text(
        "ip addr add 10.0.1.10/24 dev eth0\nip link set eth0 up\nip route add default via 10.0.1.1\n")
    (directory / "r1" / "etc").mkdir(parents=True)
    (directory / "r1" / "etc" / "lab-motd").write_text("router of the two-subnet lab\n")
    (directory / "pc2").mkdir()
    return directory


@pytest.fixture
def lab_home(tmp_path, monkeypatch):
    monkeypatch.setenv("UMLGUI_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_import_reads_machines_domains_memory_metadata_and_order(tmp_path, lab_home):
    source = write_router_lab(tmp_path / "netkit")
    lab, warnings = netkit.import_lab(source, "two")
    assert warnings == []
    assert lab.description == "Two subnets joined by a router"
    assert lab.meta == {"version": "1.0", "author": "O'Brien", "email": "me@example.org",
                        "web": "https://example.org/lab"}
    assert sorted(n.name for n in lab.machines()) == ["pc1", "pc2", "r1"]
    assert sorted((n.name, n.kind) for n in lab.networks()) == [("A", "switch"), ("B", "switch")]
    assert {(l.machine, l.card, l.network) for l in lab.links} == {
        ("r1", "eth0", "A"), ("r1", "eth1", "B"), ("pc1", "eth0", "A"), ("pc2", "eth0", "B")}
    assert lab.nodes["pc2"].memory == 48 << 20 and lab.nodes["r1"].memory == 48 << 20
    assert lab.nodes["pc2"].append == ["ip_eth0=10.0.2.10/24,10.0.2.1", "quiet"]
    assert lab.start_waves() == [["r1"], ["pc1", "pc2"]]
    copied = labs.lab_dir("two")
    assert (copied / "r1" / "etc" / "lab-motd").is_file()
    assert (copied / "pc1.startup").is_file() and (copied / "lab.conf.orig").is_file()
    assert labs.load("two") == lab
    assert lab.machine_name("pc1") == "two-pc1" and lab.switch_name("A") == "two-A"


def test_machines_come_from_directories_too_and_kathara_options_warn(tmp_path, lab_home):
    source = tmp_path / "kathara"
    (source / "lonely").mkdir(parents=True)
    (source / "shared").mkdir()
    (source / "lab.conf").write_text('pc1[0]="A/02:42:ac:11:00:02"\npc1[image]="kathara/frr"\n'
                                     'pc1[ipv6]=false\nLAB_OTHER=1\n')
    lab, warnings = netkit.import_lab(source, "kat")
    assert sorted(n.name for n in lab.machines()) == ["lonely", "pc1"]
    text = "\n".join(warnings)
    assert "MAC 02:42:ac:11:00:02 is ignored" in text
    assert "pc1[image] is not used" in text and "pc1[ipv6]" in text and "LAB_OTHER" in text
    assert "shared/" in text


def test_domain_named_like_a_machine_gets_its_own_node(tmp_path, lab_home):
    source = tmp_path / "clash"
    source.mkdir()
    (source / "lab.conf").write_text("pc1[0]=pc2\npc2[0]=pc2\n")
    lab, _ = netkit.import_lab(source, "clash")
    assert "cd-pc2" in lab.nodes and lab.nodes["pc2"].is_machine


def test_export_then_import_round_trip(tmp_path, lab_home):
    original, _ = netkit.import_lab(write_router_lab(tmp_path / "netkit"), "two")
    original.nodes["r1"].notes = ""
    exported = tmp_path / "exported"
    assert netkit.export_lab(original, exported) == []
    conf = (exported / "lab.conf").read_text()
    assert "r1[0]=A" in conf and "r1[mem]=48" in conf and 'LAB_AUTHOR="O\'Brien"' in conf
    assert (exported / "lab.dep").read_text() == "pc1: r1\npc2: r1\n"
    assert (exported / "r1" / "etc" / "lab-motd").is_file() and (exported / "r1.startup").is_file()
    again, warnings = netkit.import_lab(exported, "again")
    assert warnings == []
    for lab in (original, again):
        for node in lab.nodes.values():
            node.x = node.y = 0.0
    again.name = original.name
    assert again == original


def test_export_warns_about_what_netkit_cannot_describe(tmp_path, lab_home):
    lab = labs.Lab("withnet")
    lab.add_node(Node("pc1", labs.MACHINE))
    lab.add_node(Node("net", labs.INTERNET))
    lab.add_link(Link("pc1", "eth0", "net"))
    warnings = netkit.export_lab(lab, tmp_path / "out")
    assert any("Internet node net" in w or "internet node net" in w for w in warnings)
    with pytest.raises(ConfigError, match="already holds a lab.conf"):
        netkit.export_lab(lab, tmp_path / "out")


def netkit_dir(tmp_path: Path, conf: str, dep: str | None = None) -> Path:
    source = tmp_path / "bad"
    source.mkdir()
    (source / "lab.conf").write_text(conf)
    if dep is not None:
        (source / "lab.dep").write_text(dep)
    return source


@pytest.mark.parametrize("conf, where, message", [
    ("pc1[0]=A\nthis is not an assignment\n", "lab.conf:2", "cannot read 'this is not an assignment'"),
    ("pc1[0]=A\npc1[mem]=lots\n", "lab.conf:2", "bad memory"),
    ("pc1[0]=A\npc1[colour]=red\n", "lab.conf:2", "unknown option pc1[colour]"),
    ('LAB_DESCRIPTION="unclosed\n', "lab.conf:1", "No closing quotation"),
    ("pc1[0]=A B\n", "lab.conf:1", "bad collision domain 'A B'"),
    ("bad!name[0]=A\n", "lab.conf:1", "cannot read"),
    ('machines="pc1"\npc1[0]=A\npc2[0]=A\n', "lab.conf", "pc2 is configured but not in machines"),
])
def test_malformed_lab_conf(tmp_path, lab_home, conf, where, message):
    with pytest.raises(ConfigError) as error:
        netkit.import_lab(netkit_dir(tmp_path, conf), "bad")
    assert where in error.value.problem and message in error.value.problem
    assert error.value.fix
    assert not labs.exists("bad")


def test_unknown_machine_in_lab_dep(tmp_path, lab_home):
    source = netkit_dir(tmp_path, "pc1[0]=A\nr1[0]=A\n", "pc1: r1\npc1: r2\n")
    with pytest.raises(ConfigError) as error:
        netkit.import_lab(source, "bad")
    assert "lab.dep:2: unknown machine 'r2'" in error.value.problem
    assert "pc1, r1" in error.value.fix


def test_dependency_cycle_in_lab_dep(tmp_path, lab_home):
    source = netkit_dir(tmp_path, "a[0]=X\nb[0]=X\nc[0]=X\n", "a: b\nb: c\nc: a\n")
    with pytest.raises(ConfigError) as error:
        netkit.import_lab(source, "bad")
    assert "lab.dep" in error.value.problem and "cycle: a -> b -> c -> a" in error.value.problem


def test_malformed_lab_dep_line(tmp_path, lab_home):
    source = netkit_dir(tmp_path, "a[0]=X\n", "# order\na b\n")
    with pytest.raises(ConfigError, match=r"lab.dep:2: cannot read 'a b'"):
        netkit.import_lab(source, "bad")


def test_not_a_netkit_directory_and_existing_lab(tmp_path, lab_home):
    with pytest.raises(NotFoundError, match="has no lab.conf"):
        netkit.import_lab(tmp_path, "x")
    source = write_router_lab(tmp_path / "netkit")
    netkit.import_lab(source, "two")
    with pytest.raises(ConfigError, match="a lab named 'two' already exists") as error:
        netkit.import_lab(source, "two")
    assert "OTHER_NAME" in error.value.fix
