"""The generation store: complete generations on disk, the active link of each slot.

A generation is written into a hidden directory, fsynced and renamed to its id, so a
directory named by an id is always complete. Activation replaces one symlink (made under
a temporary name, then renamed over the old one), so a kill at any moment leaves the old
generation active or the new one, never a mix. Every change of a slot's state happens
under one short lock, apart from the long image builds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from tasks.generations.slots import Slot, from_key, pool_names
from tasks.generations.state import SlotState, load_state, save_state
from tasks.images.publish import fsync_dir, fsync_file
from tasks.run.errors import DomusError
from tasks.run.locks import lock_path
from tasks.site import Layout

RECORD = "generation.json"
LOCK_TIMEOUT = 120.0


def generation_id(record: Mapping[str, str]) -> str:
    """The id of the generation built from these inputs (an inputs record)."""
    text = json.dumps(dict(record), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Generation:
    pool: str
    id: str
    path: Path
    built: str  # ISO 8601, UTC
    seconds: float  # time the build took
    size: int  # bytes of the image
    disk: int  # bytes the generation takes on disk (its images are sparse)
    inputs: dict[str, str]

    @property
    def image(self) -> Path:
        return self.path / f"{self.pool}.img"


def replace_link(link: Path, target: str) -> None:
    """Point `link` at `target` in one step: a new symlink renamed over the old name."""
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.new")
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    os.replace(temporary, link)
    fsync_dir(link.parent)


def ensure_link(link: Path, target: Path) -> None:
    relative = os.path.relpath(target, link.parent)
    try:
        if os.readlink(link) == relative:
            return
    except OSError:
        pass  # missing, or a file built before generations existed: replaced
    replace_link(link, relative)


class Store:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.top = layout.images / "generations"

    # -- where things are --------------------------------------------------------

    def pool(self, pool: str) -> Path:
        return self.top / pool

    def path(self, pool: str, generation: str) -> Path:
        return self.pool(pool) / generation

    def active_link(self, slot: Slot) -> Path:
        return self.top / "active" / slot.key

    def state_path(self, slot: Slot) -> Path:
        return self.top / "slots" / f"{slot.key}.json"

    @contextmanager
    def lock(self) -> Iterator[None]:
        lock = FileLock(str(lock_path(self.layout.locks, "generations")), timeout=LOCK_TIMEOUT)
        try:
            with lock:
                yield
        except Timeout:
            raise DomusError(
                f"the generations are still locked after {LOCK_TIMEOUT:.0f} s",
                hint=f"see which process holds it with `fuser {lock.lock_file}`",
            ) from None

    # -- generations -------------------------------------------------------------

    def exists(self, pool: str, generation: str) -> bool:
        return (self.path(pool, generation) / RECORD).is_file()

    def ids(self, pool: str) -> list[str]:
        try:
            names = os.listdir(self.pool(pool))
        except FileNotFoundError:
            return []
        return sorted(
            name for name in names if not name.startswith(".") and self.exists(pool, name)
        )

    def generation(self, pool: str, generation: str) -> Generation:
        path = self.path(pool, generation)
        try:
            data = json.loads((path / RECORD).read_text())
            return Generation(
                pool,
                generation,
                path,
                data["built"],
                data["seconds"],
                data["size"],
                data["disk"],
                data["inputs"],
            )
        except (OSError, ValueError, KeyError) as error:
            raise DomusError(
                f"{path / RECORD}: cannot read this generation's record: {error}",
                hint="it is written once, when the generation is complete; "
                "remove the generation's directory if it was changed by hand",
            ) from None

    def inputs(self, pool: str, generation: str | None) -> dict[str, str] | None:
        if generation is None or not self.exists(pool, generation):
            return None
        return self.generation(pool, generation).inputs

    def find(self, pool: str, prefix: str) -> str:
        """The generation whose id starts with `prefix` (as short as it is unique)."""
        matches = [g for g in self.ids(pool) if g.startswith(prefix)]
        if len(matches) == 1:
            return matches[0]
        what = "no" if not matches else f"{len(matches)}"
        raise DomusError(
            f"{what} {pool} generations start with {prefix!r}",
            hint="`./domus generations` lists them",
        )

    @contextmanager
    def building(self, pool: str, generation: str, record: Mapping[str, str]) -> Iterator[Path]:
        """Yield a directory to write the generation's files into; on success it is
        fsynced, described in generation.json and renamed to its id."""
        final = self.path(pool, generation)
        work = final.with_name(f".{generation}.partial")
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        start = time.monotonic()
        try:
            yield work
            for item in work.iterdir():
                fsync_file(item)
            image = work / f"{pool}.img"
            description = {
                "id": generation,
                "built": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(time.monotonic() - start, 3),
                "size": image.stat().st_size,
                "disk": sum(item.stat().st_blocks * 512 for item in work.iterdir()),
                "inputs": dict(record),
            }
            (work / RECORD).write_text(json.dumps(description, indent=1, sort_keys=True) + "\n")
            fsync_file(work / RECORD)
            fsync_dir(work)
            os.rename(work, final)
            fsync_dir(final.parent)
        finally:
            if work.exists():
                shutil.rmtree(work)

    def remove(self, pool: str, generation: str) -> None:
        """Renamed first, so a kill halfway leaves no directory that looks complete."""
        path = self.path(pool, generation)
        doomed = path.with_name(f".{generation}.removing")
        os.rename(path, doomed)
        shutil.rmtree(doomed)

    def remove_leftovers(self) -> list[Path]:
        """Directories of builds and removals a killed run left; only under the run lock."""
        gone = []
        for pool in pool_names():
            try:
                items = list(os.scandir(self.pool(pool)))
            except FileNotFoundError:
                continue
            for item in items:
                if item.name.startswith(".") and item.name.endswith((".partial", ".removing")):
                    shutil.rmtree(item.path)
                    gone.append(Path(item.path))
        return gone

    # -- slots -------------------------------------------------------------------

    def slots(self) -> list[Slot]:
        """Every slot that has ever had a generation, whether or not the site still has it."""
        try:
            names = os.listdir(self.top / "slots")
        except FileNotFoundError:
            return []
        slots = [from_key(name[: -len(".json")]) for name in names if name.endswith(".json")]
        return sorted(slot for slot in slots if slot is not None)

    def active(self, slot: Slot) -> str | None:
        try:
            return os.path.basename(os.readlink(self.active_link(slot)))
        except OSError:
            return None

    def state(self, slot: Slot) -> SlotState:
        """The slot's state, agreeing with its active link: an activation killed between
        the link and the state file is completed here."""
        state = load_state(self.state_path(slot))
        active = self.active(slot)
        if active is not None and state.top != active:
            when = os.lstat(self.active_link(slot)).st_mtime
            state.activated(active, when)
            state.made(active)
        return state

    def _save(self, slot: Slot, state: SlotState) -> None:
        save_state(self.state_path(slot), state)

    def _point(self, slot: Slot, generation: str, links: Mapping[Path, str]) -> None:
        if not self.exists(slot.pool, generation):
            raise DomusError(
                f"{slot.name}: there is no complete generation {generation}",
                hint="`./domus generations` lists them",
            )
        active = self.active_link(slot)
        replace_link(active, os.path.relpath(self.path(slot.pool, generation), active.parent))
        for link, member in links.items():
            ensure_link(link, active / member)

    def offer(self, slot: Slot, generation: str, links: Mapping[Path, str]) -> bool:
        """A build made `generation` for `slot`: activate it unless the slot is pinned to
        another one. True when it is active afterwards."""
        with self.lock():
            state = self.state(slot)
            state.made(generation)
            active = self.active(slot)
            if state.pinned and active is not None and active != generation:
                self._save(slot, state)
                return False
            self._point(slot, generation, links)
            if active != generation:
                state.activated(generation, time.time())
            self._save(slot, state)
            return True

    def activate(self, slot: Slot, generation: str, links: Mapping[Path, str]) -> str | None:
        """Make `generation` the active one, pinned or not; return the one it replaces."""
        with self.lock():
            state = self.state(slot)
            previous = self.active(slot)
            self._point(slot, generation, links)
            state.activated(generation, time.time())
            if generation not in state.built:
                state.made(generation)
            self._save(slot, state)
            return previous

    def rollback(self, slot: Slot, links: Mapping[Path, str]) -> tuple[str, str]:
        """Go back to the generation active before this one; return (from, to)."""
        with self.lock():
            state = self.state(slot)
            current = self.active(slot)
            if current is None:
                raise DomusError(
                    f"{slot.name}: nothing is active yet, so nothing to roll back",
                    hint="build it first: `./domus build`",
                )
            stack = state.stack[:-1]
            while stack and (stack[-1] == current or not self.exists(slot.pool, stack[-1])):
                stack.pop()
            if not stack:
                raise DomusError(
                    f"{slot.name}: no earlier generation to go back to",
                    hint="`./domus generations` lists them; "
                    "`./domus activate` makes any of them active",
                )
            target = stack[-1]
            self._point(slot, target, links)
            state.stack = stack
            state.log = [*state.log, (target, time.time())]
            self._save(slot, state)
            return current, target

    def pin(self, slot: Slot, pinned: bool) -> str | None:
        with self.lock():
            state = self.state(slot)
            active = self.active(slot)
            if pinned and active is None:
                raise DomusError(
                    f"{slot.name}: nothing is active yet, so nothing to pin",
                    hint="build it first: `./domus build`",
                )
            state.pinned = pinned
            self._save(slot, state)
            return active

    def forget_missing(self, slot: Slot) -> None:
        """After garbage collection: the slot's lists name only generations that exist."""
        state = self.state(slot)
        built = [g for g in state.built if self.exists(slot.pool, g)]
        stack = [g for g in state.stack if self.exists(slot.pool, g)]
        if (built, stack) != (state.built, state.stack):
            state.built, state.stack = built, stack
            self._save(slot, state)

    def forget(self, slot: Slot) -> None:
        """The slot of a domU the site no longer has: its active link and its state go, so
        garbage collection keeps its generations only for the domUs that still use them."""
        with self.lock():
            self.active_link(slot).unlink(missing_ok=True)
            self.state_path(slot).unlink(missing_ok=True)
