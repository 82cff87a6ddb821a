"""Building a local.img, once: afterwards it is the domU's state and is never rebuilt over.

When its inputs change, the build stops and says what changed; `./domus reprovision NAME`
moves the image to a dated backup and builds anew.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path

from tasks.config import DomU, Site
from tasks.errors import DomusError
from tasks.images import write_image
from tasks.images.publish import publishing
from tasks.inputs import changes, describe, make_record, read_record, record_path, write_record
from tasks.layout import Layout
from tasks.locks import image_lock
from tasks.log import note
from tasks.recipes.local import setup_local
from tasks.render import Templates
from tasks.tree import Tree


def backup_name(image: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    return image.with_name(f"{image.stem}-{stamp}{image.suffix}")


def refuse_unless_same(domu: DomU, image: Path, record: dict[str, str]) -> None:
    """An existing image built from these very inputs is kept; any other is refused."""
    old = read_record(image)
    if old == record:
        return
    what = (describe(changes(old, record)) if old
            else f"no record of its inputs ({record_path(image)})")
    raise DomusError(
        f"{image} is the state of {domu.name} and is never rebuilt over; "
        f"its inputs changed: {what}",
        hint=f"`./domus reprovision {domu.name}` moves it to a dated backup and builds a new "
        "one; or undo the change",
    )


def build_local(site: Site, domu: DomU, layout: Layout, templates: Templates,
                files: dict[str, Path], config: dict[str, object], reprovision: bool) -> None:
    start = time.monotonic()
    image = layout.local_image(domu.name)
    record = make_record(files, config)
    with image_lock(layout.locks, image):
        if image.exists():
            if not reprovision:
                refuse_unless_same(domu, image, record)
                return
            backup = backup_name(image)
            image.rename(backup)
            note(f"{domu.name}: previous local image kept as {backup}")
        stage = layout.work_stage("local", domu.name)
        root = Tree.load(layout.root_stage, layout.root_manifest)
        tree = setup_local(root, stage, templates, config, dict(domu.rc_conf))
        write_record(image, record)
        with publishing(image) as partial:
            write_image(tree, domu.local.fs, domu.local.size, partial)
        shutil.rmtree(stage)
    note(f"built {image} in {time.monotonic() - start:.1f} s")
