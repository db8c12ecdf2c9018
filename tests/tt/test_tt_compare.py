"""Guest programs run in the tt engine print what they print natively (chroot)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tt_support import console_lines

BUSYBOX_SCRIPT = r"""
cat /etc/passwd /etc/group
ls -l /etc/passwd /etc/init.d /bin/sh /sbin/init
ls -R /etc | sort
find /etc /usr -name '*' | sort | head -40
stat -c '%n %s %a %u %g %F' /etc/* | sort
seq 1 200 | sort -r | head -5 | tr '\n' ' '; echo
echo hello world | sed 's/world/tt/' | awk '{print toupper($0), length($0)}'
printf '%s-%d\n' a 1 b 2
expr 6 \* 7; basename /a/b/c.txt .txt; dirname /a/b/c
readlink /bin/sh; realpath /sbin/init; test -x /bin/busybox && echo executable
md5sum /etc/inittab | cut -d' ' -f1
tar cf - /etc 2>/dev/null | tar tf - | sort
sh -c 'trap "echo trapped USR1" USR1; kill -USR1 $$; echo after'
(sleep 0.1; echo background) & wait; echo waited $?
echo a b c | xargs -n1 echo item
cd /etc/init.d && pwd && cd .. && pwd && cd - >/dev/null && pwd
i=0; while [ $i -lt 20 ]; do /bin/true; i=$((i+1)); done; echo loops $i
mkdir -p /tmp/cmp && cd /tmp/cmp && echo x > f && ln f g && ln -s f h && ls -li f g | awk '{print $2}'
cat h; mv g k; ls | tr '\n' ' '; echo; rm -r /tmp/cmp; ls /tmp/cmp 2>&1 | grep -c 'No such'
umask 027; touch /tmp/um; stat -c %a /tmp/um; rm /tmp/um
dd if=/dev/zero bs=1k count=64 2>/dev/null | wc -c
false; echo status $?; sh -c 'exit 3'; echo status $?
"""

GLIBC_SCRIPT = r"""
/usr/local/bin/ls -la /etc/init.d /etc/passwd
/usr/local/bin/cat /etc/hostname /etc/hosts
/usr/local/bin/id; /usr/local/bin/id -un
/usr/local/bin/stat -c '%n %s %a %U %G %F' /etc/passwd /etc /bin/sh
/usr/local/bin/env -i A=1 /usr/local/bin/env
/usr/local/bin/dash -c 'echo dash $((3 + 4)); cd /etc && /usr/local/bin/ls -d "$PWD"'
/threads
"""


def _native(root, script: str) -> list[str]:
    """The script under chroot, with the host's /dev and a /proc, in a private mount ns."""
    setup = (f'mount --bind /dev "{root}/dev" && mount -t proc proc "{root}/proc" && '
             f'exec chroot "{root}" /bin/sh -c "$0"')
    result = subprocess.run(["unshare", "-m", "-p", "-f", "sh", "-c", setup, script],
                            capture_output=True, text=True, timeout=60)
    return (result.stdout + result.stderr).splitlines()


def _tt(run_script, root, script: str) -> list[str]:
    code, text = run_script(root, script)
    assert code == 0, text
    return console_lines(text)


@pytest.fixture(scope="session")
def threads_tree(tmp_path_factory, glibc_tree):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the thread test program")
    from pathlib import Path
    subprocess.run(["gcc", "-static", "-O2", "-pthread", "-o", str(glibc_tree / "threads"),
                    str(Path(__file__).parent / "guest_programs/threads.c")], check=True)
    return glibc_tree


def test_busybox_programs_match_native(run_script, busybox_tree):
    assert _tt(run_script, busybox_tree, BUSYBOX_SCRIPT) == _native(busybox_tree, BUSYBOX_SCRIPT)


def test_glibc_programs_and_threads_match_native(run_script, threads_tree):
    native = _native(threads_tree, GLIBC_SCRIPT)
    assert "counter 4000" in native
    assert _tt(run_script, threads_tree, GLIBC_SCRIPT) == native
