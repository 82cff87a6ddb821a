"""Giving an existing local.img room: a larger `local.size`, or the inode density the site
asks for (`local.density`, else newfs's for the size), with every file kept.

An FFS image is made anew by the rewrite converge (tasks/converge/rewrite.py) with the new
size and newfs's block, fragment and inode sizes for it; its entries are verified one by
one as in any rewrite. An ext2fs image is grown by resize2fs on a copy that is checked and
renamed over it; resize2fs keeps the inodes per group, so its density stays what mke2fs
made. An image is never shrunk, and an encrypted one is not reshaped in place.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

from tasks.converge.debugfs import check_clean, keep_owner
from tasks.formats.fsck_rules import ext2_problem
from tasks.images.ffs import DINODE1_SIZE, frags_per_inode, inodes_per_group, newfs_density
from tasks.images.ffs_reader import FfsError, FfsImage, FfsParams
from tasks.images.publish import publishing
from tasks.images.working_copy import working_copy
from tasks.run.errors import DomusError
from tasks.run.log import timed
from tasks.site import DomU
from tasks.site.sizes import format_size
from tasks.tools import run


@dataclass(frozen=True)
class Shape:
    """What a reshaped image is made with."""

    size: int  # bytes
    density: int | None  # bytes per inode (FFS); None: kept (ext2fs)


def wanted_density(domu: DomU) -> int:
    """Bytes per inode an FFS local.img of this domU is made with."""
    return domu.local.density or newfs_density(domu.local.size)


def has_density(params: FfsParams, density: int) -> bool:
    """Whether makefs or newfs, given `density`, made these inodes per group."""
    if params.fsize <= 0 or params.bsize < DINODE1_SIZE:  # a domU's nonsense superblock
        return False
    return params.ipg == inodes_per_group(
        params.fpg, frags_per_inode(density, params.fsize), params.bsize
    )


def check_size(domu: DomU, size: int) -> None:
    """A DomusError when local.size asks what no converge does: shrink an image, or
    grow an encrypted one."""
    wanted = domu.local.size
    if wanted < size:
        raise DomusError(
            f"it is {format_size(size)} but local.size is {format_size(wanted)}: an image "
            "is never shrunk (the domU's files may lie anywhere in it)",
            hint=f"set local.size back to {format_size(size)} or more; or "
            f"`./domus reprovision {domu.name}` to make it at the new size (the old image is "
            "kept as a dated backup)",
        )
    if wanted > size and domu.local_encrypted:
        raise DomusError(
            f"it is {format_size(size)} but local.size is {format_size(wanted)}: an "
            "encrypted image is not grown in place",
            hint=f"set local.size back to {format_size(size)}; or "
            f"`./domus reprovision {domu.name}` to make it at the new size (the old image is "
            "kept as a dated backup)",
        )


def new_shape(domu: DomU, image: Path) -> Shape | None:
    """The shape the image is to be given; None when it has the site's already. An
    encrypted image's inodes are not looked at (its superblock is ciphertext here)."""
    size = image.stat().st_size
    check_size(domu, size)
    grow = domu.local.size > size
    if domu.local.fs == "ext2fs" or domu.local_encrypted:
        return Shape(domu.local.size, None) if grow else None
    density = wanted_density(domu)
    try:
        with FfsImage(image) as reader:
            params = reader.params
    except FfsError as error:
        raise DomusError(f"its FFS superblock cannot be read: {error}") from None
    if not grow and has_density(params, density):
        return None
    return Shape(domu.local.size, density)


def describe(shape: Shape) -> str:
    per_inode = "" if shape.density is None else f", one inode per {shape.density} bytes"
    return f"{format_size(shape.size)}{per_inode}"


def grow_ext2fs(image: Path, size: int) -> None:
    """resize2fs on a copy of the image, grown to `size`, checked, then renamed over it."""
    with publishing(image) as copy:
        working_copy(image, copy, size - image.stat().st_size, f"growing {image}")
        keep_owner(image, copy)
        check_clean(copy)  # resize2fs trusts the file system it moves
        with open(copy, "r+b") as f:
            f.truncate(size)
        with timed(f"{image.name}: resize2fs"):
            # -f: the copy is private; e2fsck -fn above stands for the check it asks
            run(["resize2fs", "-f", str(copy)], image.name, guest=True)
        check_clean(copy)
        with open(copy, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            problem = ext2_problem(data)
        if problem:
            raise DomusError(
                f"resize2fs made {image} something NetBSD would refuse ({problem}); "
                "the image is unchanged",
                hint="set local.size back, or reprovision",
            )
