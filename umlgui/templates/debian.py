"""The Debian 12 (bookworm) template: debootstrap minbase plus what a student expects.

The tree is made by debootstrap (needs root) from a configurable mirror, by default the one
the host's apt uses, then configured for UML without running anything inside it
(configure_tree): fstab on /dev/ubda, gettys on every console line the machine has, the
procps /proc/cpuinfo workaround, units masked that cannot work under UML, an empty root
password, apt sources, and an init wrapper that gives each machine its own hostname and
machine-id. DEBIAN-IN-UML.md explains each fix. The linux engine boots systemd; the tt
engine boots busybox init from the same tree (docs/templates.md says why).

Downloaded packages stay in the user's cache dir, so a cancelled or failed build resumes
without downloading them again.
"""

from __future__ import annotations

import hashlib
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs
import tomli_w

from umlgui import paths
from umlgui.errors import ConfigError, NotFoundError, UmlguiError
from umlgui.jobs import Cancelled, Progress
from umlgui.templates import base
from umlgui.templates.base import (BASE_IMAGE, ROOT_DIR, Template, TemplateBuildError, guest_files,
                                   install_guest_files)

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
MIRROR_VARIABLE = "UMLGUI_DEBIAN_MIRROR"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
PACKAGES = (
    "systemd-sysv",                         # minbase has no init at all
    "ifupdown", "isc-dhcp-client", "iproute2", "iputils-ping", "netbase",
    "procps", "less", "nano",
    "busybox-static",                       # init, getty and login for the tt engine
)
IMAGE_SIZE = 1 << 30                        # sparse: about 260 MB are allocated
IMAGE_LABEL = "rootfs"
NEEDED_FREE_SPACE = 1 << 30                 # tree, image and download side by side
INIT = "/usr/local/sbin/umlgui-init"
SCRIPTS = "usr/local/lib/umlgui"
UNITS = "etc/systemd/system"
RECIPE_FILE = "recipe.toml"
SEED_IMAGE = "seed.img"
SEED_LABEL = "umlgui-seed"                  # apply-seed looks for this label
SEED_SIZE = 1 << 20

