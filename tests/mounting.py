"""The tests' own loop mounts and views of the system, independent of tasks.blockdev.

What a test plants in an image, and what it checks afterwards, goes through these plain
losetup and mount calls, so a bug in domus' block-device layer cannot hide itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tasks.formats.fsck_rules import ext2_superblocks, without_linux_mount_marks
from tasks.formats.superblocks import EXT2_SUPERBLOCK

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("losetup") is None,
    reason="needs root and loop devices (CI runs as root)",
)


@contextmanager
def loop_mounted(image: Path, readonly: bool = False) -> Iterator[Path]:
    device = subprocess.run(
        ["losetup", "--find", "--show", *(["-r"] if readonly else []), str(image)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    top = Path(tempfile.mkdtemp(prefix="domus-test-mnt-"))
    try:
        subprocess.run(
            ["mount", "-t", "ext2", "-r" if readonly else "-w", device, str(top)], check=True
        )
        try:
            yield top
        finally:
            subprocess.run(["umount", str(top)], check=True)
    finally:
        subprocess.run(["losetup", "-d", device], check=True)
        top.rmdir()
    if not readonly:
        as_if_written_by_netbsd(image)


def as_if_written_by_netbsd(image: Path) -> None:
    """What a test plants stands for what a domU writes, through NetBSD's kernel, which
    leaves no mount marks: take back the two fields Linux wrote into the superblock."""
    with open(image, "r+b") as f:
        primary, alternate = ext2_superblocks(f.read(64 << 20))
        if alternate is not None:
            f.seek(EXT2_SUPERBLOCK)
            f.write(without_linux_mount_marks(primary, alternate))


@dataclass(frozen=True)
class Meta:
    kind: str
    sha: str
    uid: int
    gid: int
    mode: int
    mtime_ns: int


def snapshot(top: Path) -> dict[str, Meta]:
    """Every file and link below `top` (directories change mtime when entries are added)."""
    found = {}
    for directory, dirs, files in os.walk(top):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            path = Path(directory, name)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                kind, sha = "link", os.readlink(path)
            else:
                kind, sha = "file", hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(top))] = Meta(
                kind, sha, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime_ns
            )
    return found


def loops_under(directory: Path) -> list[str]:
    """Loop devices whose backing file lies below `directory`."""
    listing = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
        capture_output=True,
        text=True,
    ).stdout
    prefix = str(directory.resolve())
    return [
        line.split()[0]
        for line in listing.splitlines()
        if len(line.split()) > 1 and line.split(maxsplit=1)[1].startswith(prefix)
    ]


def mounts_under(directory: Path) -> list[str]:
    prefix = str(directory.resolve())
    with open("/proc/self/mounts") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]


def fsck_clean(image: Path) -> bool:
    return subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True).returncode == 0


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def release_everything_under(directory: Path) -> None:
    """After a failed test: unmount and detach what it left, so later tests start clean."""
    for mountpoint in reversed(mounts_under(directory)):
        subprocess.run(["umount", "-l", mountpoint], capture_output=True)
    for device in loops_under(directory):
        subprocess.run(["losetup", "-d", device], capture_output=True)
