"""What NetBSD's fsck accepts of a file system image's superblocks: its own rules, read
from its source.

- ext2fs: sbin/fsck_ext2fs/setup.c, `readsb()` and `setup()`: the primary superblock must
  equal the first alternate (the one at the start of block group 1, which has a backup
  with or without sparse_super) byte for byte over 1024 bytes, once a fixed list of fields
  has been copied over from the primary. A file system of one group is not compared.
- FFS: sbin/fsck_ffs/setup.c, `readsb()`, `cmpsblks()` and `setup()`: the superblock is
  found at the standard places, the fields of the alternate in the *last* cylinder group
  agree, the derived fields (masks, maximum file size) are what they must be, and the
  summary area and every cylinder group (its magic number) lie in the image. Left out:
  the old 4.4BSD superblock layout (`cmpsblks44`; makefs sets FS_FLAGS_UPDATED), WAPBL
  and quota2 (domus never enables them), and passes 1 to 5, which the whole-tree read
  (The Sleuth Kit) and, on NetBSD, fsck itself cover (tasks/checks/).

The rules are pure functions of the image bytes, tested on their own; the image writers,
converging and `./domus check` all hold an image to them.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.formats.superblocks import (
    BYTE_ORDERS,
    EXT2_MAGIC,
    EXT2_MAGIC_AT,
    EXT2_SUPERBLOCK,
    FFS_MAGICS,
    FS_MAGIC_AT,
    SBLOCK_UFS2,
    SBLOCKSEARCH,
    SBLOCKSIZE,
    UFS1_MAGIC,
    UFS2_MAGIC,
    ffs_magic,
)

# --- ext2fs (sys/ufs/ext2fs/ext2fs.h: struct ext2fs, little-endian on disk) ---------------

EXT2_SBSIZE = 1024  # SBSIZE: the length fsck_ext2fs compares
EXT2_INODE_MIN = 128  # sizeof(struct ext2fs_dinode)
ROCOMPAT_SPARSESUPER, ROCOMPAT_LARGEFILE = 0x0001, 0x0002
INCOMPAT_FTYPE = 0x0002
# EXT2F_INCOMPAT_SUPP and EXT2F_ROCOMPAT_SUPP of NetBSD's ext2fs.h; domus's mke2fs
# features (filetype, sparse_super, large_file) are within them
INCOMPAT_SUPPORTED = INCOMPAT_FTYPE
ROCOMPAT_SUPPORTED = ROCOMPAT_SPARSESUPER | ROCOMPAT_LARGEFILE

# (offset, length, name) of the fields readsb() copies from the primary into the alternate
# before its memcmp: these may differ; nothing else may
EXT2_COPIED = (
    (8, 4, "s_r_blocks_count"),
    (12, 4, "s_free_blocks_count"),
    (16, 4, "s_free_inodes_count"),
    (44, 4, "s_mtime"),
    (48, 4, "s_wtime"),
    (52, 2, "s_mnt_count"),
    (54, 2, "s_max_mnt_count"),
    (58, 2, "s_state"),
    (60, 2, "s_errors"),
    (64, 4, "s_lastcheck"),
    (68, 4, "s_checkinterval"),
    (80, 2, "s_def_resuid"),
    (82, 2, "s_def_resgid"),
    (90, 2, "s_block_group_nr"),
)
EXT2_ROCOMPAT = 100
# What Linux's ext2/ext4 driver writes into the primary superblock on every mount,
# even a mount and unmount that change nothing; neither is in the list above
LINUX_MOUNT_MARKS = ((136, 64, "s_last_mounted"), (376, 8, "s_kbytes_written"))
# Names for the report of a difference (the names dumpe2fs and the kernel use)
EXT2_FIELDS = (
    (0, 4, "s_inodes_count"),
    (4, 4, "s_blocks_count"),
    *EXT2_COPIED,
    (20, 4, "s_first_data_block"),
    (24, 4, "s_log_block_size"),
    (28, 4, "s_log_frag_size"),
    (32, 4, "s_blocks_per_group"),
    (36, 4, "s_frags_per_group"),
    (40, 4, "s_inodes_per_group"),
    (56, 2, "s_magic"),
    (62, 2, "s_minor_rev_level"),
    (72, 4, "s_creator_os"),
    (76, 4, "s_rev_level"),
    (84, 4, "s_first_ino"),
    (88, 2, "s_inode_size"),
    (92, 4, "s_feature_compat"),
    (96, 4, "s_feature_incompat"),
    (100, 4, "s_feature_ro_compat"),
    (104, 16, "s_uuid"),
    (120, 16, "s_volume_name"),
    *LINUX_MOUNT_MARKS,
    (200, 4, "s_algorithm_usage_bitmap"),
    (206, 2, "s_reserved_gdt_blocks"),
    (232, 4, "s_last_orphan"),
    (264, 4, "s_mkfs_time"),
)
DISAGREE = "VALUES IN SUPER BLOCK DISAGREE WITH THOSE IN FIRST ALTERNATE"


def _u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little")


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def ext2_groups(primary: bytes) -> int:
    """e2fs_ncg as readsb() computes it."""
    blocks, first, per_group = _u32(primary, 4), _u32(primary, 20), _u32(primary, 32)
    return -(-(blocks - first) // per_group) if per_group else 0


def ext2_alternate_offset(primary: bytes) -> int | None:
    """Byte offset of the first alternate superblock (block group 1), None for one group.

    readsb() reads it at file system block `1 * bpg + first_dblock`: the first block of
    group 1, which holds a backup whether or not sparse_super is on (cg_has_sb(1) is 1).
    """
    if ext2_groups(primary) <= 1:
        return None
    block_size = 1024 << _u32(primary, 24)
    return (_u32(primary, 32) + _u32(primary, 20)) * block_size


def _field_names(first: int, last: int) -> list[str]:
    names = [
        name for offset, length, name in EXT2_FIELDS if offset <= last and first < offset + length
    ]
    return names or ["unnamed"]


def differing_ranges(a: bytes, b: bytes) -> list[tuple[int, int]]:
    """[first, last] byte ranges where a and b differ."""
    ranges: list[tuple[int, int]] = []
    for index in (i for i in range(min(len(a), len(b))) if a[i] != b[i]):
        if ranges and ranges[-1][1] >= index - 8:  # one field, not byte by byte
            ranges[-1] = (ranges[-1][0], index)
        else:
            ranges.append((index, index))
    return ranges


def ext2_as_compared(primary: bytes, alternate: bytes) -> bytes:
    """The alternate as readsb() compares it: the copied fields taken from the primary."""
    compared = bytearray(alternate[:EXT2_SBSIZE])
    for offset, length, _ in EXT2_COPIED:
        compared[offset : offset + length] = primary[offset : offset + length]
    rocompat = _u32(compared, EXT2_ROCOMPAT) & ~ROCOMPAT_LARGEFILE
    rocompat |= _u32(primary, EXT2_ROCOMPAT) & ROCOMPAT_LARGEFILE
    compared[EXT2_ROCOMPAT : EXT2_ROCOMPAT + 4] = rocompat.to_bytes(4, "little")
    return bytes(compared)


def ext2_superblock_problem(primary: bytes, alternate: bytes | None) -> str | None:
    """What fsck_ext2fs -p says of these superblocks (1024 bytes each), None if it accepts.

    `alternate` is the 1024 bytes at ext2_alternate_offset(primary), None when there is
    none (one group) or the image ends before it.
    """
    if len(primary) < EXT2_SBSIZE or _u16(primary, EXT2_MAGIC_AT) != EXT2_MAGIC:
        return "BAD SUPER BLOCK: MAGIC NUMBER WRONG"
    log_bsize = _u32(primary, 24)
    if log_bsize > 2:
        return "BAD SUPER BLOCK: BAD LOG_BSIZE"
    revision, inode_size = _u32(primary, 76), _u16(primary, 88)
    if revision > 0 and (
        inode_size & (inode_size - 1)
        or inode_size < EXT2_INODE_MIN
        or inode_size > (1024 << log_bsize)
    ):
        return "BAD SUPER BLOCK: BAD INODE_SIZE"
    if ext2_groups(primary) > 1:
        if alternate is None or len(alternate) < EXT2_SBSIZE:
            return "the first alternate superblock (block group 1) lies beyond the image"
        if revision > 0 and (
            _u32(primary, 96) & ~INCOMPAT_SUPPORTED or _u32(primary, 100) & ~ROCOMPAT_SUPPORTED
        ):
            return (
                f"BAD SUPER BLOCK: INCOMPATIBLE FEATURE BITS IN SUPER BLOCK (incompat "
                f"{_u32(primary, 96):#x}, ro_compat {_u32(primary, 100):#x}; NetBSD supports "
                f"{INCOMPAT_SUPPORTED:#x} and {ROCOMPAT_SUPPORTED:#x})"
            )
        compared = ext2_as_compared(primary, alternate)
        if compared != primary[:EXT2_SBSIZE]:
            where = [
                f"bytes {first}-{last} ({', '.join(_field_names(first, last))})"
                for first, last in differing_ranges(primary[:EXT2_SBSIZE], compared)
            ]
            return f"BAD SUPER BLOCK: {DISAGREE}: {'; '.join(where)}"
    if _u32(primary, 8) > _u32(primary, 4):
        return f"IMPOSSIBLE RESERVED BLOCK COUNT={_u32(primary, 8)} IN SUPERBLOCK"
    if _u32(primary, 32) != _u32(primary, 36):
        return f"WRONG FPG={_u32(primary, 36)} (BPG={_u32(primary, 32)}) IN SUPERBLOCK"
    return None


def ext2_superblocks(data: bytes | mmap.mmap) -> tuple[bytes, bytes | None]:
    """The primary superblock and the first alternate of an image's bytes."""
    primary = bytes(data[EXT2_SUPERBLOCK : EXT2_SUPERBLOCK + EXT2_SBSIZE])
    offset = ext2_alternate_offset(primary) if _u16(primary, EXT2_MAGIC_AT) == EXT2_MAGIC else None
    if offset is None or offset + EXT2_SBSIZE > len(data):
        return primary, None
    return primary, bytes(data[offset : offset + EXT2_SBSIZE])


