"""The Debian template on the real engines: build once, boot, log in, look around, halt.

The template is built once per recipe into $UMLGUI_TEST_CACHE (default
/var/tmp/umlgui-test-templates/debian-<recipe id>), outside the per-test homes, so one CI
job builds it once and later runs on the same machine reuse it. Test homes link to it.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from guest import GuestConsole, diagnostics, halted_cleanly, wait_for_state
from umlgui.model import library
from umlgui.model.machine import Console as ConsoleSetting
from umlgui.model.machine import NetCard
from umlgui.templates import debian
from umlgui.worker import client

pytestmark = [pytest.mark.uml, pytest.mark.slow, pytest.mark.timeout(900)]

CACHE_ROOT = Path(os.environ.get("UMLGUI_TEST_CACHE", "/var/tmp/umlgui-test-templates"))
BOOT_TIMEOUT = 120          # about 10 s when the host is idle; UML slows down linearly with load
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


@contextmanager
def locked(path: Path):
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def debian_template() -> Path:
    """The built template directory, built at most once per recipe on this machine."""
    if os.geteuid() != 0:
        pytest.skip("building the Debian template needs root (debootstrap)")
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    target = CACHE_ROOT / f"debian-{debian.recipe_id()}"
    with locked(CACHE_ROOT / "debian.lock"):
        if not (target / "template.toml").is_file():
            _build_into(target)
    return target


def _build_into(target: Path) -> None:
    home = CACHE_ROOT / f".home-{os.getpid()}"
    old = os.environ.get("UMLGUI_HOME")
    os.environ["UMLGUI_HOME"] = str(home)
    try:
        started = time.monotonic()
        built = debian.DebianTemplate().build()
        print(f"built the Debian template in {time.monotonic() - started:.0f} s")
        built.directory.rename(target)
    finally:
        if old is None:
            os.environ.pop("UMLGUI_HOME", None)
        else:
            os.environ["UMLGUI_HOME"] = old
        shutil.rmtree(home, ignore_errors=True)
    for stale in CACHE_ROOT.glob("debian-*"):
        if stale != target:
            shutil.rmtree(stale, ignore_errors=True)


@pytest.fixture
def debian_home(home, debian_template) -> Path:
    """A test home whose templates are the session's busybox one and the cached Debian one."""
    shared = (home / "templates").resolve()
    (home / "templates").unlink()
    (home / "templates").mkdir()
    for built in shared.iterdir():
        (home / "templates" / built.name).symlink_to(built)
    (home / "templates" / "debian").symlink_to(debian_template)
    return home


class Console(GuestConsole):
    def run(self, command: str, timeout: float = 60.0) -> str:
        """Output without terminal escapes (bash switches bracketed paste on and off)."""
        return ANSI.sub(b"", super().run(command, timeout).encode()).decode()

    def login_as(self, password: str | None = None) -> None:
        self.read_until(rb"login: ", BOOT_TIMEOUT)
        self.send("root\n")
        if password is not None:
            self.read_until(rb"Password: ")
            self.send(password + "\n")
        self.read_until(rb"# ")
        # bash's bracketed-paste escapes would glue an empty output to the end marker
        self.send("bind 'set enable-bracketed-paste off' 2>/dev/null\n")
        self.read_until(rb"off' 2>/dev/null\r?\n.*# ")


def boot(name: str, **create) -> Console:
    if not library.exists(name):
        library.new_machine(name, template="debian", **create)
    client.start(name)
    client.wait_until_ready(name, timeout=BOOT_TIMEOUT)
    return Console(name)


def halt(name: str) -> None:
    client.halt(name)
    assert halted_cleanly(wait_for_state(name, "halted", timeout=60))


# ------------------------------------------------------------------------ linux engine

def test_linux_boots_to_a_login_and_behaves_like_debian(debian_home):
    started = time.monotonic()
    console = boot("deb1")
    print(f"login prompt after {time.monotonic() - started:.1f} s")
    console.login_as()
    assert 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"' in console.run("cat /etc/os-release")
    assert re.match(r"apt \d+\.\d+", console.run("apt-get --version"))
    processes = console.run("ps auxww").splitlines()
    assert processes[0].split()[:2] == ["USER", "PID"]
    assert len(processes) > 20 and any("systemd-journald" in line for line in processes)
    assert console.run("systemctl is-system-running --wait") == "running"
    assert console.run("hostname") == "deb1"
    assert console.run("uname -r") == "6.1.176"
    assert console.run("findmnt -no SOURCE,OPTIONS /").startswith("/dev/ubda rw")
    assert console.run("ip -br link show lo").startswith("lo")
    halt("deb1")


