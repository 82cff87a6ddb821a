"""Sparse images: makefs writes every block, so runs of zeros are punched out afterwards."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)
_PUNCH_HOLE_KEEP_SIZE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE


def _fallocate():
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fallocate = libc.fallocate
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return fallocate


def punch_zeros(path: Path) -> None:
    """Free the blocks of every all-zero MiB; the file's bytes and size stay the same."""
    fallocate = _fallocate()
    if fallocate is None:
        return
    buffer = bytearray(_CHUNK)
    with open(path, "r+b") as image:
        fd, offset = image.fileno(), 0
        while (count := image.readinto(buffer)) > 0:
            zeros = count == _CHUNK and buffer == _ZEROS
            if zeros and fallocate(fd, _PUNCH_HOLE_KEEP_SIZE, offset, _CHUNK) != 0:
                return  # the file system cannot punch holes: the image stays dense
            offset += count


def allocated_bytes(path: Path) -> int:
    return os.stat(path).st_blocks * 512
