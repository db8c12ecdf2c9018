"""The tt kernel's answers to mconsole commands (served by umlgui.host.mconsole).

The same commands as UML (UML-INTERFACES.md §2.4): version, halt, reboot, cad, stop, go,
sysrq, log, proc, stack, config and remove (queries only), help.
"""

from __future__ import annotations

import os
import signal

SYSRQ_HELP = ("sysrq: HELP : loglevel(0-9) reboot(b) crash(c) terminate-all-tasks(e) "
              "kill-all-tasks(i) show-memory-usage(m) poweroff(o) sync(s) show-task-states(t) "
              "unmount(u)")


class KernelMconsole:
    """Handler object for MconsoleServer; `kernel` is the running Kernel."""

    def __init__(self, kernel):
        self.kernel = kernel

    @property
    def guest(self):
        return self.kernel.guest

    def version(self, arg: str) -> str:
        guest = self.guest
        return f"Linux {guest.hostname} {guest.release} {guest.kernel_version} x86_64"

    def halt(self, arg: str) -> None:
        self.guest.power_request = "halt"

    def reboot(self, arg: str) -> None:
        self.guest.power_request = "reboot"

    def cad(self, arg: str) -> None:
        if self.guest.cad_enabled:
            self.guest.power_request = "reboot"
        else:
            self._signal_init(signal.SIGINT)

    def stop(self, arg: str) -> None:
        """The freeze itself happens in the kernel loop, after the reply."""

    def go(self, arg: str) -> None:
        self.kernel.tracer.thaw()

    def log(self, arg: str) -> None:
        self.kernel.log(arg.rstrip("\n"))

    def config(self, arg: str):
        name, equals, _ = arg.partition("=")
        name = name.strip()
        if equals:
            return 1, "Changing devices at run time is not supported by the tt engine"
        channel = self.kernel.config.channels.get(name)
        if channel is not None:
            return channel
        if name.startswith(("con", "ssl")):
            return self.kernel.config.default_channels.get(name[:3], "none")
        if name == "mem":
            return str(self.kernel.config.memory_bytes)
        return 1, "Bad configuration option"

    def remove(self, arg: str):
        return 1, "Removing devices is not supported by the tt engine"

    def proc(self, arg: str):
        path = arg.strip().lstrip("/")
        if not path:
            return 1, "Read of file failed"
        try:
            return self._read_guest_proc(path)
        except IsADirectoryError:
            return 1, "Read of file failed"
        except OSError:
            return 1, "Failed to open file"

    def _read_guest_proc(self, path: str) -> str:
        first, _, rest = path.partition("/")
        synthetic = self.guest.proc_files.host_path(first, 0) if not rest else None
        if synthetic is not None:
            host = synthetic
        elif first.isdigit():
            host_pid = self.kernel.tracer.host_pid_of_guest(int(first))
            if host_pid is None:
                raise FileNotFoundError(path)
            host = f"/proc/{host_pid}/{rest}"
        elif first in ("self", "thread-self"):
            raise FileNotFoundError(path)
        else:
            host = f"/proc/{path}"
        with open(host, errors="replace") as handle:
            return handle.read()

    def sysrq(self, arg: str) -> str:
        key = arg.strip()[:1]
        kernel = self.kernel
        if key == "b":
            self.guest.power_request = "reboot"
            return ""
        if key == "o":
            self.guest.power_request = "halt"
            return "sysrq: Power Off\n"
        if key == "c":
            kernel.pending.add("init-gone")
            kernel.tracer.init_status = None
            return "sysrq: Trigger a crash\n"
        if key in ("e", "i"):
            signal_number = signal.SIGTERM if key == "e" else signal.SIGKILL
            for pid in kernel.tracer.processes():
                if pid != kernel.tracer.init_pid:
                    try:
                        os.kill(pid, signal_number)
                    except OSError:
                        pass
            return ("sysrq: Terminate All Tasks\n" if key == "e"
                    else "sysrq: Kill All Tasks\n")
        if key == "s":
            os.sync()
            return "sysrq: Emergency Sync\nEmergency Sync complete\n"
        if key == "u":
            return "sysrq: Emergency Remount R/O\n"
        if key == "m":
            total = kernel.config.memory_bytes // 1024
            used = kernel.memory_used() // 1024
            return f"sysrq: Show Memory\nMem-Info:\n{total} kB total, {used} kB used by processes\n"
        if key == "t":
            return "sysrq: Show State\n" + self._task_list()
        if key.isdigit():
            return f"sysrq: Changing Loglevel\nLoglevel set to {key}\n"
        return SYSRQ_HELP + "\n"

    def _task_list(self) -> str:
        tracer = self.kernel.tracer
        lines = []
        for pid in sorted(tracer.processes(), key=lambda p: tracer.guest_pid_of(tracer.tracees[p])
                          if p in tracer.tracees else p):
            tracee = tracer.tracees.get(pid)
            guest_pid = tracer.guest_pid_of(tracee) if tracee else pid
            try:
                with open(f"/proc/{pid}/comm") as handle:
                    name = handle.read().strip()
            except OSError:
                continue
            lines.append(f"task:{name:<15} pid:{guest_pid}\n")
        return "".join(lines)

    def stack(self, arg: str):
        text = arg.strip()
        if not text.isdigit():
            return 1, "Please specify a pid"
        host_pid = self.kernel.tracer.host_pid_of_guest(int(text))
        if host_pid is None:
            return 1, "Couldn't find that pid"
        try:
            with open(f"/proc/{host_pid}/wchan") as handle:
                where = handle.read().strip() or "running"
        except OSError:
            where = "?"
        return f"task pid:{text} waiting in {where}\n"

    def _signal_init(self, signal_number: int) -> None:
        try:
            os.kill(self.kernel.tracer.init_pid, signal_number)
        except OSError:
            pass
