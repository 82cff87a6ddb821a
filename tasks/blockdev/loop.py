"""Linux loop devices through losetup(8).

Loop devices are plentiful and numbered by the kernel, so a unit of the pool is only a
slot: it bounds how many images domus attaches at once. The device is picked with
`losetup -f` and recorded before the attach, so a killed run leaves a record naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

from tasks.blockdev.backend import Attachment, Backend
from tasks.run.errors import DomusError
from tasks.tools import output, run

ATTEMPTS = 8  # another process may take the free device between `losetup -f` and the attach


class Loop(Backend):
    name = "loop"
    mount_types: ClassVar[Mapping[str, str]] = {"ext2fs": "ext2"}

    def unit_name(self, unit: int) -> str:
        return f"loop-unit{unit}"

    def holders(self, image: Path) -> list[str]:
        listing = output(
            ["losetup", "--list", "--noheadings", "--output", "NAME", "--associated", str(image)],
            f"asking losetup about {image}",
        )
        return listing.split()

    def planned_device(self, unit: int) -> str:
        return output(["losetup", "--find"], "finding a free loop device").strip()

    def planned_cgd(self, unit: int) -> str | None:
        return None

    def attach(
        self,
        image: Path,
        unit: int,
        device: str,
        readonly: bool,
        cgd_params: Path | None,
        on_device: Callable[[str], None],
    ) -> Attachment:
        if cgd_params is not None:
            raise DomusError(f"{image}: cgd(4) images can only be attached on NetBSD (vnd)")
        flags = ["--read-only"] if readonly else []
        for _ in range(ATTEMPTS):
            done = run(["losetup", *flags, device, str(image)], f"attaching {image}", check=False)
            if done.returncode == 0:
                return Attachment(unit, device, device)
            if not self._in_use(device):
                raise DomusError(
                    f"attaching {image}: `losetup {device} {image}` failed: " + done.stderr.strip()
                )
            device = self.planned_device(unit)
            on_device(device)
        raise DomusError(
            f"attaching {image}: every free loop device was taken by another "
            f"process {ATTEMPTS} times in a row"
        )

    def _in_use(self, device: str) -> bool:
        done = run(
            ["losetup", "--list", "--noheadings", "--output", "BACK-FILE", device],
            f"asking losetup about {device}",
            check=False,
        )
        return done.returncode == 0 and bool(done.stdout.strip())

    def holds(self, device: str, image: Path) -> bool:
        if image.exists():
            return device in self.holders(image)
        # renamed or removed since: the kernel still names the file it was attached to
        done = run(
            ["losetup", "--list", "--noheadings", "--output", "BACK-FILE", device],
            f"asking losetup about {device}",
            check=False,
        )
        return done.stdout.strip().startswith(str(image))

    def detach_device(self, device: str, cgd: str | None) -> None:
        run(["losetup", "--detach", device], f"detaching {device}")

    def detach_command(self, device: str) -> str:
        return f"losetup -d {device}"
