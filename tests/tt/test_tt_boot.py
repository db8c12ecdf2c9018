"""Boot, halt, reboot, panic and signals: the kernel process contract."""

from __future__ import annotations

import os
import signal
import subprocess
import time


from umlgui.host.mconsole import MconsoleClient, NotifyType


def _login(machine, timeout=10.0):
    assert machine.console.read_until(b"login:", timeout), machine.console.text


def test_busybox_boots_to_login_prompt_quickly(boot, busybox_tree):
    started = time.monotonic()
    machine = boot(busybox_tree)
    _login(machine)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"login prompt after {elapsed:.2f}s"   # goal < 1 s; slack for load
    note = machine.notify.read(timeout=5)
    assert note.type == NotifyType.SOCKET
    assert note.text == machine.mconsole_path
    with open(os.path.join(machine.instance_dir, "pid")) as handle:
        assert int(handle.read()) == machine.process.pid
    machine.console.send("root\n")
    assert machine.console.read_until(b"# ")
    machine.console.send("poweroff\n")
    assert machine.wait() == 0
    assert not os.path.exists(machine.instance_dir)


def test_guest_reboot_reexecutes_in_same_pid(boot, run_script, busybox_tree, tmp_path):
    marker = tmp_path / "cow" / "root" / "boots"
    script = tmp_path / "cow" / "root" / "test-init"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\necho x >> /boots\n"
                      "if [ $(wc -l < /boots) -lt 2 ]; then reboot -f; fi\n"
                      "echo second boot; poweroff -f\n")
    script.chmod(0o755)
    machine = boot(busybox_tree, init="/test-init")
    first = machine.notify.read(timeout=10)
    second = machine.notify.read(timeout=10)
    assert first.type == second.type == NotifyType.SOCKET
    code, text = machine.finish()
    assert code == 0, text
    assert "second boot" in text
    assert marker.read_text() == "x\nx\n"


def test_init_exit_is_a_panic(boot, busybox_tree, tmp_path):
    script = tmp_path / "cow" / "root" / "test-init"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(0o755)
    machine = boot(busybox_tree, init="/test-init")
    assert machine.notify.read(timeout=10).type == NotifyType.SOCKET
    note = machine.notify.read(timeout=10)
    assert note.type == NotifyType.PANIC
    assert "Attempted to kill init" in note.text
    code, text = machine.finish()
    assert code == 134
    assert "Kernel panic" in text


def test_sigterm_kills_the_guest_and_exits_1(boot, busybox_tree):
    machine = boot(busybox_tree)
    _login(machine)
    machine.process.send_signal(signal.SIGTERM)
    assert machine.wait() == 1
    assert not os.path.exists(machine.instance_dir)
    leftovers = subprocess.run(["pgrep", "-f", "getty -L 0 tty0"], capture_output=True,
                               text=True).stdout.split()
    assert not leftovers


def test_mconsole_halt_and_version(boot, busybox_tree):
    machine = boot(busybox_tree)
    _login(machine)
    with MconsoleClient(machine.mconsole_path) as client:
        assert client.version() == "Linux ttbox 6.1.0-tt #1 SMP PREEMPT_DYNAMIC umlgui-tt x86_64"
        client.halt()
    assert machine.wait() == 0
