"""The site as the rest of domus sees it: frozen, checked, every default filled in.

The fields carry no defaults: the settings table holds them, and `fill` builds a model
object from the values the table's settings name (Setting.dest).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks.site.layout import Layout
from tasks.sources.urls import Download

# converge.max_file_size's default: a managed file is a few KiB of configuration
MAX_FILE_SIZE = 1 << 20

T = typing.TypeVar("T")


@dataclass(frozen=True)
class RootSource:
    tree: Path | None
    metalog: Path | None
    sets: tuple[Path, ...]
    image: Path | None  # an existing root.img, read through a block device


@dataclass(frozen=True)
class RootSpec:
    source: RootSource
    kernel: Path
    size: int  # bytes
    fs: str
    makedev_add: tuple[str, ...]
    makedev_remove: tuple[str, ...]
    # sets and kernel given as URLs; `source.sets` and `kernel` name their verified copies
    downloads: tuple[Download, ...]


@dataclass(frozen=True)
class ImageSpec:
    size: int  # bytes
    fs: str
    encrypt: str  # none, dom0 or domu
    cipher: str
    keylength: int  # bits
    density: int | None = None  # bytes per inode; None: newfs's (FFS), mke2fs's (ext2fs)


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
    host: str | None = None  # the name of its dom0 in Site.hosts; None: this machine

    @property
    def local_encrypted(self) -> bool:
        """Its local.img is encrypted with cgd (by domus, when it builds it)."""
        return self.local.encrypt != "none"

    @property
    def opens_local_itself(self) -> bool:
        """Its local.img is encrypted and the domU opens it, with a passphrase typed on its
        console (`local.encrypt: domu`)."""
        return self.local.encrypt == "domu"

    @property
    def local_opened_by_dom0(self) -> bool:
        """Its local.img is encrypted and the dom0 opens it with cgd, with a key kept in the
        key directory (`local.encrypt: dom0`)."""
        return self.local.encrypt == "dom0"


@dataclass(frozen=True)
class BlockdevSpec:
    """How images are attached as root: the backend, the size of the unit pool, the wait."""

    backend: str  # auto, vnd, loop or none
    units: int
    wait: int  # seconds


@dataclass(frozen=True)
class GenerationsSpec:
    keep: int  # newest generations of each image that garbage collection keeps


@dataclass(frozen=True)
class ConvergeSpec:
    keep_backups: int  # newest NAME.domus-STAMP backups of each managed file a converge keeps
    keep_images: int  # newest local-converge-STAMP.img a rewriting converge keeps beside it
    mount: bool  # as root, converge by mounting the image (after fsck -n) rather than in user space
    max_file_size: int = MAX_FILE_SIZE  # a larger file of a local.img is refused unread


@dataclass(frozen=True)
class Host:
    """A dom0 `./domus deploy` puts domUs on, reached with ssh."""

    name: str
    address: str
    user: str
    port: int
    identity: Path | None  # ssh private key on this machine; None: ssh's own choice
    host_key: str | None  # its ssh public host key, pinned; None: trusted with --trust
    dom0: str  # netbsd or linux
    output: str  # absolute path on the dom0, not on this machine
    units: int  # blockdev.units there
    python: str  # the interpreter domus's venv there is made from


@dataclass(frozen=True)
class Site:
    path: Path
    output: Path
    templates: Path | None
    locks: Path
    keys: Path
    root: RootSpec
    domus: tuple[DomU, ...]  # in file order
    blockdev: BlockdevSpec
    generations: GenerationsSpec
    converge: ConvergeSpec
    dom0: str  # the system of the dom0 the domUs run on: netbsd or linux
    hosts: tuple[Host, ...] = ()  # in file order; none: everything is for this machine

    @property
    def layout(self) -> Layout:
        """Where everything built for this site lives."""
        return Layout(self.output, self.locks)

    def host(self, name: str) -> Host:
        return next(host for host in self.hosts if host.name == name)

    def domus_on(self, host: str) -> tuple[DomU, ...]:
        """The domUs placed on `host`, in file order."""
        return tuple(domu for domu in self.domus if domu.host == host)

    @property
    def passphrase_domus(self) -> tuple[DomU, ...]:
        """The domUs that open their encrypted local.img themselves, with a passphrase."""
        return tuple(domu for domu in self.domus if domu.opens_local_itself)

    @property
    def dom0_cgd_domus(self) -> tuple[DomU, ...]:
        """The domUs whose encrypted local.img the dom0 opens with cgd."""
        return tuple(domu for domu in self.domus if domu.local_opened_by_dom0)


def plain(obj: object, path: typing.Callable[[Path], str] = str) -> object:
    """`obj` (any model object) as JSON-able dicts, lists and strings, for hashing; each
    path as `path` writes it."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name), path) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [plain(item, path) for item in obj]
    if isinstance(obj, Path):
        return path(obj)
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    raise TypeError(f"cannot turn a {type(obj).__name__} into plain data")


def fill(model: type[T], values: Mapping[str, object], prefix: str = "") -> T:
    """A `model` object whose fields are taken from `values` by their dotted names:
    `values["root.size"]` is Site.root.size. A field that holds a model object is filled
    the same way, one name deeper."""
    fields = {}
    for name, nested in _fields(model).items():
        dest = prefix + name
        fields[name] = values[dest] if nested is None else fill(nested, values, dest + ".")
    return model(**fields)


@functools.cache
def _fields(model: type) -> dict[str, type | None]:
    """Each field of a model class, with the model class it holds, if it holds one."""
    hints = typing.get_type_hints(model)
    return {
        field.name: hints[field.name] if dataclasses.is_dataclass(hints[field.name]) else None
        for field in dataclasses.fields(model)
    }
