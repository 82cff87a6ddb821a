"""The `xen:NAME` tasks: one xl config per domU, from templates/xen/domu.cfg."""

from __future__ import annotations

from pathlib import Path

from doit.tools import config_changed

from tasks.actions import Deferred
from tasks.contexts import xen_context
from tasks.render import Templates
from tasks.site import DomU, Layout, Site

TEMPLATE = "xen/domu.cfg"
HOTPLUG = "xen/block-domus-cgd"


def template_files(templates: Templates) -> list[Path]:
    return templates.files([TEMPLATE])


def task(
    site: Site, domu: DomU, layout: Layout, templates: Templates, files: list[Path]
) -> dict[str, object]:
    context = xen_context(site, domu, layout)
    return {
        "name": domu.name,
        "doc": f"xl config of {domu.name}",
        "actions": [
            (
                Deferred("tasks.build_xen:build_xen"),
                [layout.xen_config(domu.name), templates, context],
            )
        ],
        "file_dep": sorted(map(str, [*files, layout.kernel(site.root.kernel.name)])),
        "targets": [str(layout.xen_config(domu.name))],
        "uptodate": [config_changed(context)],
        "clean": True,
    }


def hotplug_tasks(site: Site, layout: Layout, templates: Templates) -> list[dict[str, object]]:
    """xl's hotplug script for local images the dom0 opens, when any domU has one."""
    if not any(domu.local.encrypt == "dom0" for domu in site.domus):
        return []
    context = {"script": str(layout.hotplug_script)}
    return [
        {
            "name": "block-domus-cgd",
            "doc": "hotplug script that opens encrypted local images on the dom0",
            "actions": [
                (
                    Deferred("tasks.build_xen:build_hotplug"),
                    [layout.hotplug_script, templates, context],
                )
            ],
            "file_dep": sorted(map(str, templates.files([HOTPLUG]))),
            "targets": [str(layout.hotplug_script)],
            "uptodate": [config_changed(context)],
            "clean": True,
        }
    ]
