"""The New Machine wizard: where the machine comes from, then its name, memory and engine.

Three sources: a template (busybox, and whatever else `catalogue()` offers; an unbuilt
one is built on the way, with its download size said up front), an existing disk image,
or a pasted UML command line (`linux ubd0=root_fs mem=128M ...`). Input is checked page by
page and a problem is shown under the fields with its fix; the machine itself is made off
the GUI thread (its own COW layer over the template's shared base: library.new_machine).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QPlainTextEdit, QPushButton, QRadioButton, QVBoxLayout, QWidget,
                               QWizard, QWizardPage)

from umlgui import paths
from umlgui.errors import ConfigError, NotFoundError, UmlguiError
from umlgui.gui.icons import app_icon, icon
from umlgui.gui.jobs import error_text, run_job
from umlgui.jobs import Progress
from umlgui.model import library
from umlgui.model.cmdline import ImportResult, from_argv, to_shell
from umlgui.model.machine import ENGINES, Machine, validate_name
from umlgui.model.units import parse_size
from umlgui.templates.base import catalogue

TEMPLATE, IMAGE, COMMAND_LINE = "template", "image", "cmdline"
MEMORY_CHOICES = ("64M", "128M", "256M", "512M", "1G")


@dataclass
class MachinePlan:
    """What the wizard will create, once both pages are valid."""

    source: str
    name: str
    engine: str = "linux"
    memory: str | None = None        # None: the template's or command line's own
    template: str | None = None
    image: str | None = None
    imported: ImportResult | None = None
    root_password: str = ""          # Debian template: set on first boot (empty: no password)


def next_free_name(stem: str = "vm") -> str:
    taken = set(library.list_names())
    number = 1
    while f"{stem}{number}" in taken:
        number += 1
    return f"{stem}{number}"


def template_label(template) -> str:
    if template.is_built():
        status = "ready"
    elif template.download_mb:
        status = f"build now (≈{template.download_mb} MB download)"
    else:
        status = "build now (no download)"
    return f"{template.name} — {template.description}\n      {status}"


def parse_command_line(text: str, name: str | None = None) -> ImportResult:
    """A pasted UML command line as a machine; relative file names are taken from $HOME."""
    try:
        argv = shlex.split(text.replace("\\\n", " "))
    except ValueError as exc:
        raise ConfigError(f"the command line is malformed: {exc}",
                          "check its quotes and backslashes") from None
    if not argv:
        raise ConfigError("the command line is empty",
                          "paste a UML command line, e.g. linux ubd0=/path/root_fs mem=128M")
    result = from_argv(argv, name=name or "imported", cwd=str(Path.home()))
    result.machine.validate(check_files=True)
    return result


def check_image(text: str) -> str:
    if not text.strip():
        raise ConfigError("no disk image chosen", "choose an image file with Browse…")
    path = Path(text.strip()).expanduser().absolute()
    if not path.exists():
        raise NotFoundError(f"the image {path} does not exist", "check the path, or choose it with Browse…")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a disk image", "choose an image file")
    return str(path)


def check_memory(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    size = parse_size(text, "memory")
    try:
        Machine(name="memory", memory=size).validate(check_files=False)
    except ConfigError as exc:    # the model's message starts with the machine name: drop it
        raise ConfigError(exc.problem.split(": ", 1)[-1], exc.fix) from None
    return text


def check_new_name(text: str) -> str:
    name = validate_name(text.strip())
    if library.exists(name):
        raise ConfigError(f"a machine named {name!r} already exists",
                          "choose another name, or delete the old machine first")
    return name


def create_machine(plan: MachinePlan, progress: Progress) -> Machine:
    """Make the planned machine (runs in a job thread)."""
    if plan.source == TEMPLATE:
        machine = library.new_machine(plan.name, template=plan.template, memory=plan.memory,
                                      engine=plan.engine, progress=progress)
        if plan.root_password:
            from umlgui.templates.debian import set_root_password

            set_root_password(plan.name, plan.root_password)
            machine = library.load(plan.name)
        return machine
    if plan.source == IMAGE:
        return library.new_machine(plan.name, template=None, memory=plan.memory or "128M",
                                   engine=plan.engine, disks=[plan.image])
    machine = plan.imported.machine
    machine.name = plan.name
    machine.engine = plan.engine
    if plan.memory:
        machine.memory = parse_size(plan.memory, "memory")
    if library.exists(plan.name):
        raise ConfigError(f"a machine named {plan.name!r} already exists", "choose another name")
    machine.validate(check_files=True)
    paths.ensure_dir(paths.disks_dir(plan.name))
    library.save(machine)
    return machine


class ErrorLabel(QLabel):
    """The line under a page's fields that names the problem and the fix."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("wizardError")
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setStyleSheet("color: #c62828; font-weight: bold;")
        self.hide()

    def show_error(self, exc: BaseException) -> None:
        problem, fix = error_text(exc)
        self.setText(problem[:1].upper() + problem[1:] + (f"\nFix: {fix}" if fix else ""))
        self.show()

    def clear(self) -> None:
        super().clear()
        self.hide()


