"""An image is built beside its final name and renamed into place after fsync.

A kill at any moment leaves either the old image or the new one, never half of one; a
running domU keeps the inode it opened.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.errors import DomusError
from tasks.log import timed


def partial_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial")


@contextmanager
def publishing(final: Path) -> Iterator[Path]:
    """Yield the temporary path to write; on success it becomes `final`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_name(final)
    temporary.unlink(missing_ok=True)
    try:
        yield temporary
        with timed(f"{final.name}: fsync"):
            fsync_file(temporary)
        os.replace(temporary, final)
        fsync_dir(final.parent)
    finally:
        temporary.unlink(missing_ok=True)


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
    with publishing(final) as temporary:
        temporary.write_text(text)
        os.chmod(temporary, mode)


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
