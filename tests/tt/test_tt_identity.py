"""Fake root, the ownership side table, hostname and uname, guest pids."""

from __future__ import annotations

from tt_support import console_lines


def _line(text: str, key: str) -> str:
    found = [line for line in console_lines(text) if line.startswith(key + " ")]
    assert found, (key, text)
    return found[0]


def test_fake_root_and_side_table_across_reboots(run_script, busybox_tree):
    code, text = run_script(busybox_tree, """
echo ID $(id -u) $(id -g)
echo data > /root/f && chown 1000:100 /root/f && chmod 4755 /root/f
mknod /dev/mydev c 1 3
echo LS $(ls -ln /root/f | cut -c1-10,11-30 | tr -s ' ')
echo DEV $(ls -ln /dev/mydev | tr -s ' ' | cut -d' ' -f1,5,6)
mkdir /srv && cd /srv && tar cf /tmp/a.tar /root/f 2>/dev/null && tar tvf /tmp/a.tar | tr -s ' ' | cut -d' ' -f1,2
mv /root/f /root/g && echo MOVED $(stat -c '%u:%g %a' /root/g)
""")
    assert code == 0, text
    assert _line(text, "ID") == "ID 0 0"
    assert _line(text, "LS").startswith("LS -rwsr-xr-x 1 1000 100")
    assert _line(text, "DEV") == "DEV crw-r--r-- 1, 3"
    assert "-rwsr-xr-x 1000/100" in text
    assert _line(text, "MOVED") == "MOVED 1000:100 4755"
    code, text = run_script(busybox_tree, "echo AGAIN $(stat -c '%u:%g %a' /root/g)")
    assert _line(text, "AGAIN") == "AGAIN 1000:100 4755", text


def test_setuid_identity_and_new_file_owner(run_script, busybox_tree):
    code, text = run_script(busybox_tree, """
echo 'user:x:1000:1000::/tmp:/bin/sh' >> /etc/passwd
su user -c 'id -u; touch /tmp/userfile; echo WHO $(id -u) $(id -g)'
echo OWNER $(stat -c '%u:%g' /tmp/userfile)
""")
    assert code == 0, text
    assert _line(text, "WHO") == "WHO 1000 1000"
    assert _line(text, "OWNER") == "OWNER 1000:1000"


def test_uname_hostname_and_guest_pids(run_script, busybox_tree):
    code, text = run_script(busybox_tree, """
echo UNAME $(uname -s -n -r -m)
hostname renamed && echo HOST $(hostname) $(uname -n)
echo PID $$ $(cat /proc/self/stat | cut -d' ' -f4)
sleep 5 & echo CHILD $! $(ps | grep -c 'sleep 5')
echo PS $(ps -o pid | tail -n +2 | sort -n | head -1)
echo COUNT $(ls -d /proc/[0-9]* | wc -l)
kill %1; wait
""")
    assert code == 0, text
    assert _line(text, "UNAME") == "UNAME Linux ttbox 6.1.0-tt x86_64"
    assert _line(text, "HOST") == "HOST renamed renamed"
    assert _line(text, "PID").startswith("PID 1 ")
    assert _line(text, "PS") == "PS 1"
    assert int(_line(text, "COUNT").split()[1]) < 10
