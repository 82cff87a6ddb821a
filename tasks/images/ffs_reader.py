"""Reading an FFSv1 image without mounting it: every entry, its metadata and its content.

Pure Python, read-only, from NetBSD's own headers: sys/ufs/ffs/fs.h (struct fs),
sys/ufs/ufs/dinode.h (struct ufs1_dinode), sys/ufs/ufs/dir.h (struct direct). Our own
rather than The Sleuth Kit's, because TSK does not expose di_flags (the chflags(1) flags)
and gives device numbers and generations only awkwardly, and one fls/istat/icat subprocess
a file is far too slow for an image of ten thousand files.

API (stable; other modules and `./domus show/ls/diff` build on it):

    with FfsImage(path_or_seekable_binary_file) as image:
        image.params         -> FfsParams: size, bsize, fsize, ipg, ncg, fpg, minfree, optim,
                                maxbpg, maxcontig, avgfilesize, avgfpdir, order, ...
        image.refusal()      -> str | None: why the image cannot be read exactly (not clean,
                                FFSv2, WAPBL log, soft dependencies, ACLs or extended
                                attributes, quotas), None when it can
        image.entries()      -> Iterator[FfsEntry], the root (path b"") first, then each
                                directory's entries (depth first, in directory order)
        image.walk()         -> Iterator[(path, FfsInode)]: the same, undecorated (faster)
        image.entry(b"etc/rc.conf") -> FfsEntry (KeyError when absent)
        image.children(entry) -> Iterator[FfsEntry]: one directory's entries
        image.chunks(entry, size=1 MiB) -> Iterator[bytes]: a regular file's content
        image.read(entry)    -> bytes: the whole content
        image.data_extents(entry or inode) -> Iterator[(offset, bytes)]: a file's
                                allocated data, holes left out (checked to lie inside the
                                file system)
        image.read_at(offset, size) -> bytes: of an extent
        image.stat_inode(n)  -> FfsInode (the raw metadata of inode n)
        image.link_target(inode) -> bytes: a symlink inode's target
        image.inode_offset(n) -> int: where inode n's struct ufs1_dinode lies in the image
        image.free_bytes()   -> int: bytes free beyond the minfree reserve (as df counts)
        image.free_inodes()  -> int: inodes free (the superblock's summary, as df -i counts)
        image.data_bytes()   -> int: bytes for files beyond the minfree reserve (df's size)

FfsEntry: path (bytes, relative, no leading slash; any byte but NUL and "/" in a name),
type ("file", "dir", "link", "char", "block", "fifo", "socket"), mode (the permission
bits with setuid, setgid and sticky), uid, gid, size, mtime, mtime_ns, atime, atime_ns,
ctime, ctime_ns, nlink, inode, generation, flags (di_flags: UF_*/SF_* of chflags(2)),
rdev (the NetBSD dev_t of a device node, else None; `device` gives (major, minor)),
link (a symlink's target, bytes), blocks (di_blocks, in 512-byte sectors).

The source may be a path or any seekable binary file object (an encrypted image read
through a decrypting file object). Both byte orders are read (makefs writes the host's
order, `-B` chooses); `params.order` says which. A malformed image raises FfsError.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import BinaryIO, NamedTuple

from tasks.formats.fsck_rules import Superblock, ffs_sizes_problems, find_superblock
from tasks.formats.superblocks import SBLOCK_PIGGY, SBLOCKSIZE, UFS2_MAGIC

# fs.h: fs_clean and fs_flags
FS_ISCLEAN = 0x01
FS_UNCLEAN, FS_DOSOFTDEP, FS_NEEDSFSCK, FS_SUJ = 0x001, 0x002, 0x004, 0x008
FS_POSIX1EACLS, FS_MULTILABEL, FS_GJOURNAL = 0x010, 0x020, 0x040
FS_DOWAPBL, FS_DOQUOTA2, FS_NFS4ACLS = 0x100, 0x200, 0x800
FS_CLEAN_AT, FS_FLAGS_AT = 209, 1312  # int8 fs_clean; uint32 fs_flags
FS_MAXCONTIG_AT, FS_MAXBPG_AT, FS_AVGFILESIZE_AT, FS_AVGFPDIR_AT = 88, 92, 1196, 1200
FS_VOLNAME_AT = 680
FS_OLD_DSIZE_AT, FS_OLD_CSTOTAL_AT = 40, 192  # int32 fs_old_dsize; struct csum (4 int32)
# dinode.h
UFS_ROOTINO = 2
UFS_NDADDR, UFS_NIADDR = 12, 3
DINODE1_SIZE, DINODE2_SIZE = 128, 256
_DINODE1 = "HhIQiiiiii12i3iIIiIIQ"  # struct ufs1_dinode, 128 bytes
# dir.h: struct direct's fixed part (d_ino, d_reclen, d_type, d_namlen)
_DIRECT = "IHBB"
DIRECT_HEAD = 8
# The chunk a file's content is read in, and the most bytes read at once
CHUNK = 1 << 20
# Inode-table blocks, and decoded inodes, kept: a listing meets inodes in the order makefs
# allocated them, a table block at a time, and reading a file's data follows its listing
INODE_BLOCKS, INODES_KEPT = 8, 64

TYPES = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "link",
    stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


class FfsError(Exception):
    """The image is not an FFSv1 file system this reader can follow."""


@dataclass(frozen=True)
class _Geometry:
    bsize: int
    fsize: int
    frag: int
    ipg: int
    inopb: int
    nindir: int
    maxsymlinklen: int
    inodes: int
    frags: int  # fs_size: the fragments the file system spans
    maxfilesize: int
    itables: tuple[int, ...]  # the byte offset of each cylinder group's inode table


@dataclass(frozen=True)
class FfsParams:
    """The superblock's parameters that shape an image (what makefs is given again)."""

    order: str  # "little" or "big"
    size: int  # bytes the file system spans (fs_size fragments)
    bsize: int
    fsize: int
    ncg: int
    ipg: int  # inodes per cylinder group
    fpg: int  # fragments per cylinder group
    minfree: int  # percent
    optim: int  # 0 time, 1 space
    maxbpg: int
    maxcontig: int
    avgfilesize: int
    avgfpdir: int
    clean: int  # fs_clean
    flags: int  # fs_flags
    volname: bytes

    @property
    def inodes(self) -> int:
        return self.ipg * self.ncg

    @property
    def optimization(self) -> str:
        return "space" if self.optim == 1 else "time"


