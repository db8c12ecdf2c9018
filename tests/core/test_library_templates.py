"""The library and the busybox template, without booting anything."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from umlgui import paths
from umlgui.errors import ConfigError, NotFoundError, StateError
from umlgui.jobs import Cancelled, Progress
from umlgui.model import library
from umlgui.templates.busybox import BusyboxTemplate, build_tree


def test_busybox_tree_has_only_relative_links(tmp_path):
    tree = build_tree(tmp_path / "root")
    links = [p for p in tree.rglob("*") if p.is_symlink()]
    assert len(links) > 100
    assert all(not os.readlink(p).startswith("/") for p in links)
    assert (tree / "sbin/init").resolve() == (tree / "bin/busybox").resolve()
    inittab = (tree / "etc/inittab").read_text()
    assert "tty0::respawn" in inittab and "::shutdown:/etc/init.d/rcK" in inittab
    assert (tree / "etc/passwd").read_text().startswith("root::0:0:")


def test_busybox_boot_scripts_call_installed_scripts_that_parse(tmp_path):
    tree = build_tree(tmp_path / "root")
    scripts = [tree / "etc/init.d" / name for name in ("rcS", "rcK", "ctrlaltdel")]
    called = {path for script in scripts
              for path in re.findall(r"(/(?:usr/local/lib|etc/init\.d)/[\w/.-]*\w)", script.read_text())}
    assert "/usr/local/lib/umlgui/hostlab" in called
    for path in called | {"/" + str(s.relative_to(tree)) for s in scripts}:
        script = tree / path.strip("/")
        assert os.access(script, os.X_OK), path
        check = subprocess.run([str(tree / "bin/busybox"), "sh", "-n", str(script)],
                               capture_output=True, text=True)
        assert check.returncode == 0, f"{path}: {check.stderr}"
    # outside a lab (no hostlab= in /proc/cmdline, as on this host) it does nothing, and
    # Ctrl-Alt-Del is not asked to power off
    hostlab = [str(tree / "bin/busybox"), "sh", str(tree / "usr/local/lib/umlgui/hostlab")]
    assert subprocess.run([*hostlab, "start"]).returncode == 0
    assert subprocess.run([*hostlab, "halt-requested"]).returncode == 1


def test_template_base_is_read_only(home):
    built = BusyboxTemplate().built()
    assert built.image.stat().st_mode & 0o222 == 0
    assert built.root_dir.joinpath("bin/busybox").is_file()


def test_cancelled_build_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("UMLGUI_HOME", str(tmp_path))
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        BusyboxTemplate().build(progress)
    assert list(paths.templates_dir().iterdir()) == []


def test_missing_busybox_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr("umlgui.templates.busybox.BUSYBOX_CANDIDATES", (str(tmp_path / "none"),))
    with pytest.raises(NotFoundError, match="busybox") as info:
        build_tree(tmp_path / "root")
    assert "apt-get install busybox-static" in info.value.fix


def test_create_makes_own_cow_over_shared_base(home):
    one = library.new_machine("one")
    two = library.new_machine("two")
    assert one.disks[0].backing == two.disks[0].backing
    assert one.disks[0].file != two.disks[0].file
    assert Path(one.disks[0].file).parent == paths.disks_dir("one")
    assert library.load("one") == one
    assert library.list_names() == ["one", "two"]


def test_create_refuses_duplicates_and_bad_names(home):
    library.new_machine("one")
    with pytest.raises(ConfigError, match="already exists"):
        library.new_machine("one")
    with pytest.raises(ConfigError, match="bad machine name"):
        library.new_machine("../evil")
    with pytest.raises(NotFoundError, match="unknown template"):
        library.new_machine("x", template="windows")


def test_rm_refuses_running_and_keeps_base(home):
    machine = library.new_machine("one")
    base = Path(machine.disks[0].backing)
    digest = hashlib.sha256(base.read_bytes()).hexdigest()
    with pytest.raises(StateError, match="one is running"):
        library.delete("one", is_running=lambda name: True)
    library.delete("one", is_running=lambda name: False)
    assert not library.exists("one")
    assert hashlib.sha256(base.read_bytes()).hexdigest() == digest


def test_malformed_machine_file(home):
    paths.ensure_dir(paths.machines_dir())
    paths.machine_file("broken").write_text("name = 'broken'\nmemory = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        library.load("broken")


def test_load_unknown_machine(home):
    with pytest.raises(NotFoundError, match="no machine named 'ghost'"):
        library.load("ghost")
