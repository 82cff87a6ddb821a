"""A copy of an image to change instead of the image: shared blocks where the host's file
system can share them (a reflink, as `cp --reflink=auto`), else a sparse copy; and the room
on the host that either needs, checked before anything is written."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from tasks.images.sparse_copy import copy_sparse
from tasks.run.errors import DomusError
from tasks.site.sizes import format_size

FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS}


def free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def allocated_bytes(path: Path) -> int:
    return path.stat().st_blocks * 512


def require_room(directory: Path, need: int, what: str) -> None:
    """A DomusError naming what needs the room, how much, and how much there is."""
    free = free_bytes(directory)
    if free < need:
        raise DomusError(
            f"{what} needs {format_size(need)} free in {directory}, which has "
            f"{format_size(free)}; nothing was changed",
            hint=f"free {format_size(need - free)} or more in {directory} (old "
            "NAME-YYYYmmddTHHMMSS.img backups of reprovisioned images?), then run again",
        )


def reflink(source: Path, dest: Path) -> bool:
    """Whether dest now shares source's blocks (dest is created 0600 either way)."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with open(source, "rb") as src:
            fcntl.ioctl(fd, FICLONE, src.fileno())
        return True
    except OSError as error:
        if error.errno in _NO_REFLINK:
            return False
        raise
    finally:
        os.close(fd)


def working_copy(image: Path, copy: Path, extra: int, what: str) -> None:
    """Copy image to copy, where `extra` bytes more are then to be written; refuses
    before copying when the host has not the room for it."""
    if reflink(image, copy):
        require_room(copy.parent, extra, what)
        return
    require_room(copy.parent, allocated_bytes(image) + extra, what)
    try:
        copy_sparse(image, copy)
    except OSError as error:
        raise DomusError(
            f"cannot copy {image} to converge it ({error.strerror}); nothing was changed",
            hint=f"free space in {copy.parent}, then run again",
        ) from None
