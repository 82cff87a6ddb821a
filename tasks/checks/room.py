"""Room left in a local.img: a domU whose image runs out of inodes or blocks fails its
writes (ENOSPC) however much of the other is free. Below a tenth free of either is a
warning, not a failure: the image is sound, the domU is about to suffer.

FFS from the superblock's summary (fs_old_cstotal, what df reads), ext2fs from the
superblock's counts (s_free_inodes_count, s_free_blocks_count less s_r_blocks_count).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from tasks.checks import Finding
from tasks.formats.superblocks import EXT2_SUPERBLOCK
from tasks.images.ffs_reader import FfsError, FfsImage

CHECK = "room for the domU's files (a tenth free)"
LOW = 10  # percent free of inodes or of blocks below which the check warns
# struct ext2fs: s_inodes_count, s_blocks_count, s_r_blocks_count, s_free_blocks_count,
# s_free_inodes_count, s_first_data_block, s_log_block_size
_EXT2_COUNTS = "<7I"


@dataclass(frozen=True)
class Room:
    free_inodes: int
    inodes: int
    free_bytes: int
    bytes: int


def ffs_room(image: Path) -> Room:
    with FfsImage(image) as ffs:
        return Room(ffs.free_inodes(), ffs.params.inodes, ffs.free_bytes(), ffs.data_bytes())


def ext2_room(image: Path) -> Room:
    with open(image, "rb") as f:
        f.seek(EXT2_SUPERBLOCK)
        head = f.read(struct.calcsize(_EXT2_COUNTS))
    inodes, blocks, reserved, free_blocks, free_inodes, first, log = struct.unpack(
        _EXT2_COUNTS, head
    )
    block = 1024 << min(log, 16)
    return Room(
        free_inodes,
        inodes,
        max(free_blocks - reserved, 0) * block,
        max(blocks - first - reserved, 0) * block,
    )


def room_problem(room: Room) -> str | None:
    low = []
    if room.free_inodes * 100 < room.inodes * LOW:
        low.append(f"{room.free_inodes} of {room.inodes} inodes")
    if room.free_bytes * 100 < room.bytes * LOW:
        low.append(f"{room.free_bytes >> 10} of {room.bytes >> 10} KiB")
    if not low:
        return None
    return (
        f"only {' and '.join(low)} free: the domU's writes fail (ENOSPC) once either is "
        "gone; raise local.size (or lower local.density for more inodes) and run "
        "`./domus build`, which makes it anew with its files kept, or free space in it"
    )


def room_finding(image: Path, fs: str, subject: str) -> list[Finding]:
    """The room check of a plain local.img; none when it cannot be read (the file-system
    checks say why)."""
    try:
        room = ffs_room(image) if fs == "ffs" else ext2_room(image)
    except (FfsError, OSError, struct.error):
        return []
    return [Finding(subject, CHECK, room_problem(room), warning=True)]
