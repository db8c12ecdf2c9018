"""The machine worker: one detached process per running machine.

It starts the engine's kernel process, owns the host side of every console (a pty
each), logs and buffers their output, serves clients on `worker.sock`, follows the
machine's state from the notify socket, mconsole and the process exit, and leaves
`state.json` behind when it ends. It imports no Qt and stays small (< 20 MB RSS), so a
lab of a hundred machines costs little beyond the machines themselves.

Run as `python -m umlgui.worker NAME` (detaches; the parent exits once clients can connect).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from umlgui import paths
from umlgui.errors import UmlguiError
from umlgui.host.mconsole import (
    SETTLE_TIMEOUT_S, STOP_SAFE_COMMANDS, MconsoleClient, MconsoleError, NotifyListener,
    NotifyType, settle_filesystems,
)
from umlgui.host.process import is_alive, kill_tree
from umlgui.kernel.base import LaunchContext
from umlgui.kernel.engines import get_engine
from umlgui.model import library
from umlgui.model.machine import guest_disk_name
from umlgui.net.internet import prepare_networks
from umlgui.worker import protocol
from umlgui.worker import state as st
from umlgui.worker.console import Console, ConsoleClient

# A login or shell prompt at the end of console output means the machine is usable.
PROMPT_RE = re.compile(rb"(login: ?|[#$] ?)$")
GUEST_HALTED = (b"reboot: System halted", b"reboot: Power down")   # printed once disks are synced
ANSI_RE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
READY_FALLBACK_S = 60.0     # no prompt seen this long after the kernel came up: call it running
HALT_GRACE_S = 10.0
TERM_GRACE_S = 5.0


class Worker:
    def __init__(self, name: str):
        self.machine = library.load(name)
        self.engine = get_engine(self.machine.engine)
        self.run_dir = paths.ensure_dir(paths.run_dir(name))
        self.log_dir = paths.ensure_dir(paths.logs_dir(name))
        self.state_path = self.run_dir / "state.json"
        self.state = st.MachineState(name=name, engine=self.machine.engine,
                                     worker_pid=os.getpid(), state=st.BOOTING)
        self.selector = selectors.DefaultSelector()
        self.consoles: dict[str, Console] = {}
        self.watchers: list[socket.socket] = []
        self.process: subprocess.Popen | None = None
        self.kill_requested = False
        self.deadline_actions: list[tuple[float, callable]] = []
        self.lock = threading.Lock()      # mconsole replies come from threads
        self.tail = b""                   # last bytes of con0, for prompt detection
        self.disks_settled = False        # a host halt found every ext4 disk read-only
        self.socket_seen_at: float | None = None
        self.pending_mconsole: dict[socket.socket, str] = {}
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)

    # --- start-up -----------------------------------------------------------------------

    def prepare(self) -> None:
        """Everything that can fail because of bad input, before detaching completes."""
        self.engine.check(self.machine)
        self._clean_stale_instance()
        for started in prepare_networks(self.machine):
            print(f"{time.ctime()}: started {started} for {self.machine.name}", flush=True)
        self.listener = self._listen(self.run_dir / "worker.sock")
        self.notify = NotifyListener(self.run_dir / "notify.sock")
        for name in self.machine.console_names():
            if self.machine.consoles[name].channel == "pty":
                self.consoles[name] = Console(name, self.log_dir / f"{name}.log")
        self.state.consoles = list(self.consoles)

    def _clean_stale_instance(self) -> None:
        instance = self.run_dir / self.machine.umid
        pid_file = instance / "pid"
        if pid_file.exists():
            try:
                pid = int(pid_file.read_text().strip() or 0)
            except ValueError:
                pid = 0
            if is_alive(pid):
                raise UmlguiError(f"{self.machine.name} is already running as process {pid}",
                                  f"halt it first (umlgui halt {self.machine.name}) or kill that process")
            for leftover in instance.iterdir():
                leftover.unlink()
        for stale in ("worker.sock", "notify.sock"):
            (self.run_dir / stale).unlink(missing_ok=True)

    def _listen(self, path: Path) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        sock.listen(16)
        sock.setblocking(False)
        return sock

    def start_kernel(self) -> None:
        ctx = LaunchContext(uml_dir=self.run_dir, umid=self.machine.umid,
                            notify_socket=self.run_dir / "notify.sock",
                            console_fds={n: c.slave for n, c in self.consoles.items()},
                            cwd=paths.ensure_dir(paths.disks_dir(self.machine.name)))
        argv = self.engine.argv(self.machine, ctx)
        self.kernel_marker = f"uml_dir={ctx.uml_dir}/"
        (self.run_dir / "cmdline").write_text(" ".join(argv) + "\n")
        kernel_log = open(self.log_dir / "kernel.log", "ab")
        kernel_log.write(f"\n--- {time.ctime()}: {' '.join(argv)}\n".encode())
        kernel_log.flush()
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=kernel_log, stderr=kernel_log,
            pass_fds=tuple(ctx.console_fds.values()), cwd=ctx.cwd,
            env=self.engine.env(self.machine, ctx))
        kernel_log.close()
        self.state.kernel_pid = self.process.pid
        self.state.started = time.time()
        self.pidfd = os.pidfd_open(self.process.pid)
        self.save_state()

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        self.selector.register(self.listener, selectors.EVENT_READ, self.accept)
        self.selector.register(self.notify.fileno(), selectors.EVENT_READ, self.on_notify)
        self.selector.register(self.pidfd, selectors.EVENT_READ, self.on_kernel_exit)
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, self.on_wakeup)
        for console in self.consoles.values():
            self.selector.register(console.master, selectors.EVENT_READ,
                                   lambda c=console: self.on_console_output(c))
        signal.signal(signal.SIGTERM, lambda *_: self.request_kill())
        while self.process is not None:
            timeout = self._next_timeout()
            for key, _ in self.selector.select(timeout):
                self._handle(key.data)
            self._run_due_actions()
        return 0

    def _handle(self, handler) -> None:
        # The worker is the only thing that owns the kernel: a failing handler is a bug to
        # log, never a reason to die and leave the machine unmanaged.
        try:
            handler()
        except Exception:
            print(f"{time.ctime()}: an event handler failed; carrying on", flush=True)
            traceback.print_exc()
            sys.stderr.flush()

    def _next_timeout(self) -> float:
        timeout = 1.0
        if self.deadline_actions:
            timeout = max(0.0, min(timeout, min(t for t, _ in self.deadline_actions) - time.time()))
        return timeout

    def _run_due_actions(self) -> None:
        now = time.time()
        due = [a for a in self.deadline_actions if a[0] <= now]
        self.deadline_actions = [a for a in self.deadline_actions if a[0] > now]
        for _, action in due:
            self._handle(action)
        if (self.state.state == st.BOOTING and self.socket_seen_at
                and now - self.socket_seen_at > READY_FALLBACK_S):
            self.set_state(st.RUNNING)

    def after(self, seconds: float, action) -> None:
        self.deadline_actions.append((time.time() + seconds, action))

    def call_soon_threadsafe(self, action) -> None:
        with self.lock:
            self.deadline_actions.append((0.0, action))
        os.write(self.wakeup_w, b"x")

    def on_wakeup(self) -> None:
        try:
            os.read(self.wakeup_r, 4096)
        except BlockingIOError:
            pass

    # --- kernel events ------------------------------------------------------------------

    def on_console_output(self, console: Console) -> None:
        data = console.read_guest_output()
        if data:
            self._flush_clients(console)
            if console.name == "con0":
                self._watch_for_prompt(data)

    def _watch_for_prompt(self, data: bytes) -> None:
        self.tail = (self.tail + data)[-512:]
        if b"Restarting system" in data:
            self.set_state(st.REBOOTING)
        if self.guest_said_halted():
            self.set_state(st.HALTING)
        if self.state.state in (st.BOOTING, st.REBOOTING):
            text = ANSI_RE.sub(b"", self.tail).rstrip(b"\n")
            if PROMPT_RE.search(text):
                self.state.ready = True
                self.set_state(st.RUNNING)

    def guest_said_halted(self) -> bool:
        """The last thing con0 showed is the kernel's halt line (so not a line typed earlier)."""
        # the substring test first: this runs on every chunk of con0 output
        return b"reboot: " in self.tail and \
            ANSI_RE.sub(b"", self.tail).rstrip().endswith(GUEST_HALTED)

    def on_notify(self) -> None:
        note = self.notify.read()
        if note is None:
            return
        if note.type == NotifyType.SOCKET:
            self.state.mconsole = note.text
            self.state.boots += 1
            self.state.ready = False
            self.socket_seen_at = time.time()
            self.disks_settled = False
            self.set_state(st.BOOTING)
        elif note.type == NotifyType.PANIC:
            self.state.message = self.engine.explain_panic(self.machine, note.text)
            self.save_state()
        elif note.type == NotifyType.HANG:
            self.state.message = "the guest's watchdog reports a hang"
            self.save_state()
        elif note.type == NotifyType.USER:
            self.state.message = note.text
            self.save_state()

    def on_kernel_exit(self) -> None:
        code = self.process.wait()
        if code < 0:
            code = 128 - code     # as a shell reports it: a panic's SIGABRT is 134, SIGKILL 137
        self._kill_group()
        self.state.exit_code = code
        if self.kill_requested or code == 128 + signal.SIGKILL:
            final = st.KILLED
        elif code == 0:
            final = st.HALTED
        elif code == 1 and self.state.state == st.HALTING:
            final = st.HALTED       # SIGTERM after a halt that did not finish: still a halt
        elif self.guest_said_halted() or (self.disks_settled and self.state.state == st.HALTING):
            final = st.HALTED
            self.state.message = _exit_after_halt_message(code, self.state.message)
        else:
            final = st.CRASHED
            if not self.state.message:
                self.state.message = _exit_message(code)
        self.process = None
        self._remove_instance_dir()
        self.set_state(final)

    def _kill_group(self) -> None:
        # UML's helper processes survive SIGKILL of the kernel and keep images locked
        kill_tree(self.state.kernel_pid, marker=self.kernel_marker)

    def _remove_instance_dir(self) -> None:
        instance = self.run_dir / self.machine.umid
        if instance.is_dir():
            for leftover in instance.iterdir():
                leftover.unlink(missing_ok=True)
            instance.rmdir()

    # --- state --------------------------------------------------------------------------

    def set_state(self, new_state: str) -> None:
        if new_state == self.state.state and new_state != st.BOOTING:
            return
        self.state.state = new_state
        self.save_state()

    def save_state(self) -> None:
        st.write_state(self.state_path, self.state)
        line = protocol.encode({"event": "state", **self.state.to_dict()})
        for watcher in list(self.watchers):
            try:
                watcher.sendall(line)
            except OSError:
                self.watchers.remove(watcher)

    # --- clients ------------------------------------------------------------------------

    def accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        conn.settimeout(2.0)
        try:
            request, rest = protocol.read_line(conn)
        except (OSError, ValueError):
            conn.close()
            return
        if request is None:
            conn.close()
            return
        try:
            self.dispatch(conn, request, rest)
        except UmlguiError as exc:
            self._reply(conn, protocol.error_reply(exc.problem, exc.fix))
            conn.close()

    def dispatch(self, conn: socket.socket, request: dict, rest: bytes) -> None:
        op = request.get("op")
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise UmlguiError(f"unknown worker operation {op!r}")
        handler(conn, request, rest)

    def _reply(self, conn: socket.socket, message: dict) -> None:
        try:
            conn.sendall(protocol.encode(message))
        except OSError:
            pass

    def _reply_and_close(self, conn: socket.socket, message: dict) -> None:
        self._reply(conn, message)
        conn.close()

    def op_status(self, conn, request, rest) -> None:
        self._reply_and_close(conn, {"ok": True, **self.state.to_dict()})

    def op_watch(self, conn, request, rest) -> None:
        self._reply(conn, {"ok": True, **self.state.to_dict()})
        conn.setblocking(True)
        conn.settimeout(5.0)
        self.watchers.append(conn)

    def op_attach(self, conn, request, rest) -> None:
        console = self._console(request.get("console", "con0"))
        self._reply(conn, {"ok": True, "console": console.name})
        if "cols" in request and "rows" in request:
            console.resize(int(request["cols"]), int(request["rows"]))
        conn.setblocking(False)
        client = ConsoleClient(conn)
        console.add_client(client, bool(request.get("replay", True)))
        if rest:
            console.write_guest_input(rest)
        self.selector.register(conn, selectors.EVENT_READ,
                               lambda: self.on_client_input(console, client))
        self._flush_clients(console)

    def op_resize(self, conn, request, rest) -> None:
        self._console(request.get("console", "con0")).resize(int(request["cols"]), int(request["rows"]))
        self._reply_and_close(conn, {"ok": True})

    def op_mconsole(self, conn, request, rest) -> None:
        command = str(request.get("command", "")).lstrip()
        word = command.split(" ", 1)[0]
        if word == "log" and not command.endswith("\n"):
            command += "\n"     # the kernel holds back a log line until it ends
        if self.state.state == st.PAUSED and not word.startswith(STOP_SAFE_COMMANDS):
            raise UmlguiError(
                f"{self.machine.name} is paused: '{word}' could wedge it (UML's stop/go hazard)",
                f"resume it first (umlgui mconsole {self.machine.name} go)")
        self._mconsole_async(conn, command)

    def op_halt(self, conn, request, rest) -> None:
        self._require_live()
        settle = self._settle_disks_step()
        self.set_state(st.HALTING)
        self._mconsole_async(conn, "halt", before=settle)
        self.after(SETTLE_TIMEOUT_S + HALT_GRACE_S, self._terminate_if_alive)

    def op_reboot(self, conn, request, rest) -> None:
        self._require_live()
        settle = self._settle_disks_step()
        self.set_state(st.REBOOTING)
        self._mconsole_async(conn, "reboot", before=settle)

    def _settle_disks_step(self):
        """What runs before mconsole's halt or reboot, which stop the guest at once: its
        filesystems synced and read-only first, so nothing written is lost. A paused guest is
        resumed first: halt or reboot while stopped panics it, and `proc` could wedge it."""
        paused = self.state.state == st.PAUSED
        devices = [guest_disk_name(unit) for unit in self.machine.disks]

        def settle(mconsole) -> None:
            if paused:
                mconsole.request("go")
            self.disks_settled = settle_filesystems(mconsole, devices)
            if not self.disks_settled:
                print(f"{time.ctime()}: {self.machine.name}'s disks were not all read-only "
                      f"(its kernel.sysrq refuses SysRq u, or they took over "
                      f"{SETTLE_TIMEOUT_S:.0f} s); stopping it anyway", flush=True)
        return settle

    def op_kill(self, conn, request, rest) -> None:
        self.request_kill()
        self._reply_and_close(conn, {"ok": True})

    def op_input(self, conn, request, rest) -> None:
        """Type text on a console without attaching (scripts, tests)."""
        self._console(request.get("console", "con0")).write_guest_input(request["text"].encode())
        self._reply_and_close(conn, {"ok": True})

    def _require_live(self) -> None:
        if self.process is None:
            raise UmlguiError(f"{self.machine.name} is not running")

    def _console(self, name: str) -> Console:
        if name not in self.consoles:
            raise UmlguiError(f"{self.machine.name} has no console {name!r} on the worker",
                              f"consoles served: {', '.join(self.consoles) or 'none'}")
        return self.consoles[name]

    def on_client_input(self, console: Console, client: ConsoleClient) -> None:
        if client not in console.clients:
            return  # dropped earlier in the same round of events (its output flush failed)
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop_client(console, client)
            return
        console.write_guest_input(data)

    def _flush_clients(self, console: Console) -> None:
        for client in list(console.clients):
            if not console.flush_client(client):
                self._drop_client(console, client)

    def _drop_client(self, console: Console, client: ConsoleClient) -> None:
        try:
            self.selector.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        console.drop(client)

    # --- mconsole -----------------------------------------------------------------------

    def _mconsole_async(self, conn, command: str, before=None) -> None:
        """Run mconsole requests off the loop thread: proc-context replies can take seconds.
        `before(client)` runs first on the same connection."""
        path = self.state.mconsole or str(self.run_dir / self.machine.umid / "mconsole")
        self.pending_mconsole[conn] = command

        def run() -> None:
            try:
                with MconsoleClient(path, timeout=10.0) as client:
                    if before is not None:
                        before(client)
                    reply = client.request(command)
                message = {"ok": True, "err": reply.err, "text": reply.text}
                self.call_soon_threadsafe(lambda: self._after_mconsole(command, reply.ok))
            except MconsoleError as exc:
                message = protocol.error_reply(exc.problem, exc.fix)
            if self.pending_mconsole.pop(conn, None) is not None:
                self._reply_and_close(conn, message)

        threading.Thread(target=run, daemon=True).start()

    def _after_mconsole(self, command: str, ok: bool) -> None:
        word = command.split(" ", 1)[0]
        if not ok:
            return
        if word == "stop":
            self.set_state(st.PAUSED)
        elif word == "go":
            self.set_state(st.RUNNING if self.state.ready or self.state.boots else st.BOOTING)
        elif word in ("reboot", "cad"):
            self.set_state(st.REBOOTING)
        elif word == "halt":
            self.set_state(st.HALTING)

    # --- ending -------------------------------------------------------------------------

    def request_kill(self) -> None:
        self.kill_requested = True
        if self.process is not None:
            self._kill_group()

    def _terminate_if_alive(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.after(TERM_GRACE_S, self.request_kill)

    def answer_pending_mconsole(self) -> None:
        """The kernel ended while requests waited (halt, sysrq c/o/b...): say so, not nothing."""
        for conn, command in list(self.pending_mconsole.items()):
            if self.pending_mconsole.pop(conn, None) is None:
                continue
            text = f"the machine stopped ({self.state.state}, exit status {self.state.exit_code})"
            expected = command.startswith(("halt", "sysrq c", "sysrq o", "reboot"))
            self._reply_and_close(conn, {"ok": True, "err": 0, "text": text} if expected
                                  else protocol.error_reply(text + " before answering"))

    def shutdown(self) -> None:
        self.answer_pending_mconsole()
        for console in self.consoles.values():
            console.close()
        for watcher in self.watchers:
            watcher.close()
        self.listener.close()
        (self.run_dir / "worker.sock").unlink(missing_ok=True)
        self.notify.close()


def _exit_after_halt_message(code: int, panic: str) -> str:
    """UML 6.1 can fail while its process winds down after the guest halted; seen once in CI as
    "Kernel mode fault at addr 0x7ffffffff000", raised in the kernel's stack dumper as it ran
    off the top of the host process's stack. The guest had finished by then: it prints its
    halt line after syncing and unmounting its disks, and a halt from the host waits until
    they are read-only."""
    why = f" ({panic})" if panic else ""
    return (f"the guest halted cleanly; the UML kernel process then failed as it exited "
            f"(exit status {code}{why}). The guest had synced its disks first, so nothing "
            f"was lost.")


def _exit_message(code: int) -> str:
    if code == 134:
        return "the kernel panicked (exit status 134); see the console log"
    if code < 0:
        return f"the kernel was killed by signal {-code}"
    return f"the kernel exited with status {code}; see `umlgui log` and the kernel log"


def main(argv: list[str]) -> int:
    """`python -m umlgui.worker NAME`: prepare, detach once ready, run until the kernel exits."""
    name = argv[0]
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(ready_w)
        return _wait_for_child(ready_r)
    os.close(ready_r)
    os.setsid()
    _redirect_stdio(paths.ensure_dir(paths.logs_dir(name)) / "worker.log")
    try:
        worker = Worker(name)
        worker.prepare()
        worker.start_kernel()
    except UmlguiError as exc:
        os.write(ready_w, json.dumps({"ok": False, "error": exc.problem, "fix": exc.fix}).encode())
        os._exit(1)
    except Exception as exc:   # report anything unexpected instead of dying silently
        os.write(ready_w, json.dumps({"ok": False, "error": f"worker failed: {exc!r}"}).encode())
        os._exit(1)
    os.write(ready_w, json.dumps({"ok": True, "pid": os.getpid()}).encode())
    os.close(ready_w)
    try:
        worker.run()
    finally:
        worker.shutdown()
    os._exit(0)


def _wait_for_child(ready_r: int) -> int:
    data = b""
    while chunk := os.read(ready_r, 4096):
        data += chunk
    reply = json.loads(data or b'{"ok": false, "error": "the worker died while starting"}')
    if not reply["ok"]:
        sys.stderr.write(json.dumps(reply) + "\n")
        return 1
    return 0


def _redirect_stdio(log_path: Path) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
