"""Writing a Tree into a disk image of the chosen file system."""

from __future__ import annotations

import errno
from pathlib import Path

from tasks.images.ext2fs import write_ext2fs
from tasks.images.ffs import write_ffs
from tasks.images.publish import host_full
from tasks.images.tree import Tree

WRITERS = {"ffs": write_ffs, "ext2fs": write_ext2fs}


def write_image(
    tree: Tree, fs: str, size: int, dest: Path, *, room: bool = False, density: int | None = None
) -> None:
    """`room`: a domU writes the image (its local.img), so it gets the inodes newfs would
    give it, or one per `density` bytes; otherwise as few as its files need."""
    try:
        WRITERS[fs](tree, size, dest, room=room, density=density)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise host_full(dest, size) or error from None
        raise
