"""Disks: ubd0..ubd15 with their files, sizes, COW backing and flags.

Add, Remove, drag-and-drop and Merge act at once (see dialog.change_now): on a running machine
a disk is plugged in with `config ubdN=/abs/path` and unplugged with `remove ubdN`, and the
definition is saved only when the kernel agreed. Flag changes wait for Apply and the next boot.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QPushButton, QStyle, QTableWidget,
                               QTableWidgetItem)

from umlgui import paths
from umlgui.errors import ConfigError, NotFoundError, UmlguiError
from umlgui.gui.jobs import show_error
from umlgui.host import cow, images
from umlgui.jobs import Cancelled
from umlgui.model import library
from umlgui.model.machine import MAX_UBD, Disk, Machine, guest_disk_name
from umlgui.model.units import human_size
from umlgui.widgets.settings import hotplug
from umlgui.widgets.settings.disk_dialogs import (AddDiskDialog, MergeDialog, MergeRequest,
                                                  check_existing_image)
from umlgui.widgets.settings.page import SettingsPage, alive, confirm
from umlgui.worker.state import MachineState

COLUMNS = ("Disk", "File", "Size", "Allocated", "Format", "COW backing", "Flags")
FLAG_FIELDS = (("readonly", "Read-only", "The guest cannot write to the disk (flag r)"),
               ("shared", "Shared", "No host file locking, so several machines may open it (c)"),
               ("sync", "Synchronous writes", "Every write reaches the host disk at once (s)"),
               ("data_only", "Data only", "Never treat the file as a COW layer (d)"),
               ("no_trim", "No TRIM", "Do not pass discards through to the file (t)"))


def same_file(a: str | None, b: str | None) -> bool:
    return bool(a and b) and os.path.realpath(a) == os.path.realpath(b)


def check_attachable(machine: Machine, unit: int, disk: Disk) -> None:
    """Refuse a disk that would clash with the machine's others (beyond validate_machine)."""
    if unit in machine.disks:
        raise ConfigError(f"ubd{unit} is already used by {machine.disks[unit].file}",
                          "choose a free unit")
    for other_unit, other in machine.disks.items():
        if same_file(other.file, disk.file):
            raise ConfigError(f"{disk.file} is already attached as ubd{other_unit}",
                              "attach each image once; make a COW layer over it for a second copy")
        if same_file(other.backing, disk.file) and not disk.readonly:
            raise ConfigError(f"{disk.file} is the base image of ubd{other_unit}'s COW layer; "
                              "writing to it would corrupt that layer",
                              "attach it read-only, or add a new COW layer over it")
    header = cow.read_header(disk.file) if Path(disk.file).is_file() else None
    if header is not None and not disk.data_only:
        cow.check_backing(header)        # UML would refuse a COW file whose base is wrong


def _name(path: str | None) -> str:
    return Path(path).name if path else ""


def machines_using_base(base: str, excluding: str) -> list[str]:
    users = []
    for name in library.list_names():
        if name == excluding:
            continue
        try:
            machine = library.load(name)
        except UmlguiError:
            continue
        if any(same_file(disk.backing, base) for disk in machine.disks.values()):
            users.append(name)
    return users


def inspect_disks(disks: dict[int, Disk]) -> dict[str, tuple[images.ImageInfo | None, str]]:
    """For each file: (what images.inspect found, a note). Runs in a job: it reads the files."""
    found: dict[str, tuple[images.ImageInfo | None, str]] = {}
    for disk in disks.values():
        try:
            if disk.backing and not Path(disk.file).exists():
                found[disk.file] = (images.inspect(disk.backing), "COW file created at first boot")
            else:
                found[disk.file] = (images.inspect(disk.file), "")
        except UmlguiError as exc:
            found[disk.file] = (None, exc.problem)
    return found


