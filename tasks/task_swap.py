"""The `swap:NAME` tasks: a sparse swap.img; cgd in the domU encrypts it with a random key."""

from __future__ import annotations

from doit.tools import config_changed

from tasks.actions import Deferred
from tasks.site import DomU, Layout


def task(domu: DomU, layout: Layout) -> dict[str, object]:
    return {
        "name": domu.name,
        "doc": f"swap.img of {domu.name} (sparse)",
        "actions": [(Deferred("tasks.build_swap:build_swap"), [domu, layout])],
        "targets": [str(layout.swap_image(domu.name))],
        "uptodate": [config_changed({"size": domu.swap.size})],
        "clean": True,
    }
