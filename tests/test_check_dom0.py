"""What a dom0 needs: vnd and cgd nodes counted against the real MAKEDEV's, and bridges."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tasks.checks import Finding
from tasks.checks import dom0 as checks
from tasks.checks.dom0 import (
    check_dom0,
    linux_findings,
    netbsd_findings,
    node_units,
    units_to_make,
    vif_bridges,
)
from tasks.site import Site, load_site
from tests.conftest import SHARED
from tests.sites import example_site

MAKEDEV = SHARED / "netbsd-fixtures" / "dev" / "MAKEDEV"


def makedev(*targets: str) -> set[str]:
    """The names NetBSD's own MAKEDEV makes in /dev for `targets` (its -s specfile)."""
    done = subprocess.run(
        ["sh", str(MAKEDEV), "-s", *targets], capture_output=True, text=True, check=True
    )
    return set(re.findall(r"^\./(\S+) type=", done.stdout, re.M))


@pytest.fixture(scope="module")
def fresh_dev() -> set[str]:
    """/dev of a fresh NetBSD install: `MAKEDEV all`."""
    return makedev("all")


def site_of(tmp_path: Path, dom0: str = "netbsd", domus: int = 3, **domain: object) -> Site:
    data = example_site()
    data["dom0"] = dom0
    data["domains"] = {f"d{i}": dict(domain) for i in range(domus)}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_site(path)


def encrypt(site: Site, count: int) -> Site:
    domus = [
        dataclasses.replace(d, local=dataclasses.replace(d.local, encrypt="dom0"))
        if i < count
        else d
        for i, d in enumerate(site.domus)
    ]
    return dataclasses.replace(site, domus=tuple(domus))


def by_check(findings: list[Finding], start: str) -> Finding:
    (finding,) = [f for f in findings if f.check.startswith(start)]
    return finding


def makedev_targets(problem: str) -> list[str]:
    return problem.split("cd /dev && sh MAKEDEV ")[1].split()


def test_a_fresh_netbsd_has_vnd0_to_3_and_cgd0_to_3(fresh_dev):
    assert node_units(fresh_dev, "vnd") == {0, 1, 2, 3}
    assert node_units(fresh_dev, "cgd") == {0, 1, 2, 3}


def test_three_domus_and_the_pool_need_16_vnds_and_say_how_to_make_them(tmp_path, fresh_dev):
    site = site_of(tmp_path)  # 3 domUs, blockdev.units 4
    finding = by_check(netbsd_findings(site, fresh_dev, ["bridge0"]), "vnd(4)")
    assert finding.check.startswith("vnd(4) nodes: 16 needed")
    assert finding.problem is not None
    assert finding.problem.startswith("4 vnd units have a node in /dev, 16 are needed;")
    targets = makedev_targets(finding.problem)
    assert targets == [f"vnd{unit}" for unit in range(4, 16)]
    # running the fix NetBSD's MAKEDEV way leaves nothing to find
    after = fresh_dev | makedev(*targets)
    assert by_check(netbsd_findings(site, after, ["bridge0"]), "vnd(4)").ok


def test_one_domu_short_is_found(tmp_path, fresh_dev):
    site = site_of(tmp_path, domus=1)  # 4 + 4 = 8
    units = makedev(*(f"vnd{unit}" for unit in range(4, 7)))  # vnd0 to vnd6: 7
    finding = by_check(netbsd_findings(site, fresh_dev | units, []), "vnd(4)")
    assert makedev_targets(finding.problem or "") == ["vnd7"]


def test_the_pools_own_units_must_exist_even_when_there_are_enough_others(tmp_path):
    site = site_of(tmp_path, domus=1)
    names = makedev(*(f"vnd{unit}" for unit in range(4, 20)))  # 16 units, none of vnd0-3
    finding = by_check(netbsd_findings(site, names, []), "vnd(4)")
    assert makedev_targets(finding.problem or "") == ["vnd0", "vnd1", "vnd2", "vnd3"]


def test_without_a_pool_only_the_domus_count(tmp_path, fresh_dev):
    site = site_of(tmp_path)
    site = dataclasses.replace(site, blockdev=dataclasses.replace(site.blockdev, backend="none"))
    finding = by_check(netbsd_findings(site, fresh_dev, []), "vnd(4)")
    assert finding.check.startswith("vnd(4) nodes: 12 needed")
    assert makedev_targets(finding.problem or "")[-1] == "vnd11"


def test_cgd_nodes_for_the_dom0_encrypted_images_and_the_pool(tmp_path, fresh_dev):
    site = site_of(tmp_path)
    assert not [f for f in netbsd_findings(site, fresh_dev, []) if f.check.startswith("cgd")]
    finding = by_check(netbsd_findings(encrypt(site, 2), fresh_dev, []), "cgd(4)")
    assert finding.check.startswith("cgd(4) nodes: 6 needed (2 local images")
    assert makedev_targets(finding.problem or "") == ["cgd4", "cgd5"]
    after = fresh_dev | makedev("cgd4", "cgd5")
    assert by_check(netbsd_findings(encrypt(site, 2), after, []), "cgd(4)").ok


def test_units_to_make_fills_gaps_from_the_lowest():
    assert units_to_make({0, 1, 2, 3}, 6, 4) == [4, 5]
    assert units_to_make({0, 2, 9}, 5, 2) == [1, 3]
    assert units_to_make(set(range(10)), 6, 4) == []