# (file in debian_files/, path in the tree, mode)
FILES = (
    ("umlgui-init", INIT.lstrip("/"), 0o755),
    ("set-identity", f"{SCRIPTS}/set-identity", 0o755),
    ("getty", f"{SCRIPTS}/getty", 0o755),
    ("fix-cpuinfo", f"{SCRIPTS}/fix-cpuinfo", 0o755),
    ("network-up", f"{SCRIPTS}/network-up", 0o755),
    ("apply-seed", f"{SCRIPTS}/apply-seed", 0o755),
    ("ctrlaltdel", f"{SCRIPTS}/ctrlaltdel", 0o755),
    ("tt-rcS", f"{SCRIPTS}/tt-rcS", 0o755),
    ("tt-rcK", f"{SCRIPTS}/tt-rcK", 0o755),
    ("tt-console-login", f"{SCRIPTS}/tt-console-login", 0o755),
    ("tt-login", f"{SCRIPTS}/tt-login", 0o755),
    ("tt-autologin", f"{SCRIPTS}/tt-autologin", 0o755),
    ("getty-override.conf", f"{UNITS}/getty@.service.d/umlgui.conf", 0o644),
    ("umlgui-cpuinfo.service", f"{UNITS}/umlgui-cpuinfo.service", 0o644),
    ("umlgui-network.service", f"{UNITS}/umlgui-network.service", 0o644),
    ("umlgui-seed.service", f"{UNITS}/umlgui-seed.service", 0o644),
    ("umlgui-hostlab.service", f"{UNITS}/umlgui-hostlab.service", 0o644),
    ("umlgui-ctrlaltdel.service", f"{UNITS}/umlgui-ctrlaltdel.service", 0o644),
    ("ctrl-alt-del.target", f"{UNITS}/ctrl-alt-del.target", 0o644),
    ("inittab", "etc/inittab", 0o644),
    ("interfaces", "etc/network/interfaces", 0o644),
    ("tt-profile.sh", "etc/profile.d/umlgui-tt.sh", 0o644),
    ("motd", "etc/motd", 0o644),
    ("hosts", "etc/hosts", 0o644),
)
TEXT_FILES = {
    "etc/fstab": "/dev/ubda / ext4 defaults 0 1\n",
    "etc/hostname": "debian\n",
    # each machine writes its own on first boot (set-identity)
    "etc/machine-id": "",
    "etc/resolv.conf": "",                  # debootstrap copied the host's; DHCP fills it
    "etc/default/locale": "LANG=C.UTF-8\n",  # minbase has no locales; silences pam_env
}
# unit -> (target that wants it, the unit file it links to)
ENABLED = {
    "getty@tty0.service": ("getty.target", "/lib/systemd/system/getty@.service"),
    "getty@tty1.service": ("getty.target", "/lib/systemd/system/getty@.service"),
    "getty@ttyS0.service": ("getty.target", "/lib/systemd/system/getty@.service"),
    "umlgui-cpuinfo.service": ("sysinit.target", f"/{UNITS}/umlgui-cpuinfo.service"),
    "umlgui-network.service": ("multi-user.target", f"/{UNITS}/umlgui-network.service"),
    "umlgui-seed.service": ("multi-user.target", f"/{UNITS}/umlgui-seed.service"),
    "umlgui-hostlab.service": ("multi-user.target", f"/{UNITS}/umlgui-hostlab.service"),
}
MASKED = (
    "getty-static.service",                 # gettys on tty2-6 when dbus is missing
    "proc-sys-fs-binfmt_misc.automount",    # autofs4 is a module the guest does not have
    "systemd-firstboot.service",            # would prompt on the console
    "apt-daily.timer",                      # lab machines update when the student asks,
    "apt-daily-upgrade.timer",              # not all at once in the background
)
# debootstrap's stage names (its --debian-installer progress) -> our stages
STAGES = {
    "DOWNREL": "downloading package lists", "DOWNRELSIG": "downloading package lists",
    "DOWNPKGS": "downloading package lists", "DOWNMAINPKGS": "downloading package lists",
    "SIZEDEBS": "downloading package lists", "DOWNDEBS": "downloading packages",
    "EXTRACTPKGS": "unpacking packages", "INSTCORE": "unpacking packages",
    "UNPACKREQ": "unpacking packages", "UNPACKBASE": "unpacking packages",
    "CONFREQ": "configuring packages", "CONFBASE": "configuring packages",
}
STOP_GRACE = 15.0


# ------------------------------------------------------------------------------ mirror

def host_mirror(sources=APT_SOURCES, suite: str = SUITE) -> str | None:
    """The first mirror the host's apt uses for `suite` (deb822 .sources or one-line lists)."""
    for entry_uri, suites in _apt_entries(sources):
        if suite in suites:
            return entry_uri.rstrip("/")
    return None


def _apt_entries(sources):
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            files += sorted(source.glob("*.list")) + sorted(source.glob("*.sources"))
        elif source.is_file():
            files.append(source)
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        parse = _deb822_entries if path.suffix == ".sources" else _one_line_entries
        yield from parse(text)


def _one_line_entries(text: str):
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            yield words[1], {words[2]}


def _deb822_entries(text: str):
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ", "\t")):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            for entry_uri in fields.get("uris", "").split():
                yield entry_uri, set(fields.get("suites", "").split())


def choose_mirror(explicit: str | None = None) -> str:
    """The given mirror, else $UMLGUI_DEBIAN_MIRROR, else the host's, else deb.debian.org."""
    return (explicit or os.environ.get(MIRROR_VARIABLE) or host_mirror()
            or DEFAULT_MIRROR).rstrip("/")


def security_mirror() -> str:
    return host_mirror(suite=f"{SUITE}-security") or DEFAULT_SECURITY_MIRROR


# ------------------------------------------------------------------------------ recipe

def download_cache_dir() -> Path:
    """Where downloaded .debs stay between builds (debootstrap --cache-dir)."""
    return Path(platformdirs.user_cache_dir(paths.APP)) / "debootstrap" / SUITE


def recipe_id() -> str:
    """Changes whenever what a build produces may change: suite, packages, files, code."""
    digest = hashlib.sha256(f"{SUITE} {' '.join(PACKAGES)}".encode())
    digest.update(Path(__file__).read_bytes())
    digest.update(Path(base.__file__).read_bytes())          # installs the files
    for source, content, target, mode in guest_files("debian_files", FILES):
        digest.update(f"{source} {target} {mode:o}".encode())
        digest.update(content)
    return digest.hexdigest()[:16]