def ext2_problem(data: bytes | mmap.mmap) -> str | None:
    return ext2_superblock_problem(*ext2_superblocks(data))


def without_linux_mount_marks(primary: bytes, alternate: bytes) -> bytes:
    """The primary with the fields Linux writes on every mount taken back from the alternate
    (which Linux leaves alone, as mke2fs and debugfs wrote it)."""
    fixed = bytearray(primary)
    for offset, length, _ in LINUX_MOUNT_MARKS:
        fixed[offset : offset + length] = alternate[offset : offset + length]
    return bytes(fixed)


# --- FFS (sys/ufs/ffs/fs.h: struct fs and struct cg) -------------------------------------

CG_MAGIC = 0x090255
FS_FLAGS_UPDATED = 0x80
FS_44INODEFMT = 2
UFS1_MAXSYMLINKLEN = 60  # UFS_NDADDR + UFS_NIADDR block pointers of 4 bytes
UFS2_MAXSYMLINKLEN = 120
UFS_NDADDR, UFS_NIADDR = 12, 3
# struct fs: int32 fields by offset
FS_INT32 = {
    "fs_sblkno": 8,
    "fs_cblkno": 12,
    "fs_iblkno": 16,
    "fs_dblkno": 20,
    "fs_old_cgoffset": 24,
    "fs_old_cgmask": 28,
    "fs_old_size": 36,
    "fs_ncg": 44,
    "fs_bsize": 48,
    "fs_fsize": 52,
    "fs_frag": 56,
    "fs_minfree": 60,
    "fs_bmask": 72,
    "fs_fmask": 76,
    "fs_bshift": 80,
    "fs_fshift": 84,
    "fs_fragshift": 96,
    "fs_fsbtodb": 100,
    "fs_sbsize": 104,
    "fs_nindir": 116,
    "fs_inopb": 120,
    "fs_optim": 128,
    "fs_old_csaddr": 152,
    "fs_cssize": 156,
    "fs_cgsize": 160,
    "fs_ipg": 184,
    "fs_fpg": 188,
    "fs_maxsymlinklen": 1320,
    "fs_old_inodefmt": 1324,
    "fs_magic": FS_MAGIC_AT,
}
FS_INT64 = {"fs_size": 1080, "fs_csaddr": 1096, "fs_maxfilesize": 1328, "fs_qbmask": 1336,
            "fs_qfmask": 1344}  # fmt: skip
