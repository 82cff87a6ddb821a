"""Sparse images: makefs writes every block, so runs of zeros are punched out afterwards.

The same pass starts the write-back of every block that holds data, so the fsync that
publishing does next finds little left to write.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable
from pathlib import Path

_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)
_PUNCH_HOLE_KEEP_SIZE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
_SYNC_FILE_RANGE_WRITE = 0x02


def _linux_calls() -> tuple[Callable[..., int], Callable[..., int]] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fallocate, sync_file_range = libc.fallocate, libc.sync_file_range
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return fallocate, sync_file_range


def punch_zeros(path: Path) -> None:
    """Free the blocks of every all-zero MiB; the file's bytes and size stay the same."""
    calls = _linux_calls()
    if calls is None:
        return
    fallocate, sync_file_range = calls
    buffer = bytearray(_CHUNK)
    with open(path, "r+b") as image:
        fd, offset = image.fileno(), 0
        while (count := image.readinto(buffer)) > 0:
            if count == _CHUNK and buffer == _ZEROS:
                if fallocate(fd, _PUNCH_HOLE_KEEP_SIZE, offset, _CHUNK) != 0:
                    return  # the file system cannot punch holes: the image stays dense
            else:
                sync_file_range(fd, offset, count, _SYNC_FILE_RANGE_WRITE)
            offset += count
