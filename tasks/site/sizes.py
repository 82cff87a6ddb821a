"""Disk and memory sizes as an operator writes them: 512k, 400m, 2g, 1t.

One spelling only: digits followed by one of k, m, g or t (either case), each a power of
1024 as in NetBSD's makefs and Xen's xl; plain digits (or an int) count bytes. Suffixes
such as "mb" or "MiB" are refused rather than guessed at, so a size always means one thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SECTOR = 512
KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB}
EXPECTED = "a size such as 256m or 1g"

# The largest size of any image: what ext2 with 4 KiB blocks addresses, far beyond a domU's.
MAX_SIZE = 16 * TiB


@dataclass(frozen=True)
class FsSizes:
    """The sizes of image one file system can be made at, with domus's makefs and mke2fs
    parameters (found by trying the tools on an empty tree)."""

    minimum: int
    maximum: int
    block: int  # the size must be a whole number of these


FS_SIZES = {
    # makefs -t ffs -o version=1: 8 KiB blocks of 1 KiB fragments; it rounds the size up to
    # whole blocks and then refuses it as over the maximum; 40k is "minimum size of 40"
    # fragments, too small once the superblock's cylinder group is laid out. FFSv1 block
    # addresses are 32-bit signed counts of 1 KiB fragments: 2 TiB, less its last block.
    "ffs": FsSizes(minimum=48 * KiB, maximum=2 * TiB - 8 * KiB, block=8 * KiB),
    # mke2fs with 1 KiB blocks below 64m refuses fewer than 60 blocks; above, 4 KiB blocks,
    # counted in 32 bits.
    "ext2fs": FsSizes(minimum=60 * KiB, maximum=16 * TiB - 4 * KiB, block=SECTOR),
}

SIZE_PATTERN = re.compile(r"([0-9]+)([kmgt]?)", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes in `text`: a positive whole number of 512-byte sectors.

    Raises ValueError with a message that says what is expected.
    """
    # bool is an int to Python, but `size: yes` is never meant as one byte
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise ValueError(f"expected {EXPECTED}, got {text!r}")
    if isinstance(text, int):
        size = text
    else:
        match = SIZE_PATTERN.fullmatch(text)
        if match is None:
            raise ValueError(f"expected {EXPECTED}, got {text!r}")
        size = int(match[1]) * UNITS[match[2].lower()]
    if size <= 0:
        raise ValueError(f"expected a size greater than 0, got {text!r}")
    if size > MAX_SIZE:
        raise ValueError(f"expected a size of at most {format_size(MAX_SIZE)}, got {text!r}")
    # images are written and addressed in whole sectors (cgd encrypts each one on its own)
    if size % SECTOR:
        raise ValueError(
            f"expected a multiple of 512 bytes (a bare number counts bytes; "
            f"write 400m for 400 MiB), got {text!r}"
        )
    return size


def format_size(size: int) -> str:
    """`size` bytes in the largest unit that divides it exactly: 419430400 -> "400m"."""
    if size < 0:
        raise ValueError(f"expected a size of 0 or more bytes, got {size}")
    if size == 0:
        return "0"
    for unit in "tgmk":
        if size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]}{unit}"
    return str(size)
