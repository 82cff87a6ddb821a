"""Where everything lives below the output directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    output: Path
    locks: Path

    @property
    def images(self) -> Path:
        return self.output / "images"

    @property
    def root_image(self) -> Path:
        return self.images / "root.img"

    def kernel(self, name: str) -> Path:
        """The kernel xl boots: the same bytes as root.img's, published beside it."""
        return self.images / name

    def domu_dir(self, name: str) -> Path:
        return self.images / name

    def local_image(self, name: str) -> Path:
        return self.domu_dir(name) / "local.img"

    def pkg_image(self, name: str) -> Path:
        return self.domu_dir(name) / "pkg.img"

    def swap_image(self, name: str) -> Path:
        return self.domu_dir(name) / "swap.img"

    def xen_config(self, name: str) -> Path:
        return self.output / "xen" / f"{name}.cfg"

    @property
    def hotplug_script(self) -> Path:
        """xl's hotplug script for local images the dom0 opens with cgd."""
        return self.output / "xen" / "block-domus-cgd"

    @property
    def stage(self) -> Path:
        return self.output / "stage"

    @property
    def root_stage(self) -> Path:
        return self.stage / "root"

    @property
    def root_manifest(self) -> Path:
        return self.stage / "root.manifest.json"

    def work_stage(self, kind: str, name: str) -> Path:
        return self.stage / f"{kind}-{name}"

    @property
    def cache(self) -> Path:
        return self.output / "cache"

    @property
    def db(self) -> Path:
        return self.output / ".doit.db"
