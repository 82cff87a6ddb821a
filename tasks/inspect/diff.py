"""`./domus diff`: what differs between two generations of root.img or a pkg.img, and how
far a local.img has drifted from what the site makes its managed files.

    ./domus diff root                  the active generation against the one before it
    ./domus diff root GEN_A GEN_B      from A to B (ids, or their starts)
    ./domus diff pkg:NAME [GEN_A GEN_B]
    ./domus diff local:NAME            the managed files against the templates now: the
                                       changes `./domus converge --dry-run NAME` prints,
                                       from the same code (tasks/converge/local.py)

Between generations every entry is compared by type, mode, owner, size, content (by
SHA-256), symlink target and device number; modification times are not (every build
stamps its own). Names and link targets are escaped as `ls` escapes them, and the files'
lines too when they go to a terminal (tasks/inspect/escaping.py). Each added, removed or
changed entry is one line, then a unified diff of each changed text file, then a count.
The exit status is 0 whether or not anything differs (1 is for a diff that could not be
made), so a script tells "different" from "failed"; the output is empty when nothing
differs.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from tasks.generations.store import Store
from tasks.inspect.escaping import escaped, escaped_content
from tasks.inspect.names import ImageName, Located, find_domu, locate, parse_image, slot_of
from tasks.inspect.readers import Entry, Reader, opened
from tasks.run.errors import DomusError, UsageError
from tasks.site import Site

TEXT_LIMIT = 1 << 20  # bytes: a larger file's change is told, not shown line by line


@dataclass(frozen=True)
class Difference:
    path: str
    kind: str  # added, removed, changed
    old: Entry | None
    new: Entry | None
    what: tuple[str, ...] = ()  # for changed: type, mode, owner, size, content, target, device


def describe(entry: Entry) -> str:
    if entry.type == "link":
        return f"link -> {escaped(entry.link or '')}"
    what = f"{entry.type}, {entry.mode:04o}, {entry.uid}:{entry.gid}"
    if entry.type == "file":
        what += f", {entry.size} bytes"
    if entry.device is not None:
        what += f", device {entry.device[0]}, {entry.device[1]}"
    return what


def line(difference: Difference) -> str:
    old, new = difference.old, difference.new
    if difference.kind == "added":
        assert new is not None
        return f"added    /{escaped(difference.path)} ({describe(new)})"
    if difference.kind == "removed":
        assert old is not None
        return f"removed  /{escaped(difference.path)} ({describe(old)})"
    assert old is not None and new is not None
    notes = []
    for what in difference.what:
        if what == "type":
            notes.append(f"{old.type} -> {new.type}")
        elif what == "mode":
            notes.append(f"mode {old.mode:04o} -> {new.mode:04o}")
        elif what == "owner":
            notes.append(f"owner {old.uid}:{old.gid} -> {new.uid}:{new.gid}")
        elif what == "size":
            notes.append(f"size {old.size} -> {new.size}")
        elif what == "target":
            notes.append(f"target {escaped(old.link or '')} -> {escaped(new.link or '')}")
        elif what == "device":
            notes.append(f"device {old.device} -> {new.device}")
        else:
            notes.append(what)
    return f"changed  /{escaped(difference.path)}: {', '.join(notes)}"


def compare(old: Entry, new: Entry) -> list[str]:
    """What differs between two entries of one path, content left to the caller."""
    if old.type != new.type:
        return ["type"]
    what = []
    if old.type != "link" and old.mode != new.mode:  # a symlink's mode means nothing
        what.append("mode")
    if (old.uid, old.gid) != (new.uid, new.gid):
        what.append("owner")
    if old.type == "file" and old.size != new.size:
        what.append("size")
    if old.link != new.link:
        what.append("target")
    if old.device != new.device:
        what.append("device")
    return what


def differences(old: Reader, new: Reader) -> list[Difference]:
    before = {entry.path: entry for entry in old.walk()}
    after = {entry.path: entry for entry in new.walk()}
    found: dict[str, Difference] = {}
    for path in sorted(before.keys() - after.keys()):
        found[path] = Difference(path, "removed", before[path], None)
    for path in sorted(after.keys() - before.keys()):
        found[path] = Difference(path, "added", None, after[path])
    same_size = []
    for path in sorted(before.keys() & after.keys()):
        a, b = before[path], after[path]
        what = compare(a, b)
        if "size" in what:
            what.append("content")
        elif a.type == b.type == "file":
            same_size.append(path)
        if what:
            found[path] = Difference(path, "changed", a, b, tuple(what))
    old_digests, new_digests = old.digests(same_size), new.digests(same_size)
    for path in same_size:
        if old_digests[path] != new_digests[path]:
            known = found.get(path)
            what = (*(known.what if known else ()), "content")
            found[path] = Difference(path, "changed", before[path], after[path], what)
    return [found[path] for path in sorted(found)]


def text_of(data: bytes) -> list[str] | None:
    """The lines of a text file; None for what is not text (NUL bytes, not UTF-8)."""
    if b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def unified(
    difference: Difference, old: Reader, new: Reader, names: tuple[str, str]
) -> Iterator[str]:
    """The unified diff of a changed text file (nothing for binary or large files)."""
    a, b = difference.old, difference.new
    if "content" not in difference.what or a is None or b is None:
        return
    shown = escaped(difference.path)
    if max(a.size, b.size) > TEXT_LIMIT:
        yield f"(/{shown}: over {TEXT_LIMIT >> 20} MiB, not shown)\n"
        return
    before, after = text_of(old.read(difference.path)), text_of(new.read(difference.path))
    if before is None or after is None:
        yield f"(/{shown}: binary content differs)\n"
        return
    yield from difflib.unified_diff(before, after, f"{names[0]}:/{shown}", f"{names[1]}:/{shown}")


def summary(found: list[Difference]) -> str:
    counts = {kind: sum(1 for d in found if d.kind == kind) for kind in ("added", "removed")}
    changed = sum(1 for d in found if d.kind == "changed")
    return f"{counts['added']} added, {counts['removed']} removed, {changed} changed\n"


def between(old: Located, new: Located) -> Iterator[str]:
    with opened(old) as a, opened(new) as b:
        found = differences(a, b)
        if not found:
            return
        yield f"--- {old.name}\n+++ {new.name}\n"
        for difference in found:
            yield line(difference) + "\n"
        for difference in found:
            yield from unified(difference, a, b, (old.name, new.name))
        yield summary(found)


def previous(site: Site, name: ImageName) -> tuple[str, str]:
    """(the generation active before the active one, the active one)."""
    store = Store(site.layout)
    slot = slot_of(name)
    active = store.active(slot)
    if active is None:
        raise DomusError(f"{slot.name} has no active generation yet", hint="`./domus build`")
    # the activations in order (a rollback is one too), then the stack of an older record
    state = store.state(slot)
    earlier = [g for g in [*state.stack[:-1], *(g for g, _ in state.log)] if g != active]
    earlier = [g for g in earlier if store.exists(slot.pool, g)]
    if not earlier:
        raise DomusError(
            f"{slot.name}: no generation was active before {active}",
            hint=f"name two: `./domus diff {slot.name} GEN_A GEN_B` (`./domus generations`)",
        )
    return earlier[-1], active


def drift(site: Site, name: str) -> Iterator[str]:
    """The managed files of NAME's local.img against the site: converge's own dry run."""
    from tasks.converge.local import converge
    from tasks.converge.plan import unified_diff
    from tasks.kinds.local import context
    from tasks.render import Templates
    from tasks.run.locks import image_lock

    domu = find_domu(site, name)
    layout = site.layout
    image = layout.local_image(name)
    if not image.exists():
        raise DomusError(f"{name} has no local image yet ({image})", hint="`./domus build`")
    templates = Templates(site.templates, layout.cache / "template-references.json")
    with image_lock(layout.locks, image):
        changes = converge(site, domu, layout, templates, context(site, domu), dry_run=True).changes
    for change in changes:
        yield unified_diff(change, name)


def run(site: Site, image: str, generations: list[str]) -> int:
    name = parse_image(image)
    if name.kind == "local":
        if generations:
            raise UsageError("a local.img has no generations: `./domus diff local:NAME`")
        output: Iterator[str] = drift(site, name.domu or "")
    else:
        if name.generation is not None:
            raise UsageError(
                f"{image}: name the generations after the image",
                hint=f"`./domus diff {slot_of(name).name} GEN_A GEN_B`",
            )
        if len(generations) not in (0, 2):
            raise UsageError("name two generations (from, to), or none")
        if name.domu is not None:
            find_domu(site, name.domu)
        if generations:
            old, new = generations
        else:
            old, new = previous(site, name)
        a = locate(site, ImageName(name.kind, name.domu, old))
        b = locate(site, ImageName(name.kind, name.domu, new))
        output = between(a, b)
    # the files' lines as `show` writes them: escaped on a terminal, as they are elsewhere
    terminal = sys.stdout.isatty()
    for text in output:
        sys.stdout.write(escaped_content(text) if terminal else text)
    sys.stdout.flush()
    return 0
