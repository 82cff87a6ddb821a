"""The `hotplug:block-domus-cgd` task: xl's hotplug script for the local images the dom0
opens with cgd, written when any domU has one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from doit.tools import config_changed

from tasks.render import Templates
from tasks.run.actions import Deferred
from tasks.site import Layout, Place

if TYPE_CHECKING:
    from tasks.run.build import Build

NAME = "hotplug"
DOC = "xl's hotplug script for the local images the dom0 opens, when any domU has one"
TEMPLATE = "xen/block-domus-cgd"
SCRIPT = Place("xen/block-domus-cgd")


def context(layout: Layout) -> dict[str, object]:
    """What the hotplug script's template sees."""
    return {"script": str(layout.hotplug_script)}


def tasks(build: Build) -> Iterator[dict[str, object]]:
    site, layout, templates = build.site, build.layout, build.templates
    if not site.dom0_cgd_domus:
        return
    config = context(layout)
    yield {
        "name": "block-domus-cgd",
        "doc": "hotplug script that opens encrypted local images on the dom0",
        "actions": [
            (
                Deferred("tasks.kinds.hotplug:build"),
                [layout.hotplug_script, templates, config],
            )
        ],
        "file_dep": sorted(map(str, templates.files([TEMPLATE]))),
        "targets": [str(layout.hotplug_script)],
        "uptodate": [config_changed(config)],
        "clean": True,
    }


def build(script: Path, templates: Templates, context: dict[str, object]) -> None:
    from tasks.images.publish import write_file

    write_file(script, templates.render(TEMPLATE, context), mode=0o755)
