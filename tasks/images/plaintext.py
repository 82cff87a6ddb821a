"""Where the plaintext of an encrypted image lives while domus works on it.

A plaintext copy (the whole file system of a domU's encrypted local.img) is only ever
written inside a private directory beside its image, `.plaintext.PID` (mode 0700, named
after the process that made it), with a umask of 077 so every file in it is 0600 from its
creation; the process removes the directory on every exit path it lives through. A
SIGKILL skips all of that, so every command first removes the directories of processes
that are gone (tasks/leftovers.py), before it does anything else.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.leftovers import PREFIX

PRIVATE_UMASK = 0o077


@contextmanager
def private_dir(image: Path) -> Iterator[Path]:
    """A directory only this user can enter, beside `image`, removed afterwards."""
    path = image.parent / f"{PREFIX}{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    image.parent.mkdir(parents=True, exist_ok=True)
    os.mkdir(path, 0o700)
    old_umask = os.umask(PRIVATE_UMASK)
    try:
        yield path
    finally:
        os.umask(old_umask)
        shutil.rmtree(path, ignore_errors=True)
