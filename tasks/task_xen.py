"""The `xen:NAME` tasks: one xl config per domU, from templates/xen/domu.cfg."""

from __future__ import annotations

from pathlib import Path

from doit.tools import config_changed

from tasks.actions import Deferred
from tasks.config import DomU, Site
from tasks.contexts import xen_context
from tasks.layout import Layout
from tasks.render import Templates

TEMPLATE = "xen/domu.cfg"


def template_files(templates: Templates) -> list[Path]:
    return templates.files([TEMPLATE])


def task(site: Site, domu: DomU, layout: Layout, templates: Templates,
         files: list[Path]) -> dict[str, object]:
    context = xen_context(site, domu, layout)
    return {
        "name": domu.name,
        "doc": f"xl config of {domu.name}",
        "actions": [(Deferred("tasks.build_xen:build_xen"),
                     [layout.xen_config(domu.name), templates, context])],
        "file_dep": sorted(map(str, [*files, layout.kernel(site.root.kernel.name)])),
        "targets": [str(layout.xen_config(domu.name))],
        "uptodate": [config_changed(context)],
        "clean": True,
    }
