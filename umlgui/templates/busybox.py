"""The busybox template: a small machine built in seconds from the host's busybox-static.

No network is needed. The tree has relative applet links (an absolute link would make a
host-side write through it overwrite the host's own busybox: UML-OPERATIONS.md), an
inittab with a login on con0 (tty0) and the first serial line, and boot scripts that
take the hostname and eth addresses from the kernel command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from umlgui.errors import NotFoundError
from umlgui.jobs import Progress
from umlgui.templates.base import BASE_IMAGE, ROOT_DIR, Template, install_guest_files

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
IMAGE_SIZE = 64 << 20
DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "proc", "sys", "dev", "tmp",
        "root", "run", "mnt", "var/log", "home")
# (file in busybox_files/, path in the tree, mode)
FILES = (
    ("inittab", "etc/inittab", 0o644),
    ("rcS", "etc/init.d/rcS", 0o755),
    ("rcK", "etc/init.d/rcK", 0o755),
    ("ctrlaltdel", "etc/init.d/ctrlaltdel", 0o755),
    ("network", "etc/init.d/network", 0o755),
    ("console-login", "etc/init.d/console-login", 0o755),
    ("autologin", "etc/init.d/autologin", 0o755),
    ("udhcpc.script", "etc/udhcpc.script", 0o755),
    ("profile", "etc/profile", 0o644),
    ("motd", "etc/motd", 0o644),
)
TEXT_FILES = {
    "etc/passwd": "root::0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "etc/shadow": "root::19000:0:99999:7:::\n",
    "etc/hostname": "umlgui\n",
    "etc/hosts": "127.0.0.1 localhost\n",
    "etc/fstab": "/dev/ubda / ext4 defaults 0 1\nproc /proc proc defaults 0 0\n",
    "etc/shells": "/bin/sh\n/bin/ash\n",
    "etc/securetty": "console\ntty0\ntty1\nttyS0\n",
}


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file() and _is_static(path):
            return path
    raise NotFoundError(
        "no statically linked busybox found on the host",
        "install it: sudo apt-get install busybox-static",
    )


def _is_static(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096)
    # a dynamically linked ELF names its interpreter (/lib64/ld-linux...) near the start
    return head.startswith(b"\x7fELF") and b"ld-linux" not in head and b"/lib64/ld" not in head


def applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def build_tree(dest: Path, *, autologin: bool = False) -> Path:
    """Write the busybox root tree into `dest` (created if missing) and return it."""
    dest = Path(dest)
    busybox = find_busybox()
    for sub in DIRS:
        (dest / sub).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    (dest / "root").chmod(0o700)
    shutil.copy2(busybox, dest / "bin/busybox")
    for applet in applets(busybox):
        _link_applet(dest, applet)
    install_guest_files(dest, "busybox_files", FILES, TEXT_FILES)
    (dest / "etc/shadow").chmod(0o600)
    if autologin:
        (dest / "etc/autologin").write_text("")
    return dest


def _link_applet(root: Path, applet: str) -> None:
    link = root / applet
    if link.exists() or link.is_symlink() or applet == "bin/busybox":
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    target = os.path.relpath(root / "bin/busybox", link.parent)
    link.symlink_to(target)


def build_image(tree: Path, image: Path, size: int = IMAGE_SIZE) -> Path:
    """An ext4 image holding `tree` (mkfs.ext4 -d), for the linux engine."""
    from umlgui.host import images

    images.create_image(image, size, fs="ext4", label="rootfs", root_dir=tree)
    return image


class BusyboxTemplate(Template):
    name = "busybox"
    description = "BusyBox from the host's busybox-static: boots in about a second, no download"
    download_mb = 0
    memory = "64M"
    kernel_args = ["init=/sbin/init"]
    features = ("cad-halt",)

    def build_into(self, staging: Path, progress: Progress) -> None:
        progress.step("copying busybox", 0.1)
        tree = build_tree(staging / ROOT_DIR)
        progress.step("making ext4 image", 0.5)
        build_image(tree, staging / BASE_IMAGE)
