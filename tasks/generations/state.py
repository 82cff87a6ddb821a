"""What domus remembers about a slot, in one small JSON file written atomically.

- `stack`: the generations activated one after the other; the last is the active one.
  A rollback drops the last and activates the one before, so repeated rollbacks go
  further back, and a build after a rollback does not bring the dropped one back.
- `log`: every activation with its time, so that a domU's start time tells which
  generation it booted from (a running domU keeps the image it opened).
- `built`: the generations built (or reused) for this slot, the most recent last;
  garbage collection keeps the newest of them.
- `pinned`: no build moves a pinned slot; only `./domus activate` and `rollback` do.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tasks.images.publish import write_file
from tasks.run.errors import DomusError

STACK_LIMIT = 100
LOG_LIMIT = 1000


@dataclass
class SlotState:
    pinned: bool = False
    stack: list[str] = field(default_factory=list)
    log: list[tuple[str, float]] = field(default_factory=list)
    built: list[str] = field(default_factory=list)

    @property
    def top(self) -> str | None:
        return self.stack[-1] if self.stack else None

    def activated(self, generation: str, when: float) -> None:
        if self.top != generation:
            self.stack = [*self.stack, generation][-STACK_LIMIT:]
        self.log = [*self.log, (generation, when)][-LOG_LIMIT:]

    def made(self, generation: str) -> None:
        self.built = [g for g in self.built if g != generation] + [generation]

    def active_at(self, when: float | None, margin: float = 2.0) -> set[str]:
        """The generations that may have been active at `when`: the one activated last
        before it, and any activated within `margin` seconds (start times are whole
        seconds). With no time, every generation this slot has had."""
        if when is None:
            return {generation for generation, _ in self.log}
        found: set[str] = set()
        before: str | None = None
        for generation, at in self.log:
            if at <= when - margin:
                before = generation
            elif at <= when + margin:
                found.add(generation)
        if before is not None:
            found.add(before)
        return found


def load_state(path: Path) -> SlotState:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return SlotState()
    except (OSError, ValueError) as error:
        raise DomusError(
            f"{path}: cannot read this slot's state: {error}",
            hint="it is written atomically, so it was changed by hand; "
            "remove it to start a new history (the generations stay)",
        ) from None
    return SlotState(
        pinned=bool(data.get("pinned", False)),
        stack=[str(g) for g in data.get("stack", [])],
        log=[(str(g), float(at)) for g, at in data.get("log", [])],
        built=[str(g) for g in data.get("built", [])],
    )


def save_state(path: Path, state: SlotState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, json.dumps(asdict(state), indent=1) + "\n")