FS_OLD_FLAGS = 211
# The fields cmpsblks() compares between the primary and the alternate
CMPSBLKS = (
    "fs_sblkno", "fs_cblkno", "fs_iblkno", "fs_dblkno", "fs_ncg", "fs_bsize", "fs_fsize",
    "fs_frag", "fs_bmask", "fs_fmask", "fs_bshift", "fs_fshift", "fs_fragshift",
    "fs_fsbtodb", "fs_sbsize", "fs_nindir", "fs_inopb", "fs_cssize", "fs_ipg", "fs_fpg",
    "fs_magic",
)  # fmt: skip
# struct cg: cg_magic, cg_cgx; struct ocg (old layout): cg_magic
CG_MAGIC_AT, CG_CGX_AT, OCG_MAGIC_AT = 4, 12, 980


class Superblock:
    """The fields of one FFS superblock, in its byte order."""

    def __init__(self, raw: bytes, order: str) -> None:
        self.raw, self.order = raw, order

    def __getattr__(self, name: str) -> int:
        if name in FS_INT32:
            return self._int(FS_INT32[name], 4)
        if name in FS_INT64:
            return self._int(FS_INT64[name], 8)
        raise AttributeError(name)

    def _int(self, offset: int, size: int) -> int:
        return int.from_bytes(self.raw[offset : offset + size], self.order, signed=True)  # type: ignore[arg-type]

    @property
    def ufs2(self) -> bool:
        return self.fs_magic == UFS2_MAGIC

    @property
    def size(self) -> int:
        """fs_size in fragments (UFS1 keeps it in fs_old_size)."""
        return self.fs_size if self.ufs2 else self.fs_old_size

    @property
    def csaddr(self) -> int:
        return self.fs_csaddr if self.ufs2 else self.fs_old_csaddr

    def cgstart(self, cg: int) -> int:
        base = self.fs_fpg * cg
        if self.ufs2:
            return base
        return base + self.fs_old_cgoffset * (cg & ~self.fs_old_cgmask)