class SourcePage(QWizardPage):
    def __init__(self, wizard: "NewMachineWizard"):
        super().__init__(wizard)
        self.setTitle("Where does the machine come from?")
        self.setSubTitle("A template gives a ready system; each machine keeps its own changes "
                         "in a copy-on-write layer over the shared base.")
        self.imported: ImportResult | None = None
        self.image = ""
        layout = QVBoxLayout(self)
        self.choice = QButtonGroup(self)

        self.from_template = QRadioButton("From a &template", self, objectName="sourceTemplate")
        self.templates = QListWidget(self, objectName="templateList")
        self.templates.setIconSize(self.templates.iconSize() * 1.5)
        for template in catalogue().values():
            item = QListWidgetItem(icon("new"), template_label(template))
            item.setData(Qt.ItemDataRole.UserRole, template.name)
            self.templates.addItem(item)
        self.templates.setCurrentRow(0)
        self.templates.setMaximumHeight(140)

        self.from_image = QRadioButton("From an existing disk &image (becomes ubd0)", self,
                                       objectName="sourceImage")
        self.image_path = QLineEdit(self, objectName="imagePath")
        self.image_path.setPlaceholderText("/path/to/root_fs.img")
        browse = QPushButton("&Browse…", self)
        browse.clicked.connect(self._browse)
        image_row = QHBoxLayout()
        image_row.addWidget(self.image_path)
        image_row.addWidget(browse)

        self.from_command = QRadioButton("From a UML &command line", self, objectName="sourceCommandLine")
        self.command_line = QPlainTextEdit(self, objectName="commandLine")
        self.command_line.setPlaceholderText(
            "linux ubd0=/srv/uml/root_fs mem=256M eth0=daemon,,unix,/tmp/sw.ctl\n"
            "(relative file names are taken from your home directory)")
        self.command_line.setMaximumHeight(70)

        for button in (self.from_template, self.from_image, self.from_command):
            self.choice.addButton(button)
        self.from_template.setChecked(True)
        self.templates.itemSelectionChanged.connect(lambda: self.from_template.setChecked(True))
        self.image_path.textEdited.connect(lambda _: self.from_image.setChecked(True))
        self.command_line.textChanged.connect(
            lambda: self.command_line.toPlainText() and self.from_command.setChecked(True))
        self.choice.buttonToggled.connect(lambda *_: self.error.clear())

        layout.addWidget(self.from_template)
        layout.addWidget(self.templates)
        layout.addSpacing(6)
        layout.addWidget(self.from_image)
        layout.addLayout(image_row)
        layout.addSpacing(6)
        layout.addWidget(self.from_command)
        layout.addWidget(self.command_line)
        layout.addStretch(1)
        self.error = ErrorLabel(self)
        layout.addWidget(self.error)

    def source(self) -> str:
        if self.from_image.isChecked():
            return IMAGE
        if self.from_command.isChecked():
            return COMMAND_LINE
        return TEMPLATE

    def template_name(self) -> str | None:
        item = self.templates.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a disk image", str(Path.home()),
                                              "Disk images (*.img *.ext4 *.raw root_fs*);;All files (*)")
        if path:
            self.image_path.setText(path)
            self.from_image.setChecked(True)

    def validatePage(self) -> bool:
        self.error.clear()
        try:
            source = self.source()
            if source == TEMPLATE and not self.template_name():
                raise ConfigError("no template chosen", "pick one from the list")
            if source == IMAGE:
                self.image = check_image(self.image_path.text())
            if source == COMMAND_LINE:
                self.imported = parse_command_line(self.command_line.toPlainText())
        except UmlguiError as exc:
            self.error.show_error(exc)
            return False
        return True


