"""`umlgui lab ...` on the command line, and the refusals that need no running kernel."""

from __future__ import annotations


import pytest
from test_lab_netkit import write_router_lab

from umlgui import cli
from umlgui.errors import ConfigError, StateError
from umlgui.model import lab as labs
from umlgui.model import library
from umlgui.model.lab import Lab, Link, Node
from umlgui.net import client as switches
from umlgui.net import lab_runner


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_list_show_export(home, tmp_path, capsys):
    source = write_router_lab(tmp_path / "netkit")
    code, out, _ = run(capsys, "lab", "import", str(source), "two")
    assert code == 0 and "imported lab two: 3 machines, 2 switches" in out
    code, out, _ = run(capsys, "lab", "list")
    assert code == 0 and out.startswith("two") and "3 machines, 2 networks, 0 running" in out
    code, out, _ = run(capsys, "lab", "show", "two")
    assert "link r1:eth0 — A:1" in out and "start order: r1 | pc1, pc2" in out
    code, out, _ = run(capsys, "lab", "export", "two", str(tmp_path / "out"))
    assert code == 0 and (tmp_path / "out" / "lab.conf").is_file()


def test_import_errors_name_the_file_and_line(home, tmp_path, capsys):
    source = tmp_path / "bad"
    source.mkdir()
    (source / "lab.conf").write_text("pc1[0]=A\npc1 0 A\n")
    code, _, err = run(capsys, "lab", "import", str(source))
    assert code == 1
    assert f"{source}/lab.conf:2: cannot read 'pc1 0 A'" in err and "fix: write machine[N]=DOMAIN" in err


def test_lab_bigger_than_host_memory_is_refused_before_anything_starts(home, capsys):
    lab = Lab("huge")
    lab.add_node(Node("sw", labs.SWITCH))
    for name in ("pc1", "pc2"):
        lab.add_node(Node(name, labs.MACHINE, memory=4 << 40))
        lab.add_link(Link(name, "eth0", "sw", lab.free_port("sw")))
    labs.save(lab)
    code, _, err = run(capsys, "lab", "up", "huge")
    assert code == 1
    assert "booting 2 machine(s) needs 8.0 TiB but the host has" in err
    assert "fix: halt other machines or labs" in err and "pc1[mem]=64" in err
    assert not lab_runner.switch_running(lab, "sw")
    assert not library.exists("huge-pc1")


def test_check_memory_counts_overhead_and_reserve():
    lab = Lab("m")
    lab.add_node(Node("pc1", labs.MACHINE, memory=64 << 20))
    lab_runner.check_memory(lab, ["pc1"], available=1 << 30)
    with pytest.raises(StateError, match="needs 88.0 MiB"):
        lab_runner.check_memory(lab, ["pc1"], available=300 << 20)


def test_a_machine_of_the_same_name_is_not_taken_over(home):
    library.new_machine("own-pc1")
    lab = Lab("own")
    lab.add_node(Node("pc1", labs.MACHINE))
    labs.save(lab)
    with pytest.raises(ConfigError, match="own-pc1 already exists and is not part of lab own") as error:
        lab_runner.materialize(lab, "pc1")
    assert "umlgui rm own-pc1" in error.value.fix


def test_materialize_writes_cards_hostname_and_hostlab(home):
    lab = Lab("mat")
    lab.add_node(Node("pc1", labs.MACHINE, memory=48 << 20, append=["ip_eth0=10.0.0.1/24"]))
    lab.add_node(Node("sw", labs.SWITCH))
    lab.add_node(Node("net", labs.INTERNET))
    lab.add_link(Link("pc1", "eth0", "sw", 1))
    lab.add_link(Link("pc1", "eth1", "net"))
    labs.save(lab)
    machine = lab_runner.materialize(lab, "pc1")
    assert machine.hostname == "pc1" and machine.memory == 48 << 20
    assert machine.network["eth0"].transport == "switch"
    assert machine.network["eth0"].options == {"switch": "mat-sw"}
    assert machine.network["eth1"].transport == "internet"
    assert "ip_eth0=10.0.0.1/24" in machine.append and f"hostlab={lab.directory}" in machine.append
    lab.remove_link(lab.link_on_card("pc1", "eth1"))
    assert set(lab_runner.materialize(lab, "pc1").network) == {"eth0"}


def test_dead_switch_is_reported_with_how_to_restart_it(home):
    lab = Lab("dead")
    lab.add_node(Node("sw", labs.SWITCH))
    with pytest.raises(switches.SwitchNotRunning) as error:
        lab_runner.switch_status(lab, "sw")
    assert "switch dead-sw of lab dead (node sw) is not running" in error.value.problem
    assert "umlgui lab up dead" in error.value.fix


def test_unknown_lab(home, capsys):
    code, _, err = run(capsys, "lab", "up", "nope")
    assert code == 1 and "no lab named 'nope'" in err


def test_only_machines_on_a_cad_halt_build_are_asked_to_power_off(home):
    # lab down asks a machine with a .shutdown script to power off from inside (Ctrl-Alt-Del
    # with the /hostlab marker) only if its template build says its guest understands that
    library.new_machine("clean")
    assert lab_runner._template_features("clean") == ["cad-halt"]
    machine = library.load("clean")
    machine.template = None            # e.g. a machine imported from a UML command line
    library.save(machine)
    assert lab_runner._template_features("clean") == []
    assert lab_runner._template_features("no-such-machine") == []
