"""What the dom0 must have before the domUs boot: vnd and cgd nodes, and their bridges.

On a NetBSD dom0 every file-backed disk of a running domU sits on a vnd(4) unit that xl's
block script configures (root, swap, local and pkg: 4 a domU), domus's own pool takes
`blockdev.units` more, and each local.img the dom0 opens (`local.encrypt: dom0`) a cgd(4)
unit. A unit can only be configured through its node in /dev, and MAKEDEV makes vnd0 to
vnd3 and cgd0 to cgd3. The vif-bridge script adds each vif to the bridge its spec names
and fails `xl create` when there is none.

The counting is pure (`netbsd_findings`, `linux_findings`: what exists is passed in); only
`check_dom0` looks at the system, and only where this host is the dom0: the live checks of
a NetBSD dom0 run on NetBSD, those of a Linux dom0 on Linux, and neither on a build host that
runs no Xen hypervisor (its bridges and nodes say nothing of the dom0's).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from tasks.checks import Finding
from tasks.kinds.xen import attached
from tasks.site import Layout, Site
from tasks.tools import find, run
from tasks.xl import no_hypervisor_here

SUBJECT = "dom0"
# xl's bridge for a vif spec that names none (vif.default.bridge in xl.conf)
XL_DEFAULT_BRIDGE = "xenbr0"
DEV = Path("/dev")
SYS_CLASS_NET = Path("/sys/class/net")
NETBSD_BRIDGE = re.compile(r"bridge\d+")


def check_dom0(site: Site, layout: Layout) -> list[Finding]:
    """The findings about the dom0 of `site`; the live ones only on the dom0's system."""
    findings = encryption_findings(site)
    if no_hypervisor_here():
        return findings
    if site.dom0 == "netbsd" and sys.platform.startswith("netbsd"):
        interfaces, failure = _netbsd_interfaces()
        findings += netbsd_findings(site, os.listdir(DEV), interfaces)
        findings += [failure] if failure else []
    elif site.dom0 == "linux" and sys.platform.startswith("linux"):
        findings += linux_findings(site, _linux_bridges())
    return findings


# --- pure: what is needed against what exists ----------------------------------------


def netbsd_findings(
    site: Site, dev_names: Iterable[str], interfaces: Iterable[str] | None
) -> list[Finding]:
    """vnd and cgd nodes among `dev_names` (the names in /dev), and the bridges among
    `interfaces` (`ifconfig -l`; None: not known, not checked)."""
    names = set(dev_names)
    pool = site.blockdev.units if site.blockdev.backend in ("auto", "vnd") else 0
    domus = len(site.domus)
    encrypted = len(site.dom0_cgd_domus)
    # each disk of a domU (root.img, swap.img, ...) is a file, on a vnd of its own
    disks = [kind.NAME for kind in attached()]
    findings = [
        _units_finding(
            "vnd",
            names,
            len(disks) * domus + pool,
            pool,
            f"{len(disks)} file-backed disks ({', '.join(disks)}) for each of {domus} "
            f"domU{_s(domus)}, and blockdev.units {pool}",
        )
    ]
    if encrypted:
        findings.append(
            _units_finding(
                "cgd",
                names,
                encrypted + pool,
                pool,
                f"{encrypted} local image{_s(encrypted)} with local.encrypt: dom0 and "
                f"blockdev.units {pool} (to converge them)",
            )
        )
    if interfaces is not None:
        bridges = {name for name in interfaces if NETBSD_BRIDGE.fullmatch(name)}
        findings += _bridge_findings(site, bridges, _netbsd_fix)
    return findings


def linux_findings(site: Site, bridges: Iterable[str]) -> list[Finding]:
    """The bridges the vifs name, among the bridges that exist: nothing else of a Linux dom0
    is counted (no vnd: Linux's block script uses loop devices, made on demand)."""
    return _bridge_findings(site, set(bridges), _linux_fix)


def encryption_findings(site: Site) -> list[Finding]:
    """block-domus-cgd is a NetBSD hotplug script (vnconfig, cgdconfig, and the `script
    BACKEND_PATH STATE` call of libxl_netbsd.c; Linux's libxl calls `script add|remove`)."""
    names = [domu.name for domu in site.dom0_cgd_domus]
    if site.dom0 == "netbsd" or not names:
        return []
    return [
        Finding(
            SUBJECT,
            "local.encrypt: dom0 needs a NetBSD dom0",
            f"{_list(names)} {'has' if len(names) == 1 else 'have'} local.encrypt: dom0, but "
            "a Linux dom0 cannot open cgd(4) images; set local.encrypt: domu, or dom0: netbsd "
            "if the domUs run on a NetBSD dom0",
        )
    ]


