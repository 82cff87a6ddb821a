"""What only root reads on the dom0: a domU's own images and every copy of them.

A domU's local.img is its state (its passwords, ssh host keys, mail) and its swap.img what
it paged out; a reprovision's dated backup, a rewriting converge's kept image and a moved
domU's copy are the same bytes. Each is created 0600 (tasks/images/publish.py) in its
domU's directory, itself 0700, whatever the umask. Images made before that are tightened
by the next build, converge or nightly run (a stat per image and per directory, nothing
read); a no-op build (tasks/run/noop.py) stats each domU's directory. root.img and the pkg.img
generations are shared and hold nothing of one domU: they stay world-readable.

Plaintext taken out of an image lives in a private directory of its own
(tasks/images/plaintext.py); mount points are under a 0700 directory (tasks/blockdev).

This module imports only the standard library: a no-op build runs it.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
# the directories of images/ that are not a domU's (theirs is images/NAME): shared, and
# world-readable; no domain may take one of these names (tasks/site/checks.py)
SHARED = ("generations",)


def private_directory(path: Path) -> Path:
    """`path`, a directory only its owner enters: made 0700 whatever the umask, or an
    existing one tightened to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        tighten(path, PRIVATE_DIR)
    else:
        os.chmod(path, PRIVATE_DIR)  # a umask may have taken more than group and other
    return path


def make_private_directories(paths: list[Path]) -> None:
    """Those of `paths` that do not exist yet made 0700, before anything is put in them;
    existing ones are left to make_images_private."""
    for path in paths:
        try:
            os.mkdir(path, PRIVATE_DIR)
        except FileExistsError:
            continue
        except FileNotFoundError:  # the first build: no images directory yet
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(path, PRIVATE_DIR)
        os.chmod(path, PRIVATE_DIR)


def tighten(path: Path | str, mode: int) -> bool:
    """Take from `path` every permission `mode` does not give (never add one); whether it
    had any. A symlink is left alone: what it leads to is tightened where it lives."""
    st = os.lstat(path)
    return _tightened(path, st, mode)


def _tightened(path: Path | str, st: os.stat_result, mode: int) -> bool:
    if stat.S_ISLNK(st.st_mode) or not stat.S_IMODE(st.st_mode) & ~mode:
        return False
    os.chmod(path, stat.S_IMODE(st.st_mode) & mode)
    return True


def is_private_image(name: str) -> bool:
    """In a domU's directory: every image but pkg.img, shared (a link to its generation)
    and world-readable: local.img, swap.img, local-STAMP.img, local-converge-STAMP.img."""
    return name.endswith(".img") and name != "pkg.img" and not name.startswith(".")


def make_images_private(images: Path, *, every_image: bool = True) -> bool:
    """Every domU directory under `images` (moved-away ones too) 0700 and every image in it
    0600, each said on stderr; whether any was not. Unless `every_image`, only the images
    of a directory that was not private are looked at: a stat per domU (a no-op build,
    whose record notices an image of its own whose mode changed)."""
    changed = False
    try:
        tops = list(os.scandir(images))
    except OSError:
        return False  # nothing built yet
    for top in tops:
        if top.name.startswith(".") or top.name in SHARED or not top.is_dir(follow_symlinks=False):
            continue
        if _tightened(top.path, top.stat(follow_symlinks=False), PRIVATE_DIR):
            _said(top.path, PRIVATE_DIR)
            changed = True
        elif not every_image:
            continue  # none but root reaches them
        for entry in os.scandir(top.path):
            if not is_private_image(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            if _tightened(entry.path, entry.stat(follow_symlinks=False), PRIVATE_FILE):
                _said(entry.path, PRIVATE_FILE)
                changed = True
    return changed


def _said(path: str, mode: int) -> None:
    print(f"domus: {path} was readable by others: now mode {mode:04o}", file=sys.stderr)
