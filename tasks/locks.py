"""File locks: one run at a time, and one job at a time on each image."""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from tasks.errors import DomusError

EXIT_LOCKED = 75  # EX_TEMPFAIL: cron and wrappers can tell "busy" from "failed"
# The descriptor of the run lock `./domus nightly` holds and hands down to the doit it runs.
RUN_LOCK_FD = "DOMUS_RUN_LOCK_FD"
IMAGE_LOCK_TIMEOUT = 3600.0

_held: list[FileLock] = []


def lock_path(locks: Path, name: str) -> Path:
    locks.mkdir(parents=True, exist_ok=True)
    return locks / f"{name}.lock"


def hold_run_lock(locks: Path) -> None:
    """Take the run lock for the rest of this process, or exit at once if it is taken."""
    path = lock_path(locks, "run")
    if _inherited(path):
        return
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        _exit_locked(path)
    _held.append(lock)
    path.with_suffix(".pid").write_text(f"{os.getpid()}\n")


def run_lock_descriptor(locks: Path) -> int:
    """Take the run lock as a descriptor a child can inherit (see RUN_LOCK_FD), or exit at
    once if it is taken. The lock lasts as long as any process keeps the descriptor open."""
    path = lock_path(locks, "run")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        _exit_locked(path)
    path.with_suffix(".pid").write_text(f"{os.getpid()}\n")
    return fd


def _inherited(path: Path) -> bool:
    """This process was handed the run lock: the descriptor named in RUN_LOCK_FD is this
    very lock file, and locking it again succeeds (it is the lock already held)."""
    value = os.environ.get(RUN_LOCK_FD, "")
    try:
        fd = int(value)
        held, wanted = os.fstat(fd), os.stat(path)
        if (held.st_dev, held.st_ino) != (wanted.st_dev, wanted.st_ino):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (ValueError, OSError):
        return False
    return True


def _exit_locked(path: Path) -> None:
    print(
        f"domus: another run holds the lock {path}; this one exits without doing "
        "anything (try again when it has finished)",
        file=sys.stderr,
    )
    sys.exit(EXIT_LOCKED)


@contextmanager
def image_lock(locks: Path, image: Path) -> Iterator[None]:
    """Serialize every job that writes `image`, whichever run it belongs to."""
    # not resolved itself: root.img and pkg.img are links to the active generation
    name = "image-" + str(image.parent.resolve() / image.name).strip("/").replace("/", "_")
    lock = FileLock(str(lock_path(locks, name)), timeout=IMAGE_LOCK_TIMEOUT)
    try:
        with lock:
            yield
    except Timeout:
        raise DomusError(
            f"{image}: still locked by another job after {IMAGE_LOCK_TIMEOUT:.0f} s",
            hint=f"see which process holds it with `fuser {lock.lock_file}`",
        ) from None