def node_units(names: Iterable[str], kind: str) -> set[int]:
    """The units of `kind` with a node: vndNd, the whole-disk partition on amd64 (the dom0's
    architecture), which xl's block scripts look for."""
    pattern = re.compile(rf"{kind}(\d+)d")
    return {int(match[1]) for name in names if (match := pattern.fullmatch(name))}


def units_to_make(have: set[int], needed: int, fixed: int) -> list[int]:
    """The units to make so that `needed` have nodes, units 0 to `fixed`-1 among them (the
    pool's units are numbered; the block scripts take any)."""
    make = [unit for unit in range(fixed) if unit not in have]
    unit = 0
    while len(have) + len(make) < needed:
        if unit not in have and unit not in make:
            make.append(unit)
        unit += 1
    return sorted(make)


def vif_bridges(site: Site) -> dict[str, list[str]]:
    """Bridge -> the domUs whose vifs join it through vif-bridge (xl's default script)."""
    bridges: dict[str, list[str]] = {}
    for domu in site.domus:
        for spec in domu.vif:
            pairs = (item.partition("=") for item in spec.split(","))
            settings = {key.strip(): value.strip() for key, _, value in pairs}
            script = settings.get("script", "vif-bridge")
            if os.path.basename(script) != "vif-bridge":
                continue  # vif-route, vif-nat, a script of one's own: no bridge
            users = bridges.setdefault(settings.get("bridge") or XL_DEFAULT_BRIDGE, [])
            if domu.name not in users:
                users.append(domu.name)
    return bridges


def _units_finding(kind: str, names: set[str], needed: int, pool: int, why: str) -> Finding:
    have = node_units(names, kind)
    make = units_to_make(have, needed, pool)
    check = f"{kind}(4) nodes: {needed} needed ({why})"
    if not make:
        return Finding(SUBJECT, check)
    targets = " ".join(f"{kind}{unit}" for unit in make)
    return Finding(
        SUBJECT,
        check,
        f"{len(have)} {kind} unit{_s(len(have))} {'has' if len(have) == 1 else 'have'} a node "
        f"in /dev, {needed} are needed; make the rest: cd /dev && sh MAKEDEV {targets}",
    )


def _bridge_findings(site: Site, existing: set[str], fix: Callable[[str], str]) -> list[Finding]:
    findings = []
    for bridge, users in sorted(vif_bridges(site).items()):
        check = f"bridge {bridge} (vif of {_list(users)})"
        if bridge in existing:
            findings.append(Finding(SUBJECT, check))
        else:
            findings.append(Finding(SUBJECT, check, f"no bridge {bridge}: {fix(bridge)}"))
    return findings


def _netbsd_fix(bridge: str) -> str:
    if not NETBSD_BRIDGE.fullmatch(bridge):
        return (
            "NetBSD's bridges are named bridgeN; set the vif to bridge=bridge0 (the default "
            "with dom0: netbsd) and create that"
        )
    return (
        f"ifconfig {bridge} create up && brconfig {bridge} add UPLINK (such as wm0); to keep "
        f"it across boots: echo 'create' > /etc/ifconfig.{bridge} && "
        f"echo '!brconfig {bridge} add UPLINK up' >> /etc/ifconfig.{bridge}"
    )


def _linux_fix(bridge: str) -> str:
    return (
        f"ip link add {bridge} type bridge && ip link set UPLINK master {bridge} && "
        f"ip link set {bridge} up; to keep it, declare it where the dom0 configures its "
        "network (such as /etc/network/interfaces)"
    )


def _list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _s(count: int) -> str:
    return "" if count == 1 else "s"


# --- gathering: the only part that looks at the system ---------------------------------


def _netbsd_interfaces() -> tuple[list[str] | None, Finding | None]:
    """The interfaces `ifconfig -l` lists, or why they are not known."""
    if find("ifconfig") is None:
        return None, Finding(SUBJECT, "bridges", "cannot list the interfaces: no ifconfig")
    done = run(["ifconfig", "-l"], "listing the interfaces", check=False)
    if done.returncode != 0:
        why = done.stderr.strip() or f"exit {done.returncode}"
        return None, Finding(SUBJECT, "bridges", f"`ifconfig -l` failed: {why}")
    return done.stdout.split(), None


def _linux_bridges() -> list[str]:
    try:
        names = os.listdir(SYS_CLASS_NET)
    except OSError:
        return []
    return [name for name in names if (SYS_CLASS_NET / name / "bridge").is_dir()]
