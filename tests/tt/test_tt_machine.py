"""Memory size and the OOM policy, devices, the syscall monitor."""

from __future__ import annotations

import json

from tt_support import console_lines


def _line(text: str, key: str) -> str:
    found = [line for line in console_lines(text) if line.startswith(key + " ")]
    assert found, (key, text)
    return found[0]


def test_meminfo_and_oom_policy(run_script, busybox_tree):
    code, text = run_script(busybox_tree, """
echo MEM $(grep MemTotal /proc/meminfo | tr -s ' ')
dd if=/dev/zero of=/dev/null bs=100M count=1000 2>/dev/null; echo DD $?
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


def test_job_control_on_the_console(boot, busybox_tree):
    machine = boot(busybox_tree)
    console = machine.console
    assert console.read_until(b"login:")
    console.send("root\n")
    assert console.read_until(b"# ")
    console.send("sleep 100\n")
    import time
    time.sleep(0.5)
    console.send("\x1a")                      # Ctrl-Z
    assert console.read_until(b"Stopped", 5), console.text
    console.send("jobs; echo JOBS-DONE\n")
    assert console.read_until(b"JOBS-DONE\r\n")
    console.send("fg\n")
    time.sleep(0.5)
    console.send("\x03")                      # Ctrl-C
    console.send("echo after-fg $?\n")
    assert console.read_until(b"after-fg 130", 5), console.text
    console.send("poweroff\n")
    assert machine.wait() == 0


def test_hostfs_mount(run_script, busybox_tree, tmp_path):
    shared = tmp_path / "shared"
    (shared / "sub").mkdir(parents=True)
    (shared / "sub/from-host").write_text("host data\n")
    code, text = run_script(busybox_tree, """
mkdir -p /mnt/h && mount -t hostfs none /mnt/h -o /sub && echo MOUNTED
cat /mnt/h/from-host; echo guest data > /mnt/h/from-guest
ln -s /etc/hostname /mnt/h/guestlink; cat /mnt/h/guestlink
grep hostfs /proc/mounts | cut -d' ' -f2,3
mount -t hostfs none /mnt -o /../.. 2>&1 | grep -c 'permission denied'
umount /mnt/h && ls /mnt/h | wc -l
""", f"hostfs={shared}")
    assert code == 0, text
    assert "MOUNTED" in text and "host data" in text and "/mnt/h hostfs" in text
    assert (shared / "sub/from-guest").read_text() == "guest data\n"
    assert "umlgui" in text                   # the guest symlink resolves in the guest root
    lines = console_lines(text)
    assert lines[-2:] == ["1", "0"], text
