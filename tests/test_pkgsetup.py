"""A package's own setup in each domU that uses it: the users, groups, directories, rc.d
scripts and configuration files of its +INSTALL data lines (pkgsrc's mk/pkginstall)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from tasks.converge.plan import FileState, plan
from tasks.edits.accounts import add_groups, add_master_users, add_passwd_users
from tasks.images.tree import Entry, Tree
from tasks.pkgsrc.install import install_packages
from tasks.pkgsrc.setup import Group, User, account_tables, data_lines, package_setup
from tasks.recipes.local import ManagedFile
from tasks.recipes.pkg import setup_pkg
from tasks.recipes.pkgsetup import apply_package_setup, with_package_setup
from tasks.run.errors import DomusError
from tasks.site import PkgSource
from tests.image_reader import ImageReader
from tests.pkgsrc_fixture import make_package
from tests.sites import Site
from tests.test_status import changed, domus, status

WHAT_CHANGES = (("pkg", "new generation"), ("local", "converge"))

# What pkgsrc writes for PKG_GROUPS, PKG_USERS, OWN_DIRS_PERMS, RCD_SCRIPTS and
# CONF_FILES_PERMS (mk/pkginstall/bsd.pkginstall.mk), with the script text around it.
WEB_INSTALL = b"""#!/bin/sh
#
# +INSTALL: the script body does not matter, only its data lines.
echo this is never run
# GROUP: domusweb
# USER: domusweb:domusweb::Domus web server
# DIR: /var/domusweb mo 0750 domusweb domusweb
# DIR: /var/log/domusweb m 0755 domusweb
# DIR: share/domusweb/cache m 0700 domusweb domusweb
# FILE: /etc/rc.d/domusweb cr share/examples/rc.d/domusweb 0755
# FILE: etc/domusweb.conf c share/examples/domusweb/domusweb.conf 0640 root domusweb
# FILE: share/domusweb/default.conf cf share/examples/domusweb/domusweb.conf 0600 domusweb
"""
RC_SCRIPT = b"#!/bin/sh\n# PROVIDE: domusweb\n. /etc/rc.subr\nname=domusweb\nrun_rc_command $1\n"
CONFIG = b"listen 80\n"


def make_web(path: Path, *, install: bytes = WEB_INSTALL, name: str = "domus-web-1.0") -> Path:
    make_package(
        path,
        name,
        {
            "sbin/domusweb": (b"#!/bin/sh\n", 0o755),
            "share/examples/rc.d/domusweb": RC_SCRIPT,
            "share/examples/domusweb/domusweb.conf": CONFIG,
            "share/domusweb/htdocs/index.html": b"hi\n",
            "etc/domusweb/mime.types": b"text/html html\n",  # installed into PKG_SYSCONFDIR
        },
        meta={"+INSTALL": install},
        owners={"share/domusweb/htdocs/index.html": ("domusweb", "domusweb")},
    )
    return path


# -- reading the data lines -------------------------------------------------------------------


def test_data_lines_are_read_sorted_and_unique_as_the_scripts_read_them():
    text = "# USER: b:g\n# USER: a:g\n#USER: not:this\n  # USER: nor:this\n# USER: a:g\n"
    assert data_lines(text)["USER"] == ["a:g", "b:g"]


def test_users_and_groups_get_the_next_free_ids_from_1000_in_install_order(tmp_path):
    make_package(
        tmp_path / "first-1.0.tgz",
        "first-1.0",
        {"f": b""},
        meta={"+INSTALL": b"# GROUP: zgroup\n# GROUP: agroup:1000\n# USER: first:zgroup\n"},
    )
    make_package(
        tmp_path / "second-1.0.tgz",
        "second-1.0",
        {"g": b""},
        meta={
            "+INSTALL": b"# GROUP: zgroup\n# USER: given:zgroup:5000:Given:/srv:/bin/sh\n"
            b"# USER: postfix:postfix\n# USER: other:agroup\n"
        },
    )
    setup = package_setup([tmp_path / "first-1.0.tgz", tmp_path / "second-1.0.tgz"])

    # `sort -u`: agroup (gid given) before zgroup (next free after 1000)
    assert setup.groups == (Group("agroup", 1000), Group("zgroup", 1001))
    assert setup.users == (
        # useradd's defaults from pkgsrc: "<user> user" when it is the package's own name
        User("first", 1000, 1001, "first user", "/nonexistent", "/sbin/nologin"),
        User("given", 5000, 1001, "Given", "/srv", "/bin/sh"),
        # NetBSD's postfix (12) is kept; another package's user is "<pkgbase> <user> user"
        User("other", 1001, 1000, "second other user", "/nonexistent", "/sbin/nologin"),
    )


def test_a_user_whose_group_no_one_makes_is_refused(tmp_path):
    make_package(
        tmp_path / "lone-1.0.tgz",
        "lone-1.0",
        {"f": b""},
        meta={"+INSTALL": b"# USER: lone:nogrp\n"},
    )
    with pytest.raises(DomusError, match=r"lone-1.0: .*USER: lone:nogrp.*group nogrp"):
        package_setup([tmp_path / "lone-1.0.tgz"])


# -- the account files ------------------------------------------------------------------------

MASTER = (
    "root:*:0:0::0:0:Charlie &:/root:/bin/sh\n"
    "alice:$2b$xyz:1000:100::0:0:Alice:/home/alice:/bin/ksh\n"
)
USERS = (User("domusweb", 1001, 1001, "Domus web server", "/nonexistent", "/sbin/nologin"),)


def test_accounts_are_appended_as_useradd_and_groupadd_write_them_and_only_once():
    master = add_master_users(MASTER, USERS)
    assert master == MASTER + (
        "domusweb:*:1001:1001::0:0:Domus web server:/nonexistent:/sbin/nologin\n"
    )
    assert add_master_users(master, USERS) == master
    passwd = add_passwd_users("root:*:0:0:Charlie &:/root:/bin/sh", USERS)
    assert passwd == (
        "root:*:0:0:Charlie &:/root:/bin/sh\n"
        "domusweb:*:1001:1001:Domus web server:/nonexistent:/sbin/nologin\n"
    )
    group = add_groups("wheel:*:0:root\n", [Group("domusweb", 1001)])
    assert group == "wheel:*:0:root\ndomusweb:*:1001:\n"
    assert add_groups(group, [Group("domusweb", 1001)]) == group


def test_an_account_the_domu_has_is_never_changed_and_a_clash_is_refused():
    same = MASTER + "domusweb:secret:1001:1001:x:0:0:Mine:/home/w:/bin/sh\n"
    assert add_master_users(same, USERS) == same  # the domU's own entry, as it is
    with pytest.raises(
        DomusError, match="user id 1000, which the packages give to domusweb, is alice's"
    ):
        add_master_users(MASTER, [User("domusweb", 1000, 1000, "", "/", "/bin/sh")])
    with pytest.raises(DomusError, match=r"user alice is 1000 here, but .* user id 1005"):
        add_master_users(MASTER, [User("alice", 1005, 100, "", "/", "/bin/sh")])


# -- pkg.img ----------------------------------------------------------------------------------


def test_files_of_a_packages_own_user_are_owned_by_the_id_the_setup_gives(tmp_path):
    web = make_web(tmp_path / "domus-web-1.0.tgz")
    tree = setup_pkg(PkgSource(None, (web,)), tmp_path / "stage", tmp_path / "cache")

    ids = account_tables(package_setup([web]))
    assert ids[0]["domusweb"] == ids[1]["domusweb"] == 1000
    assert tree.entry("share/domusweb/htdocs/index.html") == Entry("file", 0o644, 1000, 1000)
    # DIRs below /usr/pkg are the same for every domU: made in pkg.img
    assert tree.entry("share/domusweb/cache") == Entry("dir", 0o700, 1000, 1000)
    # REQD_FILES below /usr/pkg: the same for every domU, copied once into pkg.img
    assert tree.entry("share/domusweb/default.conf") == Entry("file", 0o600, 1000, 0)
    assert tree.host_path("share/domusweb/default.conf").read_bytes() == CONFIG
    # PKG_SYSCONFDIR leads to each domU's own /etc/pkg, where the package's files go
    assert tree.entry("etc") == Entry("link", 0o755, link="/etc/pkg")
    assert [path for path in tree.entries if path.startswith("etc/")] == []


def test_owner_of_a_user_no_package_makes_is_still_refused(tmp_path):
    web = make_web(tmp_path / "domus-web-1.0.tgz", install=b"# GROUP: domusweb\n")
    with pytest.raises(DomusError, match="@owner domusweb: user 'domusweb' is not one of"):
        install_packages(
            Tree.empty(tmp_path / "stage"),
            [web],
            tmp_path / "c",
            account_tables(package_setup([web])),
        )


# -- local.img's files ------------------------------------------------------------------------


ROOT = "root:*:0:0::0:0:Charlie &:/root:/bin/sh\n"


def local_tree(tmp_path: Path) -> Tree:
    local = Tree.empty(tmp_path / "local")
    for directory in ("etc", "etc/rc.d", "var", "var/log"):
        local.mkdir(directory)
    local.write_text("etc/group", "wheel:*:0:root\n")
    local.write_text("etc/master.passwd", ROOT, mode=0o600)
    local.write_text("etc/passwd", "root:*:0:0:Charlie &:/root:/bin/sh\n")
    return local


def test_a_site_template_wins_over_the_packages_example(tmp_path):
    setup = package_setup([make_web(tmp_path / "domus-web-1.0.tgz")])
    local = local_tree(tmp_path)
    local.write_text("etc/rc.d/domusweb", "# the site's own\n", mode=0o555)  # a template
    apply_package_setup(local, setup)

    assert local.read_text("etc/rc.d/domusweb") == "# the site's own\n"
    assert local.entry("etc/pkg/domusweb.conf") == Entry("file", 0o640, 0, 1000)
    assert local.entry("var/domusweb") == Entry("dir", 0o750, 1000, 1000)
    assert "domusweb:*:1000:1000::0:0:" in local.read_text("etc/master.passwd")
    assert local.entry("etc/master.passwd").mode == 0o600
    # at converge, the template's managed file stands and the account files are edited
    template = ManagedFile("etc/rc.d/domusweb", "# the site's own\n", 0o555)
    texts = {"etc/group": "", "etc/master.passwd": ROOT, "etc/passwd": ""}
    managed = {f.path: f for f in with_package_setup([template], setup, texts)}
    assert managed["etc/rc.d/domusweb"] == template
    assert managed["etc/pkg/domusweb.conf"] == ManagedFile(
        "etc/pkg/domusweb.conf", CONFIG.decode(), 0o640, 0, 1000, once=True
    )
    assert managed["etc/group"].text == "domusweb:*:1000:\n"


def test_a_directory_neither_on_local_img_nor_in_pkg_img_is_logged_not_made(tmp_path, caplog):
    install = WEB_INSTALL + b"# DIR: /home/domusweb m 0700 domusweb\n"
    setup = package_setup([make_web(tmp_path / "domus-web-1.0.tgz", install=install)])
    local = local_tree(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tasks.recipes.pkgsetup"):
        apply_package_setup(local, setup)

    assert "directory /home/domusweb is neither on local.img nor in pkg.img" in caplog.text
    assert "home" not in local
    assert "var/domusweb" in local


def test_a_file_made_once_is_never_planned_again():
    once = ManagedFile("etc/pkg/a.conf", "example\n", 0o644, once=True)
    edited = FileState(b"the domU's\n", 0o600, 5, 5)
    assert plan([once], {"etc/pkg/a.conf": edited}) == []
    (change,) = plan([once], {"etc/pkg/a.conf": None})
    assert change.new == FileState(b"example\n", 0o644, 0, 0)


# -- built and converged images ---------------------------------------------------------------


def debugfs_write(image: Path, path: str, data: bytes, tmp_path: Path) -> None:
    source = tmp_path / "edited"
    source.write_bytes(data)
    for command in (f"rm {path}", f"write {source} {path}"):
        subprocess.run(
            ["debugfs", "-w", "-R", command, str(image)], check=True, capture_output=True
        )


@pytest.fixture
def site(tmp_path) -> Site:
    """The example site with domus-web added to www1 (FFS) and db1 (ext2fs)."""
    site = Site(tmp_path / "site")
    web = make_web(tmp_path / "domus-web-1.0.tgz")
    www1 = site.data["domains"]["www1"]
    www1["pkg"]["source"]["packages"] = [*www1["pkg"]["source"]["packages"], str(web)]
    site.data["domains"]["db1"].setdefault("pkg", {})["source"] = {"packages": [str(web)]}
    site.save()
    run = domus(site, "build")  # as an operator does: status reads what it records
    assert run.returncode == 0, run.stdout + run.stderr
    return site


def check_setup(local: ImageReader, pkg: ImageReader, *, config_made: bool = True) -> None:
    uid = pkg.stat("share/domusweb/htdocs/index.html").uid
    gid = pkg.stat("share/domusweb/htdocs/index.html").gid
    assert (uid, gid) == (1000, 1000)
    assert f"domusweb:*:{uid}:{gid}::0:0:Domus web server:/nonexistent:/sbin/nologin\n" in (
        local.text("etc/master.passwd")
    )
    assert f"domusweb:*:{uid}:{gid}:Domus web server:/nonexistent:/sbin/nologin\n" in local.text(
        "etc/passwd"
    )
    assert f"domusweb:*:{gid}:\n" in local.text("etc/group")
    home = local.stat("var/domusweb")
    assert (home.type, home.mode, home.uid, home.gid) == ("dir", 0o750, uid, gid)
    logs = local.stat("var/log/domusweb")
    assert (logs.type, logs.mode, logs.uid, logs.gid) == ("dir", 0o755, uid, 0)
    rc = local.stat("etc/rc.d/domusweb")
    assert (rc.type, rc.mode, rc.uid, rc.gid) == ("file", 0o755, 0, 0)
    assert local.read("etc/rc.d/domusweb") == RC_SCRIPT
    if config_made:
        conf = local.stat("etc/pkg/domusweb.conf")
        assert (conf.type, conf.mode, conf.uid, conf.gid) == ("file", 0o640, 0, gid)
        assert local.read("etc/pkg/domusweb.conf") == CONFIG
    assert pkg.stat("etc").link == "/etc/pkg"  # /usr/pkg/etc/domusweb.conf is the domU's
    assert local.read("etc/pkg/domusweb/mime.types") == b"text/html html\n"


def test_each_domu_using_the_package_gets_its_setup(site):
    for name, fs in (("www1", "ffs"), ("db1", "ext2fs")):
        local = ImageReader(site.image(name, "local.img"), fs)
        check_setup(local, ImageReader(site.image(name, "pkg.img"), "ffs"))
    www2 = ImageReader(site.image("www2", "local.img"), "ffs")
    assert "domusweb" not in www2.text("etc/master.passwd")
    assert "etc/rc.d/domusweb" not in www2.paths()
    assert site.build().ran == set()


def test_a_converge_adds_a_new_packages_setup_and_keeps_the_domus_edits(site, tmp_path):
    image = site.image("db1", "local.img")
    debugfs_write(image, "/etc/pkg/domusweb.conf", b"listen 8080\n", tmp_path)
    # a second package with a user of its own, and the web server's newer version
    make_package(
        tmp_path / "domus-extra-1.0.tgz",
        "domus-extra-1.0",
        {"share/examples/rc.d/extra": RC_SCRIPT},
        meta={
            "+INSTALL": b"# GROUP: extra\n# USER: extra:extra\n"
            b"# FILE: /etc/rc.d/extra cr share/examples/rc.d/extra 0755\n"
            b"# FILE: etc/domusweb.conf c share/examples/rc.d/extra 0644\n"
        },
    )
    for name in ("db1", "www1"):
        packages = site.data["domains"][name]["pkg"]["source"]["packages"]
        packages.append(str(tmp_path / "domus-extra-1.0.tgz"))
    site.save()
    items = status(site)
    assert changed(items) == {(n, i): a for n in ("db1", "www1") for i, a in WHAT_CHANGES}
    assert (
        'packages.domus-extra-1.0.USER: (unset) -> ["extra:extra"]'
        in (items[("db1", "local")]["why"])
    )
    run = site.doit()
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.ran == {"pkg:db1", "local:db1", "pkg:www1", "local:www1"}
    www1 = ImageReader(site.image("www1", "local.img"), "ffs")  # rewritten through makefs
    assert "extra:*:1001:1001::0:0:" in www1.text("etc/master.passwd")
    assert www1.stat("etc/rc.d/extra").mode == 0o755
    check_setup(www1, ImageReader(site.image("www1", "pkg.img"), "ffs"))
    local = ImageReader(image, "ext2fs")
    assert local.read("etc/pkg/domusweb.conf") == b"listen 8080\n"  # the domU's edit stays
    assert "extra:*:1001:1001::0:0:domus-extra extra user:/nonexistent:/sbin/nologin\n" in (
        local.text("etc/master.passwd")
    )
    assert local.stat("etc/rc.d/extra").mode == 0o755
    check_setup(local, ImageReader(site.image("db1", "pkg.img"), "ffs"), config_made=False)
    assert site.build().ran == set()


SPOOL_INSTALL = b"""# GROUP: spool
# USER: spool:spool
# DIR: /var/spool/domus m 0750 spool spool
# DIR: /var/spool/domus/deep/er m
# DIR: /var/log m 0700
"""


def test_a_converge_makes_a_packages_directories_and_etc_pkg_where_the_image_has_none(tmp_path):
    """An image built before the package (db1: before any package setup, so without the
    /etc/pkg that pkg.img's /usr/pkg/etc leads to) gets its DIR directories at converge."""
    site = Site(tmp_path / "site")
    site.data["blockdev"] = {"backend": "none"}  # as on a dom0 without loop devices: no mount
    site.save()
    assert site.data["domains"]["db1"]["pkg"]["source"] is None
    run = domus(site, "build")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "etc/pkg" not in ImageReader(site.image("db1", "local.img"), "ext2fs").paths()
    make_package(
        tmp_path / "domus-spool-1.0.tgz",
        "domus-spool-1.0",
        {"share/doc/spool/README": b"spool\n"},
        meta={"+INSTALL": SPOOL_INSTALL},
    )
    packages = site.data["domains"]["www1"]["pkg"]["source"]["packages"]
    packages.append(str(tmp_path / "domus-spool-1.0.tgz"))
    site.data["domains"]["db1"]["pkg"] = {
        "source": {"packages": [str(tmp_path / "domus-spool-1.0.tgz")]}
    }
    site.save()
    dry = domus(site, "converge", "--dry-run", "db1", "www1")
    assert dry.returncode == 1, dry.stdout + dry.stderr  # they differ
    assert "# db1:/etc/pkg: new directory, mode 0755, owner 0:0\n" in dry.stdout
    assert "# www1:/var/spool/domus/deep/er: new directory, mode 0755, owner 0:0\n" in dry.stdout
    assert "/var/log:" not in dry.stdout  # the image has it: the domU's
    items = status(site)
    assert items[("db1", "local")]["action"] == "converge"
    assert (
        "would make the directories /etc/pkg, /var/spool/domus, /var/spool/domus/deep/er"
        in (items[("db1", "local")]["why"])
    )
    run = site.doit()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "(debugfs)" in run.stderr and "(rewrite)" in run.stderr
    assert "made the directories /etc/pkg, /var/spool/domus, /var/spool/domus/deep/er" in (
        run.stderr
    )
    for name, fs in (("db1", "ext2fs"), ("www1", "ffs")):
        local = ImageReader(site.image(name, "local.img"), fs)
        spool = next(
            line for line in local.text("etc/master.passwd").splitlines() if line[:6] == "spool:"
        )
        uid, gid = (int(field) for field in spool.split(":")[2:4])
        got = {
            path: (entry.type, entry.mode, entry.uid, entry.gid)
            for path in ("etc/pkg", "var/spool/domus", "var/spool/domus/deep", "var/log")
            for entry in [local.stat(path)]
        }
        assert got["etc/pkg"] == ("dir", 0o755, 0, 0), name
        assert got["var/spool/domus"] == ("dir", 0o750, uid, gid), name
        assert got["var/spool/domus/deep"] == ("dir", 0o755, 0, 0), name
        assert local.stat("var/spool/domus/deep/er").mode == 0o755
        assert got["var/log"][:2] == ("dir", 0o755), name  # left as the image had it
    assert domus(site, "converge", "db1", "www1").returncode == 0
    assert site.build().ran == set()
