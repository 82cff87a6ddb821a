"""Slots: the images domus keeps generations of, and the stable paths that lead to them.

`root` is the shared root.img with the kernel beside it; `pkg:NAME` is one domU's pkg.img.
pkg generations live in one pool: domUs with the same package set share one image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tasks.run.errors import UsageError, require_known
from tasks.site import Layout

POOLS = ("root", "pkg")
KERNEL = "kernel"  # the kernel's name inside a root generation


@dataclass(frozen=True, order=True)
class Slot:
    pool: str  # "root" or "pkg"
    domu: str | None = None

    @property
    def name(self) -> str:
        """As the operator writes it: root, pkg:www1 (the doit task names)."""
        return self.pool if self.domu is None else f"{self.pool}:{self.domu}"

    @property
    def key(self) -> str:
        """As a file name: root, pkg.www1."""
        return self.pool if self.domu is None else f"{self.pool}.{self.domu}"

    @property
    def image(self) -> str:
        return f"{self.pool}.img"


ROOT = Slot("root")


def pkg_slot(domu: str) -> Slot:
    return Slot("pkg", domu)


def from_key(key: str) -> Slot | None:
    pool, _, domu = key.partition(".")
    if pool == "root" and not domu:
        return ROOT
    if pool == "pkg" and domu:
        return pkg_slot(domu)
    return None


def parse_slots(text: str, domus: list[str], site: object = "the site") -> list[Slot]:
    """`root`, `pkg:NAME`, or `pkg` for the pkg.img of every domU of the site (the file
    `site`)."""
    if text == "root":
        return [ROOT]
    if text == "pkg":
        return [pkg_slot(name) for name in domus]
    pool, _, name = text.partition(":")
    if pool == "pkg" and name in domus:
        return [pkg_slot(name)]
    if pool == "pkg" and name:
        require_known([name], domus, "domain", site)
    raise UsageError(
        f"unknown image {text!r}",
        hint="name root, pkg:NAME (one domU's pkg.img) or pkg (every pkg.img)",
    )


def stable_links(layout: Layout, slot: Slot, kernel: str | None) -> dict[Path, str]:
    """The paths the xl configs name, each with the file of the active generation it shows."""
    if slot.domu is None:
        links = {layout.root_image: slot.image}
        if kernel is not None:
            links[layout.kernel(kernel)] = KERNEL
        return links
    return {layout.pkg_image(slot.domu): slot.image}
