"""Errors an operator can act on: what went wrong, and how to fix it; and the exit statuses."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # kept off the no-op path's imports
    from collections.abc import Collection, Iterable

# The exit status of every ./domus command (sysexits.h where it has one, 128+N for signal N).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL: cron and wrappers can tell "busy" from "failed"
EXIT_CONFIG = 78  # EX_CONFIG: the site file or the keys are invalid; nothing was done
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_TERMINATED = 143  # SIGTERM


class DomusError(Exception):
    """A failure with a message for the operator and, where one exists, a way forward."""

    status = EXIT_FAILED  # what a command that stops on it exits with

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class SiteError(DomusError):
    """The site file or the keys it names are invalid: nothing can start."""

    status = EXIT_CONFIG


class UsageError(DomusError):
    """The command line asks for something that is not there."""

    status = EXIT_USAGE


def require_known(
    names: Iterable[str], known: Collection[str | None], what: str, where: object, hint: str = ""
) -> None:
    """A UsageError naming each of `names` that is not among the `known` (domains, hosts...)
    of the site file `where`."""
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(sorted(name for name in known if name is not None))
        raise UsageError(
            f"no {what} named {', '.join(unknown)} in {where}",
            hint=hint or f"the {what}s are {listed}",
        )


class LockHeld(DomusError):
    """Another run holds the run lock."""

    status = EXIT_LOCKED


class EditError(DomusError):
    """A text edit of a NetBSD file could not find the anchor it needs."""


def print_error(error: DomusError, stream: TextIO | None = None) -> None:
    """`domus: message`, its hint below it, on stderr: how every command reports an error."""
    stream = stream or sys.stderr
    stream.write(f"domus: {error}\n")
    if error.status == EXIT_CONFIG:
        stream.write("domus: nothing was built or changed.\n")
    stream.flush()
