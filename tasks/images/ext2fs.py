"""ext2fs images with mke2fs -d, then owners and modes from the manifest through debugfs.

mke2fs copies the staged files with the builder's own ownership; debugfs sets every
inode's owner, group and mode afterwards, so no step needs root. Features are kept to
what NetBSD's ext2fs supports (128-byte inodes, no extents, no journal).
"""

from __future__ import annotations

import stat
from pathlib import Path

from tasks.errors import DomusError
from tasks.sizes import format_size
from tasks.tools import run
from tasks.tree import ROOT, Entry, Tree

FEATURES = "none,filetype,sparse_super,large_file"
_TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "link": stat.S_IFLNK}


def write_ext2fs(tree: Tree, size: int, dest: Path) -> None:
    dest.unlink(missing_ok=True)
    with open(dest, "wb") as image:
        image.truncate(size)
    try:
        run(
            [
                "mke2fs",
                "-q",
                "-F",
                "-t",
                "ext2",
                "-r",
                "1",
                "-O",
                FEATURES,
                "-I",
                "128",
                "-b",
                "4096" if size >= (64 << 20) else "1024",
                "-E",
                "root_owner=0:0",
                "-d",
                str(tree.staging),
                str(dest),
            ],
            dest.name,
        )
    except DomusError as error:
        if "No space" in error.message or "Could not allocate" in error.message:
            raise DomusError(
                f"{dest.name}: the files do not fit in {format_size(size)}",
                hint="raise the image's `size` in the site file",
            ) from error
        raise
    run(["debugfs", "-w", "-f", "-", str(dest)], dest.name, input=metadata_commands(tree))


def metadata_commands(tree: Tree) -> str:
    return "".join(_commands(path, entry) for path, entry in tree.walk())


def _commands(path: str, entry: Entry) -> str:
    name = "/" if path == ROOT else "/" + path
    if '"' in name or "\n" in name:
        raise DomusError(f"{name!r}: ext2fs images cannot hold this name", hint="use ffs")
    mode = _TYPE_BITS[entry.type] | entry.mode
    return (
        f'sif "{name}" mode 0{mode:o}\nsif "{name}" uid {entry.uid}\nsif "{name}" gid {entry.gid}\n'
    )
