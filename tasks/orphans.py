"""Outputs of domUs the site no longer has: found by `./domus status`, retired by `./domus gc`.

A domU taken out of the site leaves its images/NAME directory, its xl config and its pkg
slot behind; the build, which only makes what the site names, never touches them. Its
local.img is its state, so nothing here deletes one: `gc` keeps it, with the xl config and
the inputs record beside it, as images/NAME.retired-STAMP (0700, its files 0600), where
the operator deletes it when sure. What can be made again goes: swap.img, the pkg.img
link and the pkg slot (whose generations `gc` then collects unless another domU uses
them). A domU that still runs is left as it is until it is shut down.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from tasks.generations.slots import pkg_slot
from tasks.generations.store import Store
from tasks.images.private import PRIVATE_DIR, PRIVATE_FILE
from tasks.images.publish import fsync_dir
from tasks.site import Layout
from tasks.site.settings import DOMAIN_NAME

RETIRED = ".retired-"
# made again by a build, and no part of a domU's state
DISCARDED = ("swap.img", "pkg.img")


@dataclass(frozen=True)
class Orphan:
    name: str
    directory: Path | None  # images/NAME
    config: Path | None  # xen/NAME.cfg
    slot: bool  # it has a pkg slot (an active pkg generation)

    def outputs(self) -> list[str]:
        """What is left of it, as the operator finds it below the output directory."""
        found = []
        if self.directory is not None:
            found.append(f"images/{self.name}/")
        if self.config is not None:
            found.append(f"xen/{self.name}.cfg")
        if self.slot:
            found.append(f"pkg:{self.name} generations")
        return found


def find(layout: Layout, domus: Collection[str]) -> list[Orphan]:
    """Every domU with outputs below `layout` that is not one of `domus`, by name."""
    store = Store(layout)
    directories = {
        entry.name: Path(entry.path)
        for entry in _listing(layout.images)
        if entry.is_dir(follow_symlinks=False)
        and entry.name != "generations"
        and DOMAIN_NAME.fullmatch(entry.name)
    }
    configs = {
        entry.name[: -len(".cfg")]: Path(entry.path)
        for entry in _listing(layout.output / "xen")
        if entry.name.endswith(".cfg") and DOMAIN_NAME.fullmatch(entry.name[: -len(".cfg")])
    }
    slots = {slot.domu for slot in store.slots() if slot.domu is not None}
    names = sorted((directories.keys() | configs.keys() | slots) - set(domus))
    return [Orphan(n, directories.get(n), configs.get(n), n in slots) for n in names]


def _listing(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except FileNotFoundError:
        return []


def stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S")


def archive_path(layout: Layout, name: str, when: str) -> Path:
    return layout.images / f"{name}{RETIRED}{when}"


def retire(layout: Layout, orphan: Orphan, when: str) -> list[str]:
    """Keep what is the domU's own in its archive, let go of the rest; a line for each."""
    lines = []
    archive = None
    if orphan.directory is not None or orphan.config is not None:
        archive = archive_path(layout, orphan.name, when)
        if orphan.directory is not None:
            os.rename(orphan.directory, archive)  # in one step: the state is never half moved
        else:
            archive.mkdir()
        os.chmod(archive, PRIVATE_DIR)
        removed = []
        for name in DISCARDED:
            path = archive / name
            if path.is_symlink() or path.exists():
                path.unlink()
                removed.append(name)
        if orphan.config is not None:
            shutil.move(orphan.config, archive / orphan.config.name)
            fsync_dir(orphan.config.parent)
        for path in archive.iterdir():
            if path.is_file() and not path.is_symlink():
                os.chmod(path, PRIVATE_FILE)
        fsync_dir(archive)
        fsync_dir(layout.images)
        kept = sorted(path.name for path in archive.iterdir())
        lines.append(
            f"retired {orphan.name}: {archive} ({', '.join(kept) or 'empty'})"
            + (f"; removed its {' and '.join(removed)}" if removed else "")
        )
    if orphan.slot:
        Store(layout).forget(pkg_slot(orphan.name))
        lines.append(f"retired pkg:{orphan.name}: its generations go unless another domU uses them")
    return lines


def retire_here(layout: Layout, names: Collection[str], running: Collection[str]) -> list[str]:
    """Retire those of `names` that have outputs below `layout`, but not one of `running`."""
    lines = []
    when = stamp()
    for orphan in find(layout, ()):
        if orphan.name not in names:
            continue
        if orphan.name in running:
            lines.append(f"{orphan.name} runs: not retired until it is shut down")
            continue
        lines.extend(retire(layout, orphan, when))
    return lines


def main(argv: list[str]) -> int:
    """`python -m tasks.orphans OUTPUT NAME...`, run by a deploy on a dom0 left without
    domUs, where no site can say which it has (a site has at least one)."""
    from tasks.run.locks import hold_run_lock
    from tasks.xl import running_domains

    output, *names = argv
    layout = Layout(Path(output), Path(output) / "locks")
    hold_run_lock(layout.locks)
    running = {domain.name for domain in running_domains()}
    for line in retire_here(layout, names, running):
        print(line)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