def check_can_build(where: Path) -> None:
    if os.geteuid() != 0:
        raise TemplateBuildError(
            "building the Debian template needs root: debootstrap unpacks packages as root "
            "and runs their scripts in a chroot",
            f"run it as root for your umlgui home: sudo env UMLGUI_HOME={paths.data_home()} "
            "umlgui template build debian (machines made from it then run as you)")
    if not shutil.which("debootstrap", path=_sbin_path()):
        raise NotFoundError("debootstrap is not installed", "install it: sudo apt-get install debootstrap")
    free = shutil.disk_usage(where).free
    if free < NEEDED_FREE_SPACE:
        raise TemplateBuildError(f"only {free >> 20} MB free in {where}; the Debian template "
                                 f"needs about {NEEDED_FREE_SPACE >> 20} MB while it is built",
                                 "free some disk space and build it again")


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


# ------------------------------------------------------------------------- debootstrap

@dataclass
class _Message:
    """One message of debootstrap's --debian-installer protocol (fd 3)."""

    kind: str                   # P (progress), I (info), W (warning), E (error)
    words: list[str]
    args: list[str] = field(default_factory=list)
    text: str = ""


class _ProtocolReader:
    """Assembles `P:`/`PA:`/`PF:` (and I, W, E) lines into messages."""

    def __init__(self):
        self.pending: _Message | None = None
        self.buffer = b""

    def feed(self, data: bytes) -> list[_Message]:
        self.buffer += data
        done = []
        while b"\n" in self.buffer:
            raw, _, self.buffer = self.buffer.partition(b"\n")
            message = self._line(raw.decode(errors="replace"))
            if message:
                done.append(message)
        return done

    def _line(self, line: str) -> _Message | None:
        tag, _, rest = line.partition(": ")
        if tag in ("P", "I", "W", "E"):
            self.pending = _Message(tag, rest.split())
        elif self.pending and tag == self.pending.kind + "A":
            self.pending.args.append(rest)
        elif self.pending and tag == self.pending.kind + "F":
            message, self.pending = self.pending, None
            message.text = _printf(rest, message.args)
            return message
        return None


def _printf(fmt: str, args: list[str]) -> str:
    values = iter(args)
    return re.sub(r"%[sd]", lambda _: next(values, ""), fmt).replace("\\n", " ").strip()


class Debootstrap:
    """One debootstrap run into `target`, reporting its stages to `progress`."""

    def __init__(self, target: Path, mirror: str, cache: Path, log: Path,
                 suite: str = SUITE, packages: tuple[str, ...] = PACKAGES):
        self.target, self.mirror, self.cache, self.log = target, mirror, cache, log
        self.suite, self.packages = suite, packages
        self.stage = "downloading package lists"
        self.error: str | None = None

    def command(self) -> list[str]:
        return [shutil.which("debootstrap", path=_sbin_path()) or "debootstrap",
                "--debian-installer", "--variant=minbase", f"--include={','.join(self.packages)}",
                f"--cache-dir={self.cache}", self.suite, str(self.target), self.mirror]

    def run(self, progress: Progress) -> None:
        (self.cache / "partial").mkdir(parents=True, exist_ok=True)   # no half .debs by name
        read_end, write_end = os.pipe()
        try:
            with open(self.log, "wb") as log:
                # --debian-installer speaks its progress protocol on fd 3 (bash, because
                # dash only redirects single-digit descriptors)
                process = subprocess.Popen(
                    ["bash", "-c", f'exec "$@" 3>&{write_end} {write_end}>&-', "bash", *self.command()],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=(write_end,), start_new_session=True)
            os.close(write_end)
            write_end = -1
            try:
                self._follow(process, read_end, progress)
            except BaseException:
                _stop(process)
                raise
            finally:
                _unmount_below(self.target)
        finally:
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
        if process.returncode != 0:
            raise self._failure(process.returncode)

    def _follow(self, process: subprocess.Popen, fd: int, progress: Progress) -> None:
        reader = _ProtocolReader()
        while True:
            ready, _, _ = select.select([fd], [], [], 0.5)
            progress.check()
            if not ready:
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            for message in reader.feed(data):
                self._handle(message, progress)
        process.wait()

    def _handle(self, message: _Message, progress: Progress) -> None:
        if message.kind == "E":
            self.error = message.text
        elif message.kind == "P" and len(message.words) >= 3:
            now, end, name = message.words[:3]
            self.stage = STAGES.get(name, self.stage)
            fraction = min(1.0, int(now) / int(end)) if now.isdigit() and end.isdigit() and int(end) else None
            progress.step(self.stage, fraction)

    def _failure(self, status: int) -> UmlguiError:
        detail = self.error or f"exit status {status}"
        if self.stage.startswith("downloading"):
            reason = probe_mirror(self.mirror, self.suite)
            return TemplateBuildError(
                f"downloading {self.suite} packages from {self.mirror} failed: {detail}"
                + (f" ({reason})" if reason else ""),
                f"check the network and the mirror; choose another with {MIRROR_VARIABLE}=URL "
                f"(log: {self.log})")
        return TemplateBuildError(f"debootstrap failed while {self.stage}: {detail}",
                                  f"see its log: {self.log}")


