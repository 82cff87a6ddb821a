"""File locks: one run at a time, and one job at a time on each image."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from tasks.errors import DomusError

EXIT_LOCKED = 75  # EX_TEMPFAIL: cron and wrappers can tell "busy" from "failed"
IMAGE_LOCK_TIMEOUT = 3600.0

_held: list[FileLock] = []


def lock_path(locks: Path, name: str) -> Path:
    locks.mkdir(parents=True, exist_ok=True)
    return locks / f"{name}.lock"


def hold_run_lock(locks: Path) -> None:
    """Take the run lock for the rest of this process, or exit at once if it is taken."""
    path = lock_path(locks, "run")
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        print(f"domus: another run holds the lock {path}; this one exits without doing "
              "anything (try again when it has finished)", file=sys.stderr)
        sys.exit(EXIT_LOCKED)
    _held.append(lock)
    path.with_suffix(".pid").write_text(f"{os.getpid()}\n")


@contextmanager
def image_lock(locks: Path, image: Path) -> Iterator[None]:
    """Serialize every job that writes `image`, whichever run it belongs to."""
    name = "image-" + str(image.resolve()).strip("/").replace("/", "_")
    lock = FileLock(str(lock_path(locks, name)), timeout=IMAGE_LOCK_TIMEOUT)
    try:
        with lock:
            yield
    except Timeout:
        raise DomusError(f"{image}: still locked by another job after "
                         f"{IMAGE_LOCK_TIMEOUT:.0f} s", hint="see which process holds it with "
                         f"`fuser {lock.lock_file}`") from None
