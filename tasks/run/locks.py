"""File locks: one run at a time, and one job at a time on each image.

A lock file stays in the lock directory once made, whether the job that took it succeeded or
failed: removing one that another process has opened and waits on would let a third make a
new file and hold the same lock at the same time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from tasks.run.errors import DomusError, LockHeld, SiteError

IMAGE_LOCK_TIMEOUT = 3600.0

_held: list[FileLock] = []


def lock_path(locks: Path, name: str) -> Path:
    try:
        locks.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _unusable(locks, error) from None
    return locks / f"{name}.lock"


def _unusable(locks: Path, error: OSError) -> SiteError:
    return SiteError(
        f"{locks}: the lock directory (locks: in the site file) cannot be used: "
        f"{error.strerror or error}",
        hint="set locks: to a directory this user can create files in",
    )


def hold_run_lock(locks: Path) -> None:
    """Take the run lock for the rest of this process (once: taking it again changes
    nothing); LockHeld at once if another process holds it."""
    path = lock_path(locks, "run")
    if any(Path(held.lock_file) == path for held in _held):
        return
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
        _held.append(lock)
        path.with_suffix(".pid").write_text(f"{os.getpid()}\n")
    except Timeout:
        raise _locked(path) from None
    except OSError as error:
        raise _unusable(locks, error) from None


def _locked(path: Path) -> LockHeld:
    return LockHeld(
        f"another run holds the lock {path}; this one exits without doing "
        "anything (try again when it has finished)"
    )


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
