"""Copying an image with its holes: only the data a file system allocated is read and written.

Where the file system can share blocks (copy_file_range on btrfs or XFS), the copy costs
almost nothing; elsewhere it costs the image's allocated size, not its apparent size.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

from tasks.images.sparse import punch_zeros

_CHUNK = 8 << 20


def _data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    if not hasattr(os, "SEEK_DATA"):
        yield 0, size
        return
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:  # nothing but a hole up to the end
                return
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        offset = end


def _copy_range(source: int, dest: int, offset: int, length: int) -> None:
    while length > 0:
        count = min(length, _CHUNK)
        if hasattr(os, "copy_file_range"):
            done = os.copy_file_range(source, dest, count, offset, offset)
        else:
            done = os.pwrite(dest, os.pread(source, count, offset), offset)
        if done == 0:
            raise OSError(errno.EIO, "short copy")
        offset += done
        length -= done


def copy_sparse(source: Path, dest: Path) -> None:
    with open(source, "rb") as src, open(dest, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        for start, end in _data_extents(src.fileno(), size):
            _copy_range(src.fileno(), dst.fileno(), start, end - start)
        dst.truncate(size)
    if not hasattr(os, "SEEK_DATA"):
        punch_zeros(dest)
