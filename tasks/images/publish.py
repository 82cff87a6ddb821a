"""An image is built beside its final name and renamed into place after fsync.

A kill at any moment leaves either the old image or the new one, never half of one; a
running domU keeps the inode it opened.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
