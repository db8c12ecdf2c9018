"""Templates: recipes that build a shared, read-only base a machine is made from.

A built template lives in `templates/NAME/`:
  base.img        ext4 image for the `linux` engine (mode 0444: it is never written)
  root/           the same tree as a directory, for the `tt` engine
  template.toml   what was built, when, and the kernel arguments to boot it
Machines never write to a base: each gets its own COW layer (`linux`) or upper directory (`tt`).
"""

from __future__ import annotations

import os
import shutil
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import tomli_w

from umlgui import paths
from umlgui.errors import NotFoundError, UmlguiError
from umlgui.jobs import Cancelled, Progress

BASE_IMAGE = "base.img"
ROOT_DIR = "root"
INFO_FILE = "template.toml"
# Guest scripts every template installs: (file in shared_files/, path in the tree, mode).
# "hostlab" runs a Netkit lab's overlay, NAME.startup and NAME.shutdown (see hostlab's header).
SHARED_FILES = (
    ("hostlab", "usr/local/lib/umlgui/hostlab", 0o755),
)


def guest_files(directory: str, table) -> Iterator[tuple[str, bytes, str, int]]:
    """(name, content, path in the tree, mode) of a template's own files from `directory`
    (a folder of umlgui.templates, listed by `table`), then of the shared ones."""
    package = resources.files("umlgui.templates")
    for folder, entries in ((directory, table), ("shared_files", SHARED_FILES)):
        for source, target, mode in entries:
            yield source, (package / folder / source).read_bytes(), target, mode


def install_guest_files(root: Path, directory: str, table, texts: dict[str, str]) -> None:
    """The template's files, the shared ones, then `texts` (path in the tree: its content)."""
    for _name, content, target, mode in guest_files(directory, table):
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    for target, text in texts.items():
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@dataclass
class BuiltTemplate:
    name: str
    directory: Path
    kernel_args: list[str] = field(default_factory=list)
    memory: str = "128M"
    features: list[str] = field(default_factory=list)  # what this build's guest can do; see Template

    @property
    def image(self) -> Path:
        return self.directory / BASE_IMAGE

    @property
    def root_dir(self) -> Path:
        return self.directory / ROOT_DIR


class Template:
    """One recipe. Subclasses set the class attributes and implement `build_into`."""

    name = ""
    description = ""
    download_mb = 0           # estimated download; 0 = builds offline
    memory = "128M"           # a sensible default for machines made from it
    kernel_args: list[str] = []
    # Guest behaviour the host may rely on, recorded at build time so that machines on an older
    # build are not asked for it: "cad-halt" = with /hostlab/.umlgui-halt-HOSTNAME present,
    # Ctrl-Alt-Del powers off cleanly (running Netkit .shutdown scripts) instead of rebooting.
    features: tuple[str, ...] = ()

    def build_into(self, staging: Path, progress: Progress) -> None:
        """Write root/ and base.img into `staging` (an empty directory)."""
        raise NotImplementedError

    def is_built(self) -> bool:
        return (paths.template_dir(self.name) / INFO_FILE).is_file()

    def built(self) -> BuiltTemplate:
        directory = paths.template_dir(self.name)
        info_path = directory / INFO_FILE
        if not info_path.is_file():
            raise NotFoundError(
                f"template {self.name!r} is not built yet",
                f"run `umlgui template build {self.name}`",
            )
        info = tomllib.loads(info_path.read_text())
        return BuiltTemplate(self.name, directory, list(info.get("kernel_args", [])),
                             info.get("memory", self.memory), list(info.get("features", [])))

    def build(self, progress: Progress | None = None, force: bool = False) -> BuiltTemplate:
        """Build atomically: a cancelled or failed build leaves nothing half-made behind."""
        progress = progress or Progress()
        final = paths.template_dir(self.name)
        if self.is_built() and not force:
            return self.built()
        staging = paths.ensure_dir(paths.templates_dir()) / f".{self.name}.building"
        _remove_tree(staging)
        staging.mkdir()
        try:
            self.build_into(staging, progress)
            image = staging / BASE_IMAGE
            if image.exists():
                image.chmod(0o444)
            info = {"name": self.name, "built": int(time.time()),
                    "kernel_args": list(self.kernel_args), "memory": self.memory,
                    "features": list(self.features)}
            (staging / INFO_FILE).write_text(tomli_w.dumps(info))
            _remove_tree(final)
            staging.rename(final)
        except (Cancelled, Exception):
            _remove_tree(staging)
            raise
        progress.step("done", 1.0)
        return self.built()

    def remove(self) -> None:
        directory = paths.template_dir(self.name)
        if not directory.exists():
            raise NotFoundError(f"template {self.name!r} is not built")
        _remove_tree(directory)


def _remove_tree(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    # base images are read-only on purpose; make them writable so rmtree can go on
    for root, dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                try:
                    os.chmod(full, 0o644)
                except OSError:
                    pass
    shutil.rmtree(path)


def catalogue() -> dict[str, Template]:
    """All known templates by name."""
    from umlgui.templates.busybox import BusyboxTemplate

    templates = [BusyboxTemplate()]
    try:
        from umlgui.templates.debian import DebianTemplate
        templates.append(DebianTemplate())
    except ImportError:
        pass
    return {t.name: t for t in templates}


def get_template(name: str) -> Template:
    known = catalogue()
    if name not in known:
        raise NotFoundError(f"unknown template {name!r}",
                            f"choose one of: {', '.join(sorted(known))}")
    return known[name]


def ensure_built(name: str, progress: Progress | None = None) -> BuiltTemplate:
    template = get_template(name)
    return template.built() if template.is_built() else template.build(progress)


class TemplateBuildError(UmlguiError):
    pass
