"""The lock file of each unit of the pool, in the lock directory.

flock(2)-style locks: a killed process lets go of its unit at once, which is how the next
run knows that the unit's record is stale.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout

from tasks.run.locks import lock_path


def unit_lock(locks: Path, unit_name: str) -> FileLock:
    return FileLock(str(lock_path(locks, unit_name)), timeout=0, preserve_lock_file=True)


def try_lock(lock: FileLock) -> bool:
    try:
        lock.acquire()
    except Timeout:
        return False
    return True
