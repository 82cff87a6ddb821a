"""What a killed run left half-written beside the images, removed by the next run.

A run writes every image, config and record beside its final name (.NAME.partial, and
.NAME.*.part inside that) and renames it into place; plaintext lives in private
directories (tasks/images/plaintext.py). A SIGKILL leaves those behind: removed here by
every run that takes the run lock, before it writes anything; the generations' own
leftovers by their store. A build that fails undoes what it made itself (undone_on_failure).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tasks.site import Layout

PREFIX = ".plaintext."  # a private directory of plaintext (tasks/images/plaintext.py)
LEGACY_CHECK = ".domus-check-"  # a check's plain copy before it used PREFIX

# the plain files of domus versions that kept plaintext beside the image
_SUFFIXES = (".partial", ".part", ".plain", ".partial.spec")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_dirs(images: Path) -> list[Path]:
    """The private directories under `images` whose process is gone: beside a domU's
    images, root.img or a generation's image (`./domus show` of an ext2fs one); and those
    of older checks (.domus-check-*, named after no process), which only a kill left, as
    no check makes them any more."""
    found = sorted(images.glob(f"{LEGACY_CHECK}*"))
    for pattern in (f"{PREFIX}*", f"*/{PREFIX}*", f"generations/*/*/{PREFIX}*"):
        for path in sorted(images.glob(pattern)):
            pid = path.name[len(PREFIX) :]
            if pid.isdigit() and not _alive(int(pid)):
                found.append(path)
    return found


def remove_dead(images: Path) -> list[Path]:
    """Remove the plaintext a killed process left; safe without the run lock, as only
    directories of processes that no longer exist are touched."""
    gone = dead_dirs(images)
    for path in gone:
        shutil.rmtree(path, ignore_errors=True)
    return gone


def half_written(images: Path) -> list[Path]:
    found = []
    for directory in [images, *sorted(p for p in images.glob("*") if p.is_dir())]:
        for path in sorted(directory.glob(".*")):
            if path.name.endswith(_SUFFIXES) and not path.is_symlink():
                found.append(path)
    return found


def remove_plaintext_left(layout: Layout) -> None:
    """Any command, lock or not: the plaintext of processes that are gone."""
    for path in remove_dead(layout.images):
        print(f"domus: removed {path}, plaintext a killed run left", file=sys.stderr)


def remove_half_written(layout: Layout, *, generations: bool = True) -> None:
    """Only under the run lock: no other run is writing any of these. `generations`:
    the generations' too (nightly removes those itself, for its report)."""
    remove_plaintext_left(layout)
    for path in half_written(layout.images):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        print(f"domus: removed {path}, half written by a killed run", file=sys.stderr)
    pools = layout.images / "generations"
    left = [*pools.glob("*/.*.partial"), *pools.glob("*/.*.removing")]
    # the store brings in image code a build that does nothing never loads: only when needed
    if not (generations and left):
        return
    from tasks.generations.store import Store

    for path in Store(layout).remove_leftovers():
        print(f"domus: removed {path}, half written by a killed run", file=sys.stderr)


@contextmanager
def undone_on_failure(work: Path, shared: Sequence[Path], top: Path) -> Iterator[None]:
    """On an error, remove `work` (the build's own working directory) and those of the
    `shared` directories and their parents below `top` that the block made and that are
    still empty. One another build has put something in stays, and a file this one wrote
    there stays too: other builds may be using it (the package cache)."""
    made: list[Path] = []
    for directory in shared:
        while directory != top and top in directory.parents and not directory.exists():
            made.append(directory)
            directory = directory.parent
    try:
        yield
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for directory in sorted(set(made), key=lambda path: len(path.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty, or gone
                directory.rmdir()
        raise
