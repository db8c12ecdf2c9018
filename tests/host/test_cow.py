"""COW format: our reader/writer/merger against the real uml_mkcow, uml_moo and linux.uml."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
import time

import pytest

from umlgui.errors import ConfigError, NotFoundError, StateError, UmlguiError
from umlgui.host import cow
from umlgui.host.cow import (BackingMissingError, CowFormatError, CowImage, CowMismatchError,
                             MergeCancelled)

MiB = 1 << 20


@pytest.fixture(autouse=True)
def umlgui_home(tmp_path, monkeypatch):
    monkeypatch.setenv("UMLGUI_HOME", str(tmp_path / "home"))


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def make_backing(path, size=8 * MiB, seed=1):
    """A backing image with random data, zero stretches and a hole, so merges meet every case."""
    rng = random.Random(seed)
    with open(path, "wb") as file:
        file.truncate(size)
        for offset in range(0, size, 256 * 1024):
            if rng.random() < 0.6:
                file.seek(offset)
                file.write(rng.randbytes(rng.choice([512, 4096, 100_000, 256 * 1024])))
    # An old mtime, so writing the file later in the test visibly changes it.
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    return path


def scribble(image: CowImage, seed=2, writes=60):
    """Guest-like writes: whole pages, odd sectors, unaligned bytes, zeros over data, the end."""
    rng = random.Random(seed)
    size = image.size
    for _ in range(writes):
        kind = rng.random()
        if kind < 0.4:
            offset = rng.randrange(0, size // 4096) * 4096
            data = rng.randbytes(4096 * rng.randint(1, 40))
        elif kind < 0.6:
            offset = rng.randrange(0, size // 512) * 512
            data = rng.randbytes(512)
        elif kind < 0.8:
            offset = rng.randrange(0, size - 3000)
            data = rng.randbytes(rng.randint(1, 3000))
        else:
            offset = rng.randrange(0, size // 4096) * 4096
            data = bytes(8192)
        data = data[:size - offset]
        image.write(offset, data)
    image.write(size - 512, b"last sector" + bytes(501))


def run(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, check=check)


# ----------------------------------------------------------------------------- create/read

def test_create_cow_is_byte_identical_to_uml_mkcow(tmp_path):
    base = make_backing(tmp_path / "base.img")
    run("uml_mkcow", str(tmp_path / "theirs.cow"), str(base))
    ours = cow.create_cow(tmp_path / "ours.cow", base)
    theirs_bytes = (tmp_path / "theirs.cow").read_bytes()
    ours_bytes = (tmp_path / "ours.cow").read_bytes()
    assert len(ours_bytes) == len(theirs_bytes) == ours.data_offset + ours.size
    path_end = 32 + len(str(base)) + 1         # bytes after the path's NUL are undefined
    assert ours_bytes[:path_end] == theirs_bytes[:path_end]
    assert ours_bytes[4128:] == theirs_bytes[4128:]
    assert (tmp_path / "ours.cow").stat().st_mode & 0o777 == 0o644 & ~_umask()
    assert (tmp_path / "ours.cow").stat().st_blocks * 512 < 64 * 1024      # sparse


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_read_header_of_uml_mkcow_file_matches_worked_example(tmp_path):
    base = tmp_path / "base.img"
    base.write_bytes(b"")
    os.truncate(base, 64 * MiB)
    run("uml_mkcow", str(tmp_path / "t.cow"), str(base))
    header = cow.read_header(tmp_path / "t.cow")
    assert header.version == 3 and not header.broken_layout
    assert header.backing_file == str(base)
    assert header.size == 64 * MiB and header.mtime == int(base.stat().st_mtime)
    assert (header.sectorsize, header.alignment) == (512, 4096)
    assert (header.bitmap_offset, header.bitmap_len, header.data_offset) == (8192, 16384, 24576)
    assert header.path == str(tmp_path / "t.cow")


def test_relative_backing_path_is_stored_like_uml_mkcow(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    make_backing(real / "base.img", MiB)
    (tmp_path / "link").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    run("uml_mkcow", "theirs.cow", "link/base.img")
    ours = cow.create_cow("ours.cow", "link/base.img")
    assert ours.backing_file == cow.read_header("theirs.cow").backing_file == str(real / "base.img")
    monkeypatch.chdir(real)
    assert cow.create_cow(tmp_path / "plain.cow", "base.img").backing_file == str(real / "base.img")


def test_create_refuses_existing_cow_unless_forced(tmp_path):
    base = make_backing(tmp_path / "base.img", MiB)
    target = tmp_path / "x.cow"
    target.write_bytes(b"precious" * 100_000)
    with pytest.raises(UmlguiError, match="already exists") as caught:
        cow.create_cow(target, base)
    assert caught.value.fix
    assert target.read_bytes().startswith(b"precious")
    header = cow.create_cow(target, base, force=True)
    assert target.stat().st_size == header.data_offset + header.size
    assert cow.read_header(target) == header


def test_create_with_missing_backing_or_cow_directory(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        cow.create_cow(tmp_path / "x.cow", tmp_path / "nope.img")
    base = make_backing(tmp_path / "base.img", MiB)
    with pytest.raises(NotFoundError):
        cow.create_cow(tmp_path / "missing-dir" / "x.cow", base)
    assert not (tmp_path / "x.cow").exists()


def test_create_refuses_directory_and_cow_as_backing(tmp_path):
    with pytest.raises(UmlguiError, match="directory"):
        cow.create_cow(tmp_path / "x.cow", tmp_path)
    base = make_backing(tmp_path / "base.img", MiB)
    cow.create_cow(tmp_path / "a.cow", base)
    with pytest.raises(ConfigError, match="itself a COW file"):
        cow.create_cow(tmp_path / "b.cow", tmp_path / "a.cow")


def test_read_header_of_non_cow_missing_and_directory(tmp_path):
    plain = make_backing(tmp_path / "plain.img", MiB)
    assert cow.read_header(plain) is None
    (tmp_path / "tiny").write_bytes(b"OO")
    assert cow.read_header(tmp_path / "tiny") is None
    with pytest.raises(NotFoundError):
        cow.read_header(tmp_path / "absent.cow")
    with pytest.raises(UmlguiError, match="directory"):
        cow.read_header(tmp_path)


def test_damaged_headers_raise_format_errors(tmp_path):
    cut = tmp_path / "cut.cow"
    cut.write_bytes(struct.pack(">II", cow.COW_MAGIC, 3) + bytes(100))
    with pytest.raises(CowFormatError, match="cut short"):
        cow.read_header(cut)
    unknown = tmp_path / "v9.cow"
    unknown.write_bytes(struct.pack(">II", cow.COW_MAGIC, 9) + bytes(5000))
    with pytest.raises(CowFormatError, match="unknown version 9"):
        cow.read_header(unknown)
    no_backing = tmp_path / "nob.cow"
    no_backing.write_bytes(struct.pack(">II", cow.COW_MAGIC, 3) + bytes(5000))
    with pytest.raises(CowFormatError):
        cow.read_header(no_backing)


def _craft(path, version, backing, size, mtime, broken=False):
    name = os.fsencode(str(backing))
    if version == 1:
        raw = struct.pack("<ii256sIQi", cow.COW_MAGIC, 1, name, mtime, size, 512)
    elif version == 2:
        raw = struct.pack(">II4096sIQi", cow.COW_MAGIC, 2, name, mtime, size, 512)
    elif broken:
        raw = struct.pack(">III4xQIII4096s4x", cow.COW_MAGIC, 3, mtime, size, 512, 512, 0, name)
    else:
        raw = struct.pack(">IIIQIII4096s", cow.COW_MAGIC, 3, mtime, size, 512, 512, 0, name)
    with open(path, "wb") as file:
        file.write(raw)
    header = cow.read_header(path)
    os.truncate(path, header.data_offset + size)
    return header


@pytest.mark.parametrize("version, broken, bitmap_offset, data_offset", [
    (1, False, 280, 16896), (2, False, 4120, 20992), (3, False, 4608, 20992), (3, True, 4608, 20992),
])
def test_old_header_layouts_match_spec(tmp_path, version, broken, bitmap_offset, data_offset):
    base = tmp_path / "base.img"
    base.write_bytes(b"")
    os.truncate(base, 64 * MiB)
    header = _craft(tmp_path / "old.cow", version, base, 64 * MiB, 1704164645, broken)
    assert (header.version, header.broken_layout) == (version, broken)
    assert header.backing_file == str(base)
    assert (header.size, header.mtime, header.sectorsize) == (64 * MiB, 1704164645, 512)
    assert (header.bitmap_offset, header.bitmap_len, header.data_offset) == \
        (bitmap_offset, 16384, data_offset)


@pytest.mark.parametrize("version, broken", [(1, False), (2, False), (3, True)])
def test_old_versions_merge_like_uml_moo(tmp_path, version, broken):
    base = make_backing(tmp_path / "base.img", 2 * MiB)
    _craft(tmp_path / "old.cow", version, base, 2 * MiB, int(base.stat().st_mtime), broken)
    with CowImage(tmp_path / "old.cow", writable=True) as image:
        scribble(image, seed=version, writes=15)
    run("uml_moo", str(tmp_path / "old.cow"), str(tmp_path / "theirs.img"))
    cow.merge(tmp_path / "old.cow", tmp_path / "ours.img")
    assert sha256(tmp_path / "ours.img") == sha256(tmp_path / "theirs.img")


# --------------------------------------------------------------------------- check_backing

def test_check_backing_accepts_matching_file(tmp_path):
    base = make_backing(tmp_path / "base.img", MiB)
    header = cow.create_cow(tmp_path / "a.cow", base)
    assert cow.check_backing(header) == base
    copy = tmp_path / "copy.img"
    shutil.copy2(base, copy)
    assert cow.check_backing(header, copy) == copy


def test_check_backing_size_mismatch(tmp_path):
    base = make_backing(tmp_path / "base.img", MiB)
    header = cow.create_cow(tmp_path / "a.cow", base)
    mtime = base.stat().st_mtime
    with open(base, "ab") as file:
        file.write(b"x" * 512)
    os.utime(base, (mtime, mtime))
    with pytest.raises(CowMismatchError) as caught:
        cow.check_backing(header)
    error = caught.value
    assert str(base) in error.problem and str(tmp_path / "a.cow") in error.problem
    assert f"size {MiB + 512}" in error.problem and str(MiB) in error.problem
    assert "re-create the COW layer" in error.fix
    assert (error.header_size, error.actual_size) == (MiB, MiB + 512)


def test_check_backing_mtime_mismatch_suggests_touch(tmp_path):
    base = make_backing(tmp_path / "base.img", MiB)
    header = cow.create_cow(tmp_path / "a.cow", base)
    os.utime(base, (header.mtime + 100, header.mtime + 100))
    with pytest.raises(CowMismatchError) as caught:
        cow.check_backing(header)
    assert str(header.mtime + 100) in caught.value.problem
    assert f"touch -d @{header.mtime} {base}" in caught.value.fix
    # and UML's own tool agrees that it is a mismatch, and that the fix works
    assert run("uml_moo", str(tmp_path / "a.cow"), str(tmp_path / "m.img"), check=False).returncode
    run("sh", "-c", caught.value.fix.split("with: ")[1].split(" ;")[0])
    assert cow.check_backing(header) == base


def test_check_backing_missing_file(tmp_path):
    base = make_backing(tmp_path / "base.img", MiB)
    header = cow.create_cow(tmp_path / "a.cow", base)
    base.unlink()
    with pytest.raises(BackingMissingError, match="does not exist") as caught:
        cow.check_backing(header)
    assert isinstance(caught.value, NotFoundError) and caught.value.fix
    with pytest.raises(CowMismatchError, match="directory"):
        cow.check_backing(header, tmp_path)


# ------------------------------------------------------------------------------ CowImage

def test_cowimage_bitmap_bits_follow_uml(tmp_path):
    base = make_backing(tmp_path / "base.img", 2049 * 512)
    cow.create_cow(tmp_path / "a.cow", base)
    with CowImage(tmp_path / "a.cow", writable=True) as image:
        for sector in (1, 9, 2047, 2048):
            image.write(sector * 512, bytes([sector % 251 + 1]) * 512)
        assert image.sector_in_cow(9) and not image.sector_in_cow(10)
        assert image.changed_sectors() == 4
    header = cow.read_header(tmp_path / "a.cow")
    with open(tmp_path / "a.cow", "rb") as file:
        file.seek(header.bitmap_offset)
        bitmap = file.read(header.bitmap_len)
    assert (bitmap[0], bitmap[1], bitmap[255], bitmap[256]) == (0x02, 0x02, 0x80, 0x01)
    assert bitmap.count(0) == len(bitmap) - 4


def test_cowimage_reads_the_guest_view(tmp_path):
    base = make_backing(tmp_path / "base.img", MiB)
    cow.create_cow(tmp_path / "a.cow", base)
    expected = bytearray(base.read_bytes())
    with CowImage(tmp_path / "a.cow", writable=True) as image:
        for offset, data in [(100, b"hello"), (511, b"ab"), (4096, b"z" * 9000), (MiB - 3, b"end")]:
            image.write(offset, data)
            expected[offset:offset + len(data)] = data
        assert image.read(0, MiB) == bytes(expected)
        assert image.read(505, 20) == bytes(expected[505:525])
        assert image.read(MiB - 2, 100) == b"nd"
        with pytest.raises(ValueError):
            image.write(MiB - 1, b"xx")
    assert base.read_bytes() != bytes(expected)            # the backing file is untouched
    with CowImage(tmp_path / "a.cow") as reader, pytest.raises(StateError):
        reader.write(0, b"x")


def test_cowimage_refuses_plain_image(tmp_path):
    base = make_backing(tmp_path / "base.img", MiB)
    with pytest.raises(UmlguiError, match="not a UML COW file"):
        CowImage(base)


# --------------------------------------------------------------------------------- merge

@pytest.fixture
def written_cow(tmp_path):
    base = make_backing(tmp_path / "base.img", 8 * MiB)
    cow.create_cow(tmp_path / "a.cow", base)
    with CowImage(tmp_path / "a.cow", writable=True) as image:
        scribble(image)
        guest_view = hashlib.sha256(image.read(0, image.size)).hexdigest()
    return tmp_path / "a.cow", base, guest_view


def test_merge_to_new_image_equals_uml_moo(written_cow, tmp_path):
    cow_file, base, guest_view = written_cow
    base_before = sha256(base)
    run("uml_moo", str(cow_file), str(tmp_path / "theirs.img"))
    seen = []
    result = cow.merge(cow_file, tmp_path / "ours.img", progress=lambda d, t: seen.append((d, t)))
    assert result == tmp_path / "ours.img"
    assert sha256(tmp_path / "ours.img") == sha256(tmp_path / "theirs.img") == guest_view
    assert sha256(base) == base_before
    assert seen[-1] == (8 * MiB, 8 * MiB)
    assert (tmp_path / "ours.img").stat().st_blocks * 512 < 8 * MiB     # zeros left as holes


def test_merge_in_place_equals_uml_moo_d(written_cow, tmp_path):
    cow_file, base, guest_view = written_cow
    theirs = tmp_path / "theirs-base.img"
    shutil.copy2(base, theirs)               # same size and mtime, so the COW fits both
    run("uml_moo", "-d", "-b", str(theirs), str(cow_file))
    assert cow.merge(cow_file) == base
    assert sha256(base) == sha256(theirs) == guest_view
    with pytest.raises(CowMismatchError):    # the merge invalidated the COW, as documented
        cow.check_backing(cow.read_header(cow_file))


def test_merge_with_backing_override(written_cow, tmp_path):
    cow_file, base, guest_view = written_cow
    moved = tmp_path / "moved.img"
    os.rename(base, moved)
    with pytest.raises(BackingMissingError):
        cow.merge(cow_file, tmp_path / "x.img")
    assert not (tmp_path / "x.img").exists()
    cow.merge(cow_file, tmp_path / "out.img", backing=moved)
    assert sha256(tmp_path / "out.img") == guest_view


def test_merge_cancel_removes_new_image(written_cow, tmp_path):
    cow_file, _, _ = written_cow
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(MergeCancelled):
        cow.merge(cow_file, tmp_path / "out.img", cancel=cancel)
    assert not (tmp_path / "out.img").exists()


def test_merge_in_place_cancel_says_how_to_finish(written_cow):
    cow_file, base, guest_view = written_cow
    header = cow.read_header(cow_file)
    with pytest.raises(MergeCancelled) as caught:
        cow.merge(cow_file, cancel=lambda: True)
    assert f"touch -d @{header.mtime} {base}" in caught.value.fix
    os.utime(base, (header.mtime, header.mtime))
    cow.merge(cow_file)
    assert sha256(base) == guest_view


def test_merge_refuses_existing_output_and_plain_files(written_cow, tmp_path):
    cow_file, base, _ = written_cow
    before = sha256(base)
    with pytest.raises(UmlguiError, match="already exists"):
        cow.merge(cow_file, base)
    assert sha256(base) == before
    with pytest.raises(UmlguiError, match="not a UML COW file"):
        cow.merge(base, tmp_path / "out.img")
    with pytest.raises(NotFoundError):
        cow.merge(tmp_path / "absent.cow", tmp_path / "out.img")


def test_merge_refuses_disk_locked_by_a_running_machine(written_cow, tmp_path):
    cow_file, _, _ = written_cow
    # Hold the write lock UML holds on a COW file it has open, from another process.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl,sys,time; f=open(sys.argv[1],'r+b'); fcntl.lockf(f, fcntl.LOCK_EX);"
         "print('locked', flush=True); time.sleep(60)", str(cow_file)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateError, match=f"process {holder.pid}"):
            cow.merge(cow_file, tmp_path / "out.img")
        assert not (tmp_path / "out.img").exists()
        with pytest.raises(StateError):
            CowImage(cow_file, writable=True)
    finally:
        holder.kill()
        holder.wait()


def test_merge_onto_full_filesystem_names_it(written_cow, tmp_path):
    cow_file, _, _ = written_cow
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(small)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(UmlguiError) as caught:
            cow.merge(cow_file, small / "out.img")
        assert f"filesystem at {small} is full" in caught.value.problem
        assert "free space" in caught.value.fix
        assert not (small / "out.img").exists()
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_merge_speed_on_a_fragmented_cow(tmp_path):
    """A 64 MiB disk with every other 4 KiB page written must merge in well under a second."""
    size = 64 * MiB
    base = tmp_path / "base.img"
    with open(base, "wb") as file:
        file.write(b"\x11" * size)
    header = cow.create_cow(tmp_path / "a.cow", base)
    with open(tmp_path / "a.cow", "r+b") as file:
        file.seek(header.bitmap_offset)
        file.write(b"\xff\x00" * (header.bitmap_len // 2))
        file.seek(header.data_offset)
        file.write(b"\x22" * size)
    started = time.monotonic()
    cow.merge(tmp_path / "a.cow", tmp_path / "out.img")
    assert time.monotonic() - started < 3
    with open(tmp_path / "out.img", "rb") as file:
        assert file.read(8192) == b"\x22" * 4096 + b"\x11" * 4096
        file.seek(size - 8192)
        assert file.read() == b"\x22" * 4096 + b"\x11" * 4096


def test_in_place_merge_refuses_backing_shared_by_a_running_machine(written_cow):
    cow_file, base, _ = written_cow
    before = sha256(base)
    # UML holds a read lock on every backing file it uses.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl,sys,time; f=open(sys.argv[1],'rb'); fcntl.lockf(f, fcntl.LOCK_SH);"
         "print('locked', flush=True); time.sleep(60)", str(base)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateError, match="in use") as caught:
            cow.merge(cow_file)
        assert "stop the machine" in caught.value.fix
        assert sha256(base) == before
    finally:
        holder.kill()
        holder.wait()
