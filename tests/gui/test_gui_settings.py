"""The Settings dialog on a stopped machine: each page loads, applies, reverts, and refuses bad input."""

from __future__ import annotations

import psutil
import pytest

from gui_settings_support import (CAP_NET_ADMIN, answer, boxes, drop_files, error_texts,
                                  open_settings, take_error, wait_idle, without_capability)
from umlgui import paths
from umlgui.host import cow, images
from umlgui.model import library
from umlgui.model.machine import NetCard
from umlgui.widgets.settings.consoles import telnetd_found

pytestmark = pytest.mark.gui
MIB = 1 << 20


@pytest.fixture
def vm(home):
    library.new_machine("vm")
    return "vm"


def test_overview_shows_command_line_and_saves_description(qtbot, vm):
    dialog = open_settings(qtbot, vm, "Overview")
    page = dialog.page("Overview")
    line = page.command.toPlainText()
    assert line.startswith("linux.uml umid=vm mem=64M ubd0=") and "hostname=vm" in line
    assert page.state_label.text().startswith("stopped")
    assert not dialog.apply_button.isEnabled()
    page.description.setPlainText("router for lab 3")
    assert dialog.apply_button.isEnabled()
    dialog.apply_button.click()
    assert library.load(vm).description == "router for lab 3"
    page.description.setPlainText("something else")
    dialog.revert_button.click()
    assert page.description.toPlainText() == "router for lab 3"
    assert not dialog.is_dirty()


def test_memory_applies_reverts_and_updates_command_line(qtbot, vm):
    dialog = open_settings(qtbot, vm, "Memory")
    page = dialog.page("Memory")
    assert page.size.value() == 64 * MIB and page.slider.value() == 64
    page.slider.setValue(256)
    assert page.size.value() == 256 * MIB
    dialog.apply_button.click()
    assert library.load(vm).memory == 256 * MIB
    assert "mem=256M" in dialog.page("Overview").command.toPlainText()
    page.size.unit.setCurrentIndex(page.size.unit.findText("GiB"))
    page.size.number.setValue(1.5)
    assert page.size.value() == 1536 * MIB
    dialog.revert_button.click()
    assert page.size.value() == 256 * MIB
    assert library.load(vm).memory == 256 * MIB


def test_memory_too_small_is_refused(qtbot, vm):
    dialog = open_settings(qtbot, vm, "Memory")
    dialog.page("Memory").size.setValue(8 * MIB)
    dialog.apply_button.click()
    text = take_error(qtbot, dialog)
    assert "memory 8M is too small" in text and "at least 16 MiB" in text
    assert library.load(vm).memory == 64 * MIB


