"""`./domus generations|activate|rollback|pin|unpin|gc`: the generations of root and pkg images.

    generations [IMAGE...]      list them: * marks the active one, with the running domUs
    activate IMAGE GENERATION   make one active (an id, or the start of one)
    rollback IMAGE...           back to the generation active before this one
    pin IMAGE... / unpin IMAGE...   builds and nightly runs leave a pinned image alone
    gc [--keep NAME]            retire the outputs of domUs the site no longer has
                                (tasks.orphans), remove old generations (generations.keep)

IMAGE is root, pkg:NAME or pkg (the pkg.img of every domU). Add config=PATH for a site
other than config/site.yaml (tasks.cli parses the command line). Activation and rollback
take effect for every domU that starts afterwards; a running domU keeps the image it opened.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from tasks.generations.collect import Collected, collect
from tasks.generations.running import in_use
from tasks.generations.slots import Slot, parse_slots, site_slots, stable_links
from tasks.generations.store import RECORD, Generation, Store
from tasks.run.errors import DomusError
from tasks.site import Site
from tasks.sources.inputs import changes, describe
from tasks.xl import running_domains


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for larger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.1f} {unit}"


def generations_count(count: int) -> str:
    return f"{count} generation" + ("" if count == 1 else "s")


def local_time(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


class Commands:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.layout = site.layout
        self.store = Store(self.layout)
        self.domus = [domu.name for domu in site.domus]

    def slots(self, names: Sequence[str]) -> list[Slot]:
        if not names:
            known = {*site_slots(self.domus), *self.store.slots()}
            return sorted(known, key=lambda slot: (slot.pool != "root", slot.name))
        return [slot for name in names for slot in parse_slots(name, self.domus, self.site.path)]

    def links(self, slot: Slot) -> dict[Path, str]:
        return stable_links(self.layout, slot, self.site.root.kernel.name)

    # -- the commands ----------------------------------------------------------------

    def list(self, names: Sequence[str], as_json: bool = False) -> int:
        slots = self.slots(names)
        try:
            used = in_use(self.store, running_domains(), slots)
        except DomusError as error:
            if not as_json:
                print(f"running domUs unknown: {error.message}")
            used = {}
        if as_json:
            import json

            print(json.dumps([self._slot_json(slot, used) for slot in slots], indent=2))
            return 0
        for slot in slots:
            self._list_slot(slot, used)
        return 0

    def _slot_json(self, slot: Slot, used: dict[tuple[str, str], set[str]]) -> dict:
        state = self.store.state(slot)
        active = self.store.active(slot)
        ids = [g for g in state.built if self.store.exists(slot.pool, g)]
        if active is not None and active not in ids:
            ids.append(active)
        rows = []
        for generation in self._by_date(slot, ids):
            rows.append(
                {
                    "id": generation.id,
                    "built": generation.built,
                    "disk": generation.disk,
                    "active": generation.id == active,
                    "used_by": sorted(used.get((slot.pool, generation.id), set())),
                }
            )
        return {"image": slot.name, "pinned": state.pinned, "generations": rows}

    def _list_slot(self, slot: Slot, used: dict[tuple[str, str], set[str]]) -> None:
        state = self.store.state(slot)
        active = self.store.active(slot)
        ids = [g for g in state.built if self.store.exists(slot.pool, g)]
        if active is not None and active not in ids:
            ids.append(active)
        title = slot.name + (" (pinned)" if state.pinned else "")
        if not ids:
            print(f"{title}: no generations yet")
            return
        print(f"{title}:")
        generations = self._by_date(slot, ids)
        for index in reversed(range(len(generations))):
            generation = generations[index]
            older = generations[index - 1] if index > 0 else None
            print(
                "  "
                + self._line(
                    generation,
                    older,
                    generation.id == active,
                    used.get((slot.pool, generation.id), set()),
                )
            )

    def _by_date(self, slot: Slot, ids: Sequence[str]) -> list[Generation]:
        """Oldest first, by when each was built: a build that reuses a generation (the same
        inputs again) moves it to the end of the slot's record, not in time."""
        generations = [self.store.generation(slot.pool, g) for g in ids]

        def when(generation: Generation) -> tuple[str, int]:
            # `built` has whole seconds; its record's mtime orders two built in one second
            record = generation.path / RECORD
            return generation.built, record.stat().st_mtime_ns if record.exists() else 0

        return sorted(generations, key=when)

    def _line(
        self, generation: Generation, older: Generation | None, active: bool, users: set[str]
    ) -> str:
        mark = "*" if active else " "
        if older is None:
            what = "first"
        else:
            what = "changed: " + describe(changes(older.inputs, generation.inputs))
        line = (
            f"{mark} {generation.id}  {local_time(generation.built)}  "
            f"{human_size(generation.disk):>10}  {what}"
        )
        if users:
            line += f"  [used by {', '.join(sorted(users))}]"
        return line

    def activate(self, names: Sequence[str]) -> int:
        if len(names) != 2:
            raise DomusError(
                "usage: ./domus activate IMAGE GENERATION",
                hint="IMAGE is root or pkg:NAME; `./domus generations` lists them",
            )
        slots = parse_slots(names[0], self.domus, self.site.path)
        if len(slots) != 1:
            raise DomusError("activate names one image: root or pkg:NAME")
        slot = slots[0]
        generation = self.store.find(slot.pool, names[1])
        pinned = " (still pinned)" if self.store.state(slot).pinned else ""
        if self.store.active(slot) == generation:
            print(f"{slot.name}: generation {generation} is active already{pinned}")
            return 0
        previous = self.store.activate(slot, generation, self.links(slot))
        print(
            f"{slot.name}: generation {generation} active{pinned}, was {previous}; "
            "domUs that start from now on use it"
        )
        return 0

    def rollback(self, names: Sequence[str]) -> int:
        if not names:
            raise DomusError(
                "usage: ./domus rollback IMAGE...",
                hint="IMAGE is root, pkg:NAME "
                "or pkg; `./domus generations` lists what each would go back to",
            )

        def one(slot: Slot) -> None:
            old, new = self.store.rollback(slot, self.links(slot))
            print(f"{slot.name}: generation {new} active, was {old}")

        status = each(self.slots(names), one)
        if status == 0:
            print(
                "domUs that start from now on use it; running ones keep theirs until they "
                "restart. Builds leave it until an input changes; `./domus pin` keeps it."
            )
        return status

    def pin(self, names: Sequence[str], pinned: bool) -> int:
        if not names:
            verb = "pin" if pinned else "unpin"
            raise DomusError(
                f"usage: ./domus {verb} IMAGE...", hint="IMAGE is root, pkg:NAME or pkg"
            )

        def one(slot: Slot) -> None:
            active = self.store.pin(slot, pinned)
            if pinned:
                print(
                    f"{slot.name}: pinned to {active}; builds leave it alone until "
                    f"`./domus unpin {slot.name}`"
                )
                return
            newest = self.store.state(slot).built[-1:]
            print(
                f"{slot.name}: unpinned, {active} is active"
                + (
                    f"; the newest build is {newest[0]}: `./domus activate {slot.name} {newest[0]}`"
                    if newest and newest[0] != active
                    else ""
                )
            )

        return each(self.slots(names), one)

    def gc(self, keep: Sequence[str] = ()) -> int:
        """Retire what the site no longer has (tasks.orphans), then collect generations."""
        from tasks import orphans
        from tasks.run.build import start_run

        start_run(self.layout, generations=False)  # collecting removes those
        start = time.monotonic()
        running = running_domains()
        gone = [o.name for o in orphans.find(self.layout, [*self.domus, *keep])]
        for line in orphans.retire_here(self.layout, gone, {d.name for d in running}):
            print(line)
        slots = self.store.slots()
        collected = collect(
            self.store, self.site.generations.keep, in_use(self.store, running, slots)
        )
        for generation in collected.removed:
            print(
                f"removed {generation.pool} generation {generation.id}, built "
                f"{local_time(generation.built)} ({human_size(generation.disk)})"
            )
        print(
            f"removed {generations_count(len(collected.removed))} "
            f"({human_size(collected.freed)}), kept {collected.kept}, "
            f"in {time.monotonic() - start:.2f} s"
        )
        return 0


def each(slots: Sequence[Slot], action: Callable[[Slot], None]) -> int:
    """`action` on every slot, even when it fails on some (`rollback pkg` with one domU that
    has nothing to go back to still rolls back the others); 1 if any failed."""
    status = 0
    for slot in slots:
        try:
            action(slot)
        except DomusError as error:
            print(f"domus: {error}", file=sys.stderr)
            status = 1
    return status


def collect_now(store: Store, keep: int) -> Collected:
    """Garbage collection with the running domUs asked of xl."""
    slots = store.slots()
    return collect(store, keep, in_use(store, running_domains(), slots))
