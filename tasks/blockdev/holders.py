"""Who else holds an image: a block device it is attached to, its running domU, a process.

An image attached elsewhere (xl's block script attaches a running domU's disks, an
operator may have mounted one) is never touched: writing a mounted file system from
beside it corrupts it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from tasks import xl
from tasks.blockdev.backend import Backend
from tasks.run.errors import DomusError


def domain_running(name: str) -> bool | None:
    """Whether xl lists the domain; None where this is no dom0."""
    if not xl.is_dom0():
        return None
    try:
        return any(domain.name == name for domain in xl.running_domains())
    except DomusError as error:
        raise DomusError(
            f"cannot tell whether {name} is running: {error.message}", hint=error.hint
        ) from None


def processes_with_open(image: Path) -> list[str]:
    """Processes that have the image open (Linux /proc; qemu serves some domUs' disks)."""
    if not sys.platform.startswith("linux"):
        return []
    target = str(image.resolve())
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    found.append(f"pid {pid} ({_command(pid)})")
                    break
            except OSError:
                continue
    return found


def _command(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def check_not_in_use(image: Path, domain: str | None, backends: Iterable[Backend]) -> None:
    """Refuse an image that is attached, opened, or whose domU is running."""
    reasons = []
    seen = set()
    for backend in backends:
        if backend.name in seen:
            continue
        seen.add(backend.name)
        reasons += [f"attached to {device}" for device in backend.holders(image)]
    if domain is not None and domain_running(domain):
        reasons.append(f"its domU {domain} is running (xl list)")
    reasons += [f"open in {process}" for process in processes_with_open(image)]
    if reasons:
        how = f"shut {domain} down (`xl shutdown {domain}`), " if domain else ""
        raise DomusError(
            f"{image} is in use: {'; '.join(reasons)}; domus leaves it alone",
            hint=f"{how}detach or unmount it (`umount`, then `losetup -d` or `vnconfig -u`), "
            "and run again",
        )
