"""Running the external image tools with errors an operator can read."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from tasks.errors import DomusError

_E2FSPROGS = (
    "install e2fsprogs: Debian `apt-get install e2fsprogs`, NetBSD `pkgin install e2fsprogs`"
)
INSTALL_HINT = {
    "makefs": "install it: Debian `apt-get install makefs`; NetBSD has it in the base system",
    "mke2fs": _E2FSPROGS,
    "debugfs": _E2FSPROGS,
}


def run_tool(argv: Sequence[str], what: str, stdin: str | None = None) -> str:
    tool = argv[0]
    if shutil.which(tool) is None:
        raise DomusError(f"{what}: `{tool}` is not installed", hint=INSTALL_HINT.get(tool))
    # surrogateescape: file names that are not UTF-8 pass through as their own bytes
    done = subprocess.run(
        list(argv), input=stdin, capture_output=True, encoding="utf-8", errors="surrogateescape"
    )
    if done.returncode != 0:
        raise DomusError(
            f"{what}: `{' '.join(argv)}` failed (exit {done.returncode}):\n"
            + (done.stderr.strip() or done.stdout.strip())
        )
    return done.stdout + done.stderr