def test_memory_warning_when_more_than_available(qtbot, vm):
    dialog = open_settings(qtbot, vm, "Memory")
    page = dialog.page("Memory")
    assert page.warning.isHidden()
    available = psutil.virtual_memory().available
    page.size.setValue((available // MIB + 1024) * MIB)
    assert not page.warning.isHidden()
    assert "more than the" in page.warning.text() and "available" in page.warning.text()
    page.size.setValue(128 * MIB)
    assert page.warning.isHidden()


def test_unapplied_changes_guard_on_page_switch_and_close(qtbot, vm):
    dialog = open_settings(qtbot, vm, "Memory")
    memory = dialog.page("Memory")
    memory.size.setValue(96 * MIB)
    dialog.page_list.setCurrentRow(dialog.pages.index(dialog.page("Disks")))
    answer(qtbot, dialog, "unappliedBox", "Cancel")
    assert dialog.current_page() is memory and memory.size.value() == 96 * MIB
    dialog.page_list.setCurrentRow(dialog.pages.index(dialog.page("Disks")))
    answer(qtbot, dialog, "unappliedBox", "Discard")
    assert dialog.current_page().title == "Disks"
    assert memory.size.value() == 64 * MIB and library.load(vm).memory == 64 * MIB
    dialog.show_page("Memory")
    memory.size.setValue(80 * MIB)
    dialog.close_button.click()
    assert dialog.isVisible()
    answer(qtbot, dialog, "unappliedBox", "Apply")
    qtbot.waitUntil(lambda: not dialog.isVisible())
    assert library.load(vm).memory == 80 * MIB


def test_disks_add_new_ext4_image_and_edit_flags(qtbot, vm):
    dialog = open_settings(qtbot, vm, "Disks")
    page = dialog.page("Disks")
    assert page.row_texts(0)[0] == "ubd0 (ubda)"
    qtbot.waitUntil(lambda: page.row_texts(0)[4] == "ext4")       # read through the COW layer
    add = page.open_add_dialog()
    add.new_size.setValue(32 * MIB)
    add.accept()
    wait_idle(qtbot, dialog)
    disk = library.load(vm).disks[1]
    assert disk.file == str(paths.disks_dir(vm) / "disk1.img")
    info = images.inspect(disk.file)
    assert info.filesystem == "ext4" and info.guest_size == 32 * MIB
    qtbot.waitUntil(lambda: page.row_texts(1)[2] == "32.0 MiB")
    page.select_unit(1)
    page.flag_boxes["readonly"].click()
    dialog.apply_button.click()
    assert library.load(vm).disks[1].readonly
    page.flag_boxes["readonly"].click()
    page.flag_boxes["sync"].click()
    dialog.revert_button.click()
    assert page.disks[1].readonly and not page.disks[1].sync
    assert page.flag_boxes["readonly"].isChecked()


def test_disks_add_cow_over_base_then_merge_into_new_image(qtbot, vm, tmp_path):
    base = images.create_image(tmp_path / "base.img", 16 * MIB, "ext4")
    dialog = open_settings(qtbot, vm, "Disks")
    page = dialog.page("Disks")
    add = page.open_add_dialog()
    add.mode_cow.setChecked(True)
    add.base_path.edit.setText(str(base))
    add.accept()
    wait_idle(qtbot, dialog)
    disk = library.load(vm).disks[1]
    assert disk.backing == str(base) and cow.read_header(disk.file).backing_file == str(base)
    page.select_unit(1)
    merge = page.open_merge_dialog()
    merged_path = merge.output.path()
    merge.accept()
    wait_idle(qtbot, dialog)
    merged = library.load(vm).disks[1]
    assert merged.file == str(merged_path) and merged.backing is None
    assert images.inspect(merged_path).filesystem == "ext4"


def test_disks_refuse_bad_images(qtbot, vm, tmp_path):
    dialog = open_settings(qtbot, vm, "Disks")
    page = dialog.page("Disks")
    machine = library.load(vm)
    root = machine.disks[0]
    # the COW file is made at first boot: nothing to merge yet
    page.select_unit(0)
    assert page.open_merge_dialog() is None
    assert "does not exist yet" in take_error(qtbot, dialog)
    # the same image twice
    cow.create_cow(root.file, root.backing)
    drop_files(page, [root.file])
    assert "already attached as ubd0" in take_error(qtbot, dialog)
    # the template's base under ubd0's COW layer, writable
    drop_files(page, [root.backing])
    text = take_error(qtbot, dialog)
    assert "base image of ubd0's COW layer" in text and "read-only" in text
    # merging into the template's shared base
    merge = page.open_merge_dialog()
    merge.into_base.setChecked(True)
    merge.accept()
    assert "template's shared base image" in take_error(qtbot, dialog)
    # a folder, a missing file, a name UML cannot parse
    drop_files(page, [tmp_path])
    assert "is a folder, not a disk image" in take_error(qtbot, dialog)
    add = page.open_add_dialog()
    add.mode_existing.setChecked(True)
    add.existing_path.edit.setText(str(tmp_path / "missing.img"))
    add.accept()
    assert "does not exist" in take_error(qtbot, add)
    add.mode_new.setChecked(True)
    add.new_path.edit.setText(str(tmp_path / "a,b.img"))
    add.accept()
    assert "contains ',' or ':'" in take_error(qtbot, add)
    add.reject()
    assert list(library.load(vm).disks) == [0]


def test_disk_dropped_on_stopped_machine_takes_next_free_unit(qtbot, vm, tmp_path):
    first = images.create_image(tmp_path / "one.img", 8 * MIB, None)
    second = images.create_image(tmp_path / "two.img", 8 * MIB, None)
    dialog = open_settings(qtbot, vm, "Disks")
    page = dialog.page("Disks")
    assert drop_files(page, [first, second])
    qtbot.waitUntil(lambda: len(library.load(vm).disks) == 3)
    wait_idle(qtbot, dialog)
    disks = library.load(vm).disks
    assert disks[1].file == str(first) and disks[2].file == str(second)
    assert page.row_texts(2)[1] == "two.img" and str(second) in page.details.text()
    page.select_unit(1)
    page.remove_button.click()
    answer(qtbot, dialog, "confirmBox", "Remove")
    qtbot.waitUntil(lambda: 1 not in library.load(vm).disks)
    assert first.exists() and page.row_texts(1) == []


def test_network_add_cards_edit_mac_and_refuse_bad_input(qtbot, vm):
    dialog = open_settings(qtbot, vm, "Network")
    page = dialog.page("Network")
    add = page.open_add_dialog()
    assert add.device == "eth0" and add.mac.text() == library.load(vm).default_mac("eth0")
    add.set_kind("slirp")
    add.accept()
    wait_idle(qtbot, dialog)
    assert library.load(vm).network["eth0"] == NetCard("slirp", add.mac.text(),
                                                       {"program": "/usr/bin/slirp-fullbolt"})
    assert page.row_texts("eth0")[1] == "internet (slirp)"
    assert "eth0=slirp," in dialog.page("Overview").command.toPlainText()
    add = page.open_add_dialog()
    add.set_kind("mcast")
    add.mcast_group.setText("10.0.0.1")
    add.accept()
    assert "not an IPv4 multicast group" in take_error(qtbot, add)
    add.mcast_group.setText("239.192.168.1")
    add.mac.setText("01:00:00:00:00:01")
    add.accept()
    assert "multicast address" in take_error(qtbot, add)
    add.mac.setText("fe:fd:00:00:00:99")
    add.accept()
    wait_idle(qtbot, dialog)
    assert library.load(vm).network["eth1"].options == {"group": "239.192.168.1", "port": "1102",
                                                         "ttl": "1"}
    # a MAC edit waits for Apply
    rows = [r for r in range(page.table.rowCount()) if page.table.item(r, 0).text() == "eth0"]
    page.table.selectRow(rows[0])
    page.mac_edit.setText("fe:fd:12:34:56:zz")
    page.mac_edit.textEdited.emit("fe:fd:12:34:56:zz")
    dialog.apply_button.click()
    assert "is not a MAC address" in take_error(qtbot, dialog)
    page.mac_edit.setText("fe:fd:12:34:56:78")
    page.mac_edit.textEdited.emit("fe:fd:12:34:56:78")
    dialog.apply_button.click()
    assert library.load(vm).network["eth0"].mac == "fe:fd:12:34:56:78"


def test_network_tap_and_switch_names_are_checked(qtbot, vm):
    dialog = open_settings(qtbot, vm, "Network")
    add = dialog.page("Network").open_add_dialog()
    add.set_kind("tuntap")
    add.tap_name.setText("a name with spaces")
    add.accept()
    assert "invalid tap device name" in take_error(qtbot, add)
    add.set_kind("switch")
    add.switch_name.setEditText("bad/name")
    add.accept()
    assert "invalid switch name" in take_error(qtbot, add)
    add.set_kind("slirp")
    add.slirp_program.setText("/nonexistent/slirp")
    add.accept()
    assert "apt-get install slirp" in take_error(qtbot, add)
    add.reject()


def test_consoles_serial_line_on_port_and_con0_required(qtbot, vm):
    dialog = open_settings(qtbot, vm, "Consoles")
    page = dialog.page("Consoles")
    assert page.console_count.value() == 2 and page.serial_count.value() == 0
    page.serial_count.setValue(1)
    page.set_channel("ssl0", "port", 9100)
    page.set_channel("con1", "null")
    assert page.telnet_warning.isHidden() == telnetd_found()
    dialog.apply_button.click()
    consoles = library.load(vm).consoles
    assert consoles["ssl0"].channel == "port:9100" and consoles["con1"].channel == "null"
    page.set_channel("con0", "none")
    dialog.apply_button.click()
    assert "con0 must exist" in take_error(qtbot, dialog)
    dialog.revert_button.click()
    assert page.channels["con0"] == "pty" and page.channels["ssl0"] == "port:9100"
    page.console_count.setValue(1)
    dialog.apply_button.click()
    assert set(library.load(vm).consoles) == {"con0", "ssl0"}


def test_kernel_page_applies_and_refuses_bad_values(qtbot, vm, tmp_path):
    dialog = open_settings(qtbot, vm, "Kernel and boot")
    page = dialog.page("Kernel and boot")
    assert page.kernel.edit.text() == "linux.uml" and page.append.text() == "init=/sbin/init"
    page.kernel.edit.setText("/nonexistent/linux")
    dialog.apply_button.click()
    assert "kernel binary /nonexistent/linux does not exist" in take_error(qtbot, dialog)
    page.kernel.edit.setText("linux.uml")
    page.append.setText("init=/sbin/init mem=1G")
    dialog.apply_button.click()
    assert "set by the Memory page" in take_error(qtbot, dialog)
    page.append.setText("init=/sbin/init 'quoted")
    dialog.apply_button.click()
    assert "close the quote" in take_error(qtbot, dialog)
    page.hostfs.edit.setText(str(tmp_path / "missing"))
    page.append.setText("init=/sbin/init loglevel=4")
    dialog.apply_button.click()
    assert "hostfs directory" in take_error(qtbot, dialog)
    page.hostname.setText("-bad-")
    page.hostfs.edit.setText(str(tmp_path))
    dialog.apply_button.click()
    assert "not a valid hostname" in take_error(qtbot, dialog)
    page.hostname.setText("router1")
    page.autologin.setChecked(True)
    dialog.apply_button.click()
    machine = library.load(vm)
    assert (machine.append, machine.hostfs, machine.hostname, machine.autologin) == \
        (["init=/sbin/init", "loglevel=4"], str(tmp_path), "router1", True)
    assert error_texts(dialog) == []


def test_mconsole_page_is_disabled_while_stopped(qtbot, vm):
    dialog = open_settings(qtbot, vm, "mconsole")
    page = dialog.page("mconsole")
    assert "not running" in page.state_note.text()
    assert not page.buttons["version"].isEnabled() and not page.prompt.isEnabled()
    assert not dialog.apply_button.isVisible()
    page.send_now("version")
    assert "not sent: vm is not running" in page.output.toPlainText()
    assert not boxes(dialog, "errorBox")


def test_tap_without_cap_net_admin_says_what_to_run(qtbot, vm):
    dialog = open_settings(qtbot, vm, "Network")
    add = dialog.page("Network").open_add_dialog()
    add.set_kind("tuntap")
    add.tap_name.setText("ugtest0")
    with without_capability(CAP_NET_ADMIN):
        add.accept()
        text = take_error(qtbot, dialog)
        wait_idle(qtbot, dialog)
    assert "needs CAP_NET_ADMIN" in text
    assert "sudo ip tuntap add dev ugtest0 mode tap user" in text and "sudo ip link set ugtest0 up" in text
    assert "eth0" not in library.load(vm).network
