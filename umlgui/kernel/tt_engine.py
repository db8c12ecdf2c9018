"""The `tt` engine seen from the worker: `python -m umlgui.kernel.tt` with a UML-style line."""

from __future__ import annotations

import os
import sys

from umlgui import paths
from umlgui.errors import ConfigError
from umlgui.kernel.base import Engine, LaunchContext
from umlgui.kernel.linux import console_args
from umlgui.model.library import cow_layer_dir
from umlgui.model.units import format_size


def monitor_log(name: str):
    """Where the syscall monitor of machine `name` writes (one JSON object per line)."""
    return paths.logs_dir(name) / "syscalls.jsonl"


class TtEngine(Engine):
    name = "tt"

    def check(self, machine) -> None:
        machine.validate(check_files=True)
        if not machine.rootfs:
            raise ConfigError(f"{machine.name} has no root tree for the tt engine",
                              f"create it from a template: umlgui create {machine.name} --engine tt "
                              "--template busybox")

    def argv(self, machine, ctx: LaunchContext) -> list[str]:
        cow = cow_layer_dir(machine)
        cow.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "umlgui.kernel.tt", f"umid={ctx.umid}", f"uml_dir={ctx.uml_dir}/",
                f"mem={format_size(machine.memory)}", f"hostname={machine.hostname or machine.name}",
                f"ttroot={machine.rootfs}", f"ttcow={cow}", "con=none", "ssl=none"]
        argv += console_args(machine, ctx)
        if machine.hostfs:
            argv.append(f"hostfs={machine.hostfs}")
        if machine.autologin:
            argv.append("autologin=1")
        if machine.monitor:
            argv.append(f"ttmonitor={monitor_log(machine.name)}")
        argv.append(f"mconsole=notify:{ctx.notify_socket}")
        return argv + [w for w in machine.append if not w.startswith(("root=", "rw", "ro"))]

    def env(self, machine, ctx: LaunchContext) -> dict[str, str]:
        env = dict(os.environ)
        # the kernel process must import umlgui even when run from a source checkout
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        return env
