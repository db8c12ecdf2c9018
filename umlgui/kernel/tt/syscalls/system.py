"""The machine's name and power: uname, sethostname, setdomainname, reboot, syslog.

uname reports the engine's own kernel (release 6.1.0-tt) and the guest's hostname.
reboot(2) ends the boot: the kernel process then halts or re-executes itself (kernel.py).
"""

from __future__ import annotations

import errno

from ..os_linux import memory
from ..os_linux.ptrace import RDI, RDX, RSI
from .common import need_root, write_out

FIELD = 65
LINUX_REBOOT_MAGIC1 = 0xFEE1DEAD
LINUX_REBOOT_MAGIC2 = (672274793, 85072278, 369367448, 537993216)
CMD_RESTART = 0x01234567
CMD_RESTART2 = 0xA1B2C3D4
CMD_HALT = 0xCDEF0123
CMD_POWER_OFF = 0x4321FEDC
CMD_CAD_ON = 0x89ABCDEF
CMD_CAD_OFF = 0x00000000
CMD_SW_SUSPEND = 0xD000FCE2


def _field(text: str) -> bytes:
    return text.encode()[:FIELD - 1].ljust(FIELD, b"\0")


def sys_uname(guest, tracee, regs):
    data = b"".join(_field(text) for text in (
        "Linux", guest.hostname, guest.release, guest.kernel_version, "x86_64",
        guest.domainname))
    write_out(tracee.pid, regs[RDI], data)
    return 0


def _read_name(tracee, regs) -> str:
    length = regs[RSI]
    if length > 64:
        raise OSError(errno.EINVAL, "name too long")
    try:
        return memory.read(tracee.pid, regs[RDI], length).decode(errors="replace")
    except memory.MemoryError_:
        raise OSError(errno.EFAULT, "bad address") from None


def sys_sethostname(guest, tracee, regs):
    need_root(tracee)
    guest.hostname = _read_name(tracee, regs)
    return 0


def sys_setdomainname(guest, tracee, regs):
    need_root(tracee)
    guest.domainname = _read_name(tracee, regs)
    return 0


def sys_reboot(guest, tracee, regs):
    if regs[RDI] & 0xFFFFFFFF != LINUX_REBOOT_MAGIC1 or \
            regs[RSI] & 0xFFFFFFFF not in LINUX_REBOOT_MAGIC2:
        raise OSError(errno.EINVAL, "bad magic")
    need_root(tracee)
    command = regs[RDX] & 0xFFFFFFFF
    if command == CMD_CAD_ON:
        guest.cad_enabled = True
        return 0
    if command == CMD_CAD_OFF:
        guest.cad_enabled = False
        return 0
    if command in (CMD_RESTART, CMD_RESTART2):
        guest.power_request = "reboot"
        return 0
    if command in (CMD_HALT, CMD_POWER_OFF):
        guest.power_request = "halt"
        return 0
    raise OSError(errno.EINVAL, "unsupported reboot command")


SYSLOG_READ_ALL = 3
SYSLOG_READ_CLEAR = 4
SYSLOG_SIZE_BUFFER = 10


def sys_syslog(guest, tracee, regs):
    """dmesg reads the engine's own log (boot lines, mconsole `log` text)."""
    action = regs[RDI] & 0xFFFFFFFF
    text = guest.kernel_log_text().encode()
    if action in (SYSLOG_READ_ALL, SYSLOG_READ_CLEAR):
        data = text[-(regs[RDX] & 0x7FFFFFFF):] if regs[RDX] else b""
        write_out(tracee.pid, regs[RSI], data)
        return len(data)
    if action == SYSLOG_SIZE_BUFFER:
        return 1 << 16
    return 0


HANDLERS = {
    "uname": sys_uname, "sethostname": sys_sethostname, "setdomainname": sys_setdomainname,
    "reboot": sys_reboot, "syslog": sys_syslog,
}
