"""mconsole served by the tt kernel, driven by the real uml_mconsole client."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from umlgui.host.mconsole import NotifyType

pytestmark = pytest.mark.skipif(shutil.which("uml_mconsole") is None,
                                reason="uml-utilities not installed")


def uml_mconsole(machine, *command: str) -> tuple[int, str]:
    result = subprocess.run(["uml_mconsole", machine.mconsole_path, *command],
                            capture_output=True, text=True, timeout=10)
    return result.returncode, result.stdout


def test_real_client_commands(boot, busybox_tree):
    machine = boot(busybox_tree)
    assert machine.console.read_until(b"login:")
    code, out = uml_mconsole(machine, "version")
    assert code == 0 and out.startswith("OK Linux ttbox 6.1.0-tt"), out
    code, out = uml_mconsole(machine, "proc", "meminfo")
    assert code == 0 and "MemTotal:          65536 kB" in out, out
    code, out = uml_mconsole(machine, "proc", "1/cmdline")
    assert code == 0 and "init" in out, out
    code, out = uml_mconsole(machine, "proc", "nonexistent")
    assert code != 0 and "ERR" in out
    code, out = uml_mconsole(machine, "log", "hello-from-mconsole")
    assert code == 0
    assert machine.console.read_until(b"hello-from-mconsole")
    code, out = uml_mconsole(machine, "sysrq", "m")
    assert code == 0 and "Show Memory" in out
    code, out = uml_mconsole(machine, "stop")
    assert code == 0 and "stopped" in out
    code, out = uml_mconsole(machine, "version")
    assert code == 0
    code, out = uml_mconsole(machine, "go")
    assert code == 0
    code, out = uml_mconsole(machine, "go")
    assert code != 0 and "Not stopped" in out
    machine.console.send("root\n")
    assert machine.console.read_until(b"# "), machine.console.text
    machine.console.send("echo alive-after-go\n")
    assert machine.console.read_until(b"alive-after-go\r\n")
    code, out = uml_mconsole(machine, "halt")
    assert code == 0
    assert machine.wait() == 0


def test_real_client_reboot_and_cad(boot, busybox_tree):
    machine = boot(busybox_tree)
    assert machine.notify.read(timeout=10).type == NotifyType.SOCKET
    assert machine.console.read_until(b"login:")
    pid = machine.process.pid
    assert uml_mconsole(machine, "reboot")[0] == 0
    assert machine.notify.read(timeout=10).type == NotifyType.SOCKET
    assert machine.process.poll() is None and machine.process.pid == pid
    machine.console.output = b""
    assert machine.console.read_until(b"login:")
    # busybox init traps Ctrl-Alt-Del and runs its ::ctrlaltdel: action (/sbin/reboot)
    assert uml_mconsole(machine, "cad")[0] == 0
    assert machine.notify.read(timeout=15).type == NotifyType.SOCKET
    machine.console.output = b""
    assert machine.console.read_until(b"login:")
    assert uml_mconsole(machine, "sysrq", "o")[0] == 0
    assert machine.wait() == 0
