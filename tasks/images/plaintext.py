"""Where the plaintext of a domU's image lives while domus works on it.

A plaintext copy (the whole file system of a domU's encrypted local.img) and every file
domus takes out of an image (debugfs's dumps, a check's copy) is only ever written inside
a private directory beside its image, `.plaintext.PID` (mode 0700, named after the
process that made it), with a umask of 077 so every file in it is 0600 from its creation;
never in the system's temporary directory. The process removes the directory on every
exit path it lives through. A SIGKILL skips all of that, so every command first removes
the directories of processes that are gone (tasks/run/leftovers.py), before it does anything
else.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.images.private import PRIVATE_DIR
from tasks.run.leftovers import PREFIX

PRIVATE_UMASK = 0o077


_held: set[Path] = set()  # the private directories this process has open


@contextmanager
def private_dir(image: Path) -> Iterator[Path]:
    """A directory only this user can enter, beside `image`, removed afterwards; inside it
    when this process already has that one open."""
    path = image.parent / f"{PREFIX}{os.getpid()}"
    if path in _held:
        with tempfile.TemporaryDirectory(dir=path) as inner:  # 0700, as mkdtemp makes it
            yield Path(inner)
        return
    shutil.rmtree(path, ignore_errors=True)  # a process of the same id, long gone
    image.parent.mkdir(parents=True, exist_ok=True)
    os.mkdir(path, PRIVATE_DIR)
    os.chmod(path, PRIVATE_DIR)  # whatever the umask
    old_umask = os.umask(PRIVATE_UMASK)
    _held.add(path)
    try:
        yield path
    finally:
        _held.discard(path)
        os.umask(old_umask)
        shutil.rmtree(path, ignore_errors=True)