def test_netbsd_bridges_come_from_ifconfig_l(tmp_path, fresh_dev):
    site = site_of(tmp_path)  # the default vif: bridge=bridge0
    missing = by_check(netbsd_findings(site, fresh_dev, ["wm0", "lo0"]), "bridge")
    assert missing.check == "bridge bridge0 (vif of d0, d1 and d2)"
    assert missing.problem is not None
    assert missing.problem.startswith("no bridge bridge0: ifconfig bridge0 create up")
    assert by_check(netbsd_findings(site, fresh_dev, ["wm0", "bridge0"]), "bridge").ok


def test_a_linux_bridge_name_on_a_netbsd_dom0_is_named_as_the_mistake(tmp_path, fresh_dev):
    site = site_of(tmp_path, domus=1, vif=["bridge=xenbr0"])
    finding = by_check(netbsd_findings(site, fresh_dev, ["xenbr0"]), "bridge")
    assert "NetBSD's bridges are named bridgeN" in (finding.problem or "")


def test_vif_bridges_follow_xl_defaults_and_skip_other_scripts(tmp_path):
    site = site_of(
        tmp_path,
        domus=1,
        vif=["mac=00:16:3e:00:00:01", "bridge=bridge1, mac=00:16:3e:00:00:02", "script=vif-route"],
    )
    # no bridge= is xl's default bridge; vif-route joins no bridge
    assert vif_bridges(site) == {"xenbr0": ["d0"], "bridge1": ["d0"]}


def test_linux_dom0_checks_bridges_and_nothing_about_vnd(tmp_path):
    site = site_of(tmp_path, dom0="linux")
    findings = linux_findings(site, ["virbr0"])
    assert [f.check for f in findings] == ["bridge xenbr0 (vif of d0, d1 and d2)"]
    assert "ip link add xenbr0 type bridge" in (findings[0].problem or "")
    assert linux_findings(site, ["xenbr0"]) == [
        Finding("dom0", "bridge xenbr0 (vif of d0, d1 and d2)")
    ]


def test_dom0_encryption_on_a_linux_dom0_is_a_problem_anywhere(tmp_path, monkeypatch):
    monkeypatch.setattr(checks.sys, "platform", "netbsd10")  # a build host: nothing live
    site = encrypt(site_of(tmp_path, dom0="linux"), 1)
    (finding,) = check_dom0(site, site.layout)
    assert finding.check == "local.encrypt: dom0 needs a NetBSD dom0"
    assert finding.problem is not None and finding.problem.startswith("d0 has local.encrypt: dom0")


def test_check_dom0_looks_only_at_the_system_it_runs_on(tmp_path, monkeypatch):
    net = tmp_path / "net"
    (net / "xenbr0" / "bridge").mkdir(parents=True)
    (net / "eth0").mkdir()
    monkeypatch.setattr(checks.sys, "platform", "linux")
    monkeypatch.setattr(checks, "SYS_CLASS_NET", net)
    monkeypatch.setattr(checks, "no_hypervisor_here", lambda: False)
    linux = site_of(tmp_path, dom0="linux")
    assert check_dom0(linux, linux.layout) == [
        Finding("dom0", "bridge xenbr0 (vif of d0, d1 and d2)")
    ]
    # a NetBSD dom0's nodes and interfaces cannot be seen from a Linux build host
    netbsd = site_of(tmp_path, dom0="netbsd")
    assert check_dom0(netbsd, netbsd.layout) == []


def test_a_build_host_without_xen_checks_nothing_live(tmp_path, monkeypatch):
    # no bridge and no node here says nothing of the dom0 the images are built for
    monkeypatch.setattr(checks.sys, "platform", "linux")
    monkeypatch.setattr(checks, "SYS_CLASS_NET", tmp_path / "no-net")
    monkeypatch.setattr(checks, "no_hypervisor_here", lambda: True)
    linux = site_of(tmp_path, dom0="linux")
    assert check_dom0(linux, linux.layout) == []
    monkeypatch.setattr(checks, "no_hypervisor_here", lambda: False)
    assert [f.ok for f in check_dom0(linux, linux.layout)] == [False]


def test_on_netbsd_check_dom0_reads_dev_and_ifconfig_l(tmp_path, monkeypatch):
    dev, bin_dir = tmp_path / "dev", tmp_path / "bin"
    dev.mkdir()
    bin_dir.mkdir()
    for name in makedev(*(f"vnd{unit}" for unit in range(15))):  # one short of 16
        (dev / name).touch()
    (bin_dir / "ifconfig").write_text('#!/bin/sh\n[ "$1" = -l ] && echo "wm0 lo0 bridge0"\n')
    (bin_dir / "ifconfig").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setattr(checks.sys, "platform", "netbsd10")
    monkeypatch.setattr(checks, "DEV", dev)
    monkeypatch.setattr(checks, "no_hypervisor_here", lambda: False)
    site = site_of(tmp_path)
    findings = check_dom0(site, site.layout)
    assert [(f.check.split(":")[0], f.ok) for f in findings] == [
        ("vnd(4) nodes", False),
        ("bridge bridge0 (vif of d0, d1 and d2)", True),
    ]
    assert makedev_targets(findings[0].problem or "") == ["vnd15"]
