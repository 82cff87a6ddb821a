"""The pool of units: one lock file per unit in the lock directory.

A job takes the first unit whose lock it gets without blocking, once what a killed job
left on it is cleaned up, and that nothing outside domus uses; only when every unit is
taken does it wait, polling, up to `blockdev.wait` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from tasks.blockdev import records
from tasks.blockdev.backend import Backend
from tasks.blockdev.recovery import clean_leftovers
from tasks.blockdev.unit_locks import try_lock, unit_lock
from tasks.run.errors import DomusError
from tasks.run.log import note

POLL = 0.1  # seconds between two passes over a full pool


def _take_one(locks: Path, backend: Backend, count: int) -> tuple[int, FileLock] | None:
    for unit in range(count):
        name = backend.unit_name(unit)
        lock = unit_lock(locks, name)
        if not try_lock(lock):
            continue
        # a killed job's leftovers are cleaned up first; a unit they still hold is not free
        if clean_leftovers(locks, name) and backend.unit_free(unit):
            return unit, lock
        lock.release()
    return None


def holders(locks: Path, backend: Backend, count: int) -> str:
    """Who holds the units, from their records: for the operator waiting on them."""
    held = []
    for unit in range(count):
        name = backend.unit_name(unit)
        record = records.load(records.record_path(locks, name))
        held.append(
            f"{name}: pid {record.pid}, {record.what}"
            if record
            else f"{name}: busy (not domus', or between two jobs)"
        )
    return "; ".join(held)


@contextmanager
def unit_from_pool(locks: Path, backend: Backend, count: int, wait: float) -> Iterator[int]:
    """Hold one unit of the pool for the duration of the block."""
    deadline = time.monotonic() + wait
    told = False
    while (taken := _take_one(locks, backend, count)) is None:
        if time.monotonic() >= deadline:
            raise DomusError(
                f"no free {backend.name} unit after waiting {wait:g} s; all {count} are in use "
                f"({holders(locks, backend, count)})",
                hint="wait for those jobs, run fewer at once (`doit -n`), or raise blockdev.units "
                "(on NetBSD, make the devices first: `cd /dev && sh MAKEDEV vnd4`) or "
                "blockdev.wait",
            )
        if not told:
            note(
                f"all {count} {backend.name} units are in use "
                f"({holders(locks, backend, count)}); waiting up to {wait:g} s"
            )
            told = True
        time.sleep(POLL)
    unit, lock = taken
    try:
        yield unit
    finally:
        lock.release()
