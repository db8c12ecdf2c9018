"""Host images: creation, ext4 formatting, inspection, error cases; one real UML boot on a COW."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from umlgui.errors import ConfigError, NotFoundError, UmlguiError
from umlgui.host import cow, images
from umlgui.host.process import kill_tree

MiB = 1 << 20


@pytest.fixture(autouse=True)
def umlgui_home(tmp_path, monkeypatch):
    monkeypatch.setenv("UMLGUI_HOME", str(tmp_path / "home"))


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def debugfs_cat(image, name) -> str:
    result = subprocess.run(["debugfs", "-R", f"cat {name}", str(image)],
                            capture_output=True, text=True, check=True)
    return result.stdout


@pytest.fixture
def small_tmpfs(tmpfs_of_size):
    return tmpfs_of_size("1M")


# -------------------------------------------------------------------------------- create

def test_create_sparse(tmp_path):
    path = images.create_sparse(tmp_path / "a.img", "64M")
    assert path.stat().st_size == 64 * MiB
    assert path.stat().st_blocks == 0
    assert path.stat().st_mode & 0o777 == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_create_sparse_refuses_existing_file(tmp_path):
    (tmp_path / "a.img").write_bytes(b"keep me")
    with pytest.raises(UmlguiError, match="already exists") as caught:
        images.create_sparse(tmp_path / "a.img", "1M")
    assert caught.value.fix
    assert (tmp_path / "a.img").read_bytes() == b"keep me"


@pytest.mark.parametrize("size, message", [
    ("0", "too small"), (100, "too small"), ("1000", "multiple of 512"),
    ("lots", "bad image size"), (-5, "negative"),
])
def test_create_sparse_bad_sizes(tmp_path, size, message):
    with pytest.raises(ConfigError, match=message):
        images.create_sparse(tmp_path / "a.img", size)
    assert not (tmp_path / "a.img").exists()


def test_create_image_too_small_for_ext4(tmp_path):
    with pytest.raises(ConfigError, match="too small"):
        images.create_image(tmp_path / "a.img", "64K")
    assert not (tmp_path / "a.img").exists()


def test_create_sparse_in_missing_directory(tmp_path):
    with pytest.raises(NotFoundError):
        images.create_sparse(tmp_path / "no" / "a.img", "1M")


def test_create_image_ext4_with_label_and_content(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hello").write_text("hi there\n")
    path = images.create_image(tmp_path / "a.img", "32M", label="data", root_dir=root)
    assert debugfs_cat(path, "/etc/hello") == "hi there\n"
    info = images.inspect(path)
    assert (info.filesystem, info.label) == ("ext4", "data")
    blkid = subprocess.run(["blkid", "-p", "-o", "value", "-s", "UUID", str(path)],
                           capture_output=True, text=True).stdout.strip()
    assert info.uuid == blkid


def test_create_image_blank_and_bad_options(tmp_path):
    path = images.create_image(tmp_path / "blank.img", "2M", fs=None)
    assert images.inspect(path).filesystem is None
    with pytest.raises(ConfigError, match="unsupported filesystem"):
        images.create_image(tmp_path / "x.img", "2M", fs="ntfs")
    with pytest.raises(ConfigError, match="longer than 16"):
        images.create_image(tmp_path / "y.img", "2M", label="a-label-far-too-long")
    assert not (tmp_path / "y.img").exists()
    with pytest.raises(NotFoundError, match="not a directory"):
        images.create_image(tmp_path / "z.img", "2M", root_dir=tmp_path / "nothing")
    assert not (tmp_path / "z.img").exists()


def test_format_refuses_directory_missing_and_cow(tmp_path):
    with pytest.raises(UmlguiError, match="directory"):
        images.format_ext4(tmp_path)
    with pytest.raises(NotFoundError):
        images.format_ext4(tmp_path / "absent.img")
    base = images.create_sparse(tmp_path / "base.img", "2M")
    cow.create_cow(tmp_path / "a.cow", base)
    with pytest.raises(UmlguiError, match="COW layer"):
        images.format_ext4(tmp_path / "a.cow")


def test_mkfs_missing_says_which_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(images, "SYSTEM_TOOL_DIRS", ())
    with pytest.raises(NotFoundError, match="mkfs.ext4") as caught:
        images.create_image(tmp_path / "a.img", "4M")
    assert "apt-get install e2fsprogs" in caught.value.fix
    assert not (tmp_path / "a.img").exists()


def test_mkfs_found_outside_path(tmp_path, monkeypatch):
    """Ordinary Debian users have no /usr/sbin on PATH; we still find mkfs.ext4."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    images.create_image(tmp_path / "a.img", "4M")
    assert images.inspect(tmp_path / "a.img").filesystem == "ext4"


def test_create_image_on_full_filesystem(small_tmpfs):
    with pytest.raises(UmlguiError) as caught:
        images.create_image(small_tmpfs / "big.img", "64M", root_dir=_big_tree(small_tmpfs))
    assert f"filesystem at {small_tmpfs} is full" in caught.value.problem
    assert "free space" in caught.value.fix
    assert not (small_tmpfs / "big.img").exists()


def _big_tree(mount):
    tree = mount.parent / "tree"
    tree.mkdir()
    (tree / "blob").write_bytes(os.urandom(3 * MiB))
    return tree