class DisksPage(SettingsPage):
    title = "Disks"
    icon = QStyle.StandardPixmap.SP_DriveHDIcon
    boot_note = ("Adding, dropping or removing a disk plugs it into the running machine at once. "
                 "Flag changes take effect at the next boot; merging needs the machine halted.")

    def __init__(self, dialog):
        super().__init__(dialog)
        self.disks: dict[int, Disk] = {}
        self.infos: dict[str, tuple[images.ImageInfo | None, str]] = {}
        self.setAcceptDrops(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("diskTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        hint = QLabel("Drop image files here from a file manager to attach them to the next "
                      "free ubd.")
        hint.setObjectName("dropHint")
        hint.setStyleSheet("QLabel { color: palette(placeholder-text); }")
        self.details = QLabel()
        self.details.setObjectName("diskDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.flag_boxes: dict[str, QCheckBox] = {}
        flags = QGroupBox("Flags of the selected disk")
        flag_row = QHBoxLayout(flags)
        for field, label, tip in FLAG_FIELDS:
            box = QCheckBox(label)
            box.setObjectName(f"flag_{field}")
            box.setToolTip(tip)
            box.toggled.connect(lambda on, field=field: self._flag_toggled(field, on))
            flag_row.addWidget(box)
            self.flag_boxes[field] = box
        flag_row.addStretch(1)
        self.flags_group = flags
        self.add_button = QPushButton("Add…")
        self.remove_button = QPushButton("Remove")
        self.merge_button = QPushButton("Merge COW…")
        self.folder_button = QPushButton("Show in folder")
        for button, name in ((self.add_button, "addDisk"), (self.remove_button, "removeDisk"),
                             (self.merge_button, "mergeDisk"), (self.folder_button, "showFolder")):
            button.setObjectName(name)
        self.add_button.clicked.connect(self.open_add_dialog)
        self.remove_button.clicked.connect(self.ask_remove_selected)
        self.merge_button.clicked.connect(self.open_merge_dialog)
        self.folder_button.clicked.connect(self.show_in_folder)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.remove_button, self.merge_button, self.folder_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.body.addWidget(self.table, 1)
        self.body.addWidget(self.details)
        self.body.addWidget(hint)
        self.body.addLayout(buttons)
        self.body.addWidget(flags)
        self._selection_changed()

    # --- load / store --------------------------------------------------------------------

    def load(self, machine: Machine) -> None:
        self.disks = copy.deepcopy(machine.disks)
        self._fill_table()
        self.inspect()

    def store(self, machine: Machine) -> None:
        machine.disks = copy.deepcopy(self.disks)

    def selected_unit(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)

    def select_unit(self, unit: int) -> None:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == unit:
                self.table.selectRow(row)

    def row_texts(self, unit: int) -> list[str]:
        """The cells of ubd`unit`'s row, as shown (tests and screen readers read these)."""
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == unit:
                return [self.table.item(row, col).text() for col in range(len(COLUMNS))]
        return []

    # --- the table -----------------------------------------------------------------------

    def _fill_table(self) -> None:
        keep = self.selected_unit()
        self.table.setRowCount(0)
        for unit, disk in sorted(self.disks.items()):
            row = self.table.rowCount()
            self.table.insertRow(row)
            for col, text in enumerate(self._cells(unit, disk)):
                item = QTableWidgetItem(text)
                item.setToolTip({1: disk.file, 5: disk.backing}.get(col) or text)
                if col == 0:
                    item.setData(Qt.ItemDataRole.UserRole, unit)
                self.table.setItem(row, col, item)
        if keep is not None and keep in self.disks:
            self.select_unit(keep)
        elif self.disks:
            self.table.selectRow(0)
        self._selection_changed()

    def _cells(self, unit: int, disk: Disk) -> list[str]:
        info, note = self.infos.get(disk.file, (None, "…"))
        device = f"ubd{unit} ({guest_disk_name(unit)})"
        flags = ", ".join(label.lower() for field, label, _ in FLAG_FIELDS if getattr(disk, field))
        file_name = Path(disk.file).name
        if info is None:
            return [device, file_name, note, "", "", _name(disk.backing) or "—", flags or "—"]
        allocated = human_size(info.allocated_bytes)
        if note:
            allocated = note
        elif info.cow_changed_bytes is not None:
            allocated += f" ({human_size(info.cow_changed_bytes)} changed)"
        backing = _name(disk.backing or (info.cow.backing_file if info.cow else ""))
        if info.backing_ok is False:
            backing = f"⚠ {info.backing_problem}"
        return [device, file_name, human_size(info.guest_size), allocated,
                info.filesystem or "unknown", backing or "—", flags or "—"]

    def inspect(self) -> None:
        """Read sizes and formats off the GUI thread; the table fills in when done."""
        disks = copy.deepcopy(self.disks)

        def shown(found) -> None:
            if alive(self):
                self.infos.update(found)
                self._fill_table()

        self.dialog.run("Reading disk images", lambda progress: inspect_disks(disks), shown,
                        show_after_ms=3000, cancellable=False)

    def _selection_changed(self) -> None:
        unit = self.selected_unit()
        disk = self.disks.get(unit) if unit is not None else None
        self.flags_group.setEnabled(disk is not None)
        self.details.setText(self._details(unit, disk) if disk else "")
        for field, box in self.flag_boxes.items():
            box.blockSignals(True)
            box.setChecked(bool(disk and getattr(disk, field)))
            box.blockSignals(False)
        self.remove_button.setEnabled(disk is not None)
        self.folder_button.setEnabled(disk is not None)
        self.merge_button.setEnabled(disk is not None and not self.dialog.state.live)
        self.merge_button.setToolTip("Halt the machine to merge its COW layers"
                                     if self.dialog.state.live else "")
        self.add_button.setEnabled(len(self.disks) < MAX_UBD)

    @staticmethod
    def _details(unit: int, disk: Disk) -> str:
        text = f"<b>ubd{unit}</b>: {disk.file}"
        if disk.backing:
            text += f"<br>COW layer over: {disk.backing}"
        return text

    def _flag_toggled(self, field: str, on: bool) -> None:
        unit = self.selected_unit()
        if unit is None:
            return
        setattr(self.disks[unit], field, on)
        self._fill_table()
        self.changed.emit()

    def state_changed(self, state: MachineState) -> None:
        super().state_changed(state)
        self._selection_changed()

    # --- add -----------------------------------------------------------------------------

    def free_units(self) -> list[int]:
        used = set(self.disks) | set(self.dialog.saved.disks)
        return [unit for unit in range(MAX_UBD) if unit not in used]

    def open_add_dialog(self) -> AddDiskDialog:
        add = AddDiskDialog(self.name, self.free_units(), self)
        add.accepted.connect(lambda: self.add_requested(add.request))
        add.open()
        return add

    def add_requested(self, request) -> None:
        """Create the files (if any) in a job, then attach the disk."""
        def created(disk: Disk) -> None:
            undo = (lambda: Path(disk.file).unlink(missing_ok=True)) if request.creates_file else None
            self.attach(disk, request.unit, on_failed=undo)

        self.dialog.run("Creating disk", request.make, created)

    def attach(self, disk: Disk, unit: int | None = None, on_done=None, on_failed=None) -> None:
        """Attach `disk` as ubd`unit` (next free when None); hot-plugged when running."""
        chosen: dict[str, int] = {}

        def mutate(machine: Machine) -> None:
            target = machine.next_free_ubd() if unit is None else unit
            check_attachable(machine, target, disk)
            machine.disks[target] = copy.deepcopy(disk)
            chosen["unit"] = target

        def attached(machine: Machine) -> None:
            self.disks[chosen["unit"]] = copy.deepcopy(disk)
            self._fill_table()
            self.select_unit(chosen["unit"])
            self.inspect()
            if on_done:
                on_done()

        self.dialog.change_now(f"Attach {Path(disk.file).name}", mutate,
                               lambda machine: hotplug.add_disk_command(chosen["unit"], disk),
                               attached, on_failed)

    # --- drag and drop -------------------------------------------------------------------

    @staticmethod
    def _dropped_files(mime) -> list[str]:
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []

    def dragEnterEvent(self, event) -> None:
        if self._dropped_files(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if self._dropped_files(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        files = self._dropped_files(event.mimeData())
        if not files:
            return
        event.acceptProposedAction()
        self.attach_files(files)

    def attach_files(self, files: list[str]) -> None:
        """Attach dropped files one after another (each takes the next free unit)."""
        if not files:
            return
        path = Path(files[0]).absolute()
        try:
            check_existing_image(path)
        except UmlguiError as exc:
            show_error(self, f"Attach {path.name}", exc)
            return
        self.attach(Disk(file=str(path)), on_done=lambda: self.attach_files(files[1:]))

    # --- remove --------------------------------------------------------------------------

    def ask_remove_selected(self) -> None:
        unit = self.selected_unit()
        if unit is None:
            return
        disk = self.disks[unit]
        detail = "The image file stays where it is."
        if self.dialog.state.live:
            detail = (f"It is unplugged from the running machine now (remove ubd{unit}); "
                      f"unmount it in the guest first. " + detail)
        elif unit == 0:
            detail = "Without ubd0 the machine cannot boot. " + detail
        confirm(self, "Remove disk", f"Remove ubd{unit} ({disk.file})?",
                lambda: self.remove(unit), detail, yes_text="Remove")

    def remove(self, unit: int) -> None:
        def mutate(machine: Machine) -> None:
            if unit not in machine.disks:
                raise NotFoundError(f"ubd{unit} is not in {self.name}'s definition any more",
                                    "close and reopen the settings to see the current disks")
            del machine.disks[unit]

        def removed(machine: Machine) -> None:
            self.disks.pop(unit, None)
            self._fill_table()

        self.dialog.change_now(f"Remove ubd{unit}", mutate,
                               lambda machine: hotplug.remove_disk_command(unit), removed)

    # --- merge ---------------------------------------------------------------------------

    def open_merge_dialog(self) -> MergeDialog | None:
        unit = self.selected_unit()
        if unit is None:
            return None
        try:
            backing = self._mergeable(unit)
        except UmlguiError as exc:
            show_error(self, "Merge COW layer", exc)
            return None
        merge = MergeDialog(self.disks[unit].file, backing, self)
        merge.accepted.connect(lambda: self.merge(unit, merge.request))
        merge.open()
        return merge

    def _mergeable(self, unit: int) -> str:
        """The base image of ubd`unit`'s COW layer; UmlguiError when it cannot be merged now."""
        if self.dialog.state.live:
            raise hotplug.refuse_while_running(self.name, "merge a COW layer")
        disk = self.disks[unit]
        if not Path(disk.file).exists():
            raise NotFoundError(f"ubd{unit}'s COW file {disk.file} does not exist yet, so there "
                                "is nothing to merge", "boot the machine once; UML creates it")
        header = cow.read_header(disk.file)
        if header is None:
            raise UmlguiError(f"ubd{unit} ({disk.file}) is a plain image, not a COW layer",
                              "only COW layers can be merged into their base")
        return disk.backing or header.backing_file

    def merge(self, unit: int, request: MergeRequest) -> None:
        disk = self.disks[unit]
        base = disk.backing or cow.read_header(disk.file).backing_file
        if request.output is None:
            try:
                self._check_base_is_ours(base)
            except UmlguiError as exc:
                show_error(self, "Merge COW layer", exc)
                return

        def work(progress) -> Path:
            try:
                return cow.merge(request.cow_file, request.output,
                                 progress=progress.bytes_callback("merging"),
                                 cancel=lambda: progress.cancelled)
            except cow.MergeCancelled:
                if request.output is not None:
                    raise Cancelled() from None     # the half-made image is gone: a clean cancel
                raise                                # the base is half merged: say how to finish

        def merged(result: Path) -> None:
            def point_at_result(machine: Machine) -> None:
                machine.disks[unit] = Disk(file=str(result), readonly=disk.readonly,
                                           shared=disk.shared, sync=disk.sync, serial=disk.serial)

            self.dialog.change_now(f"Merge ubd{unit}", point_at_result,
                                   on_done=lambda machine: self._merged(unit, machine, request))

        self.dialog.run(f"Merging ubd{unit}", work, merged)

    def _merged(self, unit: int, machine: Machine, request: MergeRequest) -> None:
        self.disks[unit] = copy.deepcopy(machine.disks[unit])
        self._fill_table()
        self.inspect()
        self.dialog.status.setText(f"ubd{unit} now uses {machine.disks[unit].file}; the COW file "
                                   f"{request.cow_file} was left as it was (delete it when you "
                                   "no longer need it).")

    def _check_base_is_ours(self, base: str) -> None:
        if Path(base).resolve().is_relative_to(paths.templates_dir().resolve()):
            raise UmlguiError(f"{base} is a template's shared base image",
                              "merge into a new image instead; the template must stay unchanged")
        users = machines_using_base(base, self.name)
        if users:
            raise UmlguiError(f"{base} is also the base of {', '.join(users)}: merging into it "
                              "would make their COW layers unusable",
                              "merge into a new image instead")

    # --- show in folder ------------------------------------------------------------------

    def show_in_folder(self) -> None:
        unit = self.selected_unit()
        if unit is None:
            return
        folder = Path(self.disks[unit].file).parent
        if not folder.is_dir():
            show_error(self, "Show in folder", NotFoundError(
                f"the folder {folder} does not exist", "check the disk's path"))
            return
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            show_error(self, "Show in folder", UmlguiError(
                f"no file manager could open {folder}",
                "install one (e.g. nautilus or thunar), or open the folder by hand"))
