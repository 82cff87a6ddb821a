"""Building root.img: load the source tree, run setup_root, write and publish the image."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tasks.config import Site
from tasks.contexts import root_context
from tasks.images import write_image
from tasks.images.publish import publishing
from tasks.inputs import changes, describe, make_record, read_record, write_record
from tasks.layout import Layout
from tasks.locks import image_lock
from tasks.log import note, timed
from tasks.recipes.root import setup_root
from tasks.render import Templates
from tasks.source_sets import load_sets
from tasks.source_tree import load_tree
from tasks.tree import Tree


def load_source(site: Site, layout: Layout) -> Tree:
    source = site.root.source
    if source.tree is not None:
        return load_tree(source.tree, source.metalog, layout.root_stage)
    return load_sets(source.sets, layout.cache / "sets", layout.root_stage)


def build_root(site: Site, layout: Layout, templates: Templates,
               files: dict[str, Path], config: dict[str, object]) -> None:
    start = time.monotonic()
    record = make_record(files, config)
    image = layout.root_image
    with image_lock(layout.locks, image):
        with timed("root: load source"):
            tree = load_source(site, layout)
        with timed("root: setup_root"):
            setup_root(tree, site.root.kernel, site.root.makedev_add, site.root.makedev_remove,
                       templates, root_context(site))
        tree.save_manifest(layout.root_manifest)
        with timed("root: write image"), publishing(image) as partial:
            write_image(tree, site.root.fs, site.root.size, partial)
        kernel = layout.kernel(site.root.kernel.name)
        with publishing(kernel) as partial:
            shutil.copyfile(site.root.kernel, partial)
        why = changes(read_record(image), record)
        write_record(image, record)
    note(f"built {image} ({len(tree.entries)} entries) in {time.monotonic() - start:.1f} s"
         + (f"; changed: {describe(why)}" if why else ""))
