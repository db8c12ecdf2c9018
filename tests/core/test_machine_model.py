"""The machine model: TOML, validation messages, and the UML command line both ways."""

from __future__ import annotations

import pytest

from umlgui.errors import ConfigError
from umlgui.model.cmdline import from_argv, to_argv
from umlgui.model.machine import Console, Disk, Machine, NetCard, from_dict, parse_ubd_unit, to_dict


def full_machine(tmp_path) -> Machine:
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 4096)
    extra = tmp_path / "data.img"
    extra.write_bytes(b"\0" * 4096)
    return Machine(
        name="pc1", memory=256 << 20, hostname="pc1", autologin=True, hostfs="/srv/share",
        disks={0: Disk(str(tmp_path / "pc1.cow"), backing=str(base)),
               3: Disk(str(extra), readonly=True, shared=True, serial="DATA1")},
        consoles={"con0": Console("pty"), "con1": Console("port:9001"), "ssl0": Console("pty")},
        network={"eth0": NetCard("daemon", "fe:fd:00:00:00:01", {"socktype": "unix", "socket": "/tmp/sw.ctl"}),
                 "eth1": NetCard("slirp", "fe:fd:00:00:00:02", {"program": "/usr/bin/slirp"}),
                 "eth2": NetCard("tuntap", "fe:fd:00:00:00:03", {"device": "tap0"}),
                 "vec0": NetCard("vector", "fe:fd:00:00:00:04", {"transport": "tap", "ifname": "tap1"})},
        append=["init=/sbin/init", "rw"])


def test_toml_round_trip(tmp_path):
    machine = full_machine(tmp_path)
    assert from_dict(to_dict(machine)) == machine


def test_command_line_round_trip(tmp_path):
    machine = full_machine(tmp_path)
    argv = to_argv(machine)
    assert "ubd3rc=" + str(tmp_path / "data.img") + ",,DATA1" in argv
    assert "eth0=daemon,fe:fd:00:00:00:01,unix,/tmp/sw.ctl" in argv
    assert "vec0:transport=tap,ifname=tap1,mac=fe:fd:00:00:00:04" in argv
    assert from_argv(argv).machine == machine


def test_import_seeds_style_line(tmp_path):
    result = from_argv(["linux", "ubd0=cow,root_fs", "mem=128M", "eth0=tuntap,,,192.168.0.254",
                        "con1=port:9000", "single"], name="seed", cwd=str(tmp_path))
    machine = result.machine
    assert machine.memory == 128 << 20
    assert machine.disks[0].file == str(tmp_path / "cow")
    assert machine.disks[0].backing == str(tmp_path / "root_fs")
    assert machine.network["eth0"].options == {"gateway": "192.168.0.254"}
    assert set(machine.consoles) == {"con0", "con1"}      # UML's own con0 stays
    assert machine.append == ["single"]


def test_import_ubd_units_as_uml_parses_them():
    assert parse_ubd_unit("010") == 8        # strtoul base 0: octal
    assert parse_ubd_unit("0x3") == 3
    assert parse_ubd_unit("c") == 2
    with pytest.raises(ConfigError, match="out of range"):
        parse_ubd_unit("16")


def test_import_duplicate_ubd_is_an_error():
    with pytest.raises(ConfigError, match="duplicate disk"):
        from_argv(["linux", "ubd0=a", "ubda=b"], name="x", cwd="/")


def test_import_ignores_managed_words():
    result = from_argv(["linux", "ubd0=/x", "uml_dir=/tmp/u", "mconsole=notify:/tmp/n"], name="x")
    assert result.machine.append == []
    assert len(result.warnings) == 2


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        from_dict({"name": "a", "colour": "red"})
    with pytest.raises(ConfigError, match=r"\[disks.ubd0\]: unknown key 'fmt'"):
        from_dict({"name": "a", "disks": {"ubd0": {"file": "/x", "fmt": "raw"}}})


def test_bad_size_is_named():
    with pytest.raises(ConfigError, match="bad memory of a '12Q'") as info:
        from_dict({"name": "a", "memory": "12Q"})
    assert "128M" in info.value.fix


def test_duplicate_ubd_in_file():
    with pytest.raises(ConfigError, match="duplicate disk ubd0"):
        from_dict({"name": "a", "disks": {"ubd0": {"file": "/x"}, "ubda": {"file": "/y"}}})


def test_missing_image_is_named(tmp_path):
    machine = Machine(name="a", disks={0: Disk(str(tmp_path / "nope.img"))})
    with pytest.raises(ConfigError, match="nope.img does not exist"):
        machine.validate()


def test_missing_backing_is_named(tmp_path):
    machine = Machine(name="a", disks={0: Disk(str(tmp_path / "a.cow"), backing=str(tmp_path / "gone.img"))})
    with pytest.raises(ConfigError, match="backing image .*gone.img does not exist"):
        machine.validate()


def test_same_writable_image_twice(tmp_path):
    image = tmp_path / "d.img"
    image.write_bytes(b"\0" * 512)
    machine = Machine(name="a", disks={0: Disk(str(image)), 1: Disk(str(image))})
    with pytest.raises(ConfigError, match="already attached writable as ubd0"):
        machine.validate()


@pytest.mark.parametrize("field,value,message", [
    ("name", "bad name!", "bad machine name"),
    ("engine", "qemu", "unknown engine"),
    ("memory", 1 << 20, "too small"),
])
def test_bad_fields(field, value, message):
    machine = Machine(name="ok")
    setattr(machine, field, value)
    with pytest.raises(ConfigError, match=message):
        machine.validate(check_files=False)


def test_bad_console_and_network():
    with pytest.raises(ConfigError, match="unknown channel"):
        Machine(name="a", consoles={"con0": Console("file:/x")}).validate(False)
    with pytest.raises(ConfigError, match="out of range"):
        Machine(name="a", consoles={"con16": Console("pty")}).validate(False)
    with pytest.raises(ConfigError, match="bad MAC"):
        Machine(name="a", network={"eth0": NetCard("daemon", "fe:fd:zz")}).validate(False)
    with pytest.raises(ConfigError, match="multicast"):
        Machine(name="a", network={"eth0": NetCard("daemon", "ff:fd:00:00:00:01")}).validate(False)
    with pytest.raises(ConfigError, match="unknown transport"):
        Machine(name="a", network={"eth0": NetCard("pcap")}).validate(False)


def test_default_mac_is_stable_and_local():
    machine = Machine(name="pc1")
    mac = machine.default_mac("eth0")
    assert mac == machine.default_mac("eth0") != machine.default_mac("eth1")
    assert mac.startswith("fe:fd:")
