"""xl itself reads every xl config the example site gives: the domain it would create must
be the one domus meant, disk by disk and vif by vif (tests/xl.py)."""

from __future__ import annotations

import pytest

from tasks.site import load_site
from tasks.site.netbsd import DEFAULT_BRIDGE
from tests.sites import Site
from tests.xl import XlRejected

NAMES = ["www1", "www2", "db1"]
TWO_VIFS = ["bridge=xenbr0", "bridge=xenbr1,mac=00:16:3e:00:00:02"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    """The example site, with www1's local.img opened by the dom0 (a `script=` disk) and
    www2 on two networks."""
    site = Site(tmp_path_factory.mktemp("xl"))
    site.data["domains"]["www1"]["local"] = {"encrypt": "dom0"}
    site.data["domains"]["www2"]["vif"] = TWO_VIFS
    site.save()
    site.build()
    return site


def expected_disks(site: Site, name: str) -> list[dict]:
    images = site.output / "images"
    local = {
        "pdev_path": str(images / name / "local.img"),
        "vdev": "xvdc",
        "format": "raw",
        "readwrite": 1,
    }
    if name == "www1":
        params = site.directory / "keys" / "www1-local.params"
        local["pdev_path"] += f",{params}"
        local["script"] = str(site.output / "xen" / "block-domus-cgd")
    # xl leaves out what is at its default: readwrite 0 is access=ro
    return [
        {"pdev_path": str(images / "root.img"), "vdev": "xvda", "format": "raw"},
        {
            "pdev_path": str(images / name / "swap.img"),
            "vdev": "xvdb",
            "format": "raw",
            "readwrite": 1,
        },
        local,
        {"pdev_path": str(images / name / "pkg.img"), "vdev": "xvdd", "format": "raw"},
    ]


def test_every_domain_has_one_config(site):
    assert sorted(p.stem for p in (site.output / "xen").glob("*.cfg")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_xl_reads_the_domain_domus_meant(site, xl, name):
    domain = xl.parse(site.output / "xen" / f"{name}.cfg")
    assert domain["c_info"]["type"] == "pv"
    assert domain["c_info"]["name"] == name
    build = domain["b_info"]
    assert build["kernel"] == str(site.output / "images" / "netbsd-XEN3_DOMU")
    # NetBSD's xen_bootconf takes the root device from root= on the kernel command line
    assert build["cmdline"] == "root=xbd0a"
    memory, vcpus = (512, 2) if name == "db1" else (256, 1)
    assert build["max_memkb"] == build["target_memkb"] == memory * 1024
    assert build["max_vcpus"] == vcpus
    assert build["avail_vcpus"] == list(range(vcpus))
    assert domain["disks"] == expected_disks(site, name)
    assert domain["on_reboot"] == "restart"
    assert domain["on_crash"] == "restart"
    assert "on_poweroff" not in domain  # destroy, xl's default


def test_xl_reads_every_vif(site, xl):
    assert xl.parse(site.output / "xen" / "www2.cfg")["nics"] == [
        {"devid": 0, "bridge": "xenbr0"},
        {"devid": 1, "mac": "00:16:3e:00:00:02", "bridge": "xenbr1"},
    ]
    # db1 keeps the default vif: the dom0's default bridge
    (db1,) = (domu for domu in load_site(site.path).domus if domu.name == "db1")
    bridges = [vif.removeprefix("bridge=") for vif in db1.vif]
    assert bridges == [DEFAULT_BRIDGE[load_site(site.path).dom0]]
    assert xl.parse(site.output / "xen" / "db1.cfg")["nics"] == [
        {"devid": n, "bridge": bridge} for n, bridge in enumerate(bridges)
    ]


def test_xl_is_a_judge_that_can_say_no(xl, tmp_path):
    config = tmp_path / "bad.cfg"
    config.write_text('name = "a"\nkernel = "/k"\ndisk = [ \'vdev=xvda, acces=ro, target=/x\' ]\n')
    with pytest.raises(XlRejected, match="unknown parameter"):
        xl.parse(config)


def test_xl_reads_paths_with_quotes_and_backslashes(tmp_path_factory, xl):
    # an operator's directory name may hold what xl's quoted strings treat specially
    site = Site(tmp_path_factory.mktemp("xl") / 'bob\'s "xen" \\ sites')
    site.data["domains"]["www1"]["local"] = {"encrypt": "dom0"}
    site.save()
    site.build()
    for name in NAMES:
        domain = xl.parse(site.output / "xen" / f"{name}.cfg")
        assert domain["b_info"]["kernel"] == str(site.output / "images" / "netbsd-XEN3_DOMU")
        assert domain["disks"] == expected_disks(site, name)
