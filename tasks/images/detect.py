"""Which file system an image holds, from its superblock's magic number."""

from __future__ import annotations

from pathlib import Path

EXT2_MAGIC_OFFSET = 1024 + 56
EXT2_MAGIC = b"\x53\xef"
# FFS superblocks: UFS1 at 8 KiB, UFS2 at 64 KiB; fs_magic is 1372 bytes in, either byte order
FFS_SUPERBLOCKS = (8192, 65536)
FFS_MAGIC_OFFSET = 1372
FFS_MAGICS = (0x011954, 0x19540119)


def detect_fs(image: Path) -> str | None:
    """'ffs', 'ext2fs', or None when neither superblock is there."""
    with open(image, "rb") as f:
        f.seek(EXT2_MAGIC_OFFSET)
        if f.read(2) == EXT2_MAGIC:
            return "ext2fs"
        for superblock in FFS_SUPERBLOCKS:
            f.seek(superblock + FFS_MAGIC_OFFSET)
            raw = f.read(4)
            if len(raw) == 4 and any(
                int.from_bytes(raw, order) in FFS_MAGICS for order in ("little", "big")
            ):
                return "ffs"
    return None
