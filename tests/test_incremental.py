"""Only what changed is rebuilt: each kind of change, and exactly which tasks ran."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks.recipes.managed_record import RECORD
from tests.conftest import REPO
from tests.image_reader import ImageReader
from tests.netbsd_rules import assert_netbsd_accepts
from tests.pkgsrc_fixture import make_package
from tests.sites import Site

NAMES = ("www1", "www2", "db1")


def every(kind: str) -> set[str]:
    return {f"{kind}:{name}" for name in NAMES}


@pytest.fixture
def site(tmp_path) -> Site:
    site = Site(tmp_path / "site")
    site.build()
    return site


def test_second_run_executes_nothing(site):
    run = site.build()
    assert run.ran == set()
    assert run.up_to_date == 1 + 4 * len(NAMES)


def test_changed_kernel_rebuilds_root_and_xl_configs(site, tmp_path):
    kernel = tmp_path / "netbsd-NEW"
    kernel.write_bytes(b"another kernel\n")
    site.data["root"]["kernel"] = str(kernel)
    site.save()
    assert site.build().ran == {"root"} | every("xen")
    assert site.build().ran == set()


def test_changed_kernel_content_rebuilds_root_and_xl_configs(site, tmp_path):
    kernel = tmp_path / "netbsd-XEN3_DOMU"
    shutil.copy(REPO / "config" / "example" / "netbsd-XEN3_DOMU", kernel)
    site.data["root"]["kernel"] = str(kernel)
    site.save()
    site.build()
    kernel.write_bytes(b"patched kernel\n")
    assert site.build().ran == {"root"} | every("xen")
    assert (site.output / "images" / "netbsd-XEN3_DOMU").read_bytes() == b"patched kernel\n"


def test_root_template_override_rebuilds_root_only(site):
    templates = site.directory / "templates"
    (templates / "root" / "etc").mkdir(parents=True)
    builtin = (REPO / "templates" / "root" / "etc" / "rc.pre-hooks").read_text()
    (templates / "root" / "etc" / "rc.pre-hooks").write_text(builtin + "# site change\n")
    site.data["templates"] = "templates"
    site.save()
    assert site.build().ran == {"root"}
    (templates / "root" / "etc" / "rc.pre-hooks").write_text(builtin + "# second change\n")
    assert site.build().ran == {"root"}


def test_local_template_change_converges_every_local_image_in_place(site):
    templates = site.directory / "templates"
    (templates / "local" / "etc").mkdir(parents=True)
    fstab = (REPO / "templates" / "local" / "etc" / "fstab").read_text()
    (templates / "local" / "etc" / "fstab").write_text(fstab + "# site change\n")
    site.data["templates"] = "templates"
    site.save()
    image = site.image("www1", "local.img")  # FFS: mounted on NetBSD, rewritten elsewhere
    before = ImageReader(image, "ffs")
    kept = {
        p: before.read(p)
        for p in before.paths()
        # the domU's own files; the record of what domus wrote is domus's
        if p.startswith("var/") and before.stat(p).type == "file" and p != RECORD
    }
    assert kept
    run = site.doit()
    assert run.returncode == 0, run.stdout
    assert run.ran == every("local")
    after = ImageReader(image, "ffs")
    assert after.text("etc/fstab").endswith("# site change\n")
    assert [p for p in after.paths() if p.startswith("etc/fstab.domus-")]
    assert {p: after.read(p) for p in kept} == kept  # the domU's own files are its own
    assert_netbsd_accepts(image, "ffs")
    assert site.build().ran == set()


def test_one_domains_entry_rebuilds_that_domain_only(site):
    site.data["domains"]["www2"]["memory"] = "384m"
    site.save()
    assert site.build().ran == {"xen:www2"}
    assert "memory = 384" in (site.output / "xen" / "www2.cfg").read_text()


def test_a_default_rebuilds_every_domain_that_inherits_it(site):
    site.data["defaults"]["vcpus"] = 2
    site.save()
    # db1 sets its own vcpus (2 already) and is left alone.
    assert site.build().ran == {"xen:www1", "xen:www2"}
    assert "vcpus = 2" in (site.output / "xen" / "www1.cfg").read_text()


def test_swap_size_rebuilds_swap_and_converges_the_local_disklabel(site):
    site.data["defaults"]["swap"]["size"] = "32m"
    site.save()
    run = site.doit()
    # db1 sets its own swap size; the others' local images hold the swap disklabel.
    assert run.ran == {"swap:www1", "swap:www2", "local:www1", "local:www2"}
    assert run.returncode == 0, run.stdout
    assert site.image("www1", "swap.img").stat().st_size == 32 << 20
    label = ImageReader(site.image("www1", "local.img"), "ffs").text("etc/cgd/xbd1d.disklabel")
    assert f"total sectors: {(32 << 20) // 512}\n" in label


def test_a_package_rebuilds_the_pkg_images_holding_it(site, tmp_path):
    motd = tmp_path / "domus-motd-1.0.tgz"
    shutil.copy(site.data["defaults"]["pkg"]["source"]["packages"][0], motd)
    site.data["defaults"]["pkg"]["source"]["packages"] = [str(motd)]
    site.save()
    # www2 inherits the default package list; www1 names its own; db1 has none.
    assert site.build().ran == {"pkg:www2"}
    motd.touch()
    assert site.build().ran == set()  # same bytes, newer mtime: nothing to do
    make_package(motd, "domus-motd-1.0", {"bin/domus-motd": b"#!/bin/sh\necho rebuilt\n"})
    assert site.build().ran == {"pkg:www2"}
    assert_netbsd_accepts(site.image("www2", "pkg.img"), "ffs")
    pkg = ImageReader(site.image("www2", "pkg.img"), "ffs")
    assert pkg.text("bin/domus-motd") == "#!/bin/sh\necho rebuilt\n"


def test_a_dependency_found_beside_a_package_rebuilds_the_pkg_image(site, tmp_path):
    repo = tmp_path / "All"
    repo.mkdir()
    example = REPO / "config" / "example" / "packages"
    hello = Path(shutil.copy(example / "domus-hello-1.0.tgz", repo))
    motd = Path(shutil.copy(example / "domus-motd-1.0.tgz", repo))
    site.data["domains"]["www1"]["pkg"]["source"]["packages"] = [str(hello)]  # motd beside
    site.save()
    assert site.build().ran == {"pkg:www1"}
    make_package(motd, "domus-motd-1.0", {"bin/domus-motd": b"#!/bin/sh\necho beside\n"})
    assert site.build().ran == {"pkg:www1"}
    pkg = ImageReader(site.image("www1", "pkg.img"), "ffs")
    assert pkg.text("bin/domus-motd") == "#!/bin/sh\necho beside\n"
    assert pkg.text("pkgdb/domus-motd-1.0/+INSTALLED_INFO") == "automatic=yes\n"


def test_rc_conf_change_of_one_domain_converges_its_local_image_only(site):
    site.data["domains"]["www2"]["rc_conf"]["httpd"] = "NO"
    site.save()
    run = site.doit()
    assert run.returncode == 0, run.stdout
    assert run.ran == {"local:www2"}
    rc_conf = ImageReader(site.image("www2", "local.img"), "ffs").text("etc/rc.conf")
    assert "httpd=NO\n" in rc_conf


def test_reprovision_keeps_a_dated_backup_and_builds_anew(site):
    site.data["domains"]["www2"]["rc_conf"]["httpd"] = "NO"
    site.save()
    old = site.image("www2", "local.img").read_bytes()
    run = site.build("reprovision=www2", "local:www2")
    assert run.ran == {"local:www2"}
    backups = list(site.image("www2").glob("local-*.img"))
    assert len(backups) == 1
    assert backups[0].read_bytes() == old
    assert site.image("www2", "local.img").read_bytes() != old
    assert_netbsd_accepts(site.image("www2", "local.img"), "ffs")
    assert site.build().ran == set()


def test_doit_clean_never_deletes_a_local_image(site):
    site.build("clean")
    assert not site.image("root.img").exists()
    assert not site.image("www1", "pkg.img").exists()
    for name in NAMES:
        assert site.image(name, "local.img").exists()


def test_a_lost_database_does_not_rebuild_local_images(site):
    for db in site.output.glob(".doit.db*"):
        db.unlink()
    before = site.image("db1", "local.img").stat().st_mtime_ns
    run = site.build()
    assert run.ran >= every("local")
    assert site.image("db1", "local.img").stat().st_mtime_ns == before
