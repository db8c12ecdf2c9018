"""The escape battery: a guest must not reach host files, host processes or the host kernel."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tt_support import console_lines

PROGRAMS = Path(__file__).parent / "guest_programs"
EXPECTED_ERRORS = {
    "open_host_file": "ENOENT", "io_uring_setup": "EPERM", "open_by_handle_at": "EPERM",
    "name_to_handle_at": "EOPNOTSUPP", "ptrace_attach_init": "EPERM",
    "process_vm_readv": "EPERM", "bpf": "EPERM", "perf_event_open": "EPERM",
    "kexec_load": "EPERM", "init_module": "EPERM", "mount_ext4": "EPERM",
    "mount_bind": "EPERM", "unshare_mount_ns": "EPERM", "unshare_user_ns": "EPERM",
    "setns": "EPERM", "clone3": "ENOSYS", "chroot": "EPERM", "pivot_root": "EPERM",
    "settimeofday": "EPERM", "kill_host_process": "ESRCH", "open_kcore": "EACCES",
    "write_sysrq_trigger": "EACCES", "write_sysctl": "EACCES", "swapon": "EPERM",
    "iopl": "EPERM", "userfaultfd": "EPERM", "keyctl": "ENOSYS",
}


@pytest.fixture(scope="session")
def escape_program(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the escape program")
    binary = tmp_path_factory.mktemp("prog") / "escape"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(PROGRAMS / "escape.c")],
                   check=True)
    return binary


def test_dangerous_syscalls_are_refused(run_script, busybox_tree, escape_program, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host secret\n")
    upper = tmp_path / "cow" / "root"
    upper.mkdir(parents=True)
    shutil.copy2(escape_program, upper / "escape")
    code, text = run_script(busybox_tree, f"/escape {secret} {os.getpid()}\n"
                                          f"/escape {secret} {os.getpid()} int80; echo INT80 $?")
    assert code == 0, text
    results = dict(line.split(" ", 1) for line in console_lines(text)
                   if line.split(" ", 1)[0] in EXPECTED_ERRORS)
    assert results == EXPECTED_ERRORS, text
    assert "int80 trying" in text and "int80 survived" not in text
    assert "INT80 159" in text          # killed by SIGSYS (128 + 31)


def test_shell_escape_attempts(run_script, busybox_tree, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host secret\n")
    outside = tmp_path / "written-from-guest"
    code, text = run_script(busybox_tree, f"""
cat {secret}; cat /../../..{secret}; cat /proc/1/root{secret}; cat /proc/self/cwd/../../..{secret}
ln -s {secret} /tmp/l; cat /tmp/l; ln -s ../../../../../../..{tmp_path} /tmp/d; ls /tmp/d
cd /proc/self/fd && cat ../../../..{secret}
echo pwned > {outside}; echo pwned > /../..{outside}
ls /proc | grep -c '^[0-9]'
echo NET $(ls /sys/class/net 2>/dev/null | wc -l) $(cat /proc/net/dev | grep -c ':')
nc -U {tmp_path}/x.sock </dev/null 2>&1 | head -1
echo END
""")
    assert code == 0, text
    assert "host secret" not in text
    assert not outside.exists()
    assert "NET 0 1" in text, text          # only lo in the guest's network namespace
    assert "END" in text
