"""Building a pkg.img generation from its source, or reusing one built from the same inputs.

domUs with the same packages, size and file system share one generation: it is built
once and each of their pkg.img links leads to it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tasks.generations.making import make_generation
from tasks.generations.slots import pkg_slot, stable_links
from tasks.images import write_image
from tasks.inputs import make_record
from tasks.locks import image_lock
from tasks.log import note
from tasks.pkgsrc import package_files
from tasks.recipes.pkg import setup_pkg
from tasks.site import DomU, Layout, plain


def pkg_record(domu: DomU) -> dict[str, str]:
    source = domu.pkg.source
    files = {f"package {path.name}": path for path in package_files(source.packages)}
    trees = {"source": source.tree} if source.tree is not None else {}
    return make_record(files, {"pkg": plain(domu.pkg)}, trees)


def build_pkg(domu: DomU, layout: Layout) -> None:
    start = time.monotonic()
    slot = pkg_slot(domu.name)

    def write(generation: Path) -> None:
        stage = layout.work_stage("pkg", domu.name)
        tree = setup_pkg(domu.pkg.source, stage, layout.cache / "packages")
        write_image(tree, domu.pkg.fs, domu.pkg.size, generation / slot.image)
        shutil.rmtree(stage)

    with image_lock(layout.locks, layout.pkg_image(domu.name)):
        made = make_generation(
            layout, slot, pkg_record(domu), write, stable_links(layout, slot, None)
        )
    note(f"{made.describe()} ({time.monotonic() - start:.1f} s)")
