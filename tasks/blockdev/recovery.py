"""Undoing what a record names: after every job, and for the jobs that were killed.

The same function serves both: it asks the system what is still mounted and attached,
and undoes exactly that, so it is right whether the job got as far as mounting or was
killed between writing its record and attaching anything.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from tasks.blockdev import records
from tasks.blockdev.backend import Backend
from tasks.blockdev.backends import backend_named
from tasks.blockdev.records import Record
from tasks.blockdev.unit_locks import try_lock, unit_lock
from tasks.run.errors import DomusError
from tasks.run.log import note

LINUX_MOUNTS = "/proc/self/mounts"


def is_mounted(path: Path) -> bool:
    """Whether something is mounted on `path`; Linux's mount table also shows bind mounts,
    which share the device of the directory below and so escape os.path.ismount."""
    try:
        with open(LINUX_MOUNTS) as table:
            points = [line.split()[1] for line in table if len(line.split()) > 1]
    except OSError:
        return os.path.ismount(path)
    # the table escapes blanks and backslashes in octal, as \040
    return str(path) in {
        re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), point) for point in points
    }


def undo(backend: Backend, record: Record) -> None:
    """Unmount, unconfigure and detach what the record names and the system still has."""
    mountpoint = Path(record.mountpoint)
    if is_mounted(mountpoint):
        backend.unmount(mountpoint)
    if record.cgd:
        backend.release_cgd(record.cgd)
    if record.device and backend.holds(record.device, Path(record.image)):
        backend.detach_device(record.device, None)
    # absent, or not empty because it is still mounted: reported above
    with contextlib.suppress(OSError):
        mountpoint.rmdir()


def by_hand(backend: Backend, record: Record, locks: Path) -> str:
    steps = [f"umount {record.mountpoint}"]
    if record.cgd:
        steps.append(f"cgdconfig -u {record.cgd}")
    if record.device:
        steps.append(backend.detach_command(record.device))
    steps.append(f"rm {records.record_path(locks, record.unit_name)}")
    return "; ".join(steps)


def clean_up(backend: Backend, record: Record, locks: Path) -> DomusError | None:
    """Undo and forget a record; on failure keep it and return what is left, and how to fix it."""
    try:
        undo(backend, record)
    except DomusError as error:
        return DomusError(
            f"could not clean up {record.describe()}: {error.message}",
            hint="the next run tries again; or, as root: " + by_hand(backend, record, locks),
        )
    records.remove(locks, record.unit_name)
    return None


def clean_leftovers(locks: Path, unit_name: str) -> bool:
    """With the unit's lock held: whether it is free of leftovers, after cleaning them up.

    What cannot be cleaned keeps its record (and the unit) for the operator; `recover`
    has already said what it is.
    """
    path = records.record_path(locks, unit_name)
    if not path.exists():
        return True
    record = records.load(path)
    if record is None:
        return False
    return clean_up(backend_named(record.backend), record, locks) is None


def recover(locks: Path) -> list[str]:
    """Clean up after killed runs: every record whose unit lock nobody holds any more.

    Returns what could not be cleaned, one message each; the records stay for next time.
    """
    problems = []
    for path, record in records.load_all(locks):
        lock = unit_lock(locks, path.stem)
        if not try_lock(lock):
            continue  # its job is alive
        try:
            if record is None:
                problems.append(
                    f"{path}: unreadable record of a killed run; check `mount` and "
                    "`losetup -a` or `vnconfig -l` by hand, then remove it"
                )
                continue
            problem = clean_up(backend_named(record.backend), record, locks)
            if problem is None:
                note(f"cleaned up after a killed run: {record.describe()}")
            else:
                problems.append(str(problem))
        finally:
            lock.release()
    return problems


def recover_at_start(locks: Path) -> None:
    """Before a run does anything: clean up, and say what could not be cleaned."""
    for problem in recover(locks):
        note(problem)
