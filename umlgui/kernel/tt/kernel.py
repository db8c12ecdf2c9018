"""The tt kernel process: what the worker starts instead of linux.uml.

It keeps the kernel process contract (docs/architecture.md): the instance directory with
`pid` and the `mconsole` socket, a SOCKET notification on every boot, the guest init as pid 1
with /dev/console on con0, exit 0 on halt, re-exec in the same pid on reboot, exit 1 on
SIGTERM/SIGINT, 134 with a PANIC notification when init dies.

The main loop blocks in waitpid(-1); mconsole requests (SIGIO on the socket), SIGTERM and
a 4 Hz housekeeping tick (OOM policy) interrupt that wait.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import sys
import tempfile
import threading

from umlgui.errors import UmlguiError
from umlgui.host.mconsole import MconsoleServer, NotifyType, send_notification, \
    send_socket_notification

from . import cmdline
from .guest import Guest, GuestConfig
from .mconsole_handler import KernelMconsole
from .os_linux import ptrace, spawn
from .syscalls.table import build_filter
from .tracer import Tracer

EXIT_HALT = 0
EXIT_SIGNAL = 1
EXIT_PANIC = 134
TICK_SECONDS = 0.25
INIT_CANDIDATES = ("/sbin/init", "/etc/init", "/bin/init", "/bin/sh")
_WAIT_READY = os.WEXITED | os.WSTOPPED | os.WNOWAIT | ptrace.WALL


class _Wakeup(Exception):
    """Raised by signal handlers to leave the blocking waitpid."""


class Kernel:
    """One boot of the tt kernel."""

    def __init__(self, config: cmdline.BootConfig, argv: list[str]):
        self.config = config
        self.argv = argv
        self.log_lines: list[str] = []
        self.console_fd: int | None = None
        self.waiting = False
        self.pending: set[str] = set()
        self.exit_code: int | None = None
        self.server: MconsoleServer | None = None
        self.scratch = ""
        self.guest: Guest | None = None
        self.tracer: Tracer | None = None
        self.monitor = None
        self.terminate = threading.Event()

    # -- boot ------------------------------------------------------------------------------

    def boot(self) -> None:
        config = self.config
        _pin_to_one_cpu(config)
        self._make_instance_dir()
        self.scratch = tempfile.mkdtemp(prefix=f"umlgui-tt-{config.umid}-")
        proc_mount = os.path.join(self.scratch, "proc")
        devpts_mount = os.path.join(self.scratch, "devpts")
        os.mkdir(proc_mount)
        os.mkdir(devpts_mount)
        consoles, self.console_fd = self._console_paths()
        self.tracer = Tracer(None)
        self.guest = Guest(GuestConfig(
            base=config.ttroot, cow=config.ttcow, instance_dir=self.scratch,
            proc_mount=proc_mount, devpts_mount=devpts_mount, hostname=config.hostname,
            memory_bytes=config.memory_bytes, hostfs_root=config.hostfs, consoles=consoles,
            cmdline_words=config.words), self.tracer.host_pid_of_guest, self.memory_used)
        self.guest.kernel_log_text = lambda: "".join(f"<4>{line}\n" for line in self.log_lines)
        self.tracer.guest = self.guest
        if config.monitor_path:
            from .monitor import SyscallMonitor
            self.monitor = SyscallMonitor(config.monitor_path, self.tracer)
            self.tracer.monitor = self.monitor
        self._start_mconsole()
        self.log(f"Linux version {self.guest.release} (umlgui tt engine) "
                 f"{self.guest.kernel_version}")
        self.log("Kernel command line: " + " ".join(config.words))
        init_path = self._find_init()
        self.log(f"Run {init_path} as init process")
        launch = spawn.GuestLaunch(
            init_path=init_path, argv=[init_path] + config.init_args,
            env={"HOME": "/", "TERM": "linux", **config.init_env},
            host_cwd=self.guest.layers.upper, console_fd=self.console_fd,
            proc_mount=proc_mount, devpts_mount=devpts_mount,
            filter_program=build_filter(trace_everything=self.monitor is not None))
        pid = spawn.start_guest(launch)
        self.tracer.add_init(pid)

    def _make_instance_dir(self) -> None:
        instance = self.config.instance_dir
        os.makedirs(self.config.uml_dir, exist_ok=True)
        if os.path.isdir(instance):
            if _instance_alive(instance):
                old = self.config.umid
                self.config.umid = "tt" + os.urandom(3).hex()
                sys.stderr.write(f'umid "{old}" is already in use; using "{self.config.umid}"\n')
                instance = self.config.instance_dir
            else:
                shutil.rmtree(instance, ignore_errors=True)
        os.makedirs(instance, exist_ok=True)
        descriptor = os.open(os.path.join(instance, "pid"), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o644)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        os.close(descriptor)

    def _console_paths(self) -> tuple[dict[str, str], int | None]:
        """Guest tty names -> host paths, and the fd that becomes init's console."""
        consoles: dict[str, str] = {}
        console_fd = None
        for name, channel in sorted(self.config.channels.items()):
            kind, number = name[:3], int(name[3:])
            guest_name = f"tty{number}" if kind == "con" else f"ttyS{number}"
            fd = _channel_fd(channel)
            if fd is None:
                if channel.startswith("null"):
                    consoles[guest_name] = "/dev/null"
                continue
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            host = target if target.startswith("/dev/") else f"/proc/{os.getpid()}/fd/{fd}"
            consoles[guest_name] = host
            if kind == "con" and (console_fd is None or number == 0):
                console_fd = fd
                consoles["console"] = host
        return consoles, console_fd

    def _start_mconsole(self) -> None:
        path = os.path.join(self.config.instance_dir, "mconsole")
        try:
            self.server = MconsoleServer(path, KernelMconsole(self))
        except UmlguiError as error:
            self.log(f"mconsole unavailable: {error.problem}")
            return
        descriptor = self.server.fileno()
        fcntl.fcntl(descriptor, fcntl.F_SETOWN, os.getpid())
        fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) | os.O_ASYNC)
        if self.config.notify_path:
            send_socket_notification(self.config.notify_path, path)

    def _find_init(self) -> str:
        candidates = [self.config.init] if self.config.init else list(INIT_CANDIDATES)
        for candidate in candidates:
            try:
                node = self.guest.resolver.resolve_absolute(0, candidate, follow=True)
            except OSError:
                continue
            if node.st is not None:
                return candidate
        raise UmlguiError(f"no init found in the guest root ({', '.join(candidates)})",
                          "check the template's root tree or the init= word")

    # -- logging ---------------------------------------------------------------------------

    def log(self, text: str) -> None:
        """A kernel message: the console (like printk) and the dmesg buffer."""
        self.log_lines.append(text)
        del self.log_lines[:-500]
        if self.console_fd is not None:
            try:
                os.write(self.console_fd, (text + "\n").encode(errors="replace"))
            except OSError:
                pass

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        tracer = self.tracer
        while self.exit_code is None:
            self._service()
            if self.exit_code is not None:
                break
            try:
                self.waiting = True
                if self.pending:
                    continue
                # WNOWAIT: only wait; run_once consumes the events. A signal handler that
                # interrupts here can therefore never lose an event.
                os.waitid(os.P_ALL, 0, _WAIT_READY)
            except _Wakeup:
                continue
            except ChildProcessError:
                self.pending.add("init-gone")
                continue
            finally:
                self.waiting = False
            tracer.run_once()
        return self.exit_code

    def _install_signals(self) -> None:
        def flag(name):
            def handler(signal_number, frame):
                self.pending.add(name)
                if name == "term":
                    self.terminate.set()
                if self.waiting:
                    self.waiting = False
                    raise _Wakeup()
            return handler

        signal.signal(signal.SIGTERM, flag("term"))
        signal.signal(signal.SIGINT, flag("term"))
        signal.signal(signal.SIGIO, flag("mconsole"))
        signal.signal(signal.SIGALRM, flag("tick"))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        signal.setitimer(signal.ITIMER_REAL, TICK_SECONDS, TICK_SECONDS)

    def _service(self) -> None:
        pending = self.pending
        if "mconsole" in pending or "tick" in pending:
            pending.discard("mconsole")
            self._serve_mconsole()
        if "tick" in pending:
            pending.discard("tick")
            self.enforce_memory_limit()
            if self.monitor is not None:
                self.monitor.flush()
        if "term" in pending:
            self.shutdown(EXIT_SIGNAL)
            return
        guest = self.guest
        if guest.power_request is not None:
            request, guest.power_request = guest.power_request, None
            if request == "reboot" and not self.config.noreboot:
                self.reboot()
            else:
                self.shutdown(EXIT_HALT)
            return
        if self.tracer.init_status is not None or "init-gone" in pending:
            self.panic(self._init_exit_text())

    def _serve_mconsole(self) -> None:
        server = self.server
        if server is None:
            return
        while True:
            served = server.handle_ready()
            if served is None:
                return
            if served == "stop":
                self.tracer.freeze()
                ended = server.serve_while_stopped(self.terminate)
                if ended is None:
                    return                              # SIGTERM while stopped
                if ended == "go":
                    continue
                served = ended
            if served in ("halt", "reboot") or self.guest.power_request:
                return

    def _init_exit_text(self) -> str:
        status = self.tracer.init_status
        if status is None:
            return "Attempted to kill init!"
        if os.WIFSIGNALED(status):
            return f"Attempted to kill init! exitcode=0x{os.WTERMSIG(status):08x}"
        return f"Attempted to kill init! exitcode=0x{os.WEXITSTATUS(status) << 8:08x}"

    # -- memory ----------------------------------------------------------------------------

    def memory_used(self) -> int:
        return sum(rss for _, rss in self._process_sizes())

    def _process_sizes(self) -> list[tuple[int, int]]:
        page = os.sysconf("SC_PAGE_SIZE")
        sizes = []
        for pid in list(self.tracer.tracees):
            try:
                with open(f"/proc/{pid}/statm", "rb") as handle:
                    fields = handle.read().split()
                with open(f"/proc/{pid}/status", "rb") as handle:
                    head = handle.read(400)
            except OSError:
                continue
            if f"\nTgid:\t{pid}\n".encode() not in head:
                continue                                  # a thread: counted with its leader
            resident, shared = int(fields[1]), int(fields[2])
            sizes.append((pid, (resident - shared) * page))
        return sizes

    def enforce_memory_limit(self) -> None:
        """The OOM policy: past mem=, kill the guest process using the most memory."""
        sizes = self._process_sizes()
        used = sum(size for _, size in sizes)
        if used <= self.config.memory_bytes or not sizes:
            return
        victims = [item for item in sizes if item[0] != self.tracer.init_pid] or sizes
        pid, size = max(victims, key=lambda item: item[1])
        name = _command_name(pid)
        guest_pid = self.tracer.guest_pid_of(self.tracer.tracees[pid]) \
            if pid in self.tracer.tracees else pid
        self.log(f"Out of memory: Killed process {guest_pid} ({name}) "
                 f"total-vm:{size // 1024}kB, machine limit {self.config.memory_bytes // 1024}kB")
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

    # -- the end of a boot -----------------------------------------------------------------

    def _stop_guest(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        self.tracer.kill_all()
        self.tracer.reap_all()
        if self.monitor is not None:
            self.monitor.close()
        self.guest.close()
        if self.server is not None:
            self.server.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _remove_instance_dir(self) -> None:
        shutil.rmtree(self.config.instance_dir, ignore_errors=True)

    def shutdown(self, code: int) -> None:
        if code == EXIT_HALT:
            self.log("reboot: System halted")
        self._stop_guest()
        self._remove_instance_dir()
        self.exit_code = code

    def reboot(self) -> None:
        self.log("reboot: Restarting system")
        self._stop_guest()
        self._remove_instance_dir()
        os.execv(sys.executable, [sys.executable, "-m", "umlgui.kernel.tt", *self.argv])

    def panic(self, message: str) -> None:
        self.log(f"Kernel panic - not syncing: {message}")
        if self.config.notify_path:
            send_notification(self.config.notify_path, NotifyType.PANIC,
                              message.encode() + b"\0")
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        self.tracer.kill_all()
        self.tracer.reap_all(timeout=2.0)
        if self.monitor is not None:
            self.monitor.close()
        self.guest.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.exit_code = EXIT_PANIC          # like UML, the instance dir stays behind


def _pin_to_one_cpu(config: cmdline.BootConfig) -> None:
    """Run the tracer and its guest on one CPU, like a uniprocessor UML.

    Every handled syscall is a round trip between a guest thread and the tracer; on one
    CPU that is a plain context switch, across CPUs it is a cross-CPU wake-up, which on a
    VM costs about twice as much (ENGINE-RESEARCH.md §0). Which CPU depends on the umid, so
    machines spread over the host's CPUs. `ttcpu=all` keeps the host's choice.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if config.cpu == "all" or len(allowed) < 2:
        return
    if config.cpu.isdigit() and int(config.cpu) in allowed:
        cpu = int(config.cpu)
    else:
        cpu = allowed[sum(config.umid.encode()) % len(allowed)]
    os.sched_setaffinity(0, {cpu})


def _channel_fd(channel: str) -> int | None:
    if channel.startswith("fd:"):
        first = channel.split(",", 1)[0]
        try:
            return int(first[3:])
        except ValueError:
            return None
    return None


def _instance_alive(instance: str) -> bool:
    try:
        with open(os.path.join(instance, "pid")) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return False            # our own previous boot (reboot re-exec)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return "?"


def main(argv: list[str]) -> int:
    """Entry point of `python -m umlgui.kernel.tt WORDS...`."""
    try:
        config = cmdline.parse(argv)
        kernel = Kernel(config, argv)
        kernel.boot()
    except UmlguiError as error:
        sys.stderr.write(f"tt: {error}\n")
        return EXIT_SIGNAL
    except OSError as error:
        sys.stderr.write(f"tt: cannot boot: {error}\n")
        if error.errno in (errno.EPERM, errno.EACCES):
            sys.stderr.write("  fix: the tt engine needs ptrace, seccomp and either root or "
                             "unprivileged user namespaces\n")
        return EXIT_SIGNAL
    return kernel.run()
