"""What xl(1) says runs on this dom0: the running domUs with their disks and start times.

`xl list -l` names each domain's disks (the paths its xl config gives), and `xl uptime`
its start time. Without xl nothing can be running here, and neither where xl is installed
but no Xen hypervisor runs (a build host): xl fails there, and that failure alone is taken
as "nothing runs".
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tasks.run.errors import DomusError
from tasks.tools import find

# `xl uptime`: "%-33s %4d %s" with an uptime of "[N day[s], ]H:MM:SS"
UPTIME = re.compile(r"^(\S+)\s+(\d+)\s+(?:(\d+) days?,\s*)?(\d+):(\d\d):(\d\d)\s*$")


@dataclass(frozen=True)
class Domain:
    name: str
    started: float | None  # seconds since the epoch, None when xl does not say
    disks: tuple[str, ...]  # as the domain's config names them


DOM0_CAPABILITIES = (Path("/proc/xen/capabilities"), Path("/kern/xen/capabilities"))
# Where each dom0 system shows that it runs on Xen: Linux publishes the hypervisor's type
# in sysfs; NetBSD's toolstack talks to it through kernfs's privcmd.
HYPERVISOR_TYPE = Path("/sys/hypervisor/type")
PRIVCMD = Path("/kern/xen/privcmd")
# What xl prints where there is no hypervisor: Debian's xl wrapper, which finds no Xen in
# sysfs (or another hypervisor), and xencall, which finds no privcmd device to open.
NO_HYPERVISOR = re.compile(
    r"Can't find hypervisor information in sysfs"
    r"|Hypervisor is not xen"
    r"|Could not obtain handle on privileged command interface: No such file or directory"
)


class NoHypervisor(Exception):
    """xl cannot reach a hypervisor because this system runs on none."""


def no_hypervisor_here() -> bool:
    """True where this system does not run on Xen, so no domU can run here."""
    if sys.platform.startswith("linux"):
        try:
            return HYPERVISOR_TYPE.read_text().strip() != "xen"
        except OSError:
            return True
    if sys.platform.startswith("netbsd"):
        return not PRIVCMD.exists()
    return False


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


def find_xl() -> str | None:
    return find("xl")


def _run(xl: str, *args: str) -> str:
    try:
        done = subprocess.run([xl, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DomusError(f"`xl {' '.join(args)}` failed: {error}") from None
    if done.returncode != 0:
        # both must hold: a build host's xl says so, and the system shows no Xen either;
        # any other failure (permission, xenstored down) still stops the caller
        if NO_HYPERVISOR.search(done.stderr + done.stdout) and no_hypervisor_here():
            raise NoHypervisor(done.stderr.strip())
        raise DomusError(
            f"`xl {' '.join(args)}` failed (exit {done.returncode}): "
            f"{(done.stderr or done.stdout).strip()}",
            hint="run as root on the dom0, where xl can ask the hypervisor",
        )
    return done.stdout


def running_domains() -> list[Domain]:
    """Every running domU with its disks and start time; none without xl."""
    xl = find_xl()
    if xl is None:
        return []
    try:
        listing = json.loads(_run(xl, "list", "-l") or "[]")
    except NoHypervisor:
        return []
    except ValueError as error:
        raise DomusError(
            f"`xl list -l` did not print JSON: {error}",
            hint='set output_format="json" in /etc/xen/xl.conf',
        ) from None
    now = time.time()
    started: dict[str, float] = {}
    for line in _run(xl, "uptime").splitlines():
        match = UPTIME.match(line)
        if match:
            days, hours, minutes, seconds = (int(match[i] or 0) for i in range(3, 7))
            started[match[1]] = now - (((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    domains = []
    for entry in listing:
        config = entry.get("config", {})
        name = config.get("c_info", {}).get("name", "")
        if entry.get("domid") == 0 or not name:
            continue
        disks = tuple(
            disk["pdev_path"] for disk in config.get("disks") or [] if disk.get("pdev_path")
        )
        domains.append(Domain(name, started.get(name), disks))
    return domains
