"""What a build does with the generation store: build a generation unless one from the
same inputs exists, then activate it unless the slot is pinned."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks.generations.slots import Slot
from tasks.generations.store import Store, generation_id
from tasks.run.locks import image_lock
from tasks.site import Layout
from tasks.sources.inputs import changes, describe


@dataclass(frozen=True)
class Made:
    slot: Slot
    id: str
    built: bool  # False: a generation from the same inputs was there already
    seconds: float
    active: bool
    previous: str | None  # the generation active before
    changed: list[str]  # inputs that differ from the previous one's

    def describe(self) -> str:
        how = f"built in {self.seconds:.1f} s" if self.built else "reused (same inputs)"
        why = f"; changed: {describe(self.changed)}" if self.changed else ""
        if self.active and self.previous == self.id:
            state = "active already"
        elif self.active:
            state = "active" + (f", was {self.previous}" if self.previous else "")
        else:
            state = (
                f"not activated: {self.slot.name} is pinned to {self.previous} "
                f"(`./domus activate {self.slot.name} {self.id}` to use it)"
            )
        return f"{self.slot.name}: generation {self.id} {how}; {state}{why}"


def make_generation(
    layout: Layout,
    slot: Slot,
    record: Mapping[str, str],
    write: Callable[[Path], None],
    links: Mapping[Path, str],
) -> Made:
    """`write(directory)` writes the generation's files; it is called only when no
    generation from these inputs exists."""
    store = Store(layout)
    generation = generation_id(record)
    previous = store.active(slot)
    start = time.monotonic()
    built = False
    with image_lock(layout.locks, store.path(slot.pool, generation)):
        if not store.exists(slot.pool, generation):
            with store.building(slot.pool, generation, record) as directory:
                write(directory)
            built = True
    seconds = time.monotonic() - start
    active = store.offer(slot, generation, links)
    old = store.inputs(slot.pool, previous) if previous != generation else None
    return Made(
        slot,
        generation,
        built,
        seconds,
        active,
        previous,
        changes(old, record) if old is not None else [],
    )
