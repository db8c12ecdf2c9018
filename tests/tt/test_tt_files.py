"""The guest root: copy-on-write layer, whiteouts, symlinks, *at() calls, /proc/self."""

from __future__ import annotations

import os

from tt_support import console_lines


def test_cow_layer_keeps_base_pristine_and_persists(run_script, busybox_tree, tmp_path):
    before = sorted(os.listdir(busybox_tree / "etc"))
    motd = (busybox_tree / "etc/motd").read_bytes()
    code, text = run_script(busybox_tree, """
echo changed > /etc/motd
echo new > /etc/newfile
rm /etc/shells
mkdir -p /var/lib/thing && echo deep > /var/lib/thing/file
ln -s /etc/newfile /etc/link-abs
ln -s ../etc/newfile /root/link-rel
mv /etc/hosts /etc/hosts.moved
rm -r /home && mkdir /home && touch /home/only
chmod 640 /etc/newfile
echo RESULT $(cat /etc/motd) $(ls /etc/shells 2>&1 | grep -c 'No such') $(cat /etc/link-abs) $(cat /root/link-rel)
ls /etc | tr '\\n' ' '; echo
""")
    assert code == 0, text
    assert "RESULT changed 1 new new" in text, text
    listing = [line for line in console_lines(text) if "fstab" in line][0].split()
    assert "shells" not in listing and "newfile" in listing and "hosts.moved" in listing
    assert not any(name.startswith(".wh.") for name in listing)
    assert sorted(os.listdir(busybox_tree / "etc")) == before
    assert (busybox_tree / "etc/motd").read_bytes() == motd
    # second boot on the same layer sees the changes
    code, text = run_script(busybox_tree, """
echo SECOND $(cat /etc/motd) $(cat /var/lib/thing/file) $(ls /home) $(ls /etc/shells 2>/dev/null | wc -l)
ls -l /etc/newfile
""")
    assert "SECOND changed deep only 0" in text, text
    assert "-rw-r-----" in text
    # reset to pristine = drop the layer
    import shutil
    shutil.rmtree(tmp_path / "cow")
    code, text = run_script(busybox_tree, "echo THIRD $(cat /etc/motd | head -c 8)")
    assert "THIRD Welcome" in text, text


def test_paths_resolve_inside_the_guest_root(run_script, busybox_tree):
    code, text = run_script(busybox_tree, """
cd /etc/init.d && echo CWD $(pwd) $(readlink /proc/self/cwd)
cd ../../../../.. && echo UP $(pwd) $(cat /../../etc/hostname)
echo ROOT $(readlink /proc/self/root) $(readlink /proc/self/exe)
echo DOTDOT $(cat /etc/../etc/./hostname)
cd /tmp && mkdir -p a/b && cd a/b && echo REL $(ls ../../a) $(pwd)
ln -s /etc /tmp/etclink && echo VIASYMLINK $(cat /tmp/etclink/hostname)
ln -s ../../../../../../.. /tmp/up && echo CLAMPED $(ls /tmp/up/etc/hostname)
echo PROCROOT $(cat /proc/self/root/etc/hostname) $(cat /proc/1/root/etc/hostname)
exec 3</etc; echo FD $(readlink /proc/self/fd/3) $(ls /proc/self/fd/3/hostname)
""")
    assert code == 0, text
    lines = console_lines(text)
    expect = {
        "CWD": "CWD /etc/init.d /etc/init.d",
        "UP": "UP / umlgui",
        "ROOT": "ROOT / /bin/busybox",
        "DOTDOT": "DOTDOT umlgui",
        "REL": "REL b /tmp/a/b",
        "VIASYMLINK": "VIASYMLINK umlgui",
        "CLAMPED": "CLAMPED /tmp/up/etc/hostname",
        "PROCROOT": "PROCROOT umlgui umlgui",
        "FD": "FD /etc /proc/self/fd/3/hostname",
    }
    for key, wanted in expect.items():
        found = [line for line in lines if line.startswith(key + " ")]
        assert found and found[0] == wanted, (key, found, text)


def test_dynamic_glibc_programs_and_shebang(run_script, glibc_tree):
    code, text = run_script(glibc_tree, """
/usr/local/bin/ls -ld /etc /etc/passwd
printf '#!/usr/local/bin/dash\\necho script-ran $0 $1\\n' > /tmp/s.sh && chmod +x /tmp/s.sh
/tmp/s.sh arg1
cd /tmp && ./s.sh rel
/usr/local/bin/id
/usr/local/bin/env -i /usr/local/bin/cat /etc/hostname
/usr/local/bin/stat -c 'STAT %U %G %a %n' /etc/shadow
ps -o comm | grep -c '^ls$' >/dev/null; echo ok
""")
    assert code == 0, text
    assert "script-ran /tmp/s.sh arg1" in text, text
    assert "script-ran ./s.sh rel" in text
    assert "uid=0(root) gid=0(root)" in text
    assert "STAT root root 600 /etc/shadow" in text
    assert "drwxr-xr-x" in text and "/etc/passwd" in text