class MachinePage(QWizardPage):
    def __init__(self, wizard: "NewMachineWizard"):
        super().__init__(wizard)
        self.setTitle("Name, memory and engine")
        self.setSubTitle("Then Create: the machine is added to the list (and boots, if you like).")
        self.name_edited = False
        form = QFormLayout()
        self.name = QLineEdit(self, objectName="machineName")
        self.name.setPlaceholderText("letters, digits, '.', '_' or '-'")
        self.name.textEdited.connect(lambda _: setattr(self, "name_edited", True))
        self.memory = QComboBox(self, objectName="machineMemory")
        self.memory.setEditable(True)
        self.memory.addItems(("",) + MEMORY_CHOICES)
        self.memory.lineEdit().setPlaceholderText("default")
        self.engine = QComboBox(self, objectName="machineEngine")
        for engine in ENGINES:
            self.engine.addItem({"linux": "linux — the real UML kernel (linux.uml)",
                                 "tt": "tt — umlgui's ptrace engine (template trees)"}[engine], engine)
        self.password = QLineEdit(self, objectName="rootPassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("empty: root logs in without a password")
        self.boot_now = QCheckBox("&Boot it now and open its console", self, objectName="bootNow")
        self.boot_now.setChecked(True)
        form.addRow("&Name:", self.name)
        form.addRow("&Memory:", self.memory)
        form.addRow("&Engine:", self.engine)
        form.addRow("Root &password:", self.password)
        self.password_row = form.rowCount() - 1
        form.addRow("", self.boot_now)
        self.form = form
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        self.notes = QLabel(self, objectName="wizardNotes")
        self.notes.setWordWrap(True)
        self.notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.notes)
        layout.addStretch(1)
        self.error = ErrorLabel(self)
        layout.addWidget(self.error)
        self.setButtonText(QWizard.WizardButton.FinishButton, "&Create")

    def initializePage(self) -> None:
        source_page: SourcePage = self.wizard().source_page
        self.error.clear()
        source = source_page.source()
        suggested = next_free_name()
        if source == COMMAND_LINE and source_page.imported:
            machine = source_page.imported.machine
            umid = next((w[5:] for w in source_page.command_line.toPlainText().split()
                         if w.startswith("umid=")), None)
            suggested = umid or suggested
            self.memory.setCurrentText("")
            self.memory.lineEdit().setPlaceholderText(f"from the command line ({machine.memory >> 20}M)")
            warnings = source_page.imported.warnings
            self.notes.setText("Imported as:\n" + to_shell(machine)
                               + ("".join(f"\nNote: {w}" for w in warnings)))
        elif source == TEMPLATE:
            template = catalogue()[source_page.template_name()]
            self.memory.lineEdit().setPlaceholderText(f"template default ({template.memory})")
            self.notes.setText("" if template.is_built() else
                               f"The {template.name} template is built first"
                               + (f" (≈{template.download_mb} MB download)." if template.download_mb
                                  else " (no download)."))
        else:
            self.memory.lineEdit().setPlaceholderText("default (128M)")
            self.notes.setText(f"The image is used as it is (ubd0={source_page.image}); "
                               "the machine writes to it.")
        if not self.name_edited or not self.name.text():
            self.name.setText(suggested)
        # only the Debian template applies a password (through its seed disk, never the cmdline)
        self.form.setRowVisible(self.password_row,
                                source == TEMPLATE and source_page.template_name() == "debian")

    def plan(self) -> MachinePlan:
        source_page: SourcePage = self.wizard().source_page
        source = source_page.source()
        engine = self.engine.currentData()
        if engine == "tt" and source != TEMPLATE:
            raise ConfigError("the tt engine boots template trees only",
                              "choose the linux engine, or start from a template")
        password = self.password.text() if self.form.isRowVisible(self.password_row) else ""
        if password and engine != "linux":
            raise ConfigError("a root password can be set on the linux engine only",
                              "choose the linux engine, or leave the password empty")
        return MachinePlan(source=source, name=check_new_name(self.name.text()), engine=engine,
                           memory=check_memory(self.memory.currentText()),
                           template=source_page.template_name(), image=source_page.image or None,
                           imported=source_page.imported, root_password=password)

    def validatePage(self) -> bool:
        self.error.clear()
        try:
            self.wizard().plan = self.plan()
        except UmlguiError as exc:
            self.error.show_error(exc)
            return False
        return True


class NewMachineWizard(QWizard):
    """Emits `created(name, boot_now)` once the machine exists, then closes."""

    created = Signal(str, bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("newMachineWizard")
        self.setWindowTitle("New machine")
        self.setWindowIcon(app_icon())
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setPixmap(QWizard.WizardPixmap.LogoPixmap, app_icon().pixmap(48, 48))
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.plan: MachinePlan | None = None
        self.job = None
        self.finished_creating = False
        self.source_page = SourcePage(self)
        self.machine_page = MachinePage(self)
        self.addPage(self.source_page)
        self.addPage(self.machine_page)
        self.resize(680, 560)

    def accept(self) -> None:
        """Finish pressed: check the page, create the machine in a job; stay open on failure."""
        # QWizard.accept is what validates the last page: this override must do it itself
        if self.job is not None or not self.validateCurrentPage() or self.plan is None:
            return
        plan = self.plan
        self._set_busy(True)
        self.job = run_job(self, f"Creating {plan.name}", lambda progress: create_machine(plan, progress),
                           on_done=self._created, on_error=self._failed,
                           on_cancel=lambda: self._failed(UmlguiError("creating the machine was cancelled")))

    def _created(self, machine: Machine) -> None:
        self.job = None
        self._set_busy(False)
        self.created.emit(machine.name, self.machine_page.boot_now.isChecked())
        self.finished_creating = True
        self.done(QDialog.DialogCode.Accepted)

    def validateCurrentPage(self) -> bool:
        # QWizard.done(Accepted) validates the page again, when the name is already taken by us
        return self.finished_creating or super().validateCurrentPage()

    def _failed(self, exc: BaseException) -> None:
        self.job = None
        self._set_busy(False)
        self.machine_page.error.show_error(exc)

    def _set_busy(self, busy: bool) -> None:
        for which in (QWizard.WizardButton.FinishButton, QWizard.WizardButton.BackButton,
                      QWizard.WizardButton.CancelButton):
            self.button(which).setEnabled(not busy)
        self.setCursor(Qt.CursorShape.BusyCursor if busy else Qt.CursorShape.ArrowCursor)

