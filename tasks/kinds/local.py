"""The `local:NAME` tasks: each domU's local.img, its state (/etc, /var, /tmp), built once.

Afterwards the image is the domU's and is never rebuilt over: when its inputs change, its
managed files are converged in place (tasks.converge.local), or, where that cannot be
done, the build stops and says what would work; `./domus reprovision NAME` moves the
image to a dated backup and builds anew.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from doit.tools import config_changed

from tasks.cgd.keyfiles import params_path
from tasks.kinds.xen import Disk
from tasks.render import Templates
from tasks.run.actions import Deferred
from tasks.run.errors import DomusError
from tasks.run.locks import image_lock
from tasks.site import DomU, Layout, Place, Site

if TYPE_CHECKING:
    from tasks.images.tree import Tree
    from tasks.run.build import Build

NAME = "local"
DOC = "each domU's local.img: its /etc, /var, /tmp (built once, then converged)"
IMAGE = Place("images/{domu}/local.img")
DISK = Disk("xvdc", "rw")

LOCAL_DEVICE = "xbd2a"
LOCAL_DISK = "xbd2d"  # the whole disk: the raw partition on amd64 and i386
# An encrypted local.img opened in the domU: cgd1 on the whole disk (cgd0 is swap).
LOCAL_CGD = "cgd1"


def hotplug(site: Site, domu: DomU, layout: Layout) -> dict[str, str] | None:
    """The hotplug script the dom0 opens an encrypted local.img through, and its argument
    beside the image: the file of the key kept in the key directory (the xl config names
    the file, never the key); None where the dom0 does not open it."""
    if not domu.local_opened_by_dom0:
        return None
    return {
        "script": str(layout.hotplug_script),
        "params": str(params_path(site.keys, domu.name)),
    }


def context(site: Site, domu: DomU) -> dict[str, object]:
    """What the `local/` templates see: exactly the part of the site the image is made
    from; the same dictionary feeds `config_changed`."""
    return {
        "name": domu.name,
        "root": {"fs": site.root.fs},
        "local": {
            "fs": domu.local.fs,
            "size": domu.local.size,
            "density": domu.local.density,
            "encrypt": domu.local.encrypt,
            "device": f"{LOCAL_CGD}a" if domu.opens_local_itself else LOCAL_DEVICE,
        },
        "pkg": {"fs": domu.pkg.fs},
        "swap": {
            "size": domu.swap.size,
            "sectors": domu.swap.size // 512,
            "cipher": domu.swap.cipher,
            "keylength": domu.swap.keylength,
        },
        "rc_conf": dict(domu.rc_conf),
        "packages": package_setup_record(domu),
    }


def package_setup_record(domu: DomU) -> dict[str, object] | None:
    """What the domU's package set asks of local.img (tasks.pkgsrc.setup): its +INSTALL data
    lines, read once per package file. A package that cannot be read is recorded as such, and
    the build says why."""
    from tasks.pkgsrc.setup import setup_inputs

    try:
        return setup_inputs(domu.pkg.source)
    except DomusError as error:
        return {"error": error.message}


def template_files(templates: Templates) -> dict[str, Path]:
    names = (f"local/{name}" for name in templates.names("local"))
    return {f"template {path}": path for path in templates.files(names)}


def tasks(build: Build) -> Iterator[dict[str, object]]:
    files = template_files(build.templates)
    for domu in build.site.domus:
        yield task(
            build.site,
            domu,
            build.layout,
            build.templates,
            files,
            domu.name in build.reprovision,
        )


def task(
    site: Site,
    domu: DomU,
    layout: Layout,
    templates: Templates,
    files: dict[str, Path],
    reprovision: bool,
) -> dict[str, object]:
    config = context(site, domu)
    return {
        "name": domu.name,
        "doc": f"local.img of {domu.name}: its /etc, /var, /tmp (built once, then kept)",
        "actions": [
            (
                Deferred("tasks.kinds.local:build"),
                [site, domu, layout, templates, files, config, reprovision],
            )
        ],
        "file_dep": sorted(map(str, files.values())),
        "task_dep": ["root"],
        "targets": [str(layout.local_image(domu.name))],
        # config_changed records the inputs even when a reprovision forces the build.
        "uptodate": [config_changed(config), *([False] if reprovision else [])],
    }


# The action: what it imports (converge, the recipes, the image writers, cryptography and
# Jinja2) is imported when it runs, so a run that builds nothing never loads them.


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
) -> bool:
    """An existing image built from these very inputs is kept (False); any other is
    converged in place (only the managed files change), or refused with what would work
    instead."""
    from tasks.converge.local import converge
    from tasks.sources.inputs import changes, read_record, record_path, write_record

    image = layout.local_image(domu.name)
    old = read_record(image)
    if old == record:
        return False
    changed = changes(old, record) if old else [f"no record of its inputs ({record_path(image)})"]
    converge(site, domu, layout, templates, config, dry_run=False, changed=changed)
    write_record(image, record)
    return True


def write_local_image(site: Site, domu: DomU, tree: Tree, dest: Path) -> None:
    from tasks.images.writers import write_image

    # the domU writes it: as many inodes as newfs would give it, or local.density's
    density = domu.local.density
    if not domu.local_encrypted:
        write_image(tree, domu.local.fs, domu.local.size, dest, room=True, density=density)
        return
    from tasks.cgd.keys import local_params
    from tasks.images.encrypted import write_encrypted_image

    params, passphrase = local_params(site.keys, domu)
    write_encrypted_image(
        tree, domu.local.fs, domu.local.size, dest, params, passphrase, room=True, density=density
    )


def build(
    site: Site,
    domu: DomU,
    layout: Layout,
    templates: Templates,
    files: dict[str, Path],
    config: dict[str, object],
    reprovision: bool,
) -> dict[str, bool] | None:
    """Build the local.img, or converge the one there; a converge says so, in the task's
    values, for the build's report."""
    from tasks.images.publish import publishing
    from tasks.images.tree import Tree
    from tasks.pkgsrc.setup import setup_of
    from tasks.recipes.local import setup_local
    from tasks.recipes.pkgsetup import apply_package_setup
    from tasks.run.log import note
    from tasks.sources.inputs import make_record, write_record

    start = time.monotonic()
    image = layout.local_image(domu.name)
    record = make_record(files, config)
    with image_lock(layout.locks, image):
        if image.exists():
            if not reprovision:
                changed = converge_unless_same(site, domu, layout, templates, config, record)
                return {"converged": changed}
            backup = backup_name(image)
            image.rename(backup)
            note(f"{domu.name}: previous local image kept as {backup}")
        stage = layout.work_stage("local", domu.name)
        root = Tree.load(layout.root_stage, layout.root_manifest)
        tree = setup_local(root, stage, templates, config, dict(domu.rc_conf))
        setup = setup_of(domu.pkg.source)
        if setup is not None:
            apply_package_setup(tree, setup)
        write_record(image, record)
        with publishing(image) as partial:
            write_local_image(site, domu, tree, partial)
        shutil.rmtree(stage)
    note(f"built {image} in {time.monotonic() - start:.1f} s")
