"""The `swap:NAME` tasks: a sparse swap.img, all holes, so it costs no disk until the domU
swaps; cgd in the domU encrypts it with a random key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from doit.tools import config_changed

from tasks.kinds.xen import Disk
from tasks.run.actions import Deferred
from tasks.run.locks import image_lock
from tasks.site import DomU, Layout, Place

if TYPE_CHECKING:
    from tasks.run.build import Build

NAME = "swap"
DOC = "each domU's swap.img (sparse)"
IMAGE = Place("images/{domu}/swap.img")
DISK = Disk("xvdb", "rw")


def tasks(build: Build) -> Iterator[dict[str, object]]:
    for domu in build.site.domus:
        yield task(domu, build.layout)


def task(domu: DomU, layout: Layout) -> dict[str, object]:
    return {
        "name": domu.name,
        "doc": f"swap.img of {domu.name} (sparse)",
        "actions": [(Deferred("tasks.kinds.swap:build"), [domu, layout])],
        "targets": [str(layout.swap_image(domu.name))],
        "uptodate": [config_changed({"size": domu.swap.size})],
        "clean": True,
    }


def build(domu: DomU, layout: Layout) -> None:
    from tasks.images.publish import publishing

    image = layout.swap_image(domu.name)
    with image_lock(layout.locks, image), publishing(image) as partial, open(partial, "wb") as f:
        f.truncate(domu.swap.size)
