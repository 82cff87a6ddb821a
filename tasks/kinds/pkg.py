"""The `pkg:NAME` tasks: each domU's /usr/pkg image, a generation built from its source or
reused from one built from the same inputs.

domUs with the same packages, size and file system share one generation: it is built
once and each of their pkg.img links leads to it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from doit.tools import config_changed

from tasks.generations.slots import Pool
from tasks.kinds.xen import Disk
from tasks.pkgsrc.packages import package_files
from tasks.run.actions import Deferred
from tasks.run.locks import image_lock
from tasks.site import DomU, Layout, Place, plain
from tasks.sources.fingerprint import TreeUnchanged

if TYPE_CHECKING:
    from tasks.run.build import Build

NAME = "pkg"
DOC = "each domU's pkg.img: /usr/pkg"
IMAGE = Place("images/{domu}/pkg.img")  # a link to the active generation's image
POOL = Pool(NAME, IMAGE)
DISK = Disk("xvdd", "ro")


def tasks(build: Build) -> Iterator[dict[str, object]]:
    for domu in build.site.domus:
        yield task(domu, build.layout)


def task(domu: DomU, layout: Layout) -> dict[str, object]:
    source = domu.pkg.source
    uptodate: list[object] = [config_changed(plain(domu.pkg))]
    if source.tree is not None:
        uptodate.append(TreeUnchanged(source.tree))
    return {
        "name": domu.name,
        "doc": f"pkg.img of {domu.name}: /usr/pkg",
        "actions": [(Deferred("tasks.kinds.pkg:build"), [domu, layout])],
        # The named packages and the dependencies found beside them: a change to either
        # rebuilds the image.
        "file_dep": [str(path) for path in package_files(source.packages)],
        "targets": [str(layout.pkg_image(domu.name))],
        "uptodate": uptodate,
        "clean": True,
    }


# The action: what it imports (the recipe, pkgsrc and the image writers) is imported when
# it runs, so a run that builds nothing never loads them.


def pkg_record(domu: DomU) -> dict[str, str]:
    from tasks.sources.fingerprint import located_anywhere
    from tasks.sources.inputs import make_record

    source = domu.pkg.source
    files = {f"package {path.name}": path for path in package_files(source.packages)}
    trees = {"source": source.tree} if source.tree is not None else {}
    return make_record(files, {"pkg": plain(domu.pkg, path=located_anywhere)}, trees)


def build(domu: DomU, layout: Layout) -> None:
    from tasks.generations.making import make_generation
    from tasks.generations.slots import pkg_slot, stable_links
    from tasks.generations.store import Store
    from tasks.images.writers import write_image
    from tasks.recipes.pkg import setup_pkg
    from tasks.run.leftovers import undone_on_failure
    from tasks.run.log import note

    start = time.monotonic()
    slot = pkg_slot(domu.name)
    stage = layout.work_stage("pkg", domu.name)
    cache = layout.cache / "packages"

    def write(generation: Path) -> None:
        tree = setup_pkg(domu.pkg.source, stage, cache)
        write_image(tree, domu.pkg.fs, domu.pkg.size, generation / slot.image)
        shutil.rmtree(stage)

    # A failed build removes its stage and the empty directories it made; its lock files
    # stay, as every job's do (tasks/run/locks.py).
    pool = Store(layout).pool(slot.pool)
    with (
        image_lock(layout.locks, layout.pkg_image(domu.name)),
        undone_on_failure(stage, [stage.parent, cache, pool], layout.output),
    ):
        made = make_generation(
            layout, slot, pkg_record(domu), write, stable_links(layout, slot, None)
        )
    note(f"{made.describe()} ({time.monotonic() - start:.1f} s)")