def test_each_machine_has_its_own_identity_and_the_base_never_changes(debian_home):
    base = debian_home / "templates/debian/base.img"
    before = base.stat()
    ids = {}
    for name in ("deb2", "deb3"):
        console = boot(name)
        console.login_as()
        assert console.run("hostname") == name
        assert console.run("cat /etc/hostname") == name
        ids[name] = console.run("cat /etc/machine-id")
        assert re.fullmatch(r"[0-9a-f]{32}", ids[name])
        console.run(f"echo {name} > /root/who; sync")
        halt(name)
    assert ids["deb2"] != ids["deb3"]
    after = base.stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    # a second boot keeps the machine's own id and files (its COW layer)
    console = boot("deb2")
    console.login_as()
    assert console.run("cat /etc/machine-id") == ids["deb2"]
    assert console.run("cat /root/who") == "deb2"
    halt("deb2")


def test_root_password_from_the_seed_disk(debian_home):
    library.new_machine("deb4", template="debian")
    seed = debian.set_root_password("deb4", "s3cret words")
    console = boot("deb4")
    console.login_as("s3cret words")
    assert console.run("passwd -S root").split()[1] == "P"      # a usable password
    halt("deb4")
    assert seed.read_bytes().strip(b"\0") == b""                # applied once, then wiped


def test_autologin_serial_line_and_poweroff_from_inside(debian_home):
    library.new_machine("deb6", template="debian")
    machine = library.load("deb6")
    machine.autologin = True
    machine.consoles["ssl0"] = ConsoleSetting("pty")
    library.save(machine)
    boot("deb6")
    serial = Console("deb6", "ssl0")
    serial.send("\n")
    serial.read_until(rb"root@deb6:~# ", BOOT_TIMEOUT)       # logged in without a prompt
    assert serial.run("tty") == "/dev/ttyS0"
    serial.send("poweroff\n")
    assert halted_cleanly(wait_for_state("deb6", "halted", timeout=60))


def test_dhcp_on_eth0_from_slirp(debian_home):
    """DHCP from slirp: the `internet` card (slirpvde's DHCP server and NAT on a VDE switch,
    no root). UML's own `slirp` transport is a SLIP link, on which no DHCP client can run."""
    from umlgui.net.internet import stop_internet

    library.new_machine("deb5", template="debian")
    machine = library.load("deb5")
    machine.network["eth0"] = NetCard("internet", machine.default_mac("eth0"))
    library.save(machine)
    try:
        console = boot("deb5")
        console.login_as()
        addresses = ""
        for _ in range(30):
            addresses = console.run("ip -4 -br addr show eth0")
            if "10.0.2." in addresses:
                break
            time.sleep(1)
        assert "10.0.2." in addresses
        assert "default via 10.0.2.2" in console.run("ip route")
        halt("deb5")
    finally:
        stop_internet()


# --------------------------------------------------------------------------- tt engine

def test_tt_boots_the_same_tree_with_busybox_init(debian_home):
    console = boot("ttdeb", engine="tt")
    console.login_as()
    assert 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"' in console.run("cat /etc/os-release")
    assert re.match(r"apt \d+\.\d+", console.run("apt-get --version"))
    assert console.run("hostname") == "ttdeb"
    assert "busybox init" in console.run("ps -o args= -p 1")
    console.send("poweroff\n")         # the profile sends it to busybox init, not systemctl
    assert wait_for_state("ttdeb", "halted", timeout=60).exit_code == 0


def test_a_debian_lab_machine_runs_its_netkit_files_and_shutdown_script(debian_home):
    from umlgui.model import lab as labs
    from umlgui.model.lab import Lab, Node
    from umlgui.net import lab_runner

    lab = Lab("deb")
    lab.add_node(Node("d1", labs.MACHINE, template="debian", memory=256 << 20))
    labs.save(lab)
    (lab.directory / "d1" / "etc").mkdir(parents=True)
    (lab.directory / "d1" / "etc" / "lab-motd").write_text("overlay of d1\n")
    # startup runs after the overlay is in place; both scripts leave proof on the host
    (lab.directory / "d1.startup").write_text("cat /etc/lab-motd > /hostlab/d1.up\n")
    (lab.directory / "d1.shutdown").write_text("echo d1 went down cleanly > /hostlab/d1.bye\n")
    assert lab_runner.up(lab).booted == ["d1"]
    deadline = time.monotonic() + BOOT_TIMEOUT
    while not (lab.directory / "d1.up").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (lab.directory / "d1.up").read_text() == "overlay of d1\n"
    assert lab_runner.down(lab) == ["d1"]
    assert (lab.directory / "d1.bye").exists(), diagnostics("deb-d1", 60)
    assert (lab.directory / "d1.bye").read_text() == "d1 went down cleanly\n"
    assert client.machine_state("deb-d1").state == "halted"
