"""Garbage collection of generations.

Kept: the newest `generations.keep` of each slot, every active generation, the pinned
ones, and any a running domU uses. A generation shared by several domUs' pkg.img goes
only when none of them keeps it. Runs under the run lock, so no build is writing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tasks.generations.slots import Slot, pool_names
from tasks.generations.store import Generation, Store


@dataclass
class Collected:
    removed: list[Generation] = field(default_factory=list)
    kept: int = 0

    @property
    def freed(self) -> int:
        return sum(generation.disk for generation in self.removed)


def keepers(
    store: Store, slots: Iterable[Slot], keep: int, used: Mapping[tuple[str, str], object]
) -> set[tuple[str, str]]:
    kept = set(used)
    for slot in slots:
        state = store.state(slot)
        kept.update((slot.pool, g) for g in state.built[-keep:])
        active = store.active(slot)
        if active is not None:
            kept.add((slot.pool, active))
    return kept


def collect(store: Store, keep: int, used: Mapping[tuple[str, str], object]) -> Collected:
    collected = Collected()
    store.remove_leftovers()
    with store.lock():
        slots = store.slots()
        kept = keepers(store, slots, keep, used)
        for pool in pool_names():
            for generation in store.ids(pool):
                if (pool, generation) in kept:
                    collected.kept += 1
                    continue
                collected.removed.append(store.generation(pool, generation))
                store.remove(pool, generation)
        for slot in slots:
            store.forget_missing(slot)
    return collected
