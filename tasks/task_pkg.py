"""The `pkg:NAME` tasks: each domU's /usr/pkg image."""

from __future__ import annotations

import shutil
import time

from doit.tools import config_changed

from tasks.actions import action
from tasks.config import DomU, plain
from tasks.fingerprint import TreeUnchanged
from tasks.images import write_image
from tasks.images.publish import publishing
from tasks.layout import Layout
from tasks.locks import image_lock
from tasks.log import note
from tasks.recipes.pkg import setup_pkg


def task(domu: DomU, layout: Layout) -> dict[str, object]:
    source = domu.pkg.source
    uptodate: list[object] = [config_changed(plain(domu.pkg))]
    if source.tree is not None:
        uptodate.append(TreeUnchanged(source.tree))
    return {
        "name": domu.name,
        "doc": f"pkg.img of {domu.name}: /usr/pkg",
        "actions": [(build_pkg, [domu, layout])],
        "file_dep": sorted(map(str, source.packages)),
        "targets": [str(layout.pkg_image(domu.name))],
        "uptodate": uptodate,
        "clean": True,
    }


@action
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
