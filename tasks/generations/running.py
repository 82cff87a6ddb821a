"""Which generation each running domU uses, asked of xl(1).

A domU opens its images when it is created and keeps them: after an activation it still
runs on the generation that was active when it started. `xl list -l` names each domain's
disks (the stable paths of the xl configs), and `xl uptime` gives its start time; the
slot's activation log then says which generation was active at that moment. A disk that
names a generation directly is taken as it is. Without xl, or where xl finds no
hypervisor, nothing can be running here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import DomusError
from tasks.generations.slots import POOLS, ROOT, Slot
from tasks.generations.store import Store

SBIN = ("/usr/sbin", "/sbin", "/usr/pkg/sbin", "/usr/local/sbin")
# xl's answer on a host Xen did not boot, where no domU can be running: Debian's wrapper
# finds no hypervisor in sysfs; xl itself finds no privcmd device (a dom0 where xl is not
# allowed says "Permission denied" instead, and that stays an error)
NO_HYPERVISOR = re.compile(
    r"Can't find hypervisor information in sysfs"
    r"|privileged command interface: No such file or directory"
)
# `xl uptime`: "%-33s %4d %s" with an uptime of "[N day[s], ]H:MM:SS"
UPTIME = re.compile(r"^(\S+)\s+(\d+)\s+(?:(\d+) days?,\s*)?(\d+):(\d\d):(\d\d)\s*$")


@dataclass(frozen=True)
class Domain:
    name: str
    started: float | None  # seconds since the epoch, None when xl does not say
    disks: tuple[str, ...]  # as the domain's config names them


def find_xl() -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN)
    return shutil.which("xl", path=path)


class NoHypervisor(Exception):
    pass


def _run(xl: str, *args: str) -> str:
    try:
        done = subprocess.run([xl, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DomusError(f"`xl {' '.join(args)}` failed: {error}") from None
    if done.returncode != 0 and NO_HYPERVISOR.search(done.stderr):
        raise NoHypervisor
    if done.returncode != 0:
        raise DomusError(
            f"`xl {' '.join(args)}` failed (exit {done.returncode}): "
            f"{(done.stderr or done.stdout).strip()}",
            hint="run as root on the dom0, where xl can ask the hypervisor",
        )
    return done.stdout


def running_domains() -> list[Domain]:
    """Every running domU with its disks and start time; none without xl or a hypervisor."""
    xl = find_xl()
    if xl is None:
        return []
    try:
        listing = json.loads(_run(xl, "list", "-l") or "[]")
    except NoHypervisor:
        return []
    except ValueError as error:
        raise DomusError(
            f"`xl list -l` did not print JSON: {error}",
            hint='set output_format="json" in /etc/xen/xl.conf',
        ) from None
    now = time.time()
    started: dict[str, float] = {}
    for line in _run(xl, "uptime").splitlines():
        match = UPTIME.match(line)
        if match:
            days, hours, minutes, seconds = (int(match[i] or 0) for i in range(3, 7))
            started[match[1]] = now - (((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    domains = []
    for entry in listing:
        config = entry.get("config", {})
        name = config.get("c_info", {}).get("name", "")
        if entry.get("domid") == 0 or not name:
            continue
        disks = tuple(
            disk["pdev_path"] for disk in config.get("disks") or [] if disk.get("pdev_path")
        )
        domains.append(Domain(name, started.get(name), disks))
    return domains


def in_use(
    store: Store, domains: Iterable[Domain], slots: Iterable[Slot]
) -> dict[tuple[str, str], set[str]]:
    """(pool, generation) -> names of the running domUs that use it."""
    stable: dict[str, Slot] = {}
    for slot in slots:
        active = store.active_link(slot) / slot.image
        image = store.layout.root_image if slot == ROOT else store.layout.pkg_image(slot.domu or "")
        stable[os.path.abspath(image)] = slot
        stable[os.path.abspath(active)] = slot
    used: dict[tuple[str, str], set[str]] = {}
    for domain in domains:
        for disk in domain.disks:
            for key in _generations(store, stable, os.path.abspath(disk), domain.started):
                used.setdefault(key, set()).add(domain.name)
    return used


def _generations(
    store: Store, stable: dict[str, Slot], disk: str, started: float | None
) -> set[tuple[str, str]]:
    slot = stable.get(disk)
    if slot is not None:
        return {(slot.pool, g) for g in store.state(slot).active_at(started)}
    path = Path(disk)
    for pool in POOLS:
        if path.parent.parent == store.pool(pool):
            return {(pool, path.parent.name)}
    return set()
