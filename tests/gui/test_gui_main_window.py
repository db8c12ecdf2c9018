"""The main window without booting: actions, the wizard's checks, library edits, drops."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from gui_main_support import (drop_files, fill_machine_page, finish, start_wizard,  # noqa: F401
                              wait_for_error, window, wizard_error)
from umlgui.model import library

pytestmark = pytest.mark.gui


def test_shortcuts_follow_gns3_and_gnome_boxes(window):
    expected = {"new": "Ctrl+N", "boot": "Ctrl+B", "halt": "Ctrl+E", "pause": "Ctrl+J",
                "rename": "F2", "delete": "Del", "fullscreen": "F11", "quit": "Ctrl+Q"}
    for key, shortcut in expected.items():
        assert window.actions[key].shortcut() == QKeySequence(shortcut), key


def test_empty_library_offers_only_new(window):
    assert window.controller.names() == []
    assert window.actions["new"].isEnabled()
    for key in ("boot", "halt", "kill", "delete", "console", "clone"):
        assert not window.actions[key].isEnabled(), key
    assert "0 of 0 machines" in window.summary.text()


def test_wizard_creates_machine_from_template(qtbot, window):
    wizard = start_wizard(window)
    assert "busybox" in wizard.source_page.templates.item(0).text()
    assert "ready" in wizard.source_page.templates.item(0).text()
    wizard.next()
    assert wizard.machine_page.name.text() == "vm1"       # a free name is suggested
    fill_machine_page(wizard, name="web", memory="96M")
    finish(qtbot, wizard)
    qtbot.waitUntil(lambda: window.controller.row("web") is not None, timeout=5000)
    machine = library.load("web")
    assert machine.memory == 96 << 20 and machine.template == "busybox"
    # its own COW layer over the shared base
    assert machine.disks[0].backing.endswith("base.img")
    assert machine.disks[0].file.endswith("web/root.cow")
    qtbot.waitUntil(lambda: window.selected() == "web", timeout=5000)
    assert window.actions["boot"].isEnabled() and not window.actions["halt"].isEnabled()


def test_wizard_rejects_duplicate_name_and_bad_memory(qtbot, window):
    library.new_machine("taken")
    wizard = start_wizard(window)
    wizard.next()
    fill_machine_page(wizard, name="taken")
    wizard.next()
    assert "already exists" in wizard_error(wizard) and "fix: choose another name" in wizard_error(wizard)
    fill_machine_page(wizard, name="bad name!")
    wizard.next()
    assert "bad machine name" in wizard_error(wizard)
    fill_machine_page(wizard, name="fresh", memory="lots")
    wizard.next()
    assert "bad memory 'lots'" in wizard_error(wizard) and "128m" in wizard_error(wizard)
    fill_machine_page(wizard, name="fresh", memory="8M")
    wizard.next()
    assert "too small" in wizard_error(wizard) and "at least 16m" in wizard_error(wizard) and "memory 8m is too small" in wizard_error(wizard)
    assert not library.exists("fresh")
    fill_machine_page(wizard, name="fresh", memory="64M")
    finish(qtbot, wizard)
    assert library.load("fresh").memory == 64 << 20


def test_wizard_rejects_missing_image_and_directory(qtbot, window, tmp_path):
    wizard = start_wizard(window, source="image", image=str(tmp_path / "nope.img"))
    wizard.next()
    assert wizard.currentPage() is wizard.source_page
    assert "does not exist" in wizard_error(wizard) and "browse" in wizard_error(wizard)
    wizard.source_page.image_path.setText(str(tmp_path))
    wizard.next()
    assert "is a directory" in wizard_error(wizard)
    wizard.source_page.image_path.setText("")
    wizard.next()
    assert "no disk image chosen" in wizard_error(wizard).lower()


def test_wizard_uses_an_existing_image(qtbot, window, tmp_path):
    image = tmp_path / "root_fs"
    image.write_bytes(b"\0" * (1 << 20))
    wizard = start_wizard(window, source="image", image=str(image))
    wizard.next()
    assert wizard.currentPage() is wizard.machine_page
    fill_machine_page(wizard, name="fromimage")
    finish(qtbot, wizard)
    machine = library.load("fromimage")
    assert machine.disks[0].file == str(image) and machine.template is None


def test_wizard_rejects_malformed_command_lines(qtbot, window, tmp_path):
    wizard = start_wizard(window, source="cmdline", command_line="linux ubd0='unclosed mem=128M")
    wizard.next()
    assert "malformed" in wizard_error(wizard) and "quotes" in wizard_error(wizard)
    wizard.source_page.command_line.setPlainText("linux ubd0=/no/such/root_fs mem=64M")
    wizard.next()
    assert "does not exist" in wizard_error(wizard)
    wizard.source_page.command_line.setPlainText(f"linux ubd0={tmp_path}/x eth0=carrier-pigeon,1")
    wizard.next()
    assert "unknown transport 'carrier-pigeon'" in wizard_error(wizard)
    wizard.source_page.command_line.setPlainText("   ")
    wizard.next()
    assert "empty" in wizard_error(wizard)
    assert wizard.currentPage() is wizard.source_page


def test_wizard_imports_a_command_line(qtbot, window, tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * (1 << 20))
    wizard = start_wizard(window, source="cmdline",
                          command_line=f"linux umid=pasted ubd0={image} mem=48M con1=pts")
    wizard.next()
    assert wizard.machine_page.name.text() == "pasted"        # umid= names the machine
    assert f"ubd0={image}" in wizard.machine_page.notes.text()
    finish(qtbot, wizard)
    machine = library.load("pasted")
    assert machine.memory == 48 << 20 and machine.disks[0].file == str(image)
    assert set(machine.consoles) == {"con0", "con1"}


def test_tt_engine_needs_a_template(qtbot, window, tmp_path):
    image = tmp_path / "root_fs"
    image.write_bytes(b"\0" * 4096)
    wizard = start_wizard(window, source="image", image=str(image))
    wizard.next()
    wizard.machine_page.engine.setCurrentIndex(wizard.machine_page.engine.findData("tt"))
    wizard.next()
    assert "tt engine boots template trees only" in wizard_error(wizard)


def test_missing_kernel_shows_problem_and_fix(qtbot, window):
    machine = library.new_machine("nokernel")
    machine.kernel = "/opt/nowhere/linux.uml"
    library.save(machine)
    qtbot.waitUntil(lambda: window.controller.row("nokernel") is not None, timeout=5000)
    window.machine_list.select_name("nokernel")
    window.actions["boot"].trigger()
    box = wait_for_error(qtbot, window)
    assert "UML kernel '/opt/nowhere/linux.uml' was not found" in box.text()
    assert "apt-get install user-mode-linux" in box.informativeText()
    assert window.controller.state_of("nokernel") in ("stopped", "crashed")


def test_drop_image_on_stopped_machine_attaches_next_free_ubd(qtbot, window, tmp_path):
    library.new_machine("target")
    qtbot.waitUntil(lambda: window.controller.row("target") is not None, timeout=5000)
    first, second = tmp_path / "data1.img", tmp_path / "data2.img"
    for image in (first, second):
        image.write_bytes(b"\0" * 65536)
    event = drop_files(window.machine_list, "target", [first, second])
    assert event.isAccepted()
    qtbot.waitUntil(lambda: len(library.load("target").disks) == 3, timeout=5000)
    disks = library.load("target").disks
    assert disks[1].file == str(first) and disks[2].file == str(second)


def test_drop_of_a_directory_is_refused_with_a_reason(qtbot, window, tmp_path):
    library.new_machine("target")
    qtbot.waitUntil(lambda: window.controller.row("target") is not None, timeout=5000)
    drop_files(window.machine_list, "target", [tmp_path])
    box = wait_for_error(qtbot, window)
    assert "is a directory, not a disk image" in box.text()
    assert len(library.load("target").disks) == 1


def test_clone_rename_and_delete_a_stopped_machine(qtbot, window):
    library.new_machine("orig")
    cow = Path(library.load("orig").disks[0].file)
    cow.write_bytes(b"layer")                   # stands in for a COW layer the guest wrote
    qtbot.waitUntil(lambda: window.controller.row("orig") is not None, timeout=5000)
    job = window.controller.clone("orig", "twin")
    qtbot.waitUntil(lambda: window.controller.row("twin") is not None, timeout=10000)
    twin = library.load("twin")
    assert twin.disks[0].file.endswith("twin/root.cow") and Path(twin.disks[0].file).read_bytes() == b"layer"
    assert twin.disks[0].backing == library.load("orig").disks[0].backing
    window.controller.rename("twin", "triplet")
    qtbot.waitUntil(lambda: window.controller.row("triplet") is not None, timeout=10000)
    assert not library.exists("twin")
    assert Path(library.load("triplet").disks[0].file).read_bytes() == b"layer"
    assert library.load("triplet").hostname == "triplet"
    window.controller.clone("orig", "orig")
    box = wait_for_error(qtbot, window)
    assert "already exists" in box.text()
    box.close()
    window.controller.delete("triplet")
    qtbot.waitUntil(lambda: window.controller.row("triplet") is None, timeout=10000)
    assert library.list_names() == ["orig"]
    del job


def test_double_click_on_stopped_machine_opens_settings(qtbot, window):
    library.new_machine("quiet")
    qtbot.waitUntil(lambda: window.controller.row("quiet") is not None, timeout=5000)
    window.machine_list.select_name("quiet")
    index = window.machine_list.currentIndex()
    center = window.machine_list.visualRect(index).center()
    # a real double-click starts with a press: QTest's mouseDClick alone sends only the second
    qtbot.mouseClick(window.machine_list.viewport(), Qt.MouseButton.LeftButton, pos=center)
    qtbot.mouseDClick(window.machine_list.viewport(), Qt.MouseButton.LeftButton, pos=center)
    assert window.consoles.session("quiet") is None          # stopped: no console
    qtbot.waitUntil(lambda: window.settings_dialog is not None and window.settings_dialog.isVisible(),
                    timeout=5000)
    assert window.settings_dialog.name == "quiet"
    window.settings_dialog.close()


def test_context_menus_offer_what_fits_the_state(qtbot, window):
    library.new_machine("idle")
    qtbot.waitUntil(lambda: window.controller.row("idle") is not None, timeout=5000)
    window.machine_list.select_name("idle")
    texts = [a.text().replace("&", "") for a in window.build_context_menu("idle").actions() if a.text()]
    assert texts[:1] == ["Boot"] and "Delete…" in texts and "Halt" not in texts
    assert [a.text() for a in window.build_context_menu("").actions()] == ["&New Machine…"]


def test_cow_backing_mismatch_shows_problem_and_fix(qtbot, window, tmp_path):
    from umlgui.host import cow

    machine = library.new_machine("layered")
    other_base = tmp_path / "other-base.img"
    with open(other_base, "wb") as f:
        f.truncate(4 << 20)
    cow.create_cow(machine.disks[0].file, machine.disks[0].backing)
    machine.disks[0].backing = str(other_base)       # not the base the layer was made on
    library.save(machine)
    qtbot.waitUntil(lambda: window.controller.row("layered") is not None, timeout=5000)
    window.machine_list.select_name("layered")
    window.actions["boot"].trigger()
    box = wait_for_error(qtbot, window)
    assert f"the backing file {other_base} does not match" in box.text()
    assert box.informativeText().startswith("Fix: point the disk at the backing file")
    assert window.controller.state_of("layered") != "running"


def test_umlgui_without_arguments_opens_the_window_and_ctrl_c_closes_it(home, tmp_path):
    """The real entry point, in its own process (an app's exec() cannot run twice in one)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    process = subprocess.Popen([sys.executable, "-m", "umlgui"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # the state poller's thread exists once the window is built
        deadline = time.time() + 20
        while time.time() < deadline and len(os.listdir(f"/proc/{process.pid}/task")) < 3:
            time.sleep(0.1)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output.decode(errors="replace")
    assert (tmp_path / "config" / "umlgui" / "window.conf").is_file()     # geometry kept
