"""The image kinds: one module each, holding its doit tasks, what its templates see and
its action. dodo.py makes one `task_<NAME>` generator per kind, in this order (the order
doit runs independent tasks in).

A kind module has:
    NAME                 the doit task group: `root`, `local:NAME`, ...
    DOC                  the group's line in `doit list`
    tasks(build)         what a doit task generator gives: one task dict, or subtasks
    build(...)           its action, named by `Deferred("tasks.kinds.NAME:build")` so that
                         what it imports loads only when it runs
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from tasks.kinds import fetch, hotplug, local, pkg, root, swap, xen

if TYPE_CHECKING:
    from tasks.run.build import Build

TaskDicts = dict[str, object] | Iterator[dict[str, object]]


class Kind(Protocol):
    NAME: str
    DOC: str

    def tasks(self, build: Build) -> TaskDicts: ...


KINDS: tuple[Kind, ...] = (fetch, root, local, pkg, swap, xen, hotplug)


def generator_for(kind: Kind, build: Build) -> Callable[[], TaskDicts]:
    """A doit task generator for `kind`: doit names the group after the function and
    shows its docstring."""

    def generate() -> TaskDicts:
        return kind.tasks(build)

    generate.__name__ = generate.__qualname__ = f"task_{kind.NAME}"
    generate.__doc__ = kind.DOC
    return generate
