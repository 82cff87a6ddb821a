"""NetBSD vnd(4) through vnconfig(8), with cgd(4) on top for an encrypted image.

Unit N of the pool is vndN (and cgdN): vnd units are few (MAKEDEV makes vnd0 to vnd3), so
they are handed out by domus' own unit locks, and a unit some other program configured is
skipped. A bare image has no disklabel; the kernel then fakes one whose partition `a` is
the whole disk, so the file system is mounted from vndNa (cgdNa through cgd).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import ClassVar

from tasks.blockdev.backend import Attachment, Backend
from tasks.tools import output, run

# `vnconfig -l`: "vnd0: not in use", "vnd0: /home (/dev/wd0e) inode 123", "vnd0: wd0e inode 123"
_LISTED = re.compile(r"^(vnd\d+): (?:(\S+) (?:\((\S+)\) )?inode (\d+)|not in use)\s*$")


def mount_point_of(path: Path) -> str:
    path = path.resolve()
    while not os.path.ismount(path):
        path = path.parent
    return str(path)


def parse_listing(text: str) -> dict[str, tuple[str, int] | None]:
    """vnd unit -> (mount point or device of the file system, inode), None when unused."""
    units: dict[str, tuple[str, int] | None] = {}
    for line in text.splitlines():
        match = _LISTED.match(line.strip())
        if match is None:
            continue
        unit, where, _, inode = match.groups()
        units[unit] = None if inode is None else (where, int(inode))
    return units


def holds_image(entry: tuple[str, int] | None, image: Path) -> bool:
    if entry is None:
        return False
    where, inode = entry
    if inode != image.stat().st_ino:
        return False
    # a bare device name is printed when the file system is not in the mount table
    return not where.startswith("/") or where == mount_point_of(image)


@cache
def raw_partition() -> str:
    """The letter of the whole-disk partition: d on amd64 and i386, c elsewhere."""
    number = int(output(["sysctl", "-n", "kern.rawpartition"], "asking the raw partition"))
    return "abcdefghijklmnop"[number]


class Vnd(Backend):
    name = "vnd"
    mount_types: ClassVar[Mapping[str, str]] = {"ffs": "ffs", "ext2fs": "ext2fs"}

    def _listing(self, unit: str | None = None) -> dict[str, tuple[str, int] | None]:
        argv = ["vnconfig", "-l", *([unit] if unit else [])]
        return parse_listing(output(argv, "listing vnd units"))

    def holders(self, image: Path) -> list[str]:
        return [unit for unit, entry in self._listing().items() if holds_image(entry, image)]

    def unit_free(self, unit: int) -> bool:
        name = self.unit_name(unit)
        return self._listing(name).get(name) is None

    def planned_device(self, unit: int) -> str:
        return self.unit_name(unit)

    def planned_cgd(self, unit: int) -> str | None:
        return f"cgd{unit}"

    def attach(
        self,
        image: Path,
        unit: int,
        device: str,
        readonly: bool,
        cgd_params: Path | None,
        on_device: Callable[[str], None],
    ) -> Attachment:
        run(["vnconfig", *(["-r"] if readonly else []), device, str(image)], f"attaching {image}")
        if cgd_params is None:
            return Attachment(unit, device, f"/dev/{device}a")
        cgd = self.planned_cgd(unit)
        assert cgd is not None
        try:
            run(
                ["cgdconfig", cgd, f"/dev/{device}{raw_partition()}", str(cgd_params)],
                f"configuring {cgd} on {device}",
            )
        except BaseException:
            run(["vnconfig", "-u", device], f"detaching {device}", check=False)
            raise
        return Attachment(unit, device, f"/dev/{cgd}a", cgd)

    def detach_device(self, device: str, cgd: str | None) -> None:
        if cgd is not None:
            run(["cgdconfig", "-u", cgd], f"unconfiguring {cgd}")
        run(["vnconfig", "-u", device], f"detaching {device}")

    def detach_command(self, device: str) -> str:
        return f"vnconfig -u {device}"

    def release_cgd(self, cgd: str) -> None:
        run(["cgdconfig", "-u", cgd], f"unconfiguring {cgd}", check=False)

    def holds(self, device: str, image: Path) -> bool:
        return holds_image(self._listing(device).get(device), image)
