"""Where NetBSD's file systems keep their superblocks and magic numbers, and which file
system an image holds (sys/ufs/ffs/fs.h, sys/ufs/ext2fs/ext2fs.h)."""

from __future__ import annotations

from pathlib import Path

# ext2fs: one superblock at SBOFF, s_magic 56 bytes in, little-endian
EXT2_SUPERBLOCK = 1024  # SBOFF
EXT2_MAGIC_AT = 56
EXT2_MAGIC = 0xEF53

# FFS: makefs and newfs put a UFS1 superblock at 8 KiB and a UFS2 one at 64 KiB; NetBSD
# looks at each SBLOCKSEARCH offset, in this order. fs_magic is the last field of struct fs.
SBLOCK_UFS1, SBLOCK_UFS2, SBLOCK_FLOPPY, SBLOCK_PIGGY = 8192, 65536, 0, 262144
SBLOCKSEARCH = (SBLOCK_UFS2, SBLOCK_UFS1, SBLOCK_FLOPPY, SBLOCK_PIGGY)
SBLOCKSIZE = 8192
FS_MAGIC_AT = 1372
UFS1_MAGIC, UFS2_MAGIC = 0x011954, 0x19540119
FFS_MAGICS = (UFS1_MAGIC, UFS2_MAGIC)
BYTE_ORDERS = ("little", "big")  # an FFS may be in either; fs_magic tells which


def ffs_magic(data: bytes, superblock: int, order: str) -> int | None:
    """fs_magic of the superblock at byte `superblock` of `data`, read in `order`."""
    at = superblock + FS_MAGIC_AT
    field = data[at : at + 4]
    return int.from_bytes(field, order) if len(field) == 4 else None  # type: ignore[arg-type]


def has_ffs_superblock(data: bytes, superblocks: tuple[int, ...] = SBLOCKSEARCH) -> bool:
    """True if an FFS magic number is at one of `superblocks`, in either byte order: what
    cgdconfig's verify_ffs checks of a decrypted disk."""
    return any(
        ffs_magic(data, superblock, order) in FFS_MAGICS
        for superblock in superblocks
        for order in BYTE_ORDERS
    )


def detect_fs(image: Path) -> str | None:
    """'ffs', 'ext2fs', or None when neither superblock is there."""
    with open(image, "rb") as f:
        head = f.read(SBLOCK_UFS2 + FS_MAGIC_AT + 4)
    at = EXT2_SUPERBLOCK + EXT2_MAGIC_AT
    if head[at : at + 2] == EXT2_MAGIC.to_bytes(2, "little"):
        return "ext2fs"
    if has_ffs_superblock(head, (SBLOCK_UFS1, SBLOCK_UFS2)):
        return "ffs"
    return None
