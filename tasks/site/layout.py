"""Where everything lives below the output directory.

Each image kind declares where its files land (a Place, in its module under tasks/kinds/);
the Layout turns a Place into a path, and names the built-in kinds' files by reading their
Places through the kinds' registry, so a new kind's files need nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tasks import kinds


@dataclass(frozen=True)
class Place:
    """Where a kind's file lands, relative to the output directory: `{domu}` stands for a
    domU's name (a file for each), `{kernel}` for the kernel's file name."""

    path: str

    @property
    def per_domu(self) -> bool:
        return "{domu}" in self.path

    @property
    def name(self) -> str:
        """The file's name, as the operator calls it: local.img, pkg.img."""
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class Layout:
    output: Path
    locks: Path

    def at(self, place: Place, **names: str) -> Path:
        """The path of `place`: `domu=` names the domU of a per-domU place."""
        return self.output / place.path.format(**names)

    @property
    def images(self) -> Path:
        return self.output / "images"

    def domu_dir(self, name: str) -> Path:
        return self.images / name

    @property
    def root_image(self) -> Path:
        return self.at(kinds.named("root").IMAGE)

    def kernel(self, name: str) -> Path:
        """The kernel xl boots: the same bytes as root.img's, published beside it."""
        return self.at(kinds.named("root").KERNEL, kernel=name)

    def local_image(self, name: str) -> Path:
        return self.at(kinds.named("local").IMAGE, domu=name)

    def pkg_image(self, name: str) -> Path:
        return self.at(kinds.named("pkg").IMAGE, domu=name)

    def swap_image(self, name: str) -> Path:
        return self.at(kinds.named("swap").IMAGE, domu=name)

    def xen_config(self, name: str) -> Path:
        return self.at(kinds.named("xen").CONFIG, domu=name)

    @property
    def hotplug_script(self) -> Path:
        """xl's hotplug script for local images the dom0 opens with cgd."""
        return self.at(kinds.named("hotplug").SCRIPT)

    @property
    def stage(self) -> Path:
        return self.output / "stage"

    @property
    def root_stage(self) -> Path:
        return self.at(kinds.named("root").STAGE)

    @property
    def root_manifest(self) -> Path:
        return self.at(kinds.named("root").MANIFEST)

    def work_stage(self, kind: str, name: str) -> Path:
        return self.stage / f"{kind}-{name}"

    @property
    def cache(self) -> Path:
        return self.output / "cache"

    @property
    def db(self) -> Path:
        return self.output / ".doit.db"
