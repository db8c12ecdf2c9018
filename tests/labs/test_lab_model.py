"""Lab model: TOML round trip, editing rules, start order, and every malformed-file case."""

from __future__ import annotations

import pytest

from umlgui.errors import ConfigError, NotFoundError
from umlgui.model import lab as labs
from umlgui.model.lab import Lab, Link, Node


@pytest.fixture
def lab_home(tmp_path, monkeypatch):
    monkeypatch.setenv("UMLGUI_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def sample_lab() -> Lab:
    lab = Lab("demo", description="every kind of node", notes="line one\nline \"two\"",
              meta={"author": "me", "version": "1.2"})
    lab.add_node(Node("r1", labs.MACHINE, x=0, y=0, memory=48 << 20, append=["ip_eth0=10.0.1.1/24"]))
    lab.add_node(Node("pc1", labs.MACHINE, x=-200, y=100, depends=["r1"]))
    lab.add_node(Node("sw", labs.SWITCH, x=0, y=100, ports=4))
    lab.add_node(Node("hub1", labs.HUB, x=200, y=100))
    lab.add_node(Node("host", labs.HOST, x=200, y=200, address="10.0.9.1/24"))
    lab.add_node(Node("net", labs.INTERNET, x=-200, y=-100))
    lab.add_link(Link("r1", "eth0", "sw", 1, loss=12.5, delay_ms=20))
    lab.add_link(Link("pc1", "eth0", "sw", 2))
    lab.add_link(Link("r1", "eth1", "hub1", 1))
    lab.add_link(Link("r1", "eth2", "host", 1))
    lab.add_link(Link("pc1", "eth1", "net", None))
    return lab


def test_toml_round_trip(lab_home):
    lab = sample_lab()
    path = labs.save(lab)
    assert path == lab_home / "labs" / "demo" / "lab.toml"
    assert labs.load("demo") == lab
    text = path.read_text()
    assert "[nodes.r1]" in text and "[[links]]" in text and 'position = [0.0, 0.0]' in text
    assert labs.list_names() == ["demo"]


def test_start_waves_follow_dependencies_and_wave_size():
    lab = sample_lab()
    lab.add_node(Node("pc2", labs.MACHINE, depends=["r1"]))
    lab.add_node(Node("pc3", labs.MACHINE, depends=["r1"]))
    assert lab.start_waves() == [["r1"], ["pc1", "pc2", "pc3"]]
    assert lab.start_waves(wave_size=2) == [["r1"], ["pc1", "pc2"], ["pc3"]]


def test_rename_and_remove_keep_links_and_dependencies_consistent():
    lab = sample_lab()
    lab.rename_node("r1", "router")
    assert {link.machine for link in lab.links} == {"router", "pc1"}
    assert lab.nodes["pc1"].depends == ["router"]
    node, removed = lab.remove_node("router")
    assert node.name == "router" and len(removed) == 3
    assert lab.nodes["pc1"].depends == []
    lab.validate()


def test_free_card_and_port_choices():
    lab = sample_lab()
    assert lab.free_port("sw") == 3
    assert lab.free_card("r1") == "eth3"
    assert dict(lab.port_choices("sw"))[1].machine == "r1"
    assert lab.port_choices("net") == []


def test_link_to_a_port_already_used():
    lab = sample_lab()
    with pytest.raises(ConfigError) as error:
        lab.add_link(Link("pc1", "eth2", "sw", 1))
    assert "port 1 of sw is already used by r1:eth0" in error.value.problem
    assert "pick a free port (3)" in error.value.fix


def test_card_already_used():
    lab = sample_lab()
    with pytest.raises(ConfigError, match="pc1's eth0 is already linked to sw") as error:
        lab.add_link(Link("pc1", "eth0", "hub1", 2))
    assert "eth2" in error.value.fix


@pytest.mark.parametrize("link, message", [
    (Link("pc1", "eth2", "r1", None), "both machines"),
    (Link("sw", "eth0", "hub1", 3), "is a switch, not a machine"),
    (Link("pc1", "eth2", "sw", 9), "sw has no port 9"),
    (Link("pc1", "eth2", "net", 1), "has no numbered ports"),
    (Link("pc1", "wlan0", "sw", 3), "bad card"),
    (Link("pc9", "eth0", "sw", 3), "no node named 'pc9'"),
    (Link("pc1", "eth2", "sw", 3, loss=150), "loss 150 is out of range"),
])
def test_bad_links(link, message):
    with pytest.raises(ConfigError, match=message):
        sample_lab().add_link(link)


def test_dependency_cycle_is_named():
    lab = sample_lab()
    lab.nodes["r1"].depends = ["pc1"]
    with pytest.raises(ConfigError) as error:
        lab.validate()
    assert "cycle: pc1 -> r1 -> pc1" in error.value.problem
    assert "remove one of these dependencies" in error.value.fix


def test_unknown_dependency():
    lab = sample_lab()
    lab.nodes["pc1"].depends = ["r9"]
    with pytest.raises(ConfigError, match="pc1 depends on 'r9', which is not a machine"):
        lab.validate()


def test_node_names_must_fit_machine_names():
    lab = Lab("a-rather-long-lab-name")
    with pytest.raises(ConfigError, match="more than 32 characters") as error:
        lab.add_node(Node("a-long-machine-name", labs.MACHINE))
    assert "shorter" in error.value.fix
    with pytest.raises(ConfigError, match="bad node name"):
        lab.add_node(Node("bad name", labs.MACHINE))
    lab.add_node(Node("pc1", labs.MACHINE))
    with pytest.raises(ConfigError, match="already has a node named 'pc1'"):
        lab.add_node(Node("pc1", labs.SWITCH))


def write_lab(lab_home, text: str):
    path = lab_home / "labs" / "bad" / "lab.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_malformed_toml_names_file_and_line(lab_home):
    path = write_lab(lab_home, 'name = "bad"\n[nodes.pc1]\nkind = "machine\n')
    with pytest.raises(ConfigError) as error:
        labs.load("bad")
    assert str(path) in error.value.problem and "line 3" in error.value.problem


@pytest.mark.parametrize("body, message", [
    ('[nodes.pc1]\nkind = "machine"\nmemry = "64M"\n', "[nodes.pc1]: unknown key 'memry'"),
    ('[nodes.pc1]\nkind = "router"\n', "unknown kind 'router'"),
    ('[nodes.pc1]\nmemory = "64M"\n', "[nodes.pc1]: missing key 'kind'"),
    ('[nodes.pc1]\nkind = "machine"\nmemory = "lots"\n', "bad memory in"),
    ('[nodes.pc1]\nkind = "machine"\nposition = [1]\n', "position must be two numbers"),
    ('[nodes.sw]\nkind = "switch"\nports = "8"\n', "ports must be a whole number"),
    ('[[links]]\nmachine = "pc1"\ncard = "eth0"\n', "links[0]: missing key 'network'"),
    ('[nodes.pc1]\nkind = "machine"\n[nodes.sw]\nkind = "switch"\n'
     '[[links]]\nmachine = "pc1"\ncard = "eth0"\nnetwork = "sw"\nport = 1\n'
     '[[links]]\nmachine = "pc1"\ncard = "eth1"\nnetwork = "sw"\nport = 1\n',
     "links[1] (pc1:eth1 — sw:1): port 1 of sw is already used by pc1:eth0"),
    ('[nodes.pc1]\nkind = "machine"\ndepends = ["pc1"]\n', "depends on itself"),
])
def test_malformed_lab_files(lab_home, body, message):
    path = write_lab(lab_home, 'name = "bad"\n' + body)
    with pytest.raises(ConfigError) as error:
        labs.load("bad")
    assert message in error.value.problem
    assert str(path) in error.value.problem
    assert error.value.fix


def test_name_must_match_directory(lab_home):
    write_lab(lab_home, 'name = "other"\n')
    with pytest.raises(ConfigError, match="name = 'other' but the lab directory is 'bad'"):
        labs.load("bad")


def test_missing_lab(lab_home):
    with pytest.raises(NotFoundError, match="no lab named 'nope'") as error:
        labs.load("nope")
    assert "umlgui lab import" in error.value.fix
