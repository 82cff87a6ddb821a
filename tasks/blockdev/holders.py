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

from tasks.blockdev.backend import Backend
from tasks.blockdev.commands import find, run
from tasks.errors import DomusError

DOM0_CAPABILITIES = (Path("/proc/xen/capabilities"), Path("/kern/xen/capabilities"))


def running_domains(xl_list: str) -> set[str]:
    """Names in `xl list` output: a header line, then one domain a line, name first."""
    lines = xl_list.splitlines()[1:]
    return {line.split()[0] for line in lines if line.strip()}


def is_dom0() -> bool:
    """Whether this is a Xen dom0; one we may not ask counts as one (the careful answer)."""
    for path in DOM0_CAPABILITIES:
        try:
            if "control_d" in path.read_text():
                return True
        except PermissionError:
            return True
        except OSError:
            continue
    return False


def domain_running(name: str) -> bool | None:
    """Whether xl lists the domain; None where xl is not installed or this is no dom0."""
    if find("xl") is None or not is_dom0():
        return None
    done = run(["xl", "list"], "asking xl which domains run", check=False)
    if done.returncode != 0:
        raise DomusError(
            f"cannot tell whether {name} is running: `xl list` failed: "
            + (done.stderr.strip() or f"exit {done.returncode}"),
            hint="run domus as root on the dom0, where `xl list` works",
        )
    return name in running_domains(done.stdout)


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
