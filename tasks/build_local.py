"""Building a local.img, once: afterwards it is the domU's state and is never rebuilt over.

When its inputs change, its managed files are converged in place (tasks.converge.local),
or, where that cannot be done, the build stops and says what would work;
`./domus reprovision NAME` moves the image to a dated backup and builds anew.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path

from tasks.converge.local import converge
from tasks.images import write_image
from tasks.images.encrypted import write_encrypted_image
from tasks.images.publish import publishing
from tasks.inputs import changes, make_record, read_record, record_path, write_record
from tasks.keys import local_params
from tasks.locks import image_lock
from tasks.log import note
from tasks.recipes.local import setup_local
from tasks.render import Templates
from tasks.site import DomU, Layout, Site
from tasks.tree import Tree


def backup_name(image: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    return image.with_name(f"{image.stem}-{stamp}{image.suffix}")


def converge_unless_same(
    site: Site,
    domu: DomU,
    layout: Layout,
    templates: Templates,
    config: dict[str, object],
    record: dict[str, str],
) -> None:
    """An existing image built from these very inputs is kept; any other is converged in
    place (only the managed files change), or refused with what would work instead."""
    image = layout.local_image(domu.name)
    old = read_record(image)
    if old == record:
        return
    changed = changes(old, record) if old else [f"no record of its inputs ({record_path(image)})"]
    converge(site, domu, layout, templates, config, dry_run=False, changed=changed)
    write_record(image, record)


def write_local_image(site: Site, domu: DomU, tree: Tree, dest: Path) -> None:
    if domu.local.encrypt == "none":
        write_image(tree, domu.local.fs, domu.local.size, dest)
        return
    params, passphrase = local_params(site.keys, domu)
    write_encrypted_image(tree, domu.local.fs, domu.local.size, dest, params, passphrase)


def build_local(
    site: Site,
    domu: DomU,
    layout: Layout,
    templates: Templates,
    files: dict[str, Path],
    config: dict[str, object],
    reprovision: bool,
) -> None:
    start = time.monotonic()
    image = layout.local_image(domu.name)
    record = make_record(files, config)
    with image_lock(layout.locks, image):
        if image.exists():
            if not reprovision:
                converge_unless_same(site, domu, layout, templates, config, record)
                return
            backup = backup_name(image)
            image.rename(backup)
            note(f"{domu.name}: previous local image kept as {backup}")
        stage = layout.work_stage("local", domu.name)
        root = Tree.load(layout.root_stage, layout.root_manifest)
        tree = setup_local(root, stage, templates, config, dict(domu.rc_conf))
        write_record(image, record)
        with publishing(image) as partial:
            write_local_image(site, domu, tree, partial)
        shutil.rmtree(stage)
    note(f"built {image} in {time.monotonic() - start:.1f} s")
