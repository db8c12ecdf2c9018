"""The Disks page's two questions: which disk to add, and where to merge a COW layer.

Each dialog checks what it can without touching the disk (names, existing files) before it
closes, and hands back a plain request; the page does the slow part in a job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox,
                               QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QRadioButton, QVBoxLayout, QWidget)

from umlgui import paths
from umlgui.errors import ConfigError, NotFoundError, UmlguiError
from umlgui.gui.jobs import show_error
from umlgui.host import cow, images
from umlgui.jobs import Progress
from umlgui.model.machine import Disk, guest_disk_name
from umlgui.widgets.size_edit import SizeEdit

NEW, EXISTING, COW = "new", "existing", "cow"
DEFAULT_NEW_SIZE = 1 << 30


@dataclass
class AddDiskRequest:
    """What the user asked for; `make` creates the files (slow: mkfs) and returns the Disk."""

    mode: str
    unit: int
    path: Path
    size: int = 0
    filesystem: str | None = "ext4"
    base: Path | None = None
    readonly: bool = False

    def make(self, progress: Progress) -> Disk:
        if self.mode == NEW:
            fs = f" with {self.filesystem}" if self.filesystem else ""
            progress.step(f"creating {self.path.name}{fs}")
            images.create_image(self.path, self.size, self.filesystem)
        elif self.mode == COW:
            progress.step(f"creating COW layer {self.path.name}")
            cow.create_cow(self.path, self.base)
        backing = str(cow.absolute_backing_path(self.base)) if self.mode == COW else None
        return Disk(file=str(self.path), backing=backing, readonly=self.readonly)

    @property
    def creates_file(self) -> bool:
        return self.mode in (NEW, COW)


def check_image_name(path: Path) -> None:
    text = str(path)
    if "," in text or ":" in text:
        raise ConfigError(f"the file name {text} contains ',' or ':'",
                          "UML uses those as separators; rename the file or choose another")


def check_new_file(path: Path, what: str) -> None:
    check_image_name(path)
    if path.exists():
        raise UmlguiError(f"{path} already exists", f"choose another name for the {what}, "
                          "or add the existing file instead")
    if not path.parent.is_dir():
        raise NotFoundError(f"the folder {path.parent} does not exist",
                            f"create it first, or put the {what} somewhere else")


def check_existing_image(path: Path, what: str = "image") -> None:
    check_image_name(path)
    if not path.exists():
        raise NotFoundError(f"the {what} {path} does not exist", "check the path, or choose the file")
    if path.is_dir():
        raise UmlguiError(f"{path} is a folder, not a disk image", "choose an image file")


class _PathRow(QWidget):
    """A path line edit with a Browse… button."""

    def __init__(self, placeholder: str, save: bool = False, parent=None):
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.save = save
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(os.path.expanduser(text)).absolute() if text else None

    def _browse(self) -> None:
        start = self.edit.text() or str(Path.home())
        if self.save:
            chosen, _ = QFileDialog.getSaveFileName(self, "New file", start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Choose an image", start,
                                                    "Disk images (*.img *.raw *.cow *.ext4 *.fs);;"
                                                    "All files (*)")
        if chosen:
            self.edit.setText(chosen)


def _required(path: Path | None, what: str) -> Path:
    if path is None:
        raise ConfigError(f"no {what} given", f"type the {what}'s path or choose it with Browse…")
    return path


class AddDiskDialog(QDialog):
    """New sparse image (ext4 or blank), an existing file, or a new COW layer over a base."""

    def __init__(self, machine_name: str, free_units: list[int], parent=None):
        super().__init__(parent)
        self.setObjectName("addDiskDialog")
        self.setWindowTitle("Add disk")
        self.request: AddDiskRequest | None = None
        own = paths.disks_dir(machine_name)
        self.unit = QComboBox()
        for unit in free_units:
            self.unit.addItem(f"ubd{unit}  (/dev/{guest_disk_name(unit)} in the guest)", unit)
        self.mode_new = QRadioButton("New image file")
        self.mode_existing = QRadioButton("Existing image file")
        self.mode_cow = QRadioButton("New COW layer over a base image (the base stays unchanged)")
        self.mode_new.setChecked(True)
        self.modes = QButtonGroup(self)
        for button in (self.mode_new, self.mode_existing, self.mode_cow):
            self.modes.addButton(button)
        first = free_units[0] if free_units else 1
        self.new_path = _PathRow("/path/to/new.img", save=True)
        self.new_path.edit.setText(str(own / f"disk{first}.img"))
        self.new_size = SizeEdit(minimum=1 << 20, maximum=1 << 44, units=("MiB", "GiB", "TiB"))
        self.new_size.setValue(DEFAULT_NEW_SIZE)
        self.filesystem = QComboBox()
        self.filesystem.addItem("ext4 (ready to mount)", "ext4")
        self.filesystem.addItem("none (blank disk)", None)
        self.existing_path = _PathRow("/path/to/image.img")
        self.cow_path = _PathRow("/path/to/layer.cow", save=True)
        self.cow_path.edit.setText(str(own / f"disk{first}.cow"))
        self.base_path = _PathRow("/path/to/base.img")
        self.readonly = QCheckBox("Read-only in the guest")
        self._build()
        self.modes.buttonToggled.connect(self._mode_changed)
        self._mode_changed()

    def _build(self) -> None:
        self.new_box = QGroupBox()
        form = QFormLayout(self.new_box)
        form.addRow("File:", self.new_path)
        form.addRow("Size:", self.new_size)
        form.addRow("Filesystem:", self.filesystem)
        form.addRow("", QLabel("The file is sparse: it takes host space only as the guest writes."))
        self.existing_box = QGroupBox()
        QFormLayout(self.existing_box).addRow("File:", self.existing_path)
        self.cow_box = QGroupBox()
        form = QFormLayout(self.cow_box)
        form.addRow("Base image:", self.base_path)
        form.addRow("COW file:", self.cow_path)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Add")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        layout = QVBoxLayout(self)
        top = QFormLayout()
        top.addRow("Attach as:", self.unit)
        layout.addLayout(top)
        for radio, box in ((self.mode_new, self.new_box), (self.mode_existing, self.existing_box),
                           (self.mode_cow, self.cow_box)):
            layout.addWidget(radio)
            layout.addWidget(box)
        layout.addWidget(self.readonly)
        layout.addWidget(buttons)

    def mode(self) -> str:
        if self.mode_existing.isChecked():
            return EXISTING
        return COW if self.mode_cow.isChecked() else NEW

    def _mode_changed(self, *_args) -> None:
        mode = self.mode()
        self.new_box.setEnabled(mode == NEW)
        self.existing_box.setEnabled(mode == EXISTING)
        self.cow_box.setEnabled(mode == COW)

    def build_request(self) -> AddDiskRequest:
        """The request from the form; UmlguiError for anything that cannot work."""
        if self.unit.count() == 0:
            raise ConfigError("all 16 disk units (ubd0..ubd15) are in use",
                              "remove a disk before adding another")
        unit, mode = int(self.unit.currentData()), self.mode()
        if mode == NEW:
            path = _required(self.new_path.path(), "new image file")
            check_new_file(path, "new image")
            if self.new_size.value() < images.MIN_EXT4_SIZE:
                raise ConfigError("a new disk needs at least 1 MiB", "choose a larger size")
            return AddDiskRequest(NEW, unit, path, self.new_size.value(),
                                  self.filesystem.currentData(), readonly=self.readonly.isChecked())
        if mode == EXISTING:
            path = _required(self.existing_path.path(), "image file")
            check_existing_image(path)
            return AddDiskRequest(EXISTING, unit, path, readonly=self.readonly.isChecked())
        base = _required(self.base_path.path(), "base image")
        check_existing_image(base, "base image")
        path = _required(self.cow_path.path(), "COW file")
        check_new_file(path, "COW file")
        return AddDiskRequest(COW, unit, path, base=base, readonly=self.readonly.isChecked())

    def accept(self) -> None:
        try:
            self.request = self.build_request()
        except UmlguiError as exc:
            show_error(self, "Add disk", exc)
            return
        super().accept()


@dataclass
class MergeRequest:
    cow_file: Path
    output: Path | None          # None: merge into the base image itself


class MergeDialog(QDialog):
    """Where the COW layer's changes go: a new standalone image, or into the base."""

    def __init__(self, cow_file: str, backing: str, parent=None):
        super().__init__(parent)
        self.setObjectName("mergeDialog")
        self.setWindowTitle("Merge COW layer")
        self.request: MergeRequest | None = None
        self.cow_file = Path(cow_file)
        self.into_new = QRadioButton("Into a new image (the COW file and its base stay as they are)")
        self.into_base = QRadioButton(f"Into its base image {backing}")
        self.into_new.setChecked(True)
        self.output = _PathRow("/path/to/merged.img", save=True)
        self.output.edit.setText(str(self.cow_file.with_name(self.cow_file.stem + "-merged.img")))
        warning = QLabel("Merging into the base changes the base file: every other COW layer "
                         "made over it becomes unusable. umlgui refuses when another machine "
                         "uses that base.")
        warning.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Merge")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.into_new.toggled.connect(self.output.setEnabled)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Merge <b>{cow_file}</b> with its base:"))
        layout.addWidget(self.into_new)
        layout.addWidget(self.output)
        layout.addWidget(self.into_base)
        layout.addWidget(warning)
        layout.addWidget(buttons)

    def accept(self) -> None:
        try:
            output = None
            if self.into_new.isChecked():
                output = _required(self.output.path(), "merged image")
                check_new_file(output, "merged image")
            self.request = MergeRequest(self.cow_file, output)
        except UmlguiError as exc:
            show_error(self, "Merge COW layer", exc)
            return
        super().accept()
