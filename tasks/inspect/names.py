"""IMAGE:PATH, as `./domus show`, `ls` and `diff` take it: which image file, its file
system, and the key an encrypted one is opened with.

    root:/etc/rc.conf            the active root.img
    root@08a4:/etc/rc.conf       one generation of it (an id, or its start)
    pkg:www1:/bin/hello          www1's active pkg.img (paths inside the image: /usr/pkg
    pkg:www1@1406:/bin/hello     is its top), or one generation of it
    local:db1:/etc/rc.conf       db1's local.img (/local in the domU), opened with its key
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tasks.cgd.params import Params
from tasks.formats.superblocks import detect_fs
from tasks.generations.slots import ROOT, Slot, pkg_slot
from tasks.generations.store import Store
from tasks.run.errors import DomusError, UsageError, require_known
from tasks.site import DomU, Site

SYNTAX = "root[@GENERATION], pkg:NAME[@GENERATION] or local:NAME, then :PATH"
_IMAGE = re.compile(r"^(root|pkg:[^:@/]+|local:[^:@/]+)(?:@([0-9a-f]+))?$")


@dataclass(frozen=True)
class ImageName:
    kind: str  # root, pkg, local
    domu: str | None
    generation: str | None  # as written: an id or its start

    def __str__(self) -> str:
        name = self.kind if self.domu is None else f"{self.kind}:{self.domu}"
        return name if self.generation is None else f"{name}@{self.generation}"


@dataclass(frozen=True)
class Located:
    """An image file found: what it is called, where it is, how to open it."""

    name: str  # root@08a4839acfb11e57, local:db1, ...
    image: Path
    fs: str
    key: tuple[Params, bytes | None] | None = None  # cgd params and passphrase


def parse_image(text: str) -> ImageName:
    match = _IMAGE.match(text)
    if match is None:
        raise UsageError(f"{text!r} names no image", hint=f"write {SYNTAX}")
    image, generation = match.groups()
    kind, _, domu = image.partition(":")
    if kind == "local" and generation is not None:
        raise UsageError(f"{text!r}: a local.img has no generations", hint=f"write {SYNTAX}")
    return ImageName(kind, domu or None, generation)


def parse(text: str) -> tuple[ImageName, str]:
    """IMAGE:PATH -> the image and the path inside it (relative, "" for its top)."""
    # root's name has no colon; every other image's has one (pkg:NAME), before the path's
    match = re.match(r"^(root[^:]*|[^:]*:[^:]*):(.*)$", text)
    if match is None:
        raise UsageError(f"{text!r} is not IMAGE:PATH", hint=f"write {SYNTAX}")
    image, path = match.groups()
    return parse_image(image), normal_path(path)


def normal_path(path: str) -> str:
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"{path!r}: '..' is not followed inside an image; name the path whole")
    return "/".join(parts)


def find_domu(site: Site, name: str) -> DomU:
    domus = {domu.name: domu for domu in site.domus}
    require_known([name], domus, "domain", site.path)
    return domus[name]


def slot_of(name: ImageName) -> Slot:
    return ROOT if name.kind == "root" else pkg_slot(name.domu or "")


def generation_of(site: Site, name: ImageName) -> str:
    """The generation `name` means: the one it names, or the slot's active one."""
    store = Store(site.layout)
    if name.generation is not None:
        return store.find(name.kind, name.generation)
    active = store.active(slot_of(name))
    if active is None:
        raise DomusError(f"{name} has no active generation yet", hint="`./domus build` makes it")
    return active


def locate(site: Site, name: ImageName) -> Located:
    if name.domu is not None:
        domu = find_domu(site, name.domu)
    if name.kind == "local":
        return _local(site, domu)
    generation = generation_of(site, name)
    image = Store(site.layout).generation(name.kind, generation).image
    return Located(str(ImageName(name.kind, name.domu, generation)), image, _fs(image))


def _local(site: Site, domu: DomU) -> Located:
    image = site.layout.local_image(domu.name)
    if not image.exists():
        raise DomusError(f"{domu.name} has no local image yet ({image})", hint="`./domus build`")
    if not domu.local_encrypted:
        return Located(f"local:{domu.name}", image, _fs(image))
    from tasks.cgd.keys import local_params

    return Located(f"local:{domu.name}", image, domu.local.fs, local_params(site.keys, domu))


def _fs(image: Path) -> str:
    found = detect_fs(image)
    if found is None:
        raise DomusError(f"{image} holds no ffs or ext2fs file system that domus can read")
    return found
