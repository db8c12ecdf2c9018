"""The `linux` engine: the real UML kernel binary (Debian's user-mode-linux)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil

from umlgui.errors import NotFoundError, StateError, UmlguiError
from umlgui.host import cow, images
from umlgui.host.process import without_address_randomisation
from umlgui.kernel.base import Engine, LaunchContext
from umlgui.model.cmdline import disk_arg, net_arg
from umlgui.model.units import format_size

SOCKET_PATH_LIMIT = 107


class LinuxEngine(Engine):
    name = "linux"

    def kernel_path(self, machine) -> str:
        found = shutil.which(machine.kernel)
        if not found:
            raise NotFoundError(
                f"the UML kernel {machine.kernel!r} was not found",
                "install it with `sudo apt-get install user-mode-linux`, or set the machine's "
                "kernel to the path of a linux.uml binary",
            )
        return found

    def check(self, machine) -> None:
        self.kernel_path(machine)
        machine.validate(check_files=True)
        if not machine.disks.get(0):
            raise UmlguiError(f"{machine.name} has no root disk (ubd0)",
                              "add a disk image as ubd0, or create the machine from a template")
        _check_disk_files(machine)

    def argv(self, machine, ctx: LaunchContext) -> list[str]:
        mconsole = ctx.uml_dir / ctx.umid / "mconsole"
        if len(str(mconsole)) > SOCKET_PATH_LIMIT:
            raise UmlguiError(f"the mconsole socket path {mconsole} is too long for a unix socket",
                              "use a shorter machine name or set UMLGUI_RUNTIME to a short directory")
        argv = [self.kernel_path(machine), f"umid={ctx.umid}", f"uml_dir={ctx.uml_dir}/",
                f"mem={format_size(machine.memory)}"]
        argv += [disk_arg(unit, disk) for unit, disk in sorted(machine.disks.items())]
        argv += ["con=none", "ssl=none"] + console_args(machine, ctx)
        argv += [net_arg(machine, dev, _switch_socket) for dev in sorted(machine.network)]
        if machine.hostfs:
            argv.append(f"hostfs={machine.hostfs}")
        argv.append(f"hostname={machine.hostname or machine.name}")
        if machine.autologin:
            argv.append("autologin=1")
        argv.append(f"mconsole=notify:{ctx.notify_socket}")
        return without_address_randomisation(argv + default_addresses(machine) + machine.append)

    def explain_panic(self, machine, text: str) -> str:
        explained = f"kernel panic: {text}"
        if "Unable to mount root fs" not in text or 0 not in machine.disks:
            return explained
        root = machine.disks[0].file
        try:
            filesystem = images.inspect(root).filesystem
        except UmlguiError as exc:
            return f"{explained}; the root disk ubd0 ({root}) cannot be read: {exc}"
        if filesystem is None:
            return (f"{explained}; the root disk ubd0 ({root}) holds no filesystem the kernel "
                    "knows: make ubd0 an image holding a root filesystem (a template's, or one "
                    "you built) and this disk ubd1")
        # seen about once in 450 boots of several machines at once; the disk stays untouched
        return (f"{explained}; the root disk ubd0 ({root}) holds {filesystem}: boot again, and "
                f"if it fails again check root= in the kernel arguments and "
                f"`umlgui log {machine.name} --kernel`")

    def env(self, machine, ctx: LaunchContext) -> dict[str, str]:
        env = dict(os.environ)
        # guest RAM is a file in TMPDIR: it must be tmpfs and allow PROT_EXEC (UML-INTERFACES §7.4)
        env.setdefault("TMPDIR", "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp")
        env.setdefault("HOME", str(ctx.uml_dir))
        return env


# UML's slirp transport is a SLIP link (IP only), so DHCP cannot run over it; slirp's own
# network is fixed (guest 10.0.2.15, gateway 10.0.2.2, DNS 10.0.2.3), so give that statically.
SLIRP_GUEST_ADDRESS = "10.0.2.15/24,10.0.2.2"


DEFAULT_ADDRESSES = {"slirp": SLIRP_GUEST_ADDRESS, "internet": "dhcp"}


def default_addresses(machine) -> list[str]:
    """`ip_ethN=` words the guest's boot scripts apply, for NAT cards the user did not configure."""
    words = []
    for device, card in sorted(machine.network.items()):
        address = DEFAULT_ADDRESSES.get(card.transport)
        if address and not any(w.startswith(f"ip_{device}=") for w in machine.append):
            words.append(f"ip_{device}={address}")
    return words


def console_args(machine, ctx: LaunchContext) -> list[str]:
    args = []
    for name in machine.console_names():
        channel = machine.consoles[name].channel
        if channel == "pty":
            fd = ctx.console_fds[name]
            channel = f"fd:{fd},fd:{fd}"
        args.append(f"{name}={channel}")
    return args


def _switch_socket(name: str):
    from umlgui.net.client import control_path

    return control_path(name)


def _check_disk_files(machine) -> None:
    """COW layers match their backing files, and no other process (another UML, most likely)
    holds a lock on a file UML will lock: it would fail to open the disk, and a root disk it
    cannot open ends in a panic that names neither the file nor the holder."""
    for unit, disk in machine.disks.items():
        path = Path(disk.file)
        if not path.is_file():
            continue
        _check_not_locked(machine, unit, path, exclusive=not disk.readonly)
        header = None if disk.data_only else cow.read_header(path)
        if header is not None:
            backing = cow.check_backing(header, disk.backing or None)
            _check_not_locked(machine, unit, backing, exclusive=False)


def _check_not_locked(machine, unit: int, path, exclusive: bool) -> None:
    if machine.disks[unit].shared:       # UML's `c` flag: it takes no lock
        return
    holder = cow.lock_holder(path, exclusive)
    if holder is None:
        return
    raise StateError(
        f"{machine.name}'s disk ubd{unit} ({path}) is in use: process {holder} "
        f"({_describe_process(holder)}) holds a lock on it",
        "halt the machine that uses it first (`umlgui list`), or give this machine its own "
        "copy-on-write layer over the image")


def _describe_process(pid: int) -> str:
    """`linux.uml umid=NAME` for a UML, else the program's name."""
    try:
        words = psutil.Process(pid).cmdline()
    except psutil.Error:
        return "unknown"
    umid = next((word for word in words if word.startswith("umid=")), None)
    program = os.path.basename(words[0]) if words else "unknown"
    return f"{program} {umid}" if umid else program
