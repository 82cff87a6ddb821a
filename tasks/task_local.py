"""The `local:NAME` tasks: what each domU's local.img, its state, is built from."""

from __future__ import annotations

from pathlib import Path

from doit.tools import config_changed

from tasks.actions import Deferred
from tasks.contexts import local_context
from tasks.render import Templates
from tasks.site import DomU, Layout, Site


def template_files(templates: Templates) -> dict[str, Path]:
    names = (f"local/{name}" for name in templates.names("local"))
    return {f"template {path}": path for path in templates.files(names)}


def task(
    site: Site,
    domu: DomU,
    layout: Layout,
    templates: Templates,
    files: dict[str, Path],
    reprovision: bool,
) -> dict[str, object]:
    config = local_context(site, domu)
    return {
        "name": domu.name,
        "doc": f"local.img of {domu.name}: its /etc, /var, /tmp (built once, then kept)",
        "actions": [
            (
                Deferred("tasks.build_local:build_local"),
                [site, domu, layout, templates, files, config, reprovision],
            )
        ],
        "file_dep": sorted(map(str, files.values())),
        "task_dep": ["root"],
        "targets": [str(layout.local_image(domu.name))],
        # config_changed records the inputs even when a reprovision forces the build.
        "uptodate": [config_changed(config), *([False] if reprovision else [])],
    }
