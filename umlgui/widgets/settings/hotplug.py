"""Hot-plug on a running machine: the mconsole command for a device and what its reply means.

Qt-free. Replies are the worker's `{"err", "text"}` for the kernel's answer (UML-INTERFACES §6):
`err` is 0, UML's generic 1, or a negative errno.
"""

from __future__ import annotations

import errno
import re

from umlgui.errors import StateError, UmlguiError
from umlgui.model.cmdline import disk_arg, net_arg
from umlgui.model.machine import Disk, Machine, guest_disk_name


def add_disk_command(unit: int, disk: Disk) -> str:
    return f"config {disk_arg(unit, disk)}"


def remove_disk_command(unit: int) -> str:
    return f"remove ubd{unit}"


def add_card_command(machine: Machine, device: str) -> str:
    """`config ethN=...`: the card exactly as the boot command line would give it."""
    from umlgui.net.client import control_path

    return f"config {net_arg(machine, device, control_path)}"


def remove_card_command(device: str) -> str:
    return f"remove {device}"


def check_reply(machine: str, command: str, reply: dict) -> str:
    """The reply's text when the kernel accepted `command`; else a UmlguiError with the fix."""
    err = int(reply.get("err", 0))
    text = str(reply.get("text", "")).strip()
    if err == 0:
        return text
    device = _device_of(command)
    raise UmlguiError(f"{machine} refused `{command}`: {text or _errno_text(err)}",
                      _fix(command.split(" ", 1)[0], device, err, text))


def _device_of(command: str) -> str:
    match = re.match(r"^\w+\s+([a-z]+[0-9a-z]*?)(?:[rsdct]*=|$|\s)", command)
    return match.group(1) if match else ""


def _errno_text(err: int) -> str:
    name = errno.errorcode.get(-err)
    return f"error {name}" if name else f"error {err}"


def _fix(word: str, device: str, err: int, text: str) -> str:
    if word == "remove" and err == -errno.EBUSY:
        if device.startswith("ubd"):
            unit = int(device[3:]) if device[3:].isdigit() else None
            where = f"/dev/{guest_disk_name(unit)}" if unit is not None else "the disk"
            return f"unmount it in the guest first (umount {where}), then remove it again"
        if device.startswith(("eth", "vec")):
            return (f"take the interface down in the guest first (ip link set {device} down), "
                    "then remove it again")
        return "stop using the device in the guest first, then remove it again"
    if word == "remove" and err == -errno.ENODEV:
        return f"{device} is not plugged in on the running machine; nothing to remove"
    if word == "config" and err == -errno.EBUSY:
        return f"{device} is already in use on the running machine: choose another unit"
    if word == "config" and "size of device's file" in text:
        return "check that the image file (and its backing file) exists and is readable"
    if word == "config" and device.startswith("eth") and err == -errno.EINVAL:
        return f"{device} already exists on the running machine: remove it first or use another card"
    return "check the device settings; the machine's kernel log (console) may say more"


def refuse_while_running(machine: str, action: str) -> StateError:
    return StateError(f"cannot {action} while {machine} is running",
                      f"halt it first (umlgui halt {machine}), then try again")