class FfsInode(NamedTuple):
    """One struct ufs1_dinode, decoded. A named tuple, not a frozen dataclass: one is built
    for every inode read, and a frozen dataclass's field-by-field construction is most of
    what that costs."""

    inode: int
    mode: int  # di_mode: type and permission bits
    nlink: int
    size: int
    atime: int
    atime_ns: int
    mtime: int
    mtime_ns: int
    ctime: int
    ctime_ns: int
    db: tuple[int, ...]  # di_db, in fragments
    ib: tuple[int, ...]  # di_ib
    flags: int
    blocks: int
    generation: int
    uid: int
    gid: int
    raw: bytes  # the 128 bytes, for the block pointers of a fast symlink

    @property
    def type(self) -> str:
        return TYPES.get(stat.S_IFMT(self.mode), "unknown")


@dataclass(frozen=True, slots=True)
class FfsEntry:
    path: bytes
    type: str
    mode: int  # permission bits, 0o7777
    uid: int
    gid: int
    size: int
    mtime: int
    mtime_ns: int
    atime: int
    atime_ns: int
    ctime: int
    ctime_ns: int
    nlink: int
    inode: int
    generation: int
    flags: int
    blocks: int
    rdev: int | None = None
    link: bytes | None = None

    @property
    def device(self) -> tuple[int, int] | None:
        """(major, minor) of NetBSD's makedev() encoding."""
        if self.rdev is None:
            return None
        number = self.rdev
        return (number & 0x000FFF00) >> 8, ((number & 0xFFF00000) >> 12) | (number & 0xFF)


