"""The `xen:NAME` tasks: one xl config per domU, from templates/xen/domu.cfg."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from doit.tools import config_changed

from tasks.cgd.keyfiles import params_path
from tasks.render import Templates
from tasks.run.actions import Deferred
from tasks.site import DomU, Layout, Site

if TYPE_CHECKING:
    from tasks.run.build import Build

NAME = "xen"
DOC = "each domU's xl config"
TEMPLATE = "xen/domu.cfg"


def context(site: Site, domu: DomU, layout: Layout) -> dict[str, object]:
    """What the xl config template sees; the same dictionary feeds `config_changed`."""
    return {
        "name": domu.name,
        "memory": domu.memory,
        "vcpus": domu.vcpus,
        "vifs": list(domu.vif),
        "kernel": str(layout.kernel(site.root.kernel.name)),
        "config_path": str(layout.xen_config(domu.name)),
        "images": {
            "root": str(layout.root_image),
            "swap": str(layout.swap_image(domu.name)),
            "local": str(layout.local_image(domu.name)),
            "pkg": str(layout.pkg_image(domu.name)),
        },
        # the dom0 opens an encrypted local.img through the hotplug script, with the key
        # kept in the key directory (the xl config names the file, never the key)
        "local_cgd": {
            "script": str(layout.hotplug_script),
            "params": str(params_path(site.keys, domu.name)),
        }
        if domu.local_opened_by_dom0
        else None,
    }


def template_files(templates: Templates) -> list[Path]:
    return templates.files([TEMPLATE])


def tasks(build: Build) -> Iterator[dict[str, object]]:
    files = template_files(build.templates)
    for domu in build.site.domus:
        yield task(build.site, domu, build.layout, build.templates, files)


def task(
    site: Site, domu: DomU, layout: Layout, templates: Templates, files: list[Path]
) -> dict[str, object]:
    config = context(site, domu, layout)
    return {
        "name": domu.name,
        "doc": f"xl config of {domu.name}",
        "actions": [
            (
                Deferred("tasks.kinds.xen:build"),
                [layout.xen_config(domu.name), templates, config],
            )
        ],
        "file_dep": sorted(map(str, [*files, layout.kernel(site.root.kernel.name)])),
        "targets": [str(layout.xen_config(domu.name))],
        "uptodate": [config_changed(config)],
        "clean": True,
    }


def build(config: Path, templates: Templates, context: dict[str, object]) -> None:
    from tasks.images.publish import write_file

    write_file(config, templates.render(TEMPLATE, context))
