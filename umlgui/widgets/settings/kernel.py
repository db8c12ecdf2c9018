"""Kernel and boot: the kernel binary, extra kernel arguments, hostfs, autologin, hostname."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

from PySide6.QtWidgets import (QCheckBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QStyle, QWidget)

from umlgui.errors import ConfigError, NotFoundError
from umlgui.model.machine import Machine
from umlgui.widgets.settings.page import SettingsPage

HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# Words set elsewhere in the settings (or by the worker); typed here they would fight them.
MANAGED_WORDS = {"mem=": "the Memory page", "ubd": "the Disks page", "eth": "the Network page",
                 "vec": "the Network page", "con": "the Consoles page", "ssl": "the Consoles page",
                 "hostfs=": "the hostfs field", "hostname=": "the hostname field",
                 "umid=": "umlgui (the machine's name)", "uml_dir=": "umlgui",
                 "mconsole=": "umlgui"}


def check_kernel(kernel: str) -> str:
    kernel = kernel.strip()
    if not kernel:
        raise ConfigError("no kernel binary given",
                          "choose the UML kernel, e.g. linux.uml (apt-get install user-mode-linux)")
    found = kernel if os.sep in kernel else shutil.which(kernel)
    if not found or not Path(found).is_file():
        raise NotFoundError(f"the kernel binary {kernel} does not exist",
                            "choose an existing linux.uml binary with Browse…, or install it: "
                            "sudo apt-get install user-mode-linux")
    if not os.access(found, os.X_OK):
        raise ConfigError(f"the kernel binary {kernel} is not executable", f"run: chmod +x {found}")
    return kernel


def parse_kernel_words(text: str, before: list[str] = ()) -> list[str]:
    """The words of `text`; words typed anew must not be ones another page sets."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"cannot read the extra kernel arguments: {exc}",
                          "close the quote, or remove it") from None
    for word in words:
        if word in before:
            continue
        for prefix, where in MANAGED_WORDS.items():
            if word.startswith(prefix) and (prefix.endswith("=") or _device_word(word, prefix)):
                raise ConfigError(f"the kernel argument {word!r} is set by {where}",
                                  f"remove it here and use {where} instead")
    return words


def _device_word(word: str, prefix: str) -> bool:
    """`ubd1=...`, `eth0=...`, `con=...`: a device word, not e.g. `console=tty0`."""
    return re.match(rf"^{prefix}(\d+|[a-z])?[rsdct]*[=:]", word) is not None


def check_hostfs(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    path = Path(os.path.expanduser(text))
    if not path.is_dir():
        raise NotFoundError(f"the hostfs directory {text} does not exist",
                            "choose an existing directory, or leave the field empty")
    return str(path.absolute())


def check_hostname(text: str) -> str | None:
    text = text.strip()
    if text and not HOSTNAME_RE.match(text):
        raise ConfigError(f"{text!r} is not a valid hostname",
                          "use letters, digits and '-', at most 63, not starting or ending with '-'")
    return text or None


class _PathField(QWidget):
    def __init__(self, placeholder: str, directory: bool):
        super().__init__()
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.directory = directory
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def _browse(self) -> None:
        start = self.edit.text() or str(Path.home())
        if self.directory:
            chosen = QFileDialog.getExistingDirectory(self, "Choose the host directory", start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Choose the UML kernel", start)
        if chosen:
            self.edit.setText(chosen)


class KernelPage(SettingsPage):
    title = "Kernel and boot"
    icon = QStyle.StandardPixmap.SP_MediaPlay

    def __init__(self, dialog):
        super().__init__(dialog)
        self.kernel = _PathField("linux.uml", directory=False)
        self.kernel.edit.setObjectName("kernelPath")
        self.append = QLineEdit()
        self.append.setObjectName("kernelArgs")
        self.append.setPlaceholderText("e.g. init=/sbin/init loglevel=4")
        self.hostfs = _PathField("no shared directory", directory=True)
        self.hostfs.edit.setObjectName("hostfsPath")
        self.hostname = QLineEdit()
        self.hostname.setObjectName("hostname")
        self.autologin = QCheckBox("Log in as root on con0 without a password")
        self.autologin.setObjectName("autologin")
        form = QFormLayout()
        form.addRow("Kernel binary:", self.kernel)
        form.addRow("Extra kernel arguments:", self.append)
        form.addRow("Host directory (hostfs):", self.hostfs)
        form.addRow("", _note("In the guest: mount -t hostfs none /mnt — the directory is shared "
                              "with the host, with the host user's permissions."))
        form.addRow("Hostname:", self.hostname)
        form.addRow("Autologin:", self.autologin)
        self.body.addLayout(form)
        self.body.addStretch(1)
        for edit in (self.kernel.edit, self.append, self.hostfs.edit, self.hostname):
            edit.textChanged.connect(self.emit_changed)
        self.autologin.toggled.connect(self.emit_changed)

    def load(self, machine: Machine) -> None:
        self.kernel.edit.setText(machine.kernel)
        self.kernel.setEnabled(machine.engine == "linux")
        self.append.setText(shlex.join(machine.append))
        self.hostfs.edit.setText(machine.hostfs or "")
        self.hostname.setText(machine.hostname or "")
        self.hostname.setPlaceholderText(machine.name)
        self.autologin.setChecked(machine.autologin)

    def store(self, machine: Machine) -> None:
        # Values left as they were are not checked again: a kernel or directory that went
        # missing is reported at boot, and must not make the page look edited.
        kernel = self.kernel.edit.text().strip()
        if machine.engine == "linux" and kernel != machine.kernel:
            machine.kernel = check_kernel(kernel)
        machine.append = parse_kernel_words(self.append.text(), machine.append)
        hostfs = self.hostfs.edit.text().strip()
        if hostfs != (machine.hostfs or ""):
            machine.hostfs = check_hostfs(hostfs)
        machine.hostname = check_hostname(self.hostname.text())
        machine.autologin = self.autologin.isChecked()


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("QLabel { color: palette(placeholder-text); }")
    return label
