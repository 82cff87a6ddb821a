"""Change detection for large source trees without reading their contents, and the
identity of a tree by what it holds.

A tree is fingerprinted by the path, size, mtime and mode of every entry, the way
make-like tools trust timestamps: a few milliseconds for thousands of files, where
hashing a gigabyte would take seconds. That is the no-op check only: a directory's size
and an entry's mtime are the file system's choice (4096 on ext4, other sizes on tmpfs, FFS
or xfs; seconds or nanoseconds), so what names a generation is the tree's content
(`tree_content`), read only when a build runs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

Entry = tuple[str, int, int, int]  # path below the top, size, mtime_ns, mode


def _walk(top: Path) -> Iterator[tuple[bytes, os.DirEntry[str], os.stat_result]]:
    """(path below the top as bytes, entry, its lstat) of every entry below `top`: each
    directory's entries by name, a directory before what it holds."""
    prefix = len(os.fsencode(top)) + 1
    stack = [str(top)]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as listing:
            items = sorted(listing, key=lambda item: item.name)
        for item in items:
            yield os.fsencode(item.path)[prefix:], item, item.stat(follow_symlinks=False)
            if item.is_dir(follow_symlinks=False):
                stack.append(item.path)


def tree_entries(top: Path) -> Iterator[Entry]:
    """Every entry below `top`, in the order the fingerprint hashes them."""
    for path, _, st in _walk(top):
        yield path.decode(errors="surrogateescape"), st.st_size, st.st_mtime_ns, st.st_mode


def fingerprint_of(entries: Iterable[Entry]) -> str:
    """The same for a copy that keeps sizes, mtimes and modes, wherever it is: entries are
    hashed by their path below the top, so a generation built from a tree copied to a dom0
    is the one built from the tree here."""
    digest = hashlib.sha256()
    for path, size, mtime_ns, mode in entries:
        # a name is bytes to NetBSD, not always UTF-8: hashed as those bytes
        digest.update(b"/" + path.encode(errors="surrogateescape"))
        digest.update(f"\0{size}\0{mtime_ns}\0{mode}\n".encode())
    return digest.hexdigest()


def tree_fingerprint(top: Path) -> str:
    return fingerprint_of(tree_entries(top))


def tree_content(top: Path) -> str:
    """A tree by the name, mode, owner and link target or content of every entry: the same
    for a copy on any file system that keeps modes and owners (rsync -a, cp -a)."""
    digest = hashlib.sha256()
    for path, item, st in _walk(top):
        # a name is bytes to NetBSD, not always UTF-8: hashed as those bytes
        digest.update(b"/" + path)
        digest.update(f"\0{st.st_mode:o}\0{st.st_uid}\0{st.st_gid}\0".encode())
        if item.is_symlink():
            digest.update(os.fsencode(os.readlink(item.path)))
        elif item.is_file(follow_symlinks=False):
            digest.update(_file_digest(item.path))
        elif not item.is_dir(follow_symlinks=False):  # a device node: its number is its content
            digest.update(f"{st.st_rdev}".encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _file_digest(path: str) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


def located_anywhere(path: Path) -> str:
    """An input path as a record holds it: by name only. Where an input lives is not an
    input (its content is, hashed), so a dom0 that builds from copies of the inputs at its
    own paths finds the generation built here (tasks/deploy) instead of building another."""
    return path.name


class TreeUnchanged:
    """doit `uptodate` check: true while the tree's fingerprint is the one last built from."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.key = f"tree:{top}"

    def __call__(self, task, values) -> bool:
        current = tree_fingerprint(self.top)
        task.value_savers.append(lambda: {self.key: current})
        return values.get(self.key) == current
