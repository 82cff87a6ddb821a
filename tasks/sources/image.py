"""An existing root.img as the root source: how the seed scripts' users start.

As root, the image is attached and mounted read-only through the block-device layer (vnd
on NetBSD, loop on Linux), read as a tree like a directory owned by root (owners and modes
from the file system), and unmounted; the new root.img is then built from that tree by the
usual recipe. The source image is never written: the device is read-only, and so is the
mount.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.blockdev.attach import backend_for, mounted
from tasks.formats.superblocks import detect_fs
from tasks.images.tree import Tree
from tasks.run.errors import DomusError
from tasks.run.locks import image_lock
from tasks.run.log import timed
from tasks.site import Layout, Site
from tasks.sources.directory import load_tree

# made by mke2fs and fsck, not part of the NetBSD tree: the new image gets its own
FILE_SYSTEM_DIRS = ("lost+found",)


def check_source_image(image: Path, layout: Layout) -> str:
    """The image's file system; refused when it is the very root.img domus writes."""
    built = layout.root_image
    if built.exists() and os.path.samefile(image, built):
        raise DomusError(
            f"root.source.image {image} is the root.img this site builds",
            hint="copy it elsewhere and name the copy",
        )
    if os.geteuid() != 0:
        raise DomusError(
            f"root.source.image {image} is read by mounting it read-only, which needs root",
            hint="run the build as root, or give root.source.tree or sets",
        )
    fs = detect_fs(image)
    if fs is None:
        raise DomusError(
            f"root.source.image {image} holds neither an FFS nor an ext2fs "
            "file system (no superblock found)"
        )
    return fs


def load_image(site: Site, layout: Layout) -> Tree:
    image = site.root.source.image
    assert image is not None
    fs = check_source_image(image, layout)
    try:
        backend_for(site.blockdev, fs)
    except DomusError as error:
        raise DomusError(
            f"root.source.image {image} ({fs}): {error.message}",
            hint="build as root on the NetBSD dom0 (vnd mounts FFS), or copy its "
            "files there into a directory for root.source.tree",
        ) from None
    with (
        image_lock(layout.locks, image),
        mounted(
            image,
            fs,
            blockdev=site.blockdev,
            locks=layout.locks,
            what="reading root.source.image",
            readonly=True,
        ) as top,
        timed(f"root: read {image}"),
    ):
        tree = load_tree(top, None, layout.root_stage)
    for path in FILE_SYSTEM_DIRS:
        if path in tree and tree.entry(path).type == "dir":
            tree.remove(path)
    return tree
