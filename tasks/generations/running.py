"""Which generation each running domU uses, asked of xl(1).

A domU opens its images when it is created and keeps them: after an activation it still
runs on the generation that was active when it started. xl names each domain's disks (the
stable paths of the xl configs) and its start time (tasks.xl); the slot's activation log
then says which generation was active at that moment. A disk that names a generation
directly is taken as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tasks.generations.slots import Slot, link_of, pool_names
from tasks.generations.store import Store
from tasks.xl import Domain


def in_use(
    store: Store, domains: Iterable[Domain], slots: Iterable[Slot]
) -> dict[tuple[str, str], set[str]]:
    """(pool, generation) -> names of the running domUs that use it."""
    stable: dict[str, Slot] = {}
    for slot in slots:
        active = store.active_link(slot) / slot.image
        image = link_of(store.layout, slot)
        stable[os.path.abspath(image)] = slot
        stable[os.path.abspath(active)] = slot
    used: dict[tuple[str, str], set[str]] = {}
    for domain in domains:
        for disk in domain.disks:
            for key in _generations(store, stable, os.path.abspath(disk), domain.started):
                used.setdefault(key, set()).add(domain.name)
    return used


def _generations(
    store: Store, stable: dict[str, Slot], disk: str, started: float | None
) -> set[tuple[str, str]]:
    slot = stable.get(disk)
    if slot is not None:
        return {(slot.pool, g) for g in store.state(slot).active_at(started)}
    path = Path(disk)
    for pool in pool_names():
        if path.parent.parent == store.pool(pool):
            return {(pool, path.parent.name)}
    return set()
