"""The `swap:NAME` tasks: a sparse swap.img; cgd in the domU encrypts it with a random key."""

from __future__ import annotations

from doit.tools import config_changed

from tasks.actions import action
from tasks.config import DomU
from tasks.images.publish import publishing
from tasks.layout import Layout
from tasks.locks import image_lock


def task(domu: DomU, layout: Layout) -> dict[str, object]:
    return {
        "name": domu.name,
        "doc": f"swap.img of {domu.name} (sparse)",
        "actions": [(build_swap, [domu, layout])],
        "targets": [str(layout.swap_image(domu.name))],
        "uptodate": [config_changed({"size": domu.swap.size})],
        "clean": True,
    }


@action
def build_swap(domu: DomU, layout: Layout) -> None:
    image = layout.swap_image(domu.name)
    with image_lock(layout.locks, image), publishing(image) as partial, open(partial, "wb") as f:
        f.truncate(domu.swap.size)