def probe_mirror(mirror: str, suite: str = SUITE, timeout: float = 10.0) -> str | None:
    """Why the mirror's Release file cannot be fetched, or None if it can. debootstrap's
    --debian-installer mode swallows wget's own message, so ask once more to name the error."""
    url = f"{mirror}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return None             # headers only: the body is not read
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return getattr(exc.reason, "strerror", None) or str(exc.reason)
    except (OSError, ValueError) as exc:
        return getattr(exc, "strerror", None) or str(exc)


def _stop(process: subprocess.Popen) -> None:
    """TERM first, so debootstrap's exit trap unmounts what it mounted in the tree."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    prefix = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _unmount_below(path: Path) -> None:
    """A killed debootstrap can leave proc, sys or /dev binds in the tree: removing the tree
    must never reach into them."""
    for point in mounts_below(path):
        subprocess.run(["umount", "-l", point], capture_output=True)
    left = mounts_below(path)
    if left:
        raise TemplateBuildError(f"could not unmount {', '.join(left)} from the half-built tree",
                                 f"unmount them by hand (umount -l), then remove {path}")


# ------------------------------------------------------------------------- configuring

def configure_tree(root: Path, mirror: str, security: str = DEFAULT_SECURITY_MIRROR) -> None:
    """Make a debootstrapped tree boot under UML. Runs nothing inside the tree."""
    root = Path(root)
    install_guest_files(root, "debian_files", FILES, TEXT_FILES)
    (root / "etc/machine-id").chmod(0o444)
    (root / "etc/apt/sources.list").write_text(apt_sources(mirror, security))
    _set_units(root)
    _empty_root_password(root)
    _forget_host_state(root)


def apt_sources(mirror: str, security: str) -> str:
    return (f"deb {mirror} {SUITE} main\n"
            f"deb {mirror} {SUITE}-updates main\n"
            f"deb {security} {SUITE}-security main\n")


def _set_units(root: Path) -> None:
    """`systemctl enable/mask`, done as the symlinks systemctl would make."""
    units = root / UNITS
    for unit, (target, unit_file) in ENABLED.items():
        _symlink(units / f"{target}.wants" / unit, unit_file)
    for unit in MASKED:
        _symlink(units / unit, "/dev/null")
        for wanted in units.glob(f"*.wants/{unit}"):
            wanted.unlink()


def _symlink(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def _empty_root_password(root: Path) -> None:
    """Root logs in without a password (pam_unix nullok); set_root_password sets one."""
    shadow = root / "etc/shadow"
    lines = shadow.read_text().splitlines()
    fixed = [re.sub(r"^root:[^:]*:", "root::", line) for line in lines]
    shadow.write_text("\n".join(fixed) + "\n")


def _forget_host_state(root: Path) -> None:
    """Downloaded .debs, apt lists and ids are the build's, not a machine's."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*",
                    "var/lib/dbus/machine-id", "var/lib/systemd/random-seed"):
        for path in root.glob(pattern):
            if path.is_file() or path.is_symlink():
                path.unlink()


def _prune_download_cache(cache: Path, tree: Path) -> None:
    """Keep only the .debs this build used (debootstrap copied them into the tree), so the
    cache stays one release's download instead of growing with every point release."""
    used = {deb.name for deb in (tree / "var/cache/apt/archives").glob("*.deb")}
    if not used:
        return
    for cached in cache.glob("*.deb"):
        if cached.name not in used:
            cached.unlink()


