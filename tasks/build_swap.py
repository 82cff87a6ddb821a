"""Creating a swap.img: all holes, so it costs no disk until the domU swaps."""

from __future__ import annotations

from tasks.images.publish import publishing
from tasks.locks import image_lock
from tasks.site import DomU, Layout


def build_swap(domu: DomU, layout: Layout) -> None:
    image = layout.swap_image(domu.name)
    with image_lock(layout.locks, image), publishing(image) as partial, open(partial, "wb") as f:
        f.truncate(domu.swap.size)