def test_create_cow_on_full_filesystem(small_tmpfs, tmp_path):
    base = images.create_sparse(tmp_path / "base.img", "4M")
    (small_tmpfs / "filler").write_bytes(b"")
    with open(small_tmpfs / "filler", "wb") as filler, pytest.raises(OSError):
        while True:
            filler.write(bytes(64 * 1024))
            filler.flush()
    with pytest.raises(UmlguiError, match=f"filesystem at {small_tmpfs} is full"):
        cow.create_cow(small_tmpfs / "a.cow", base)
    assert not (small_tmpfs / "a.cow").exists()


# ------------------------------------------------------------------------------- inspect

def test_inspect_plain_ext4(tmp_path):
    path = images.create_image(tmp_path / "a.img", "16M")
    info = images.inspect(path)
    assert info.apparent_size == info.guest_size == 16 * MiB
    assert 0 < info.allocated_bytes < 16 * MiB
    assert info.allocated_bytes == path.stat().st_blocks * 512
    assert info.filesystem == "ext4" and info.cow is None
    assert info.backing_chain == [] and info.backing_ok is None


@pytest.mark.parametrize("options, expected", [(["-t", "ext2"], "ext2"), (["-t", "ext3"], "ext3")])
def test_inspect_ext2_ext3(tmp_path, options, expected):
    path = images.create_sparse(tmp_path / "a.img", "8M")
    subprocess.run(["mke2fs", "-q", "-F", *options, str(path)], check=True)
    assert images.inspect(path).filesystem == expected


def test_inspect_swap(tmp_path):
    path = images.create_sparse(tmp_path / "swap.img", "4M")
    if not shutil.which("mkswap"):
        pytest.skip("mkswap not installed")
    subprocess.run(["mkswap", str(path)], check=True, capture_output=True)
    assert images.inspect(path).filesystem == "swap"


def test_inspect_cow_sees_guest_filesystem_and_chain(tmp_path):
    base = images.create_image(tmp_path / "base.img", "16M", label="base")
    cow.create_cow(tmp_path / "a.cow", base)
    info = images.inspect(tmp_path / "a.cow")
    assert info.cow.backing_file == str(base)
    assert info.backing_chain == [base] and info.backing_ok is True
    assert info.filesystem == "ext4" and info.label == "base"
    assert info.guest_size == 16 * MiB and info.cow_changed_bytes == 0
    assert info.allocated_bytes < 64 * 1024
    with cow.CowImage(tmp_path / "a.cow", writable=True) as image:
        image.write(1024, bytes(1024))           # wipe the superblock in the guest's view
    info = images.inspect(tmp_path / "a.cow")
    assert info.filesystem is None and info.cow_changed_bytes == 1024
    assert images.inspect(base).filesystem == "ext4"


def test_inspect_cow_with_bad_backing(tmp_path):
    base = images.create_sparse(tmp_path / "base.img", "2M")
    header = cow.create_cow(tmp_path / "a.cow", base)
    os.utime(base, (header.mtime - 50, header.mtime - 50))
    info = images.inspect(tmp_path / "a.cow")
    assert info.backing_ok is False and "touch -d" in info.backing_problem
    base.unlink()
    info = images.inspect(tmp_path / "a.cow")
    assert info.backing_ok is False and "does not exist" in info.backing_problem
    assert info.backing_chain == [base]


def test_inspect_missing_and_directory(tmp_path):
    with pytest.raises(NotFoundError):
        images.inspect(tmp_path / "absent.img")
    with pytest.raises(UmlguiError, match="directory"):
        images.inspect(tmp_path)


# ------------------------------------------------------------------------ real UML boot

INIT_SCRIPT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "written by the guest" > /marker
/bin/busybox sync
/bin/busybox poweroff -f
"""


@pytest.mark.uml
def test_linux_uml_boots_on_our_cow(tmp_path):
    root = tmp_path / "root"
    for directory in ("bin", "proc", "dev"):
        (root / directory).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    (root / "init").write_text(INIT_SCRIPT)
    (root / "init").chmod(0o755)
    base = images.create_image(tmp_path / "base.img", "16M", root_dir=root)
    base_sum = sha256(base)
    cow.create_cow(tmp_path / "disk.cow", base)
    uml_dir = tmp_path / "uml"
    uml_dir.mkdir()
    process = subprocess.Popen(
        ["linux.uml", f"ubd0={tmp_path / 'disk.cow'},{base}", "root=/dev/ubda", "rw",
         "init=/init", "con=null", "ssl=null", "con0=fd:0,fd:1", "mem=64M", "umid=T",
         f"uml_dir={uml_dir}/", "quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        cwd=tmp_path, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=60)
    finally:
        kill_tree(process.pid, f"uml_dir={uml_dir}/")     # UML's helpers can outlive the kernel
        process.wait()
    assert process.returncode == 0, output.decode(errors="replace")[-2000:]
    assert sha256(base) == base_sum
    info = images.inspect(tmp_path / "disk.cow")
    assert info.backing_ok and info.cow_changed_bytes > 0
    cow.merge(tmp_path / "disk.cow", tmp_path / "merged.img")
    assert debugfs_cat(tmp_path / "merged.img", "/marker") == "written by the guest\n"