def _geometry_problem(sb: Superblock, image_size: int) -> str | None:
    """Why the superblock's geometry cannot be followed within an image of `image_size`
    bytes; None when every loop over it is bounded by the image. A guest writes its own
    superblock: nothing of it is believed before this."""
    problems = ffs_sizes_problems(sb, image_size)
    if problems:
        return problems[0]
    dinode, pointer = (DINODE2_SIZE, 8) if sb.ufs2 else (DINODE1_SIZE, 4)
    if sb.fs_inopb != sb.fs_bsize // dinode or sb.fs_nindir != sb.fs_bsize // pointer:
        return f"fs_inopb {sb.fs_inopb} or fs_nindir {sb.fs_nindir} does not fit fs_bsize"
    if sb.size < 1 or sb.fs_ncg > -(-sb.size // sb.fs_fpg):
        return f"fs_ncg {sb.fs_ncg} cylinder groups of {sb.fs_fpg} do not fit {sb.size} fragments"
    itable = -(-sb.fs_ipg // sb.fs_inopb) * sb.fs_frag
    last = sb.cgstart(sb.fs_ncg - 1) + sb.fs_iblkno + itable
    if sb.fs_ipg > sb.fs_fpg * sb.fs_inopb or not 0 <= sb.fs_iblkno < sb.fs_fpg or last > sb.size:
        return f"the inode tables ({sb.fs_ipg} inodes a group) lie beyond the file system"
    return None


class FfsImage:
    def __init__(self, source: Path | str | BinaryIO) -> None:
        if isinstance(source, (str, os.PathLike)):
            self._file: BinaryIO = open(source, "rb")  # noqa: SIM115 (closed by close())
            self._owned = True
            self.name = str(source)
            # pread(2) on our own descriptor: one system call a read, no buffer to seek
            self._fd: int | None = self._file.fileno()
        else:
            # a file object (a decrypting one) is read only through its own read()
            self._file, self._owned, self._fd = source, False, None
            self.name = getattr(source, "name", "<image>")
        self._iblocks: dict[int, bytes] = {}  # inode-table block offset -> its bytes
        self._inodes: dict[int, FfsInode] = {}  # inode number -> decoded, the last few
        head = self._pread(0, SBLOCK_PIGGY + SBLOCKSIZE)
        sb = find_superblock(head.ljust(SBLOCK_PIGGY + SBLOCKSIZE, b"\0"))
        if sb is None:
            raise FfsError(f"{self.name}: no FFS superblock")
        self.sb: Superblock = sb
        self._size = self._file.seek(0, os.SEEK_END)
        problem = _geometry_problem(sb, self._size)
        if problem is not None:
            raise FfsError(f"{self.name}: {problem}")
        # the fields every inode and block read needs, read once (Superblock's are parsed
        # on each access)
        self._g = _Geometry(
            bsize=sb.fs_bsize,
            fsize=sb.fs_fsize,
            frag=sb.fs_frag,
            ipg=sb.fs_ipg,
            inopb=sb.fs_inopb,
            nindir=sb.fs_nindir,
            maxsymlinklen=sb.fs_maxsymlinklen,
            inodes=sb.fs_ipg * sb.fs_ncg,
            frags=sb.size,
            maxfilesize=sb.fs_maxfilesize,
            itables=tuple(
                (sb.cgstart(cg) + sb.fs_iblkno) * sb.fs_fsize for cg in range(max(sb.fs_ncg, 0))
            ),
        )
        self._end = "<" if sb.order == "little" else ">"
        self._dinode = struct.Struct(self._end + _DINODE1)
        self._direct = struct.Struct(self._end + _DIRECT)

    # --- the superblock ------------------------------------------------------------

    def _field(self, offset: int, size: int, signed: bool = True) -> int:
        raw = self.sb.raw[offset : offset + size]
        return int.from_bytes(raw, self.sb.order, signed=signed)  # type: ignore[arg-type]

    @property
    def params(self) -> FfsParams:
        sb = self.sb
        return FfsParams(
            order=sb.order,
            size=sb.size * sb.fs_fsize,
            bsize=sb.fs_bsize,
            fsize=sb.fs_fsize,
            ncg=sb.fs_ncg,
            ipg=sb.fs_ipg,
            fpg=sb.fs_fpg,
            minfree=sb.fs_minfree,
            optim=sb.fs_optim,
            maxbpg=self._field(FS_MAXBPG_AT, 4),
            maxcontig=self._field(FS_MAXCONTIG_AT, 4),
            avgfilesize=self._field(FS_AVGFILESIZE_AT, 4),
            avgfpdir=self._field(FS_AVGFPDIR_AT, 4),
            clean=self._field(FS_CLEAN_AT, 1, signed=False),
            flags=self._field(FS_FLAGS_AT, 4, signed=False),
            volname=sb.raw[FS_VOLNAME_AT : FS_VOLNAME_AT + 32].split(b"\0", 1)[0],
        )

    def refusal(self) -> str | None:
        """Why this image cannot be read (and so rewritten) exactly; None when it can."""
        sb, params = self.sb, self.params
        if sb.fs_magic == UFS2_MAGIC or sb.ufs2:
            return "it is FFSv2 (UFS2); only FFSv1, what domus and makefs write, is read"
        if not params.clean & FS_ISCLEAN or params.flags & (FS_UNCLEAN | FS_NEEDSFSCK):
            return (
                "its file system is not marked clean (the domU did not unmount it, or it is "
                "running): what is on disk may not be what the domU wrote"
            )
        if params.flags & FS_DOWAPBL:
            return "it has a WAPBL log (mounted with -o log), which this reader does not replay"
        if params.flags & (FS_DOSOFTDEP | FS_SUJ):
            return "it uses soft dependencies, whose state this reader does not follow"
        if params.flags & (FS_POSIX1EACLS | FS_NFS4ACLS | FS_MULTILABEL):
            return "it has ACLs or MAC labels enabled (extended attributes makefs cannot write)"
        if params.flags & FS_DOQUOTA2:
            return "it keeps in-file-system quotas (quota2), which makefs cannot write"
        if params.flags & FS_GJOURNAL:
            return "it is journaled (gjournal), which this reader does not follow"
        if sb.fs_old_inodefmt < 2:
            return "it has the 4.2BSD inode format, which this reader does not read"
        root = self.stat_inode(UFS_ROOTINO)
        if root.type != "dir":
            return "its root inode is not a directory"
        if b".attribute" in dict(self._directory(root)):
            return (
                "it has a /.attribute directory: UFS1 extended attributes (ACLs or labels) "
                "that makefs cannot write"
            )
        return None

    # --- low-level reads -----------------------------------------------------------

    def _pread(self, offset: int, size: int) -> bytes:
        if self._fd is not None:
            return os.pread(self._fd, size, offset)
        self._file.seek(offset)
        return self._file.read(size)

    def _inside(self, address: int, size: int) -> int:
        """The byte offset of `size` bytes at fragment `address`, which lie inside the
        file system (a guest's block pointer may point anywhere)."""
        if address <= 0 or address * self._g.fsize + size > self._g.frags * self._g.fsize:
            raise FfsError(f"{self.name}: fragment {address} lies beyond the file system")
        return address * self._g.fsize

    def _frag(self, address: int, size: int) -> bytes:
        data = self._pread(self._inside(address, size), size)
        if len(data) < size:
            raise FfsError(f"{self.name}: fragment {address} lies beyond the image")
        return data

    def inode_offset(self, number: int) -> int:
        """The byte offset of inode `number`'s struct ufs1_dinode in the image."""
        g = self._g
        if not 0 < number < g.inodes:
            raise FfsError(f"{self.name}: inode {number} is out of range")
        cg, index = divmod(number, g.ipg)
        block, slot = divmod(index, g.inopb)
        return g.itables[cg] + block * g.bsize + slot * DINODE1_SIZE

    def free_bytes(self) -> int:
        """Bytes free to ordinary users: free blocks and fragments (the superblock's
        summary) less the minfree reserve, as df(1) counts them."""
        sb = self.sb
        _, nbfree, _, nffree = struct.unpack_from(self._end + "4i", sb.raw, FS_OLD_CSTOTAL_AT)
        dsize = self._field(FS_OLD_DSIZE_AT, 4)
        free = nbfree * sb.fs_frag + nffree - dsize * sb.fs_minfree // 100
        return max(free, 0) * sb.fs_fsize

    def free_inodes(self) -> int:
        _, _, nifree, _ = struct.unpack_from(self._end + "4i", self.sb.raw, FS_OLD_CSTOTAL_AT)
        return max(nifree, 0)

    def data_bytes(self) -> int:
        dsize = self._field(FS_OLD_DSIZE_AT, 4)
        return max(dsize - dsize * self.sb.fs_minfree // 100, 0) * self.sb.fs_fsize

    def stat_inode(self, number: int) -> FfsInode:
        found = self._inodes.get(number)
        if found is not None:
            return found
        g = self._g
        offset = self.inode_offset(number)
        # the inode-table block that holds it, read whole once (fs_inopb inodes)
        block = g.itables[number // g.ipg] + number % g.ipg // g.inopb * g.bsize
        slot = offset - block
        table = self._iblocks.get(block)
        if table is None:
            table = self._iblocks[block] = self._pread(block, g.bsize)
            if len(self._iblocks) > INODE_BLOCKS:
                del self._iblocks[next(iter(self._iblocks))]
        raw = table[slot : slot + DINODE1_SIZE]
        if len(raw) < DINODE1_SIZE:
            raise FfsError(f"{self.name}: inode {number} lies beyond the image")
        f = self._dinode.unpack(raw)
        # _DINODE1's fields in FfsInode's order (di_u, the old uid and gid, left out)
        found = self._inodes[number] = FfsInode(
            number, f[0], f[1], *f[3:10], f[10:22], f[22:25], *f[25:30], raw
        )
        if len(self._inodes) > INODES_KEPT:
            del self._inodes[next(iter(self._inodes))]
        return found

    def _pointers(self, address: int) -> tuple[int, ...]:
        data = self._frag(address, self._g.bsize)
        return struct.unpack(f"{self._end}{self._g.nindir}i", data)

    def _runs(self, inode: FfsInode) -> Iterable[tuple[int, int]]:
        """(fragment address or 0 for a hole, logical blocks) of the whole file: one run a
        block where there is data, one run for a whole hole, so a sparse file of any size
        costs the blocks it has, not the bytes it claims."""
        if not 0 <= inode.size <= self._g.maxfilesize:
            raise FfsError(f"{self.name}: inode {inode.inode} claims {inode.size} bytes")
        count = -(-inode.size // self._g.bsize)
        direct = [(address, 1) for address in inode.db[: min(count, UFS_NDADDR)]]
        if count <= UFS_NDADDR:  # most files: no generator of indirect blocks to resume
            return direct
        return chain(direct, self._indirect_runs(inode, count - UFS_NDADDR))

    def _indirect_runs(self, inode: FfsInode, left: int) -> Iterator[tuple[int, int]]:
        met: set[int] = set()  # an indirect block pointed to twice would be read forever
        for level, top in enumerate(inode.ib):
            if left <= 0:
                return
            take = min(left, self._g.nindir ** (level + 1))
            yield from self._indirect(inode, top, level, take, met)
            left -= take

    def _indirect(
        self, inode: FfsInode, address: int, level: int, count: int, met: set[int]
    ) -> Iterator[tuple[int, int]]:
        if address == 0:
            yield 0, count
            return
        if address in met:
            raise FfsError(f"{self.name}: inode {inode.inode} meets indirect block {address} twice")
        met.add(address)
        pointers = self._pointers(address)
        span = self._g.nindir**level
        for pointer in pointers:
            if count <= 0:
                return
            take = min(count, span)
            if level == 0:
                yield pointer, 1
            else:
                yield from self._indirect(inode, pointer, level - 1, take, met)
            count -= take

    def _extents(self, inode: FfsInode) -> Iterator[tuple[int, int]]:
        """(fragment address or 0 for a hole, bytes) runs of the file, contiguous ones
        merged up to CHUNK bytes, so that a large file is read in few large reads."""
        bsize, fsize, left = self._g.bsize, self._g.fsize, inode.size
        start, length = -1, 0
        for address, blocks in self._runs(inode):
            size = min(bsize * blocks, left)
            left -= size
            if address == 0:
                if length and start == 0:
                    length += size
                    continue
            elif (
                length
                and start
                and length % bsize == 0
                and length + size <= CHUNK
                and address == start + length // fsize
            ):
                length += size
                continue
            if length:
                yield start, length
            start, length = address, size
        if length:
            yield start, length

    def data_extents(self, entry: FfsEntry | FfsInode) -> Iterator[tuple[int, int]]:
        """(byte offset in the image, bytes) of a regular file's or directory's allocated
        data, holes left out: what reading it back costs, whatever size it claims."""
        for address, length in self._extents(self._inode_of(entry)):
            if address:
                yield self._inside(address, length), length

    def file_extents(self, entry: FfsEntry | FfsInode) -> Iterator[tuple[int, int, int]]:
        """(byte offset in the file, byte offset in the image, bytes) of the allocated
        data of a regular file or directory, holes left out."""
        offset = 0
        for address, length in self._extents(self._inode_of(entry)):
            if address:
                yield offset, self._inside(address, length), length
            offset += length

    def _inode_of(self, entry: FfsEntry | FfsInode) -> FfsInode:
        return entry if isinstance(entry, FfsInode) else self.stat_inode(entry.inode)

    def read_at(self, offset: int, size: int) -> bytes:
        """`size` bytes of the image at `offset` (of a data extent), or FfsError."""
        data = self._pread(offset, size)
        if len(data) < size:
            raise FfsError(f"{self.name}: byte {offset} lies beyond the image")
        return data

    # --- files and directories -----------------------------------------------------

    def _content(self, inode: FfsInode, size: int = CHUNK) -> Iterator[bytes]:
        pending = b""
        for address, length in self._extents(inode):
            while length:
                # a hole is made of zeros a chunk at a time, never at once
                step = min(length, size) if address == 0 else length
                pending += bytes(step) if address == 0 else self._frag(address, step)
                length -= step
                while len(pending) >= size:
                    yield pending[:size]
                    pending = pending[size:]
        if pending:
            yield pending

    def _directory(self, inode: FfsInode) -> Iterator[tuple[bytes, int]]:
        """(name, inode number) of a directory's live entries, "." and ".." left out."""
        # a directory has no holes (fsck_ffs: "DIRECTORY ... HAS A HOLE"): its size is
        # backed by its blocks, so reading it whole costs what the image holds, no more
        if inode.size > inode.blocks * 512:
            raise FfsError(
                f"{self.name}: directory inode {inode.inode} claims {inode.size} bytes in "
                f"{inode.blocks * 512} allocated"
            )
        data = b"".join(self._content(inode))
        at = 0
        while at + DIRECT_HEAD <= len(data):
            number, reclen, _, namlen = self._direct.unpack_from(data, at)
            if reclen < DIRECT_HEAD or at + reclen > len(data):
                raise FfsError(f"{self.name}: directory inode {inode.inode} is damaged")
            name = data[at + DIRECT_HEAD : at + DIRECT_HEAD + namlen]
            if number and (not name or b"/" in name or b"\0" in name):
                # no kernel writes such a name: a crafted image would lead a path astray
                raise FfsError(
                    f"{self.name}: directory inode {inode.inode} holds the name {name!r}"
                )
            if number and name not in (b".", b".."):
                yield name, number
            at += reclen

    def link_target(self, inode: FfsInode) -> bytes:
        if inode.size < self._g.maxsymlinklen or (self._g.maxsymlinklen == 0 and inode.blocks == 0):
            return inode.raw[40 : 40 + inode.size]  # kept in di_db and di_ib
        return b"".join(self._content(inode))

    def _entry(self, path: bytes, inode: FfsInode) -> FfsEntry:
        kind = TYPES.get(stat.S_IFMT(inode.mode), "unknown")
        return FfsEntry(
            path=path,
            type=kind,
            mode=stat.S_IMODE(inode.mode),
            uid=inode.uid,
            gid=inode.gid,
            size=inode.size,
            mtime=inode.mtime,
            mtime_ns=inode.mtime_ns,
            atime=inode.atime,
            atime_ns=inode.atime_ns,
            ctime=inode.ctime,
            ctime_ns=inode.ctime_ns,
            nlink=inode.nlink,
            inode=inode.inode,
            generation=inode.generation,
            flags=inode.flags,
            blocks=inode.blocks,
            rdev=inode.db[0] & 0xFFFFFFFF if kind in ("char", "block") else None,
            link=self.link_target(inode) if kind == "link" else None,
        )

    def _root(self) -> FfsInode:
        root = self.stat_inode(UFS_ROOTINO)
        if root.type != "dir":  # fsck_ffs: "ROOT INODE NOT DIRECTORY"
            raise FfsError(f"{self.name}: the root inode is a {root.type}, not a directory")
        return root

    def entries(self) -> Iterator[FfsEntry]:
        """Every entry: the root (path b"") first, each directory before what it holds."""
        for path, inode in self.walk():
            yield self._entry(path, inode)

    def walk(self) -> Iterator[tuple[bytes, FfsInode]]:
        """(path, inode) of every entry, in the order of entries(), with no FfsEntry built
        and no symlink's target read: a pass over every inode (a check) needs no more."""
        root = self._root()
        yield b"", root
        # a directory has one name (fsck_ffs finds a second one, or a loop, in pass 2/3):
        # reached twice, it would be walked again for each name, a loop forever
        seen = {UFS_ROOTINO}
        stack: list[tuple[bytes, FfsInode]] = [(b"", root)]
        while stack:
            top, directory = stack.pop()
            below: list[tuple[bytes, FfsInode]] = []
            for name, number in self._directory(directory):
                path = top + b"/" + name if top else name
                inode = self.stat_inode(number)
                yield path, inode
                if stat.S_ISDIR(inode.mode):
                    if number in seen:
                        raise FfsError(
                            f"{self.name}: directory inode {number} is reached again at "
                            f"/{path.decode(errors='backslashreplace')}: a loop or a second name"
                        )
                    seen.add(number)
                    below.append((path, inode))
            stack.extend(reversed(below))

    def entry(self, path: bytes) -> FfsEntry:
        """The entry at `path` (relative, b"" the root), found by walking, not by listing."""
        inode = self._root()
        for name in [part for part in path.split(b"/") if part]:
            if inode.type != "dir":
                raise KeyError(path)
            found = dict(self._directory(inode)).get(name)
            if found is None:
                raise KeyError(path)
            inode = self.stat_inode(found)
        return self._entry(path.strip(b"/"), inode)

    def children(self, directory: FfsEntry) -> Iterator[FfsEntry]:
        """The entries of one directory ("." and ".." left out), without walking the image."""
        prefix = directory.path + b"/" if directory.path else b""
        for name, number in self._directory(self.stat_inode(directory.inode)):
            yield self._entry(prefix + name, self.stat_inode(number))

    def chunks(self, entry: FfsEntry, size: int = CHUNK) -> Iterator[bytes]:
        if entry.type != "file":
            raise FfsError(f"{self.name}: /{entry.path!r} is a {entry.type}, not a file")
        return self._content(self.stat_inode(entry.inode), size)

    def read(self, entry: FfsEntry) -> bytes:
        return b"".join(self.chunks(entry))

    def close(self) -> None:
        if self._owned:
            self._file.close()

    def __enter__(self) -> FfsImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
