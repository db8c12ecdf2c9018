"""Memory size and the OOM policy, devices, the syscall monitor."""

from __future__ import annotations

import json

from conftest import console_lines


def _line(text: str, key: str) -> str:
    found = [line for line in console_lines(text) if line.startswith(key + " ")]
    assert found, (key, text)
    return found[0]


def test_meminfo_and_oom_policy(run_script, busybox_tree):
    code, text = run_script(busybox_tree, """
echo MEM $(grep MemTotal /proc/meminfo | tr -s ' ')
dd if=/dev/zero of=/dev/null bs=100M count=20 2>/dev/null; echo DD $?
echo STILL-UP
""")
    assert code == 0, text
    assert _line(text, "MEM") == "MEM MemTotal: 65536 kB"
    assert _line(text, "DD") == "DD 137"                     # SIGKILL by the OOM policy
    assert "Out of memory: Killed process" in text and "(dd)" in text
    assert "STILL-UP" in text


def test_devices(run_script, busybox_tree):
    code, text = run_script(busybox_tree, """
echo NULL $(echo x > /dev/null; echo $?) $(head -c 4 /dev/zero | od -An -tx1 | tr -d ' ')
echo RANDOM $(head -c 8 /dev/urandom | wc -c)
echo CONSOLE $(tty < /dev/console) $([ -c /dev/tty0 ] && echo chr)
echo TTYS $(cat /dev/ttyS0 2>&1 | grep -c 'No such device')
echo LIST $(ls /dev | tr '\\n' ' ')
echo PTS $(ls -d /dev/pts) $(ls /dev/pts | wc -l)
""")
    assert code == 0, text
    assert _line(text, "NULL") == "NULL 0 00000000"
    assert _line(text, "RANDOM") == "RANDOM 8"
    assert _line(text, "CONSOLE") == "CONSOLE /dev/tty0 chr"
    assert _line(text, "TTYS") == "TTYS 1"
    for name in ("console", "null", "zero", "urandom", "tty", "ptmx", "pts", "tty0"):
        assert name in _line(text, "LIST").split()


def test_syscall_monitor_log(run_script, busybox_tree, tmp_path):
    log = tmp_path / "monitor.log"
    code, text = run_script(busybox_tree, "cat /etc/hostname; cat /nonexistent; uname -n",
                            f"ttmonitor={log}")
    assert code == 0, text
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert all({"t", "pid", "tid", "nr", "name", "args", "ret"} <= set(r) for r in records)
    opens = [r for r in records if r["name"] in ("open", "openat") and
             "/etc/hostname" in r["args"]]
    assert opens and opens[0]["ret"] >= 0
    missing = [r for r in records if "/nonexistent" in r["args"]]
    assert missing and missing[0]["err"] == "ENOENT"
    execs = [r for r in records if r["name"] == "execve"]
    assert any(r["args"][1][:2] == ["cat", "/etc/hostname"] for r in execs)
    assert any(r["name"] == "uname" and r.get("emulated") for r in records)