def find_superblock(data: bytes | mmap.mmap) -> Superblock | None:
    """readsb(): the first of SBLOCKSEARCH with a magic number, in either byte order."""
    for offset in SBLOCKSEARCH:
        raw = bytes(data[offset : offset + SBLOCKSIZE])
        if len(raw) < SBLOCKSIZE:
            continue
        for order in BYTE_ORDERS:
            magic = ffs_magic(raw, 0, order)
            if magic == UFS1_MAGIC and offset == SBLOCK_UFS2:
                break  # detect_byteorder(): likely the first alternate of 64k blocks
            if magic in FFS_MAGICS:
                return Superblock(raw, order)
    return None


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def ffs_sizes_problems(sb: Superblock, image_size: int) -> list[str]:
    """The sizes every other check relies on, and setup()'s checks of derived fields."""
    if sb.fs_sbsize > SBLOCKSIZE:
        return ["BAD SUPER BLOCK: SIZE PREPOSTEROUSLY LARGE"]
    found = []
    if not (_power_of_two(sb.fs_bsize) and 4096 <= sb.fs_bsize <= 65536):
        found.append(f"fs_bsize {sb.fs_bsize} is not a power of two from 4096 to 65536")
    if not (
        _power_of_two(sb.fs_frag) and sb.fs_frag <= 8 and sb.fs_fsize * sb.fs_frag == sb.fs_bsize
    ):
        found.append(f"fs_fsize {sb.fs_fsize} times fs_frag {sb.fs_frag} is not fs_bsize")
    if sb.fs_ncg < 1 or sb.fs_ipg < 1 or sb.fs_fpg < 1:
        found.append(f"fs_ncg {sb.fs_ncg}, fs_ipg {sb.fs_ipg}, fs_fpg {sb.fs_fpg}: one is below 1")
    if found:
        return found  # the derived checks below would only repeat it
    if sb.size * sb.fs_fsize > image_size:
        found.append(
            f"the file system ({sb.size} fragments of {sb.fs_fsize}) is larger than the image "
            f"({image_size} bytes)"
        )
    if sb.fs_optim not in (0, 1):
        found.append("UNDEFINED OPTIMIZATION IN SUPERBLOCK")
    if not 0 <= sb.fs_minfree <= 99:
        found.append(f"IMPOSSIBLE MINFREE={sb.fs_minfree} IN SUPERBLOCK")
    if sb.fs_bmask != ~(sb.fs_bsize - 1):
        found.append(f"INCORRECT BMASK={sb.fs_bmask & 0xFFFFFFFF:#x} IN SUPERBLOCK")
    if sb.fs_fmask != ~(sb.fs_fsize - 1):
        found.append(f"INCORRECT FMASK={sb.fs_fmask & 0xFFFFFFFF:#x} IN SUPERBLOCK")
    if sb.ufs2 or sb.fs_old_inodefmt >= FS_44INODEFMT:
        per_block, maximum = sb.fs_bsize, sb.fs_bsize * UFS_NDADDR - 1
        for _ in range(UFS_NIADDR):
            per_block *= sb.fs_nindir
            maximum += per_block
        if sb.fs_maxfilesize & 0xFFFFFFFFFFFFFFFF != maximum & 0xFFFFFFFFFFFFFFFF:
            found.append(f"INCORRECT MAXFILESIZE={sb.fs_maxfilesize} IN SUPERBLOCK")
        symlinks = UFS2_MAXSYMLINKLEN if sb.ufs2 else UFS1_MAXSYMLINKLEN
        if sb.fs_maxsymlinklen != symlinks:
            found.append(f"INCORRECT MAXSYMLINKLEN={sb.fs_maxsymlinklen} IN SUPERBLOCK")
        if sb.fs_qbmask != ~sb.fs_bmask:
            found.append(f"INCORRECT QBMASK={sb.fs_qbmask:#x} IN SUPERBLOCK")
        if sb.fs_qfmask != ~sb.fs_fmask:
            found.append(f"INCORRECT QFMASK={sb.fs_qfmask:#x} IN SUPERBLOCK")
    return found


