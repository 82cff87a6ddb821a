"""An image is built beside its final name and renamed into place after fsync.

A kill at any moment leaves either the old image or the new one, never half of one; a
running domU keeps the inode it opened. The file to write is created with its final mode
before any byte is in it, whatever the umask: 0600 in a 0700 directory unless the caller
says otherwise (tasks/images/private.py), as nearly everything published so is a domU's own.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.images.private import PRIVATE_FILE, private_directory
from tasks.run.errors import DomusError
from tasks.run.log import timed
from tasks.site.sizes import MiB


def partial_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial")


@contextmanager
def publishing(final: Path, mode: int = PRIVATE_FILE) -> Iterator[Path]:
    """Yield the temporary path to write, an empty file of `mode` (a private one in a
    private directory); on success it becomes `final`. Writers write into the file there
    (a file put in its place instead must be made with the same mode)."""
    if mode & 0o077:  # for others to read: in an ordinary directory
        final.parent.mkdir(parents=True, exist_ok=True)
    else:
        private_directory(final.parent)
    temporary = partial_name(final)
    temporary.unlink(missing_ok=True)
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            os.fchmod(fd, mode)  # what the umask took
        finally:
            os.close(fd)
        yield temporary
        with timed(f"{final.name}: fsync"):
            fsync_file(temporary)
        os.replace(temporary, final)
        fsync_dir(final.parent)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise host_full(temporary) or error from None
        raise
    finally:
        temporary.unlink(missing_ok=True)


def host_full(dest: Path, size: int | None = None, *, sure: bool = True) -> DomusError | None:
    """The error for a host disk too full to write `dest` (of `size` bytes); unless `sure`,
    None where the disk has room: then a "No space left on device" came from inside the
    image. The partial `dest` is removed first, so its blocks count as free."""
    dest.unlink(missing_ok=True)
    st = os.statvfs(dest.parent)
    free = st.f_bavail * st.f_frsize
    if not sure and size is not None and free >= size:
        return None
    needs = "" if size is None else f" needs {size / MiB:.1f} MiB while it is written and"
    # a generation is written in a hidden directory: name the one the operator knows
    where = next(p for p in (dest.parent, *dest.parent.parents) if not p.name.startswith("."))
    return DomusError(
        f"{where}: the disk is full: {dest.name}{needs} {free / MiB:.1f} MiB is free",
        hint="free space on that disk, or set output: in the site file to a larger one",
    )


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(final: Path, text: str, mode: int = 0o644) -> None:
    """A small output file (an xl config, a record), published the same way."""
    with publishing(final, mode) as temporary:
        temporary.write_text(text)


def save_small(final: Path, text: str, what: str) -> None:
    """A small file that processes running at once may each save (a cache, a record):
    written beside `final` under this process's id, fsynced and renamed; on any error the
    temporary file is removed and the error names `final` and what it holds."""
    temporary = final.with_name(f".{final.name}.{os.getpid()}")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, final)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise DomusError(
            f"{final}: cannot save {what}: {error.strerror or error}",
            hint="free space on its file system" if error.errno == errno.ENOSPC else None,
        ) from None
