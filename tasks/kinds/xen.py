"""The `xen:NAME` tasks: one xl config per domU, from templates/xen/domu.cfg.

Its disks are those the kinds declare (`DISK`, with the kind's `IMAGE` as the target), in
the order of their virtual devices; a kind whose image the dom0 opens through a hotplug
script says so with `hotplug(site, domu, layout)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from doit.tools import config_changed

from tasks import kinds
from tasks.render import Templates
from tasks.run.actions import Deferred
from tasks.site import DomU, Layout, Place, Site

if TYPE_CHECKING:
    from tasks.run.build import Build

NAME = "xen"
DOC = "each domU's xl config"
TEMPLATE = "xen/domu.cfg"
CONFIG = Place("xen/{domu}.cfg")


@dataclass(frozen=True)
class Disk:
    """The disk a kind's image is to each domU: xl's virtual device (xvda is the domU's
    xbd0) and whether the domU may write it."""

    vdev: str
    access: str  # ro or rw


def attached() -> list[kinds.Kind]:
    """The kinds that give each domU a disk, by virtual device."""
    found = [kind for kind in kinds.every() if getattr(kind, "DISK", None) is not None]
    return sorted(found, key=lambda kind: kind.DISK.vdev)


def disks(site: Site, domu: DomU, layout: Layout) -> list[dict[str, str | None]]:
    """Every disk of `domu`, by virtual device: the kind's name, the image it names, and
    the hotplug script and its argument where the dom0 opens the image (else None)."""
    found = []
    for kind in attached():
        disk: Disk = kind.DISK
        opener = getattr(kind, "hotplug", None)
        opened = opener(site, domu, layout) if opener is not None else None
        found.append(
            {
                "kind": kind.NAME,
                "vdev": disk.vdev,
                "access": disk.access,
                "target": str(layout.at(kind.IMAGE, domu=domu.name)),
                "script": opened["script"] if opened else None,
                "params": opened["params"] if opened else None,
            }
        )
    return found


def context(site: Site, domu: DomU, layout: Layout) -> dict[str, object]:
    """What the xl config template sees; the same dictionary feeds `config_changed`."""
    given = disks(site, domu, layout)
    return {
        "name": domu.name,
        "memory": domu.memory,
        "vcpus": domu.vcpus,
        "vifs": list(domu.vif),
        "kernel": str(layout.kernel(site.root.kernel.name)),
        "config_path": str(layout.xen_config(domu.name)),
        "disks": given,
        # what templates written before `disks` name: each image by its kind, and the
        # hotplug script the dom0 opens an encrypted local.img through
        "images": {disk["kind"]: disk["target"] for disk in given},
        "local_cgd": next(
            (
                {"script": disk["script"], "params": disk["params"]}
                for disk in given
                if disk["kind"] == "local" and disk["script"]
            ),
            None,
        ),
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
