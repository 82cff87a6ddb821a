"""What the next build would do to one item, and why: its inputs now against the record of
the build that made it (tasks.status.record), by the rules doit and the kinds' actions
follow: a missing output is built; root.img and pkg.img with changed inputs get a new
generation; a changed local.img is converged in place, or refused where it cannot be, and
the files domus wrote there that the site no longer manages are removed or kept."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from tasks.run.errors import DomusError
from tasks.site import Layout, Site
from tasks.status.items import Item
from tasks.status.record import Listing, Record, Trees, file_state, load_listing
from tasks.tools import find

if TYPE_CHECKING:
    from tasks.converge.local import ImageFiles
    from tasks.converge.retire import Retirement
    from tasks.render import Templates
    from tasks.site import DomU

UP_TO_DATE = "up to date"
BUILD = "build"
NEW_GENERATION = "new generation"
CONVERGE = "converge"
REFUSE = "refuse"
# what a build does to an existing output whose inputs changed
WHEN_CHANGED = {"root": NEW_GENERATION, "pkg": NEW_GENERATION, "local": CONVERGE}
NAMED = 3  # entries of a source tree named, of those added, removed or changed

# where a file recorded at one path is now (`deploy --check` judges a copy of the inputs)
Where = Callable[[str], str]


def same_place(path: str) -> str:
    return path


def relocated(moved: Mapping[str, str]) -> Where:
    """Files recorded below each key of `moved` are below its value now."""

    def where(path: str) -> str:
        for old, new in moved.items():
            if path == old or path.startswith(old.rstrip("/") + "/"):
                return new.rstrip("/") + path[len(old.rstrip("/")) :]
        return path

    return where


@dataclass
class Verdict:
    item: Item
    action: str
    why: list[str] = field(default_factory=list)


def judge(
    item: Item,
    old: Record | None,
    site: Site,
    layout: Layout,
    trees: Trees,
    where: Where = same_place,
) -> Verdict:
    missing = [path for path in item.targets if not path.exists()]
    if item.path in missing:
        return Verdict(item, BUILD, [f"{item.path} does not exist"])
    if old is None:
        why = ["no record of the inputs it was built from: the next `./domus build` records them"]
    else:
        why = [
            *config_changes(old.get("config") or {}, item.config, where),
            *file_changes(old.get("files") or {}, item.files, where),
            *tree_changes(old.get("trees") or {}, item.trees, layout, trees, where),
            *(f"{path} does not exist" for path in missing),
        ]
    if not why:
        return Verdict(item, UP_TO_DATE)
    action = WHEN_CHANGED.get(item.image, BUILD)
    if action == CONVERGE:
        refused = refusal(site, item)
        if refused:
            return Verdict(item, REFUSE, [*why, refused])
        why.append(f"converged {method(site, item)}")
    return Verdict(item, action, why)


def after_root(verdicts: list[Verdict]) -> None:
    """The xl configs depend on the kernel root.img's build publishes: a changed kernel
    rewrites them all, once root.img is built."""
    root = next((v for v in verdicts if v.item.image == "root"), None)
    if root is None or not any(why.startswith("kernel ") for why in root.why):
        return
    for verdict in verdicts:
        if verdict.item.image == "xl" and verdict.action == UP_TO_DATE:
            verdict.action = BUILD
            verdict.why = ["the kernel changed: root.img's build publishes it beside root.img"]


def shown(value: str | None) -> str:
    """A recorded JSON value as the site file would say it."""
    if value is None:
        return "(unset)"
    decoded = json.loads(value)
    return decoded if isinstance(decoded, str) else json.dumps(decoded)


def config_changes(
    old: Mapping[str, str], new: Mapping[str, str], where: Where = same_place
) -> list[str]:
    if where is not same_place:
        old = {key: relocated_value(value, where) for key, value in old.items()}
    return [
        f"{key}: {shown(old.get(key))} -> {shown(new.get(key))}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def relocated_value(value: str, where: Where) -> str:
    """A recorded JSON value with every path in it where it is now (package files are named
    in pkg.img's configuration)."""

    def moved(item: object) -> object:
        if isinstance(item, str):
            return where(item)
        if isinstance(item, list):
            return [moved(each) for each in item]
        if isinstance(item, dict):
            return {key: moved(each) for key, each in item.items()}
        return item

    decoded = json.loads(value)
    now = moved(decoded)
    return value if now == decoded else json.JSONEncoder(sort_keys=True).encode(now)


def file_changes(
    old: Mapping[str, list], new: Mapping[str, Path], where: Where = same_place
) -> list[str]:
    why = []
    for label in sorted(old.keys() | new.keys()):
        if label not in old:
            why.append(f"{label} added")
        elif label not in new:
            why.append(f"{label} no longer used")
        else:
            recorded = where(old[label][0])
            now = file_state(new[label], [recorded, *old[label][1:]])
            moved = f" (now {now[0]}, was {recorded})" if now[0] != recorded else ""
            if now[3] is None:
                why.append(f"{label} missing: {now[0]}")
            elif now[3] != old[label][3]:
                why.append(f"{label} changed{moved}")
            elif moved:
                why.append(f"{label}: the same content elsewhere{moved}")
    return why


def tree_changes(
    old: Mapping[str, list],
    new: Mapping[str, Path],
    layout: Layout,
    trees: Trees,
    where: Where = same_place,
) -> list[str]:
    why = []
    for label in sorted(old.keys() | new.keys()):
        if label not in new or label not in old:
            why.append(f"{label} {'added' if label in new else 'no longer used'}")
            continue
        top, fingerprint = Path(where(old[label][0])), old[label][1]
        if top != new[label]:
            why.append(f"{label}: now {new[label]} (was {top})")
        elif trees.fingerprint(top) != fingerprint:
            # filed under the path it was recorded at
            kept = load_listing(layout, Path(old[label][0]))
            if kept is None or kept[0] != fingerprint:
                why.append(f"{label} {top} changed (no listing of it was kept to compare)")
            else:
                why.append(f"{label} {top}: {listing_changes(kept[1], trees.listing(top))}")
    return why


def listing_changes(old: Listing, new: Listing) -> str:
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    changed = sorted(path for path in new.keys() & old.keys() if new[path] != old[path])
    parts = [
        f"{len(paths)} {what} ({named(paths)})"
        for what, paths in (("added", added), ("removed", removed), ("changed", changed))
        if paths
    ]
    return ", ".join(parts) or "its entries' order changed"


def named(paths: Sequence[str]) -> str:
    more = f", and {len(paths) - NAMED} more" if len(paths) > NAMED else ""
    return ", ".join(paths[:NAMED]) + more


def method(site: Site, item: Item) -> str:
    """How the converge would read and write this local.img here."""
    from tasks.converge.local import METHODS, how
    from tasks.converge.shape import new_shape

    domu = next(d for d in site.domus if d.name == item.domain)
    local = domu.local
    try:
        if local.fs == "ffs" and new_shape(domu, item.path) is not None:
            return METHODS["rewrite"]  # a new size or inode table: made anew, whatever mounts
    except DomusError:
        pass  # the converge's reading of the image says what is wrong with it
    return METHODS[how(local.fs, site.blockdev.backend, domu.local_encrypted, site.converge.mount)]


def refusal(site: Site, item: Item) -> str | None:
    """Why a converge of this local.img would be refused here (the build's own checks)."""
    from tasks.converge.local import cgd_params, check_shape, how
    from tasks.render import Templates

    domu = next(d for d in site.domus if d.name == item.domain)
    layout = site.layout
    templates = Templates(site.templates, layout.cache / "template-references.json", save=False)
    try:
        check_shape(domu, item.path)
        cgd_params(site, domu)
        how(domu.local.fs, site.blockdev.backend, domu.local_encrypted, site.converge.mount)
        _read(site, domu, item.path, templates)
    except DomusError as error:
        return f"cannot be converged here: {error.message}" + (
            f" ({error.hint})" if error.hint else ""
        )
    return None


def retiring(verdicts: list[Verdict], site: Site, templates: Templates) -> None:
    """A local.img that converges says what becomes of each file domus wrote there that the
    site no longer manages: the converge's own reading of it, from the image as it is."""
    for verdict in verdicts:
        if verdict.item.image == "local" and verdict.action == CONVERGE:
            verdict.why += retire_reasons(site, verdict.item, templates)


def _read(
    site: Site, domu: DomU, image: Path, templates: Templates
) -> tuple[Retirement, list[str]] | None:
    """The converge's own reading of the image as it is, without a lock, a mount or a copy:
    what becomes of the files the site no longer manages and what else it says of the
    changes (None where the image is not read here), or the DomusError of a change NetBSD
    would refuse (an immutable managed file)."""
    from tasks.converge.local import changes_for
    from tasks.images.ffs_reader import FfsError
    from tasks.kinds.local import context
    from tasks.pkgsrc.setup import setup_of

    try:
        with readable(site, domu, image) as files:
            if files is None:
                return None
            changes, retired = changes_for(
                image,
                files,
                templates,
                context(site, domu),
                dict(domu.rc_conf),
                setup_of(domu.pkg.source),
            )
    except (FfsError, OSError):
        return None  # the build says what it is; status reads what it can
    made = [f"/{change.path}" for change in changes if change.directory]
    return retired, [f"would make the directories {', '.join(made)}"] if made else []


def retire_reasons(site: Site, item: Item, templates: Templates) -> list[str]:
    domu = next(d for d in site.domus if d.name == item.domain)
    try:
        read = _read(site, domu, item.path, templates)
    except DomusError as error:
        return [f"cannot read it to tell which files the converge removes: {error}"]
    if read is None:
        return []
    retired, made = read
    return [*retired.warnings, *retired.reasons(), *made]


@contextmanager
def readable(site: Site, domu: DomU, image: Path) -> Iterator[ImageFiles | None]:
    """The image's files, read without mounting or writing it; None for an encrypted
    ext2fs one, which debugfs reads only from a whole plaintext copy."""
    if domu.local.fs == "ext2fs":
        from tasks.converge.debugfs import DebugfsFiles

        readable = not domu.local_encrypted and find("debugfs") is not None
        files = DebugfsFiles(image) if readable else None
        if files is not None:
            files.max_file_size = site.converge.max_file_size
        yield files
        return
    from tasks.cgd.keys import local_params
    from tasks.cgd.seekable import open_decrypted
    from tasks.converge.rewrite import RewriteFiles
    from tasks.images.ffs_reader import FfsImage

    with ExitStack() as stack:
        source: Path | BinaryIO = image
        if domu.local_encrypted:
            key = local_params(site.keys, domu)
            source = stack.enter_context(open_decrypted(image, *key))
        reader = stack.enter_context(FfsImage(source))
        ffs = RewriteFiles(image, reader, keep_images=0)
        ffs.max_file_size = site.converge.max_file_size
        yield ffs
