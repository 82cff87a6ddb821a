"""The image kinds: one module each, holding its doit tasks, where its files land, its
generation pool, the disk it gives each domU, what its templates see and its action.

This registry names the kinds and imports a kind's module only when it is asked for, as
mkosi looks up a distribution by name: the Layout and the generation slots look a kind up
here while the kind modules import them, and no import runs both ways. dodo.py makes one
`task_<NAME>` generator per kind, in this order (the order doit runs independent tasks in).

A kind module has:
    NAME                 the doit task group: `root`, `local:NAME`, ...
    DOC                  the group's line in `doit list`
    tasks(build)         what a doit task generator gives: one task dict, or subtasks
    build(...)           its action, named by `Deferred("tasks.kinds.NAME:build")` so that
                         what it imports loads only when it runs
and, where it has them:
    IMAGE                the Place (tasks.site.layout) its image is published at; its other
                         files' Places under names of its own (root's KERNEL, xen's CONFIG)
    POOL                 the generation Pool (tasks.generations.slots) its image is kept in
    DISK                 the Disk (tasks.kinds.xen) each domU's xl config attaches its image as
    hotplug(site, domu, layout)
                         the hotplug `script` and its `params` the dom0 opens that disk
                         through, or None
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any, Protocol

TaskDicts = dict[str, object] | Iterator[dict[str, object]]

# The module tasks.kinds.NAME of each kind, in the order doit runs their groups.
NAMES: tuple[str, ...] = ("fetch", "root", "local", "pkg", "swap", "xen", "hotplug")


class Kind(Protocol):
    NAME: str
    DOC: str

    # build is a tasks.run.build.Build, not named here: what the Layout reads imports
    # nothing above it
    def tasks(self, build: Any) -> TaskDicts: ...


def named(name: str) -> Kind:
    """The kind `name`: its module, tasks.kinds.NAME."""
    return import_module(f"{__name__}.{name}")


def every() -> tuple[Kind, ...]:
    return tuple(named(name) for name in NAMES)


def generator_for(kind: Kind, build: Any) -> Callable[[], TaskDicts]:
    """A doit task generator for `kind`: doit names the group after the function and
    shows its docstring."""

    def generate() -> TaskDicts:
        return kind.tasks(build)

    generate.__name__ = generate.__qualname__ = f"task_{kind.NAME}"
    generate.__doc__ = kind.DOC
    return generate
