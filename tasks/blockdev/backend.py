"""The block-device interface: attach an image file to a device, mount it, undo both.

Two backends implement it, vnd(4) with vnconfig on NetBSD and loop with losetup on Linux
(backends.py picks one); everything above (the unit pool, the records, converging) is the
same for both. A backend
is stateless: what is attached where is asked from the system each time, never assumed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tasks.run.errors import DomusError
from tasks.tools import run

# Mounted images come from domUs: nothing on them is run, and no device node is honoured.
MOUNT_OPTIONS = "noatime,nodev,nosuid,noexec"


@dataclass(frozen=True)
class Attachment:
    unit: int
    device: str  # what the image is attached to: /dev/loop3, vnd0
    fs_device: str  # what is mounted: /dev/loop3, /dev/vnd0a, /dev/cgd0a
    cgd: str | None = None  # the cgd(4) unit between them, for an encrypted image


class Backend(ABC):
    name: ClassVar[str]
    mount_types: ClassVar[Mapping[str, str]]  # domus file system -> `mount -t` type

    def unit_name(self, unit: int) -> str:
        """The name of a unit of the pool: its lock file and its record are named after it."""
        return f"{self.name}{unit}"

    def can_mount(self, fs: str) -> bool:
        return fs in self.mount_types

    def unit_free(self, unit: int) -> bool:
        """Whether nothing outside domus uses the unit (it may be free of domus' lock only)."""
        return True

    @abstractmethod
    def holders(self, image: Path) -> list[str]:
        """The devices `image` is attached to right now, by anyone."""

    @abstractmethod
    def planned_device(self, unit: int) -> str:
        """The device `attach` will try first; recorded before the attempt."""

    @abstractmethod
    def attach(
        self,
        image: Path,
        unit: int,
        device: str,
        readonly: bool,
        cgd_params: Path | None,
        on_device: Callable[[str], None],
    ) -> Attachment:
        """Attach `image`; `on_device` is told of any other device tried, before it is."""

    @abstractmethod
    def planned_cgd(self, unit: int) -> str | None:
        """The cgd unit an encrypted image of this unit goes through, if the backend has one."""

    @abstractmethod
    def detach_device(self, device: str, cgd: str | None) -> None:
        """Undo an attachment: the cgd first, then the device."""

    def holds(self, device: str, image: Path) -> bool:
        """Whether `device` is attached to `image` now (a record may name a stale device)."""
        return device in self.holders(image)

    def release_cgd(self, cgd: str) -> None:  # noqa: B027 - only vnd has cgd units
        """Unconfigure a cgd unit a killed run may or may not have configured."""

    @abstractmethod
    def detach_command(self, device: str) -> str:
        """The command an operator runs to detach `device` by hand."""

    def mount(self, attachment: Attachment, mountpoint: Path, fs: str, readonly: bool) -> None:
        if not self.can_mount(fs):
            raise DomusError(f"{self.name}: cannot mount {fs} on this system")
        run(
            [
                "mount",
                "-t",
                self.mount_types[fs],
                "-r" if readonly else "-w",
                "-o",
                MOUNT_OPTIONS,
                attachment.fs_device,
                str(mountpoint),
            ],
            f"mounting {attachment.fs_device}",
        )

    def unmount(self, mountpoint: Path) -> None:
        run(["umount", str(mountpoint)], f"unmounting {mountpoint}")
