"""The site as the rest of domus sees it: frozen, checked, every default filled in."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from tasks.site.layout import Layout
from tasks.site.netbsd import DEFAULT_CIPHER
from tasks.urls import Download


@dataclass(frozen=True)
class RootSource:
    tree: Path | None
    metalog: Path | None
    sets: tuple[Path, ...]
    image: Path | None = None  # an existing root.img, read through a block device


@dataclass(frozen=True)
class RootSpec:
    source: RootSource
    kernel: Path
    size: int  # bytes
    fs: str
    makedev_add: tuple[str, ...]
    makedev_remove: tuple[str, ...]
    # sets and kernel given as URLs; `source.sets` and `kernel` name their verified copies
    downloads: tuple[Download, ...] = ()


@dataclass(frozen=True)
class ImageSpec:
    size: int  # bytes
    fs: str
    encrypt: str = "none"  # local.img only: none, dom0 or domu
    cipher: str = DEFAULT_CIPHER
    keylength: int = 256  # bits


@dataclass(frozen=True)
class PkgSource:
    """What goes into pkg.img; neither a tree nor packages means an empty image."""

    tree: Path | None
    packages: tuple[Path, ...]


@dataclass(frozen=True)
class PkgSpec:
    size: int  # bytes
    fs: str
    source: PkgSource


@dataclass(frozen=True)
class SwapSpec:
    size: int  # bytes
    cipher: str
    keylength: int  # bits


@dataclass(frozen=True)
class DomU:
    name: str
    memory: int  # MiB
    vcpus: int
    vif: tuple[str, ...]
    rc_conf: tuple[tuple[str, str], ...]  # built-ins first, then defaults, then the entry
    local: ImageSpec
    pkg: PkgSpec
    swap: SwapSpec


@dataclass(frozen=True)
class BlockdevSpec:
    """How images are attached as root: the backend, the size of the unit pool, the wait."""

    backend: str = "auto"  # auto, vnd, loop or none
    units: int = 4
    wait: int = 600  # seconds


@dataclass(frozen=True)
class GenerationsSpec:
    keep: int = 3  # newest generations of each image that garbage collection keeps


@dataclass(frozen=True)
class Site:
    path: Path
    output: Path
    templates: Path | None
    locks: Path
    keys: Path
    root: RootSpec
    domus: tuple[DomU, ...]  # in file order
    blockdev: BlockdevSpec = BlockdevSpec()
    generations: GenerationsSpec = GenerationsSpec()

    @property
    def layout(self) -> Layout:
        """Where everything built for this site lives."""
        return Layout(self.output, self.locks)


def plain(obj: object) -> object:
    """`obj` (any model object) as JSON-able dicts, lists and strings, for hashing."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [plain(item) for item in obj]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    raise TypeError(f"cannot turn a {type(obj).__name__} into plain data")
