"""FFS images with NetBSD's makefs, from the staged tree and an mtree spec of the manifest.

FFSv1, little-endian: what makefs and NetBSD's own release images default to, and what
every NetBSD/Xen kernel mounts. `-x` keeps anything not in the manifest out of the image.

Left to itself makefs sizes the inode table to the files it is given (density = size /
files), which suits root.img and pkg.img, never written after the build. An image a domU
writes (local.img) is given the block, fragment and inode sizes NetBSD's newfs gives a
file system of its size instead (`room`), so it has the inodes a freshly newfs'ed disk has.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tasks.formats.mtree import write_spec
from tasks.images.publish import host_full
from tasks.images.sparse import punch_zeros
from tasks.images.tree import Tree, tree_bytes
from tasks.run.errors import DomusError
from tasks.run.log import timed
from tasks.site.sizes import format_size
from tasks.tools import run


def makefs_argv(
    spec: Path, size: int, dest: Path, staging: Path, order: str = "le", options: Sequence[str] = ()
) -> list[str]:
    """makefs writing the files of `spec` under `staging` into an FFSv1 image, little-endian
    unless `order` says "be"; `options`: more of makefs's FFS options (bsize=8192, ...)."""
    return ["makefs", "-t", "ffs", "-B", order, "-o", ",".join(["version=1", *options]),
            "-s", str(size), "-F", str(spec), "-x", str(dest), str(staging)]  # fmt: skip


# sbin/newfs/newfs.c: below SMALL_FSSIZE sectors 512-byte fragments, below MEDIUM_FSSIZE
# 1024, above 2048; a block is DFL_FRAG_BLK fragments; one inode per NFPI fragments
SECTOR = 512
SMALL_FSSIZE, MEDIUM_FSSIZE = 20 * 1024 * 2, 1000 * 1024 * 2
S_DFL_FRAGSIZE, M_DFL_FRAGSIZE, L_DFL_FRAGSIZE = 512, 1024, 2048
DFL_FRAG_BLK = 8
NFPI = 4
DINODE1_SIZE = 128


def newfs_fsize(size: int) -> int:
    """The fragment size newfs gives a file system of `size` bytes."""
    sectors = size // SECTOR
    if sectors < SMALL_FSSIZE:
        return S_DFL_FRAGSIZE
    return M_DFL_FRAGSIZE if sectors < MEDIUM_FSSIZE else L_DFL_FRAGSIZE


def newfs_density(size: int) -> int:
    """Bytes per inode newfs gives a file system of `size` bytes (its -i default)."""
    return NFPI * newfs_fsize(size)


def frags_per_inode(density: int, fsize: int) -> int:
    """mkfs.c: fragsperinode = MAX(numfrags(density), 1)."""
    return max(density // fsize, 1)


def inodes_per_group(fpg: int, fragsperinode: int, bsize: int) -> int:
    """mkfs.c: ipg = roundup(howmany(fpg, fragsperinode), INOPB), for UFS1 inodes."""
    inopb = bsize // DINODE1_SIZE
    inodes = -(-fpg // fragsperinode)
    return -(-inodes // inopb) * inopb


def room_options(size: int, density: int | None = None) -> list[str]:
    """makefs's FFS options for an image a domU writes: newfs's block and fragment size
    for `size`, and `density` bytes per inode (None: newfs's for `size`)."""
    fsize = newfs_fsize(size)
    return [
        f"bsize={DFL_FRAG_BLK * fsize}",
        f"fsize={fsize}",
        f"density={density or newfs_density(size)}",
    ]


def write_ffs(
    tree: Tree, size: int, dest: Path, *, room: bool = False, density: int | None = None
) -> None:
    """`room`: the image is written by a domU, and gets newfs's layout (`density` bytes
    per inode, None: newfs's); otherwise its inodes are as many as makefs sizes to the files."""
    spec = dest.with_name(dest.name + ".spec")
    write_spec(tree.walk(), spec)
    options = room_options(size, density) if room else []
    try:
        argv = makefs_argv(spec, size, dest, tree.staging, options=options)
        with timed(f"{dest.name}: makefs"):
            run(argv, f"{dest.name}", reads=tree_bytes(tree))
    except DomusError as error:
        if "No space left on device" in error.message:
            # the host's disk or the image's file system: only the host can tell
            raise host_full(dest, size, sure=False) or _too_small(dest, size) from error
        if re.search(r"too small|exceeds|larger than the maxsize|No space", error.message, re.I):
            raise _too_small(dest, size) from error
        raise
    finally:
        spec.unlink(missing_ok=True)
    with timed(f"{dest.name}: punch zeros"):
        punch_zeros(dest)


def _too_small(dest: Path, size: int) -> DomusError:
    return DomusError(
        f"{dest.name}: the files do not fit in {format_size(size)}",
        hint="raise the image's `size` in the site file",
    )
