"""Building root.img: load the source tree, run setup_root, write and publish the image."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tasks.contexts import root_context
from tasks.generations.making import make_generation
from tasks.generations.slots import KERNEL, ROOT, stable_links
from tasks.images import write_image
from tasks.inputs import make_record
from tasks.keyfiles import params_path
from tasks.locks import image_lock
from tasks.log import note, timed
from tasks.recipes.root import setup_root
from tasks.render import Templates
from tasks.site import Layout, Site
from tasks.source_image import load_image
from tasks.source_sets import load_sets
from tasks.source_tree import load_tree
from tasks.tree import Tree


def load_source(site: Site, layout: Layout) -> Tree:
    source = site.root.source
    if source.tree is not None:
        return load_tree(source.tree, source.metalog, layout.root_stage)
    if source.image is not None:
        return load_image(site, layout)
    return load_sets(source.sets, layout.cache / "sets", layout.root_stage)


def domu_cgd_params(site: Site) -> dict[str, Path]:
    """Params (salt, no key) of the domUs that open their encrypted /local themselves."""
    return {
        domu.name: params_path(site.keys, domu.name)
        for domu in site.domus
        if domu.local.encrypt == "domu"
    }


def build_root(
    site: Site,
    layout: Layout,
    templates: Templates,
    files: dict[str, Path],
    config: dict[str, object],
) -> None:
    start = time.monotonic()
    source_tree = site.root.source.tree
    record = make_record(files, config, {"source": source_tree} if source_tree else {})
    image = layout.root_image
    with image_lock(layout.locks, image):
        with timed("root: load source"):
            tree = load_source(site, layout)
        with timed("root: setup_root"):
            setup_root(
                tree,
                site.root.kernel,
                site.root.makedev_add,
                site.root.makedev_remove,
                templates,
                root_context(site),
                domu_cgd_params(site),
            )
        tree.save_manifest(layout.root_manifest)

        def write(generation: Path) -> None:
            with timed("root: write image"):
                write_image(tree, site.root.fs, site.root.size, generation / ROOT.image)
            shutil.copyfile(site.root.kernel, generation / KERNEL)

        made = make_generation(
            layout, ROOT, record, write, stable_links(layout, ROOT, site.root.kernel.name)
        )
    note(f"{made.describe()} ({len(tree.entries)} entries, {time.monotonic() - start:.1f} s)")
