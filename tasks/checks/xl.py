"""Every xl config names files that exist: the kernel, each disk's target, hotplug scripts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tasks.checks import Finding
from tasks.site import Layout, Site

_KERNEL = re.compile(r'^\s*kernel\s*=\s*"([^"]*)"', re.M)
_DISKS = re.compile(r"^\s*disk\s*=\s*\[(.*?)\]", re.M | re.S)
_DISK = re.compile(r"'([^']*)'")


def named_files(config: str) -> list[tuple[str, str]]:
    """(what, path) of every file an xl config names: its kernel, each disk's target and
    hotplug script (a target follows every other key of its disk spec, as xl requires)."""
    named = [("kernel", match) for match in _KERNEL.findall(config)]
    for disks in _DISKS.findall(config):
        for spec in _DISK.findall(disks):
            head, _, target = spec.partition("target=")  # the rest of the spec, commas too
            keys = dict(part.strip().split("=", 1) for part in head.split(",") if "=" in part)
            vdev = keys.get("vdev", "?")
            if "script" in keys:
                named.append((f"disk {vdev} script", keys["script"]))
                # a hotplug script's target is its own: domus's cgd script takes IMAGE,PARAMS
                for index, part in enumerate(target.split(",")):
                    named.append(
                        (
                            f"disk {vdev} target" if index == 0 else f"disk {vdev} params",
                            part.strip(),
                        )
                    )
            elif target:
                named.append((f"disk {vdev} target", target.strip()))
    return named


def check_xl_configs(site: Site, layout: Layout) -> Iterator[Finding]:
    for domu in site.domus:
        path = layout.xen_config(domu.name)
        subject = f"xen/{domu.name}.cfg"
        if not path.exists():
            yield Finding(subject, "published", "missing; `./domus build` makes it")
            continue
        for what, named in named_files(path.read_text()):
            problem = None if Path(named).exists() else f"{named} does not exist"
            yield Finding(subject, f"{what} exists", problem)
