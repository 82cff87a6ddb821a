"""Building a pkg.img from its source and publishing it."""

from __future__ import annotations

import shutil
import time

from tasks.config import DomU
from tasks.images import write_image
from tasks.images.publish import publishing
from tasks.layout import Layout
from tasks.locks import image_lock
from tasks.log import note
from tasks.recipes.pkg import setup_pkg


def build_pkg(domu: DomU, layout: Layout) -> None:
    start = time.monotonic()
    image = layout.pkg_image(domu.name)
    stage = layout.work_stage("pkg", domu.name)
    with image_lock(layout.locks, image):
        tree = setup_pkg(domu.pkg.source, stage, layout.cache / "packages")
        with publishing(image) as partial:
            write_image(tree, domu.pkg.fs, domu.pkg.size, partial)
        shutil.rmtree(stage)
    note(f"built {image} in {time.monotonic() - start:.1f} s")