def ffs_problems(data: bytes | mmap.mmap) -> list[str]:
    """What fsck_ffs's setup() and the cylinder-group reads would object to."""
    sb = find_superblock(data)
    if sb is None:
        return ["BAD SUPER BLOCK: CAN'T FIND SUPERBLOCK"]
    found = ffs_sizes_problems(sb, len(data))
    if found:
        return found
    if not sb.ufs2 and not sb.raw[FS_OLD_FLAGS] & FS_FLAGS_UPDATED:
        found.append(
            "old 4.4BSD superblock layout (FS_FLAGS_UPDATED unset): not what makefs "
            "writes, and not compared here"
        )
    else:
        found += _alternate_problems(sb, data)
    summary = sb.csaddr * sb.fs_fsize
    if summary + sb.fs_cssize > len(data):
        found.append("BAD SUMMARY INFORMATION: the summary area lies beyond the image")
    for cg in range(sb.fs_ncg):
        at = (sb.cgstart(cg) + sb.fs_cblkno) * sb.fs_fsize
        header = bytes(data[at : at + OCG_MAGIC_AT + 4])
        if len(header) < OCG_MAGIC_AT + 4:
            # the groups after it start later still: one line for them all, so a crafted
            # fs_ncg costs no list of billions
            after = sb.fs_ncg - cg - 1
            found.append(
                f"CG {cg}{f' and the {after} after it' if after else ''}: "
                f"lies beyond the end of the image (byte {at})"
            )
            break
        magics = (
            int.from_bytes(header[CG_MAGIC_AT : CG_MAGIC_AT + 4], sb.order),  # type: ignore[arg-type]
            int.from_bytes(header[OCG_MAGIC_AT : OCG_MAGIC_AT + 4], sb.order),  # type: ignore[arg-type]
        )
        if CG_MAGIC not in magics:
            found.append(f"CG {cg}: BAD MAGIC NUMBER (at byte {at + CG_MAGIC_AT})")
        elif magics[0] == CG_MAGIC:
            cgx = int.from_bytes(header[CG_CGX_AT : CG_CGX_AT + 4], sb.order)  # type: ignore[arg-type]
            if cgx != cg:  # pass5 rebuilds the header with cg_cgx = c and compares it
                found.append(f"CG {cg}: claims to be cylinder group {cgx}")
    return found


def _alternate_problems(sb: Superblock, data: bytes | mmap.mmap) -> list[str]:
    """readsb(): the superblock of the last cylinder group against the primary."""
    at = (sb.cgstart(sb.fs_ncg - 1) + sb.fs_sblkno) * sb.fs_fsize
    raw = bytes(data[at : at + sb.fs_sbsize])
    if len(raw) < sb.fs_sbsize:
        return [f"the alternate superblock (last cylinder group, byte {at}) lies beyond the image"]
    alternate = Superblock(raw + bytes(SBLOCKSIZE - len(raw)), sb.order)
    differ = [name for name in CMPSBLKS if getattr(alternate, name) != getattr(sb, name)]
    if differ:
        return [f"BAD SUPER BLOCK: {DISAGREE}: {', '.join(differ)} (alternate at byte {at})"]
    return []


# --- reading images -------------------------------------------------------------------


@contextmanager
def image_bytes(image: Path) -> Iterator[bytes | mmap.mmap]:
    """The image's bytes, mapped: a check reads only the blocks it looks at."""
    with open(image, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            yield mapped
