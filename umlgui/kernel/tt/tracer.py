"""The tracing thread: one waitpid(-1, WALL) loop over every guest thread.

The seccomp filter makes only handled syscalls stop (PTRACE_EVENT_SECCOMP); the handler
answers at that stop, so a handled syscall costs one stop and everything else runs at
native speed (ENGINE-RESEARCH.md §5.2). Threads and processes are attached automatically on
fork/vfork/clone (PTRACE_SEIZE options are inherited); job-control stops are left in place
with PTRACE_LISTEN so Ctrl-Z and `fg` work on the console.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import traceback

from .guest import Creds
from .os_linux import memory, ptrace
from .os_linux.ptrace import ORIG_RAX, RAX
from .syscalls.common import REWRITTEN
from .syscalls.table import HANDLERS_BY_NUMBER

_WAIT_FLAGS = ptrace.WALL | os.WNOHANG
_SECCOMP_STOP = signal.SIGTRAP | (ptrace.EVENT_SECCOMP << 8)
_SYSCALL_EXIT_STOP = signal.SIGTRAP | 0x80
_FORK_EVENTS = (ptrace.EVENT_FORK, ptrace.EVENT_VFORK, ptrace.EVENT_CLONE)
_STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
_MASK64 = (1 << 64) - 1
SPIN_POLLS = int(os.environ.get("TT_SPIN", "0"))


class Tracee:
    """One guest thread as the tracer knows it."""

    __slots__ = ("pid", "creds", "started", "guest_pid", "pending_call")

    def __init__(self, pid: int, creds: Creds):
        self.pid = pid
        self.creds = creds
        self.started = False        # its first (attach) stop has been seen
        self.guest_pid = 0          # filled in lazily from /proc/PID/status NSpid
        self.pending_call = None    # monitor: the entry waiting for its exit stop


class Tracer:
    """Owns the guest threads; `run_once` handles every event that is ready."""

    def __init__(self, guest, monitor=None):
        self.guest = guest
        self.monitor = monitor
        self.tracees: dict[int, Tracee] = {}
        self.init_pid = 0
        self.init_status: int | None = None
        self.frozen: set[int] = set()
        self.stops = 0
        self._regs = ptrace.Registers()
        self._handlers = HANDLERS_BY_NUMBER

    # -- bookkeeping -----------------------------------------------------------------------

    def add_init(self, pid: int) -> None:
        self.init_pid = pid
        tracee = Tracee(pid, Creds())
        tracee.started = True       # seized before it ran: no attach stop follows
        self.tracees[pid] = tracee

    def _adopt(self, pid: int) -> Tracee:
        """A thread whose fork event has not been seen yet: inherit from its creator."""
        creator = _creator_of(pid)
        parent = self.tracees.get(creator)
        tracee = Tracee(pid, parent.creds.copy() if parent else Creds())
        self.tracees[pid] = tracee
        return tracee

    def guest_pid_of(self, tracee: Tracee) -> int:
        if not tracee.guest_pid:
            tracee.guest_pid = _namespace_pid(tracee.pid) or tracee.pid
        return tracee.guest_pid

    def host_pid_of_guest(self, guest_pid: int) -> int | None:
        """For /proc/<guest pid>/... magic links."""
        for tracee in self.tracees.values():
            if self.guest_pid_of(tracee) == guest_pid:
                return tracee.pid
        return None

    def processes(self) -> list[int]:
        """Host pids of the guest's thread-group leaders."""
        return [pid for pid in list(self.tracees) if _thread_group(pid) == pid]

    # -- the loop --------------------------------------------------------------------------

    def run_once(self, budget: int = 2000, spin: int = SPIN_POLLS) -> int:
        """Handle up to `budget` ready events without blocking; returns how many.

        A tracee resumed a moment ago usually stops again within microseconds, and on a
        VM waking an idle CPU costs more than that, so a few empty polls come first.
        """
        handled = 0
        idle = 0
        while handled < budget:
            try:
                pid, status = os.waitpid(-1, _WAIT_FLAGS)
            except ChildProcessError:
                return handled
            if pid == 0:
                idle += 1
                if idle > spin:
                    return handled
                continue
            idle = 0
            handled += 1
            self._event(pid, status)
        return handled

    def _event(self, pid: int, status: int) -> None:
        if os.WIFSTOPPED(status):
            self.stops += 1
            high = status >> 8
            if high == _SECCOMP_STOP:
                self._syscall_entry(pid)
            elif high == _SYSCALL_EXIT_STOP:
                self._syscall_exit(pid)
            else:
                self._other_stop(pid, status)
            return
        # exited or killed
        memory.forget(pid)
        self.tracees.pop(pid, None)
        self.frozen.discard(pid)
        if pid == self.init_pid:
            self.init_status = status

    def _other_stop(self, pid: int, status: int) -> None:
        signal_number = os.WSTOPSIG(status)
        event = status >> 16
        tracee = self.tracees.get(pid)
        if tracee is None:
            tracee = self._adopt(pid)
        if event in _FORK_EVENTS:
            child = ptrace.event_message(pid)
            known = self.tracees.get(child)
            if known is None:
                self.tracees[child] = Tracee(child, tracee.creds.copy())
            else:
                known.creds = tracee.creds.copy()
            ptrace.resume(pid)
        elif event == ptrace.EVENT_EXEC:
            memory.forget(pid)
            former = ptrace.event_message(pid)
            memory.forget(former)
            if former != pid:
                # a non-leader thread exec'd: it now has the leader's pid
                self.tracees.pop(former, None)
            if tracee.pending_call is not None:
                ptrace.resume_to_exit(pid)          # the monitor waits for execve's result
            else:
                ptrace.resume(pid)
        elif event == ptrace.EVENT_STOP:
            if not tracee.started:
                tracee.started = True
                ptrace.resume(pid)
            elif signal_number in _STOP_SIGNALS:
                ptrace.listen(pid)          # group-stop: stay stopped until SIGCONT
            else:
                ptrace.resume(pid)
        elif signal_number == signal.SIGTRAP and event:
            ptrace.resume(pid)
        else:
            tracee.started = True
            if signal_number == signal.SIGSTOP and pid in self.frozen:
                # our own SIGSTOP from mconsole `stop`: the thread sat in this stop until
                # the loop ran again after `go`; swallow it
                self.frozen.discard(pid)
                ptrace.resume(pid)
                return
            ptrace.resume(pid, signal_number)

    def _syscall_entry(self, pid: int) -> None:
        tracee = self.tracees.get(pid)
        if tracee is None:
            tracee = self._adopt(pid)
        tracee.started = True
        regs = self._regs
        if not ptrace.get_regs(pid, regs):
            return
        number = regs[ORIG_RAX]
        handler = self._handlers.get(number)
        result = None
        monitor = self.monitor
        record = monitor.entry(tracee, number, regs) if monitor is not None else None
        if handler is not None:
            try:
                result = handler(self.guest, tracee, regs)
            except OSError as error:
                result = -(error.errno or errno.EIO)
            except Exception:  # noqa: BLE001 - an engine bug must not take the guest down
                sys.stderr.write(f"tt: internal error in syscall {number}:\n"
                                 f"{traceback.format_exc()}")
                result = -errno.EIO
            if result is REWRITTEN:
                ptrace.set_regs(pid, regs)
            elif result is not None:
                regs[ORIG_RAX] = _MASK64                 # skip the host syscall
                regs[RAX] = result & _MASK64
                ptrace.set_regs(pid, regs)
        if record is not None:
            if result is None or result is REWRITTEN:
                tracee.pending_call = record       # the result comes at the exit stop
                ptrace.resume_to_exit(pid)
                return
            monitor.finish(record, ptrace.signed(result & _MASK64), emulated=True)
        ptrace.resume(pid)

    def _syscall_exit(self, pid: int) -> None:
        tracee = self.tracees.get(pid)
        regs = self._regs
        if tracee is not None and tracee.pending_call is not None and \
                ptrace.get_regs(pid, regs):
            self.monitor.exit(tracee, tracee.pending_call, ptrace.signed(regs[RAX]))
            tracee.pending_call = None
        ptrace.resume(pid)

    # -- freezing (mconsole stop/go) -------------------------------------------------------

    def freeze(self) -> None:
        """Stop every guest thread: each enters a signal-delivery stop that the tracer
        leaves alone while mconsole is stopped (the loop does not run then)."""
        for pid in list(self.tracees):
            try:
                _tgkill(pid, signal.SIGSTOP)
                self.frozen.add(pid)
            except OSError:
                pass

    def thaw(self) -> None:
        """Nothing to do: the frozen threads' stops are handled when the loop runs again."""

    def kill_all(self) -> None:
        """SIGKILL the guest: killing its init ends every process of its pid namespace."""
        for pid in [self.init_pid, *self.tracees]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def reap_all(self, timeout: float = 5.0) -> None:
        """Wait until every guest thread has gone (after kill_all)."""
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(-1, ptrace.WALL)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if os.WIFSTOPPED(status):
                ptrace.resume(pid)
                continue
            self.tracees.pop(pid, None)


_libc = None


def _tgkill(tid: int, signal_number: int) -> None:
    """Signal one thread (kill() on a tid would pick any thread of its group)."""
    import ctypes
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    tgid = _thread_group(tid)
    if _libc.syscall(234, tgid, tid, signal_number) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


def _thread_group(tid: int) -> int:
    try:
        with open(f"/proc/{tid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return tid


def _creator_of(pid: int) -> int:
    tgid = ppid = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Tgid:"):
                    tgid = int(line.split()[1])
                elif line.startswith(b"PPid:"):
                    ppid = int(line.split()[1])
                    break
    except OSError:
        return 0
    return tgid if tgid != pid else ppid


def _namespace_pid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"NSpid:"):
                    return int(line.split()[-1])
    except OSError:
        pass
    return 0
