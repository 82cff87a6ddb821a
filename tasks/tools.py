"""Running the system's external tools by name, with errors an operator can read.

Tools are looked up on PATH, then in the sbin directories where the systems keep them
(base system, pkgsrc, local), so that a test can put recording stand-ins first on PATH.
As NetBSD's mkimage takes `MAKEFS=${TOOL_MAKEFS:-makefs}`, the environment variable
TOOL_<NAME> (TOOL_MAKEFS, TOOL_FSCK_FFS, ...) names another program for a tool: build.sh's
`nbmakefs` from a NetBSD tools directory, say.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence

from tasks.run.errors import DomusError
from tasks.run.progress import on_terminal

SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/pkg/sbin", "/usr/local/sbin")

_E2FSPROGS = (
    "install e2fsprogs: Debian `apt-get install e2fsprogs`, NetBSD `pkgin install e2fsprogs`"
)
_SLEUTHKIT = (
    "install The Sleuth Kit: Debian `apt-get install sleuthkit`, NetBSD `pkgin install sleuthkit`"
)
INSTALL_HINT = {
    "makefs": "install it: Debian `apt-get install makefs`; NetBSD has it in the base system",
    "mke2fs": _E2FSPROGS,
    "debugfs": _E2FSPROGS,
    "e2fsck": _E2FSPROGS,
    "fls": _SLEUTHKIT,
    "icat": _SLEUTHKIT,
}


def search_path() -> str:
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join([*parts, *(d for d in SBIN_DIRS if d not in parts)])


def override(tool: str) -> str:
    """The environment variable that names another program for `tool`."""
    return "TOOL_" + "".join(c if c.isalnum() else "_" for c in tool).upper()


def find(tool: str) -> str | None:
    return shutil.which(os.environ.get(override(tool)) or tool, path=search_path())


def require(tool: str, what: str) -> str:
    """The path of `tool`, or a DomusError saying how to install it."""
    path = find(tool)
    variable = override(tool)
    if path is None and os.environ.get(variable):
        raise DomusError(
            f"{what}: {variable}={os.environ[variable]} names no program to run",
            hint=f"set {variable} to an executable's path, or unset it to use `{tool}`",
        )
    if path is None:
        raise DomusError(f"{what}: `{tool}` is not installed", hint=INSTALL_HINT.get(tool))
    return path


def run(
    argv: Sequence[str],
    what: str,
    *,
    check: bool = True,
    input: str | None = None,
    # file names that are not UTF-8 pass through as their own bytes, in and out
    errors: str = "surrogateescape",
    reads: int | None = None,
    timeout: float | None = None,
    guest: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a tool; with `check`, a failure is a DomusError quoting the command and its stderr.

    `input` is written to its stdin; without it, stdin is /dev/null, so no tool waits on the
    operator's terminal. `reads`: the bytes the tool reads to do its work (the files of a
    tree makefs copies), for a progress line on a terminal while it runs. `timeout`:
    seconds it may run (a tool reading a guest's disk may be led into a loop), then it is
    killed and that is the DomusError. `guest`: the tool reads a guest's disk, so it runs
    within GUEST_TOOL_SECONDS and GUEST_TOOL_MEMORY (tasks/images/guest_limits.py).
    """
    from tasks.images.guest_limits import GUEST_TOOL_MEMORY, GUEST_TOOL_SECONDS, limit_memory
    from tasks.site.sizes import format_size

    path = require(argv[0], what)
    limit = limit_memory if guest else None
    if guest and timeout is None:
        timeout = GUEST_TOOL_SECONDS
    try:
        if reads is None or not on_terminal(sys.stderr):
            done = subprocess.run(
                [path, *argv[1:]],
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                encoding="utf-8",
                errors=errors,
                timeout=timeout,
                preexec_fn=limit,
            )
        else:
            label = f"{what}: {argv[0]}"
            done = _run_watched([path, *argv[1:]], label, input, errors, reads, timeout, limit)
    except subprocess.TimeoutExpired:
        raise DomusError(
            f"{what}: `{argv[0]}` did not finish in {timeout:g} s and was stopped",
            hint="an image whose structures lead a reader in circles (a guest's own disk "
            "can be crafted so) is refused this way; `./domus check` says more",
        ) from None
    if guest and done.returncode < 0:
        raise DomusError(
            f"{what}: `{argv[0]}` was killed by signal {-done.returncode} reading the image",
            hint=f"a tool reading a guest's disk runs within {format_size(GUEST_TOOL_MEMORY)} "
            f"of memory and {GUEST_TOOL_SECONDS:g} s; an image crafted to exhaust it is "
            "refused this way; `./domus check` says more",
        )
    if check and done.returncode != 0:
        raise DomusError(
            f"{what}: `{' '.join(argv)}` failed (exit {done.returncode}): "
            + (done.stderr.strip() or done.stdout.strip() or "no message")
        )
    return done


def _run_watched(
    argv: list[str],
    label: str,
    input: str | None,
    errors: str,
    reads: int,
    timeout: float | None,
    limit: Callable[[], None] | None,
) -> subprocess.CompletedProcess[str]:
    """subprocess.run, with a progress line of what the tool has read so far."""
    from tasks.run.progress import bytes_read_by, watching

    with subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors=errors,
        preexec_fn=limit,
    ) as process:
        try:
            with watching(label, lambda: bytes_read_by(process.pid), reads):
                stdout, stderr = process.communicate(input, timeout=timeout)
        except BaseException:  # Ctrl-C, SIGTERM: the tool goes too, as with subprocess.run
            process.kill()
            raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def output(argv: Sequence[str], what: str) -> str:
    return run(argv, what).stdout
