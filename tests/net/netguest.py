"""Minimal busybox guests on the real UML kernel, for the network tests and the benchmark.

`build_base_image(dir)` makes an ext4 root with the static busybox (relative applet symlinks),
optionally iperf3 with its shared libraries, and an /init that reads `ip=`, `ip1=` and a
base64-encoded shell command `cmd=` from the kernel command line (unknown key=value words land
in init's environment), runs it, prints `UMLGUI-RC=<status>` and powers off.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from umlgui.host.process import kill_tree, without_address_randomisation

LINUX = shutil.which("linux.uml") or "/usr/bin/linux.uml"
BUSYBOX = "/bin/busybox"

INIT = r"""#!/bin/busybox sh
export PATH=/bin:/usr/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
ip link set lo up
if [ -n "$ip" ]; then ip addr add "$ip/24" dev eth0; ip link set eth0 up; fi
if [ -n "$ip1" ]; then ip addr add "$ip1/24" dev eth1; ip link set eth1 up; fi
echo UMLGUI-BOOTED
if [ -n "$cmd" ]; then
  echo "$cmd" | base64 -d > /tmp/cmd.sh
  sh /tmp/cmd.sh
  echo "UMLGUI-RC=$?"
fi
sync
poweroff -f
"""


def _libraries(binary: str) -> list[str]:
    output = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    found = []
    for line in output.splitlines():
        match = re.search(r"(/\S+)", line.split("=>")[-1])
        if match:
            found.append(match.group(1))
    return found


def _copy_with_libraries(binary: str, root: Path) -> None:
    for path in [binary, *_libraries(binary)]:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), target)


def build_base_image(directory: Path, with_iperf: bool = False, size: str = "64M") -> Path:
    """Build `directory/base.img` (ext4) and return its path."""
    root = directory / "root"
    for sub in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "tmp", "dev", "etc", "root"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout
    for applet in applets.split():
        link = root / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    init = root / "init"
    init.write_text(INIT)
    init.chmod(0o755)
    if with_iperf:
        _copy_with_libraries(shutil.which("iperf3") or "/usr/bin/iperf3", root)
    image = directory / "base.img"
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(image)], check=True)
    image.chmod(0o444)
    return image


def encode_command(script: str) -> str:
    return base64.b64encode(script.encode()).decode()


class Guest:
    """One running linux.uml machine whose console goes to a file."""

    def __init__(self, name: str, base: Path, workdir: Path, *, cards: list[str],
                 ip: str | None = None, ip1: str | None = None, script: str | None = None,
                 mem: str = "64M", netns: str | None = None, extra: list[str] | None = None):
        self.name = name
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.console = workdir / f"{name}.console"
        uml_dir = workdir / "uml"
        uml_dir.mkdir(exist_ok=True)
        self.marker = f"uml_dir={uml_dir}/"
        command = [LINUX, f"ubd0={workdir / name}.cow,{base}", "root=/dev/ubda", "rw",
                   "init=/init", f"mem={mem}", f"umid={name}", f"uml_dir={uml_dir}/",
                   "con=null", "ssl=null", "con0=fd:0,fd:1", *cards,
                   "loglevel=5"]    # quiet, but WARNINGs show (see _restart_after_a_root_mount_panic)
        if ip:
            command.append(f"ip={ip}")
        if ip1:
            command.append(f"ip1={ip1}")
        if script:
            command.append(f"cmd={encode_command(script)}")
        command = without_address_randomisation(command + (extra or []))   # as the worker runs it
        if netns:
            command = ["ip", "netns", "exec", netns, *command]
        self.cow = workdir / f"{name}.cow"
        self._command = command
        self.restarted = False
        self._start()

    def _start(self) -> None:
        env = dict(os.environ, TMPDIR="/dev/shm")
        with open(self.console, "wb") as output:
            self.process = subprocess.Popen(self._command, stdin=subprocess.DEVNULL, stdout=output,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            env=env)

    def _restart_after_a_root_mount_panic(self) -> bool:
        """Seen in about 1 of 450 boots of five guests at once over a freshly built base, never in
        one-at-a-time boots: a kernel thread cannot be created early in boot (a WARNING in
        crypto_wait_for_test, "zswap: ... lzo not available"), then opening the root device
        fails with -12 (ENOMEM) and the kernel panics. The disk is untouched (its COW layer
        stays empty). Boot it once more, saying so; a second failure stands."""
        if self.restarted or "Unable to mount root fs" not in self.output():
            return False
        # a warning, so that pytest's summary shows it even when the second boot passes
        warnings.warn(f"{self.name}: root mount panic on first boot; booting once more\n"
                      f"{self.report()}", stacklevel=2)
        self.restarted = True
        self.cow.unlink(missing_ok=True)
        self._start()
        return True

    def output(self) -> str:
        return self.console.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if self.process.poll() is not None:
                if text in self.output() or not self._restart_after_a_root_mount_panic():
                    return text in self.output()
            time.sleep(0.1)
        return False

    def wait(self, timeout: float = 90.0) -> str:
        """Wait for the guest to power off; returns its console output."""
        try:
            self.process.wait(timeout)
            if self._restart_after_a_root_mount_panic():
                self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        return self.output()

    def report(self) -> str:
        """For an assertion message: the console lines about disks, mounts and panics (the
        usual reasons a guest never ran its script), then the end of the console."""
        lines = self.output().splitlines()
        telling = [line for line in lines if re.search(r"ubd|COW|[Bb]acking|lock|VFS|EXT4|[Pp]anic|WARNING|zswap|Adding", line)]
        return "\n".join([*telling[:30], "...", *lines[-25:]])

    def result_code(self) -> int | None:
        match = re.search(r"UMLGUI-RC=(\d+)", self.output())
        return int(match.group(1)) if match else None

    def kill(self) -> None:
        # the kernel, its group and UML's helpers, even the setsid'd ones
        kill_tree(self.process.pid, self.marker)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
