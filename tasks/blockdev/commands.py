"""Running the system's block-device tools (losetup, vnconfig, mount, ...) by name.

Tools are looked up on PATH, then in /sbin and /usr/sbin, where they live on both systems,
so that a test can put recording stand-ins first on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from tasks.errors import DomusError

SYSTEM_DIRS = ("/usr/sbin", "/sbin")


def search_path() -> str:
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join([*parts, *(d for d in SYSTEM_DIRS if d not in parts)])


def find(tool: str) -> str | None:
    return shutil.which(tool, path=search_path())


def run(argv: Sequence[str], what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a tool; with `check`, a failure is a DomusError quoting the command and its stderr."""
    path = find(argv[0])
    if path is None:
        raise DomusError(f"{what}: `{argv[0]}` is not installed or not on PATH")
    done = subprocess.run(
        [path, *argv[1:]], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if check and done.returncode != 0:
        raise DomusError(
            f"{what}: `{' '.join(argv)}` failed (exit {done.returncode}): "
            + (done.stderr.strip() or done.stdout.strip() or "no message")
        )
    return done


def output(argv: Sequence[str], what: str) -> str:
    return run(argv, what).stdout
