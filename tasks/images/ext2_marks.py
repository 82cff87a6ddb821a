"""What Linux's ext2/ext4 driver writes into an ext2fs superblock on every mount, taken back.

Linux writes `s_last_mounted` (the mount point) and `s_kbytes_written` into the primary
superblock on every mount, even one that changes nothing, and never into the backups.
NetBSD's fsck_ext2fs compares the primary with the first backup and refuses the file
system at boot when anything but a short list of counters differs (tasks/formats/fsck_rules.py
has the rule). Both fields are informational: NetBSD reads neither, and e2fsprogs only
prints them. So after domus unmounts an image it copies the two fields back from the
backup (which mke2fs or debugfs wrote), and then holds the image to NetBSD's whole rule.

Why not the alternatives: converging through debugfs as root too would leave FFS, which
no user-space tool writes, as the only mounted case, where one mounted path serves both;
restoring the old primary bytes instead of the backup's would keep the marks an earlier
Linux mount left.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.formats.fsck_rules import (
    ext2_problem,
    ext2_superblocks,
    image_bytes,
    without_linux_mount_marks,
)
from tasks.formats.superblocks import EXT2_SUPERBLOCK
from tasks.run.errors import DomusError


def take_back_linux_mount_marks(image: Path) -> bool:
    """Make the primary superblock's Linux mount marks the first backup's; whether it wrote."""
    with image_bytes(image) as data:
        primary, alternate = ext2_superblocks(data)
    if alternate is None:
        return False  # one block group: nothing to compare with, nothing to take back
    fixed = without_linux_mount_marks(primary, alternate)
    if fixed == primary:
        return False
    fd = os.open(image, os.O_WRONLY)
    try:
        os.pwrite(fd, fixed, EXT2_SUPERBLOCK)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def require_netbsd_superblock(image: Path) -> None:
    """An ext2fs image NetBSD's fsck_ext2fs would refuse is an error, named as NetBSD names it."""
    with image_bytes(image) as data:
        problem = ext2_problem(data)
    if problem:
        raise DomusError(
            f"{image}: NetBSD's fsck_ext2fs would refuse it at boot: {problem}",
            hint="look at what else wrote to it; `e2fsck -fn` and `./domus check` show more",
        )
