"""The `root` task: the shared read-only root.img, built from the source tree, sets or
image, the kernel and the `root/` templates, and published with the kernel beside it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from doit.tools import config_changed

from tasks.cgd.keyfiles import params_path
from tasks.generations.slots import Pool
from tasks.kinds.local import LOCAL_CGD, LOCAL_DEVICE, LOCAL_DISK
from tasks.kinds.xen import Disk
from tasks.render import Templates
from tasks.run.actions import Deferred
from tasks.run.locks import image_lock
from tasks.site import Layout, Place, Site, plain
from tasks.sources.fingerprint import TreeUnchanged, located_anywhere

if TYPE_CHECKING:
    from tasks.images.tree import Tree
    from tasks.run.build import Build

NAME = "root"
DOC = "the shared read-only root.img and the kernel beside it"
IMAGE = Place("images/root.img")
KERNEL = Place("images/{kernel}")  # the kernel xl boots: the same bytes as root.img's
STAGE = Place("stage/root")  # the root tree, which local.img is made from too
MANIFEST = Place("stage/root.manifest.json")  # its owners and modes
POOL = Pool(NAME, IMAGE, kernel=KERNEL)
DISK = Disk("xvda", "ro")
# where root.img keeps the cgd params (salt, no key) of the domUs that open /local themselves
CGD_PARAMS_DIR = "etc/cgd/domus"


def context(site: Site) -> dict[str, object]:
    """What the `root/` templates see."""
    return {
        "kernel": site.root.kernel.name,
        "local_device": LOCAL_DEVICE,
        "local_fs_types": sorted({domu.local.fs for domu in site.domus}),
        "local_cgd": LOCAL_CGD,
        "local_disk": LOCAL_DISK,
        "encrypted_locals": sorted(d.name for d in site.passphrase_domus),
        "cgd_params_dir": f"/{CGD_PARAMS_DIR}",
    }


def input_files(site: Site, templates: Templates) -> dict[str, Path]:
    source = site.root.source
    files = {"kernel": site.root.kernel}
    files.update({f"set {path.name}": path for path in source.sets})
    if source.metalog is not None:
        files["metalog"] = source.metalog
    if source.image is not None:
        files["source image"] = source.image
    files.update(
        {
            f"template {templates.relative(path)}": path
            for path in templates.files(f"root/{name}" for name in templates.names("root"))
        }
    )
    # domUs that open an encrypted /local themselves find their params (no key) in root.img
    files.update({f"cgd params {name}": path for name, path in domu_cgd_params(site).items()})
    return files


def config_slice(site: Site) -> dict[str, object]:
    root = plain(site.root, path=located_anywhere)
    assert isinstance(root, dict)
    # where a set or the kernel is downloaded from is not an input: its checksum is (the
    # cached copy's hash), so moving to another mirror rebuilds nothing
    root.pop("downloads", None)
    return {"root": root, "templates": context(site)}


def tasks(build: Build) -> dict[str, object]:
    return task(build.site, build.layout, build.templates)


def task(site: Site, layout: Layout, templates: Templates) -> dict[str, object]:
    files = input_files(site, templates)
    config = config_slice(site)
    uptodate: list[object] = [config_changed(config)]
    if site.root.source.tree is not None:
        uptodate.append(TreeUnchanged(site.root.source.tree))
    return {
        "doc": DOC,
        "actions": [(Deferred("tasks.kinds.root:build"), [site, layout, templates, files, config])],
        "file_dep": sorted(map(str, files.values())),
        "targets": [
            str(layout.root_image),
            str(layout.kernel(site.root.kernel.name)),
            str(layout.root_manifest),
        ],
        "uptodate": uptodate,
        "clean": True,
    }


# The action: what it imports (the source readers, the recipes, the image writers and
# Jinja2) is imported when it runs, so a run that builds nothing never loads them.


def load_source(site: Site, layout: Layout) -> Tree:
    from tasks.sources.directory import load_tree
    from tasks.sources.image import load_image
    from tasks.sources.sets import load_sets

    source = site.root.source
    if source.tree is not None:
        return load_tree(source.tree, source.metalog, layout.root_stage)
    if source.image is not None:
        return load_image(site, layout)
    return load_sets(source.sets, layout.cache / "sets", layout.root_stage)


def domu_cgd_params(site: Site) -> dict[str, Path]:
    """Params (salt, no key) of the domUs that open their encrypted /local themselves."""
    return {domu.name: params_path(site.keys, domu.name) for domu in site.passphrase_domus}


def cgd_params_files(site: Site) -> dict[str, Path]:
    """The same params by their path in root.img."""
    params = sorted(domu_cgd_params(site).items())
    return {f"{CGD_PARAMS_DIR}/{name}-local": path for name, path in params}


def build(
    site: Site,
    layout: Layout,
    templates: Templates,
    files: dict[str, Path],
    config: dict[str, object],
) -> None:
    from tasks.generations.making import make_generation
    from tasks.generations.slots import KERNEL, ROOT, stable_links
    from tasks.images.writers import write_image
    from tasks.recipes.root import setup_root
    from tasks.run.log import note, timed
    from tasks.sources.inputs import make_record

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
                context(site),
                cgd_params_files(site),
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
