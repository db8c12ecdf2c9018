"""The Settings dialog on a real booted busybox machine: hot-plug disks and cards, mconsole."""

from __future__ import annotations

import pytest

from gui_settings_support import answer, drop_files, open_settings, take_error, wait_idle
from guest import GuestConsole, wait_for_state
from umlgui.host import images
from umlgui.model import library
from umlgui.worker import client

pytestmark = [pytest.mark.uml, pytest.mark.slow, pytest.mark.gui]
MIB = 1 << 20


@pytest.fixture
def running(home):
    """A booted machine and a root shell on its con0; halted (or killed) afterwards."""
    library.new_machine("live")
    client.start("live")
    console = None
    try:
        client.wait_until_ready("live", timeout=60)
        console = GuestConsole("live")
        console.login()
        console.run("dmesg -n 1")    # kernel messages would land in the middle of command echoes
        yield console
    finally:
        if console:
            console.close()
        if client.is_running("live"):
            client.kill("live")


def partitions(console: GuestConsole) -> str:
    return console.run("cat /proc/partitions")


def test_dropped_image_is_hotplugged_and_removed(qtbot, running, tmp_path):
    image = images.create_image(tmp_path / "data.img", 32 * MIB, "ext4")
    dialog = open_settings(qtbot, "live", "Disks")
    page = dialog.page("Disks")
    assert not page.note.isHidden() and "plugs it into the running machine" in page.note.text()
    assert not page.merge_button.isEnabled()
    assert drop_files(page, [image])
    qtbot.waitUntil(lambda: 1 in library.load("live").disks, timeout=30000)
    wait_idle(qtbot, dialog)
    assert "config ubd1=" in dialog.status.text()
    assert "ubdb" in partitions(running)
    # mounted in the guest: the kernel says EBUSY and the dialog says what to do
    running.run("mkdir -p /mnt/d")          # short lines: the guest's terminal is 80 columns
    running.run("mount /dev/ubdb /mnt/d")
    page.select_unit(1)
    page.remove_button.click()
    answer(qtbot, dialog, "confirmBox", "Remove")
    text = take_error(qtbot, dialog)
    assert "Device is currently open" in text and "unmount it in the guest first" in text
    assert 1 in library.load("live").disks
    running.run("umount /mnt/d")
    page.remove_button.click()
    answer(qtbot, dialog, "confirmBox", "Remove")
    qtbot.waitUntil(lambda: 1 not in library.load("live").disks, timeout=30000)
    assert "ubdb" not in partitions(running)


def test_network_cards_are_hotplugged_and_seen_by_the_guest(qtbot, running):
    dialog = open_settings(qtbot, "live", "Network")
    page = dialog.page("Network")
    for kind in ("mcast", "slirp"):
        add = page.open_add_dialog()
        add.set_kind(kind)
        add.accept()
        wait_idle(qtbot, dialog)
    network = library.load("live").network
    assert network["eth0"].transport == "mcast" and network["eth1"].transport == "slirp"
    assert f"config eth1=slirp,{network['eth1'].mac},/usr/bin/slirp-fullbolt" in dialog.status.text()
    devices = running.run("cat /proc/net/dev")
    assert "eth0:" in devices and "eth1:" in devices
    # an interface that is up cannot be unplugged: the message says how to get there
    running.run("ip link set eth1 up")
    page.remove(device="eth1")
    text = take_error(qtbot, dialog)
    assert "Device is currently open" in text and "ip link set eth1 down" in text
    running.run("ip link set eth1 down")
    page.remove(device="eth1")
    qtbot.waitUntil(lambda: "eth1" not in library.load("live").network, timeout=30000)
    assert "eth1:" not in running.run("cat /proc/net/dev")


def test_mconsole_page_runs_commands_and_respects_pause(qtbot, running):
    dialog = open_settings(qtbot, "live", "mconsole")
    page = dialog.page("mconsole")
    page.buttons["version"].click()
    qtbot.waitUntil(lambda: "OK Linux live 6.1" in page.output.toPlainText(), timeout=20000)
    action = next(a for a in page.sysrq_menu.actions() if a.data() == "m")
    action.trigger()
    qtbot.waitUntil(lambda: "sysrq: Show Memory" in page.output.toPlainText(), timeout=20000)
    # a dangerous key asks first; Cancel sends nothing
    crash = next(a for a in page.sysrq_menu.actions() if a.data() == "c")
    crash.trigger()
    answer(qtbot, dialog, "confirmBox", "Cancel")
    assert "> sysrq c" not in page.output.toPlainText()
    # the command line, its history, and a raw error reply
    page.prompt.setText("proc nosuchfile")
    page.prompt.returnPressed.emit()
    qtbot.waitUntil(lambda: "ERR" in page.output.toPlainText(), timeout=20000)
    assert "Failed to open file" in page.output.toPlainText()
    wait_idle(qtbot, dialog)
    page.log_text.setText("hello from the settings dialog")
    page.log_text.returnPressed.emit()
    qtbot.waitUntil(lambda: page.output.toPlainText().endswith("OK"), timeout=20000)
    # the worker strips the request's final newline, so the kernel holds the line open
    # until its next message: write one from the guest
    running.run("echo mark > /dev/kmsg")
    assert "hello from the settings dialog" in running.run("dmesg | tail -n 3")
    # paused: only the stop-safe commands stay enabled
    page.buttons["stop"].click()
    qtbot.waitUntil(lambda: dialog.state.state == "paused", timeout=20000)
    assert page.buttons["version"].isEnabled() and page.buttons["go"].isEnabled()
    assert not page.buttons["cad"].isEnabled() and not page.proc_path.isEnabled()
    assert not page.buttons["halt"].isEnabled()        # it would panic a stopped guest
    page.send_now("proc uptime")
    assert "not sent: live is paused" in page.output.toPlainText()
    page.buttons["go"].click()
    qtbot.waitUntil(lambda: dialog.state.state == "running", timeout=20000)
    assert page.buttons["cad"].isEnabled()


def test_memory_page_shows_the_running_machines_host_usage(qtbot, running):
    dialog = open_settings(qtbot, "live", "Memory")
    page = dialog.page("Memory")
    assert "on the host now" in page.rss_label.text()
    assert "take effect at the next boot" in page.note.text() or "next boot" in page.note.text()
    page.size.setValue(96 * MIB)
    dialog.apply_button.click()
    assert library.load("live").memory == 96 * MIB
    assert "takes effect at the next boot" in dialog.status.text()
    client.halt("live")
    wait_for_state("live", "halted")
    qtbot.waitUntil(lambda: not dialog.state.live, timeout=5000)
    assert "not running" in page.rss_label.text() and page.note.isHidden()