# ---------------------------------------------------------------------------- template

class DebianTemplate(Template):
    name = "debian"
    description = "Debian 12 (bookworm): systemd, apt, ifupdown with DHCP; about 10 s to a login"
    download_mb = 50
    memory = "256M"
    kernel_args = ["rw", f"init={INIT}"]
    features = ("cad-halt",)

    def __init__(self, mirror: str | None = None):
        self.mirror = mirror

    def build_into(self, staging: Path, progress: Progress) -> None:
        from umlgui.host import images

        check_can_build(staging)
        mirror = choose_mirror(self.mirror)
        tree = staging / ROOT_DIR
        started = time.monotonic()
        self._bootstrap(tree, mirror, progress)
        bootstrapped = time.monotonic()
        progress.step("configuring for UML", None)
        configure_tree(tree, mirror, security_mirror())
        progress.step("making ext4 image", None)
        images.create_image(staging / BASE_IMAGE, IMAGE_SIZE, fs="ext4", label=IMAGE_LABEL,
                            root_dir=tree)
        recipe = {"suite": SUITE, "mirror": mirror, "packages": list(PACKAGES), "recipe": recipe_id(),
                  "debootstrap_seconds": round(bootstrapped - started, 1),
                  "total_seconds": round(time.monotonic() - started, 1)}
        (staging / RECIPE_FILE).write_text(tomli_w.dumps(recipe))

    def _bootstrap(self, tree: Path, mirror: str, progress: Progress) -> None:
        cache = download_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        progress.step("downloading package lists", None)
        try:
            Debootstrap(tree, mirror, cache, cache / "debootstrap.log").run(progress)
        except KeyboardInterrupt:
            raise Cancelled() from None     # base.build then removes the staging dir
        _prune_download_cache(cache, tree)


# ------------------------------------------------------------------- root password

def set_root_password(name: str, password: str) -> Path:
    """Have machine `name` (Debian, linux engine) set root's password on its next boot.

    The password's hash goes on a 1 MiB ext4 "seed" disk in the machine's own directory,
    attached as the next free ubd unit. The guest's umlgui-seed.service applies it with
    `chpasswd -e` and then zeroes the disk, so the hash does not stay on the host either.
    Neither the shared base nor the kernel command line (readable in /proc/cmdline) sees it.
    """
    from umlgui.model import library
    from umlgui.model.machine import Disk

    machine = library.load(name)
    if machine.engine != "linux" or machine.template != DebianTemplate.name:
        raise ConfigError(f"{name} is not a Debian machine on the linux engine",
                          "set the password inside the machine instead: log in and run passwd")
    if not password:
        raise ConfigError("an empty root password is the default already",
                          "give a password, or leave it empty and log in as root without one")
    seed = paths.ensure_dir(paths.disks_dir(name)) / SEED_IMAGE
    for unit, disk in list(machine.disks.items()):
        if disk.file == str(seed):
            del machine.disks[unit]
    seed.unlink(missing_ok=True)
    _write_seed(seed, hash_password(password))
    machine.disks[machine.next_free_ubd()] = Disk(file=str(seed), data_only=True)
    library.save(machine)
    return seed


def hash_password(password: str) -> str:
    """A SHA-512 crypt(3) hash, which Debian's chpasswd -e and login accept."""
    from umlgui.host.images import find_tool

    result = subprocess.run([find_tool("openssl", "openssl"), "passwd", "-6", "-stdin"],
                            input=password + "\n", capture_output=True, text=True)
    if result.returncode != 0 or not result.stdout.startswith("$6$"):
        raise UmlguiError(f"openssl could not hash the password: {result.stderr.strip()}",
                          "check the host's openssl (apt-get install openssl)")
    return result.stdout.strip()


def _write_seed(seed: Path, password_hash: str) -> None:
    from umlgui.host import images

    with tempfile.TemporaryDirectory(prefix="umlgui-seed-") as tmp:
        hash_file = Path(tmp) / "root-password-hash"
        hash_file.touch(mode=0o600)
        hash_file.write_text(password_hash + "\n")
        old_umask = os.umask(0o077)
        try:
            images.create_image(seed, SEED_SIZE, fs="ext4", label=SEED_LABEL, root_dir=tmp)
        finally:
            os.umask(old_umask)
    seed.chmod(0o600)
