"""ext2fs images with mke2fs -d, then owners and modes from the manifest through debugfs.

mke2fs copies the staged files with the builder's own ownership; debugfs sets every
inode's owner, group and mode afterwards, so no step needs root. Features are kept to
what NetBSD's ext2fs supports (128-byte inodes, no extents, no journal).
"""

from __future__ import annotations

import stat
from pathlib import Path

from tasks.images.publish import host_full
from tasks.images.tree import ROOT, Entry, Tree, tree_bytes
from tasks.run.errors import DomusError
from tasks.site.sizes import format_size
from tasks.tools import run

FEATURES = "none,filetype,sparse_super,large_file"
_TYPE_BITS = {
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "link": stat.S_IFLNK,
    "char": stat.S_IFCHR,
    "block": stat.S_IFBLK,
    "fifo": stat.S_IFIFO,
}


def write_ext2fs(
    tree: Tree, size: int, dest: Path, *, room: bool = False, density: int | None = None
) -> None:
    """`density`: bytes per inode (mke2fs -i); None: mke2fs's own, which already leaves
    room (`room` is for FFS, whose makefs sizes the inodes to the files)."""
    with open(dest, "wb") as image:  # the file publishing made, of its mode
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
                *(["-i", str(density)] if density else []),
                "-E",
                "root_owner=0:0",
                "-d",
                str(tree.staging),
                str(dest),
            ],
            dest.name,
            reads=tree_bytes(tree),
        )
    except DomusError as error:
        if "No space left on device" in error.message:
            # the host's disk or the image's file system: only the host can tell
            raise host_full(dest, size, sure=False) or _too_small(dest, size) from error
        if "No space" in error.message or "Could not allocate" in error.message:
            raise _too_small(dest, size) from error
        raise
    run(["debugfs", "-w", "-f", "-", str(dest)], dest.name, input=metadata_commands(tree))


def _too_small(dest: Path, size: int) -> DomusError:
    return DomusError(
        f"{dest.name}: the files do not fit in {format_size(size)}",
        hint="raise the image's `size` in the site file",
    )


def metadata_commands(tree: Tree) -> str:
    return "".join(_commands(path, entry) for path, entry in tree.walk())


def _commands(path: str, entry: Entry) -> str:
    name = "/" if path == ROOT else "/" + path
    if '"' in name or "\n" in name:
        raise DomusError(f"{name!r}: ext2fs images cannot hold this name", hint="use ffs")
    mode = _TYPE_BITS[entry.type] | entry.mode
    owner = f'sif "{name}" uid {entry.uid}\nsif "{name}" gid {entry.gid}\n'
    return _mknod(name, entry) + f'sif "{name}" mode 0{mode:o}\n' + owner


def _mknod(name: str, entry: Entry) -> str:
    """debugfs makes the device nodes and FIFOs that mke2fs found nothing staged for (in
    the current directory: debugfs's mknod takes a name, not a path)."""
    if entry.type not in ("char", "block", "fifo"):
        return ""
    parent, _, base = name.rpartition("/")
    if entry.type == "fifo":
        return f'cd "{parent or "/"}"\nmknod "{base}" p\ncd /\n'
    assert entry.device is not None
    major, minor = entry.device
    # NetBSD's ext2fs reads the device from the inode's first block pointer, where
    # debugfs puts it (major << 8 | minor) only while both fit in 8 bits
    if major > 255 or minor > 255:
        raise DomusError(
            f"{name}: device {major},{minor} cannot be stored in an ext2fs image "
            "(major and minor must be below 256)",
            hint="use fs: ffs for this image",
        )
    return f'cd "{parent or "/"}"\nmknod "{base}" {entry.type[0]} {major} {minor}\ncd /\n'
