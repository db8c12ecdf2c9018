"""Unit tests: the seccomp program, the command line, the side table, the layers."""

from __future__ import annotations

import errno
import os
import struct

import pytest

from umlgui.errors import ConfigError
from umlgui.kernel.tt import cmdline
from umlgui.kernel.tt.os_linux import seccomp
from umlgui.kernel.tt.os_linux.syscall_numbers import NUMBERS
from umlgui.kernel.tt.syscalls import denied, table
from umlgui.kernel.tt.vfs.layers import Layers
from umlgui.kernel.tt.vfs.sidetable import SideTable


def run_bpf(program: bytes, nr: int, arch: int = seccomp.AUDIT_ARCH_X86_64, arg0: int = 0) -> int:
    """A small classic-BPF interpreter for the instructions the filter uses."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    code = [struct.unpack_from("<HBBI", program, offset) for offset in range(0, len(program), 8)]
    pc, accumulator = 0, 0
    while True:
        op, jt, jf, k = code[pc]
        if op == 0x20:
            accumulator = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif op == 0x05:
            pc += 1 + k
        elif op in (0x15, 0x35, 0x45):
            taken = {0x15: accumulator == k, 0x35: accumulator >= k, 0x45: accumulator & k}[op]
            pc += 1 + (jt if taken else jf)
        elif op == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected BPF op {op:#x}")


def test_filter_traps_handled_refuses_denied_allows_rest():
    program = table.build_filter()
    for name in table.HANDLERS:
        assert run_bpf(program, NUMBERS[name]) == seccomp.RET_TRACE, name
    for name, error in denied.DENIED.items():
        if name in NUMBERS:
            assert run_bpf(program, NUMBERS[name]) == seccomp.RET_ERRNO | error, name
    for name in ("read", "write", "mmap", "fstat", "getdents64", "futex", "getpid", "wait4"):
        assert run_bpf(program, NUMBERS[name]) == seccomp.RET_ALLOW, name
    clone = NUMBERS["clone"]
    assert run_bpf(program, clone, arg0=0x11) == seccomp.RET_ALLOW
    assert run_bpf(program, clone, arg0=0x20000000 | 0x11) == seccomp.RET_ERRNO | errno.EPERM
    assert run_bpf(program, 2, arch=0x40000003) == seccomp.RET_KILL_PROCESS     # i386
    assert run_bpf(program, 0x40000000 | 2) == seccomp.RET_ERRNO | errno.ENOSYS  # x32


def test_monitor_filter_traps_everything_else():
    program = table.build_filter(trace_everything=True)
    assert run_bpf(program, NUMBERS["read"]) == seccomp.RET_TRACE
    assert run_bpf(program, NUMBERS["bpf"]) == seccomp.RET_ERRNO | errno.EPERM


def test_command_line(tmp_path):
    config = cmdline.parse(["umid=a", "uml_dir=/x/", "mem=64M", f"ttroot={tmp_path}",
                            "ttcow=/c", "con0=fd:3,fd:3", "con=none", "hostname=h",
                            "mconsole=notify:/n", "quiet", "single", "FOO=bar", "extra"])
    assert (config.umid, config.memory_bytes, config.hostname) == ("a", 64 << 20, "h")
    assert config.channels == {"con0": "fd:3,fd:3"} and config.default_channels == {"con": "none"}
    assert config.notify_path == "/n" and config.instance_dir == "/x/a"
    assert config.init_env == {"FOO": "bar"} and config.init_args == ["extra"]
    with pytest.raises(ConfigError):
        cmdline.parse(["ttcow=/c"])
    with pytest.raises(ConfigError):
        cmdline.parse([f"ttroot={tmp_path}", "ttcow=/c", "mem=lots"])


def test_side_table_journal_survives_reopen(tmp_path):
    path = str(tmp_path / "owners.tsv")
    table_ = SideTable(path)
    table_.set("/a", uid=5, gid=6)
    table_.set("/dir/x\ty", mode=0o104755)
    table_.set("/dir/sub/z", uid=7)
    table_.rename("/dir", "/moved")
    table_.forget("/a")
    table_.close()
    reopened = SideTable(path)
    assert reopened.get("/a") is None
    assert reopened.get("/moved/x\ty").mode == 0o104755
    assert reopened.get("/moved/sub/z").uid == 7
    reopened.close()


def test_layers_copy_up_whiteout_and_opaque(tmp_path):
    base, upper = tmp_path / "base", tmp_path / "upper"
    (base / "etc/sub").mkdir(parents=True)
    (base / "etc/a").write_text("base a")
    (base / "etc/sub/b").write_text("b")
    layers = Layers(str(base), str(upper))
    assert layers.lookup("/etc", "a").layer == "base"
    host = layers.copy_up("/etc/a")
    assert host == f"{upper}/etc/a" and open(host).read() == "base a"
    layers.remove("/etc/a", directory=False)
    assert layers.lookup("/etc", "a").st is None
    assert os.path.exists(base / "etc/a")
    with pytest.raises(OSError):
        layers.remove("/etc/sub", directory=True)          # not empty
    layers.remove("/etc/sub/b", directory=False)
    layers.remove("/etc/sub", directory=True)
    os.mkdir(layers.prepare_create("/etc/sub"))
    layers.make_opaque_if_needed("/etc/sub")
    assert layers.listing("/etc/sub") == {}
    assert set(layers.listing("/etc")) == {"sub"}
