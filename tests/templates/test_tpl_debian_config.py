"""The Debian template without booting: mirror choice, the UML configuration of a tree,
debootstrap's progress protocol, failures and cancelling."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from importlib import resources
from pathlib import Path

import pytest

from umlgui import paths
from umlgui.errors import ConfigError, UmlguiError
from umlgui.jobs import Cancelled, Progress
from umlgui.templates import debian
from umlgui.templates.base import catalogue, guest_files
from umlgui.templates.debian import DebianTemplate, configure_tree

FILES = resources.files("umlgui.templates") / "debian_files"
NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap needs root")


def fake_debootstrapped_tree(root: Path) -> Path:
    """The few files of a debootstrap result that configure_tree edits or replaces."""
    for directory in ("etc/apt", "etc/systemd/system/getty.target.wants", "etc/network",
                      "etc/systemd/system/timers.target.wants", "var/cache/apt/archives",
                      "var/lib/apt/lists/partial", "etc/default"):
        (root / directory).mkdir(parents=True)
    (root / "etc/shadow").write_text("root:*:20000:0:99999:7:::\ndaemon:*:20000:0:99999:7:::\n")
    (root / "etc/hostname").write_text("buildhost\n")
    (root / "etc/machine-id").write_text("c733fb36dd764c1590833e22108f7bd3\n")
    (root / "etc/resolv.conf").write_text("nameserver 10.1.2.3\n")
    (root / "etc/systemd/system/getty.target.wants/getty@tty1.service").symlink_to(
        "/lib/systemd/system/getty@.service")
    (root / "etc/systemd/system/timers.target.wants/apt-daily.timer").symlink_to(
        "/lib/systemd/system/apt-daily.timer")
    (root / "var/cache/apt/archives/apt_2.6.1_amd64.deb").write_bytes(b"deb")
    (root / "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease").write_text("x")
    return root


@pytest.fixture
def tree(tmp_path) -> Path:
    root = fake_debootstrapped_tree(tmp_path / "root")
    configure_tree(root, "http://mirror.example/debian", "http://security.example/debian-security")
    return root


def units(root: Path) -> Path:
    return root / "etc/systemd/system"


# ----------------------------------------------------------------------- configuration

def test_catalogue_lists_debian_with_its_download_size():
    template = catalogue()["debian"]
    assert isinstance(template, DebianTemplate)
    assert template.download_mb > 0 and "Debian 12" in template.description
    assert template.kernel_args == ["rw", f"init={debian.INIT}"]


def test_root_disk_identity_and_password(tree):
    assert (tree / "etc/fstab").read_text().split()[:3] == ["/dev/ubda", "/", "ext4"]
    assert (tree / "etc/machine-id").read_text() == ""        # each machine makes its own
    assert (tree / "etc/hostname").read_text() == "debian\n"
    assert "127.0.1.1 debian" in (tree / "etc/hosts").read_text()
    assert (tree / "etc/shadow").read_text().splitlines() == [
        "root::20000:0:99999:7:::", "daemon:*:20000:0:99999:7:::"]
    assert (tree / "etc/resolv.conf").read_text() == ""        # not the build host's resolver


def test_gettys_on_each_console_line_and_masked_units(tree):
    wants = units(tree) / "getty.target.wants"
    assert sorted(p.name for p in wants.iterdir()) == [
        "getty@tty0.service", "getty@tty1.service", "getty@ttyS0.service"]
    # never serial-getty@: it waits 90 s for a udev device unit UML never has
    assert all(os.readlink(p) == "/lib/systemd/system/getty@.service" for p in wants.iterdir())
    override = (units(tree) / "getty@.service.d/umlgui.conf").read_text()
    assert "ConditionPathExists=/dev/%I" in override
    assert "ExecStart=\nExecStart=-/usr/local/lib/umlgui/getty $TERM" in override
    for unit in debian.MASKED:
        assert os.readlink(units(tree) / unit) == "/dev/null"
    assert not (units(tree) / "timers.target.wants/apt-daily.timer").exists()
    assert os.readlink(units(tree) / "sysinit.target.wants/umlgui-cpuinfo.service") == \
        "/etc/systemd/system/umlgui-cpuinfo.service"


def test_apt_sources_and_no_build_leftovers(tree):
    assert (tree / "etc/apt/sources.list").read_text().splitlines() == [
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://security.example/debian-security bookworm-security main"]
    assert list((tree / "var/cache/apt/archives").glob("*.deb")) == []
    assert [p.name for p in (tree / "var/lib/apt/lists").iterdir()] == ["partial"]


def test_every_script_a_unit_or_inittab_names_is_installed_and_parses(tree):
    files = list(guest_files("debian_files", debian.FILES))
    installed = {"/" + target for _, _, target, _ in files}
    referenced = set()
    for unit in units(tree).rglob("*.service"):
        if not unit.is_symlink():
            referenced |= set(re.findall(r"ExecStart=-?(/\S+)", unit.read_text()))
    referenced |= set(re.findall(r"(/usr/local/[\w/.-]*\w)", (tree / "etc/inittab").read_text()))
    referenced |= set(re.findall(r"(/usr/local/[\w/.-]*\w)", (units(tree) / "getty@.service.d/umlgui.conf").read_text()))
    assert referenced and referenced <= installed
    assert debian.INIT in installed
    for source, _, target, mode in files:
        path = tree / target
        if mode & 0o111:
            shell = "/bin/busybox" if path.read_text().startswith("#!/bin/busybox") else "/bin/sh"
            argv = [shell, "sh", "-n", str(path)] if shell == "/bin/busybox" else [shell, "-n", str(path)]
            check = subprocess.run(argv, capture_output=True, text=True)
            assert check.returncode == 0, f"{source}: {check.stderr}"


def test_tt_inittab_runs_busybox_getty_and_login(tree):
    inittab = (tree / "etc/inittab").read_text()
    assert "::sysinit:/usr/local/lib/umlgui/tt-rcS" in inittab
    for line in ("tty0", "ttyS0"):
        assert f"{line}::respawn:/usr/local/lib/umlgui/tt-console-login {line}" in inittab
    login = (tree / "usr/local/lib/umlgui/tt-login").read_text()
    assert "exec /bin/busybox login" in login
    init = (tree / debian.INIT.lstrip("/")).read_text()
    assert "*-tt) exec $bb init" in init and "exec /lib/systemd/systemd" in init


def test_configure_twice_gives_the_same_tree(tmp_path, tree):
    def listing(root):
        return sorted((str(p.relative_to(root)), os.readlink(p) if p.is_symlink() else p.read_bytes())
                      for p in root.rglob("*") if p.is_symlink() or p.is_file())

    before = listing(tree)
    configure_tree(tree, "http://mirror.example/debian", "http://security.example/debian-security")
    assert listing(tree) == before


# ------------------------------------------------------------------------------ mirror

def test_host_mirror_from_deb822_and_one_line_sources(tmp_path):
    lists = tmp_path / "sources.list.d"
    lists.mkdir()
    (lists / "google.list").write_text("deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n")
    (lists / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://ftp.example.org/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://ftp.example.org/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n")
    assert debian.host_mirror([lists]) == "http://ftp.example.org/debian"
    assert debian.host_mirror([lists], "bookworm-security") == "http://ftp.example.org/debian-security"
    one_line = tmp_path / "sources.list"
    one_line.write_text("# deb http://old.example/debian bookworm main\n"
                        "deb [arch=amd64 signed-by=/k.gpg] http://local.example/debian bookworm main\n")
    assert debian.host_mirror([one_line, lists]) == "http://local.example/debian"
    assert debian.host_mirror([tmp_path / "missing"]) is None


def test_mirror_choice_order(monkeypatch):
    monkeypatch.setattr(debian, "host_mirror", lambda *args, **kw: "http://host.example/debian")
    monkeypatch.delenv(debian.MIRROR_VARIABLE, raising=False)
    assert debian.choose_mirror() == "http://host.example/debian"
    monkeypatch.setenv(debian.MIRROR_VARIABLE, "http://env.example/debian/")
    assert debian.choose_mirror() == "http://env.example/debian"
    assert debian.choose_mirror("http://given.example/debian") == "http://given.example/debian"
    monkeypatch.delenv(debian.MIRROR_VARIABLE)
    monkeypatch.setattr(debian, "host_mirror", lambda *args, **kw: None)
    assert debian.choose_mirror() == debian.DEFAULT_MIRROR


# --------------------------------------------------------------------------- building

def test_debootstrap_progress_protocol_maps_onto_stages():
    reader = debian._ProtocolReader()
    messages = reader.feed(b"P: 3 10 DOWNDEBS\nPF: Downloading packages\n"
                           b"I: RETRIEVING\nIA: libc6\nIA: 2.36\nIF: Retrieving %s %s\n"
                           b"E: NOREL\nEA: http://m/dists/bookworm/Release\n")
    assert [(m.kind, m.words, m.text) for m in messages] == [
        ("P", ["3", "10", "DOWNDEBS"], "Downloading packages"),
        ("I", ["RETRIEVING"], "Retrieving libc6 2.36")]
    (error,) = reader.feed(b"EF: Failed getting release file %s\n")
    assert error.text == "Failed getting release file http://m/dists/bookworm/Release"
    seen = []
    run = debian.Debootstrap(Path("/nonexistent"), "http://m", Path("/nonexistent"), Path("/dev/null"))
    run._handle(messages[0], Progress(lambda stage, fraction: seen.append((stage, fraction))))
    assert seen == [("downloading packages", 0.3)]


def test_not_root_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("UMLGUI_HOME", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(UmlguiError, match="needs root") as info:
        DebianTemplate().build()
    assert f"sudo env UMLGUI_HOME={tmp_path}" in info.value.fix
    assert "umlgui template build debian" in info.value.fix
    assert list(paths.templates_dir().iterdir()) == []


@NEEDS_ROOT
def test_unreachable_mirror_is_named_with_the_error(tmp_path, monkeypatch):
    monkeypatch.setenv("UMLGUI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(UmlguiError) as info:
        DebianTemplate(mirror="http://127.0.0.1:9/debian").build()
    assert "http://127.0.0.1:9/debian" in info.value.problem
    assert "Connection refused" in info.value.problem
    assert debian.MIRROR_VARIABLE in info.value.fix
    assert list(paths.templates_dir().iterdir()) == []


@NEEDS_ROOT
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cancel_with_mounts_in_the_tree_leaves_nothing_and_keeps_the_download(tmp_path, monkeypatch):
    """Cancelled while debootstrap has proc (and in a container /dev binds) mounted in the
    tree: the staging dir goes, no mount stays behind, and the .debs stay for next time."""
    monkeypatch.setenv("UMLGUI_HOME", str(tmp_path / "home"))
    stages, cancelled_at = [], []

    def on_change(stage, fraction):
        stages.append(stage)
        if not cancelled_at and debian.mounts_below(tmp_path):
            cancelled_at.append(time.monotonic())
            progress.cancel()

    progress = Progress(on_change)
    with pytest.raises(Cancelled):
        DebianTemplate().build(progress)
    assert cancelled_at, f"debootstrap never mounted anything in the tree; stages: {set(stages)}"
    assert time.monotonic() - cancelled_at[0] < debian.STOP_GRACE + 5
    assert "downloading packages" in stages
    assert list(paths.templates_dir().iterdir()) == []
    assert debian.mounts_below(tmp_path) == []
    assert len(list(debian.download_cache_dir().glob("*.deb"))) > 100


def test_set_root_password_only_for_debian_on_linux(home):
    from umlgui.model import library

    library.new_machine("bb")
    with pytest.raises(ConfigError, match="not a Debian machine"):
        debian.set_root_password("bb", "secret")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the host's openssl")
def test_password_hash_is_sha512_crypt():
    hashed = debian.hash_password("correct horse")
    assert re.fullmatch(r"\$6\$[./0-9A-Za-z]+\$[./0-9A-Za-z]{86}", hashed)
    assert debian.hash_password("correct horse") != hashed        # salted
