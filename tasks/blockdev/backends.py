"""The block-device backends there are, and the one this system or a site's
`blockdev.backend` calls for: vnd(4) on NetBSD, loop on Linux (the interface: backend.py)."""

from __future__ import annotations

import sys

from tasks.blockdev.backend import Backend
from tasks.blockdev.loop import Loop
from tasks.blockdev.vnd import Vnd
from tasks.run.errors import DomusError


def platform_backend_name() -> str | None:
    if sys.platform.startswith("netbsd"):
        return "vnd"
    if sys.platform.startswith("linux"):
        return "loop"
    return None


def backend_named(name: str) -> Backend:
    if name == "vnd":
        return Vnd()
    if name == "loop":
        return Loop()
    raise DomusError(f"no block-device backend named {name!r}")


def configured_backend(setting: str) -> Backend | None:
    """The backend `blockdev.backend` names; None for `none`, or `auto` on another system."""
    if setting == "none":
        return None
    name = platform_backend_name() if setting == "auto" else setting
    return backend_named(name) if name else None
