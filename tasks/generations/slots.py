"""Slots: the images domus keeps generations of, and the stable paths that lead to them.

A kind whose image is kept as generations declares its Pool (`POOL` in its module under
tasks/kinds/); the slots are read from the kinds' registry. `root` is the shared root.img
with the kernel beside it; `pkg:NAME` is one domU's pkg.img. pkg generations live in one
pool: domUs with the same package set share one image.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tasks import kinds
from tasks.run.errors import UsageError, require_known
from tasks.site import Layout, Place

KERNEL = "kernel"  # the kernel's name inside a generation that keeps one


@dataclass(frozen=True)
class Pool:
    """A kind's generations: the pool is named after the kind, so its slots are named as its
    doit tasks are; `link` is the stable path the xl configs name (one a domU when it is per
    domU); a pool with a `kernel` place keeps the domUs' kernel in each generation too."""

    name: str
    link: Place
    kernel: Place | None = None

    @property
    def per_domu(self) -> bool:
        return self.link.per_domu


def pools() -> tuple[Pool, ...]:
    """Every kind's pool, in the kinds' order."""
    found = (getattr(kind, "POOL", None) for kind in kinds.every())
    return tuple(pool for pool in found if pool is not None)


def pool_names() -> tuple[str, ...]:
    return tuple(pool.name for pool in pools())


def pool_of(slot: Slot) -> Pool:
    return next(pool for pool in pools() if pool.name == slot.pool)


@dataclass(frozen=True, order=True)
class Slot:
    pool: str  # a pool's name: "root", "pkg"
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


def site_slots(domus: Iterable[str]) -> list[Slot]:
    """Every slot of a site with these domUs: each shared pool's, then each domU's of each
    per-domU pool."""
    names = list(domus)
    shared = [Slot(pool.name) for pool in pools() if not pool.per_domu]
    return shared + [Slot(pool.name, name) for pool in pools() if pool.per_domu for name in names]


def from_key(key: str) -> Slot | None:
    name, _, domu = key.partition(".")
    for pool in pools():
        if pool.name == name and pool.per_domu == bool(domu):
            return Slot(name, domu or None)
    return None


def parse_slots(text: str, domus: list[str], site: object = "the site") -> list[Slot]:
    """A shared pool by its name (`root`), a domU's slot of a per-domU pool (`pkg:NAME`), or
    a per-domU pool by its name for the slot of every domU of the site (the file `site`)."""
    name, colon, domu = text.partition(":")
    for pool in pools():
        if pool.name != name:
            continue
        if not pool.per_domu and not colon:
            return [Slot(name)]
        if pool.per_domu and not colon:
            return [Slot(name, each) for each in domus]
        if pool.per_domu and domu in domus:
            return [Slot(name, domu)]
        if pool.per_domu and domu:
            require_known([domu], domus, "domain", site)
    raise UsageError(f"unknown image {text!r}", hint=f"name {_spelled(pools())}")


def _spelled(every: tuple[Pool, ...]) -> str:
    ways = []
    for pool in every:
        if pool.per_domu:
            image = pool.link.name
            ways += [f"{pool.name}:NAME (one domU's {image})", f"{pool.name} (every {image})"]
        else:
            ways.append(pool.name)
    return ", ".join(ways[:-1]) + " or " + ways[-1] if len(ways) > 1 else "".join(ways)


def link_of(layout: Layout, slot: Slot) -> Path:
    """The stable path of the slot's image."""
    link = pool_of(slot).link
    return layout.at(link) if slot.domu is None else layout.at(link, domu=slot.domu)


def stable_links(layout: Layout, slot: Slot, kernel: str | None) -> dict[Path, str]:
    """The paths the xl configs name, each with the file of the active generation it shows;
    `kernel` is the kernel's file name, for a pool that keeps it."""
    links = {link_of(layout, slot): slot.image}
    pool = pool_of(slot)
    if pool.kernel is not None and kernel is not None:
        links[layout.at(pool.kernel, kernel=kernel)] = KERNEL
    return links
