"""Installing pkgsrc binary packages into a pkg.img tree (tasks/pkgsrc/)."""

import gzip
import importlib.util
import logging
import os
import re
import shutil
import tarfile
from pathlib import Path

import pytest
from dbopen import dbcreate, dbopen, pkgdb_info
from pkgsrc_fixture import MTIME, Hardlink, Symlink, make_package, write_package

from tasks.images.ffs_reader import FfsImage
from tasks.images.tree import Entry, Tree
from tasks.images.writers import write_image
from tasks.kinds import pkg as pkg_kind
from tasks.kinds.pkg import pkg_record
from tasks.pkgsrc import install as pkgsrc_install
from tasks.pkgsrc import packages as pkgsrc_packages
from tasks.pkgsrc.install import install_packages
from tasks.pkgsrc.packages import dewey_cmp, pkg_match, read_package
from tasks.run.errors import DomusError
from tasks.site import Layout, PkgSource, PkgSpec
from tests.conftest import assert_staged
from tests.test_site import domu

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "config" / "example" / "packages"
MOTD = EXAMPLES / "domus-motd-1.0.tgz"
HELLO = EXAMPLES / "domus-hello-1.0.tgz"


@pytest.fixture
def tree(tmp_path):
    return Tree.empty(tmp_path / "stage")


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def install(tree, cache, *packages):
    return install_packages(tree, list(packages), cache)


def contents(*lines):
    return "".join(line + "\n" for line in lines).encode()


META = {"+COMMENT": b"c\n", "+DESC": b"d\n"}


def directory():
    return Entry("dir", 0o755)  # pkg_add makes directories 0755 root:wheel


def regular(mode):
    return Entry("file", mode)


# -- the example site's packages ------------------------------------------------------------


def test_examples_install_exact_tree(tree, cache):
    assert install(tree, cache, MOTD, HELLO) == ["domus-motd-1.0", "domus-hello-1.0"]

    assert dict(tree.walk()) == {
        ".": directory(),
        "bin": directory(),
        "bin/domus-hello": regular(0o755),
        "bin/domus-motd": regular(0o755),
        "share": directory(),
        "share/doc": directory(),
        "share/doc/domus-motd": directory(),
        "share/doc/domus-motd/motd": Entry("link", 0o755, link="../../domus-motd/motd"),
        "share/domus-motd": directory(),
        "share/domus-motd/motd": regular(0o644),
        "share/domus-motd/motd.d": directory(),  # @pkgdir: kept although empty
        # The package database as pkg_add leaves it (PKG_DBDIR=/usr/pkg/pkgdb, one directory
        # per package, metadata modes from pkg_install's add/perform.c).
        "pkgdb": directory(),
        "pkgdb/domus-motd-1.0": directory(),
        "pkgdb/domus-motd-1.0/+CONTENTS": regular(0o644),
        "pkgdb/domus-motd-1.0/+COMMENT": regular(0o444),
        "pkgdb/domus-motd-1.0/+DESC": regular(0o444),
        "pkgdb/domus-motd-1.0/+BUILD_INFO": regular(0o444),
        "pkgdb/domus-motd-1.0/+SIZE_PKG": regular(0o444),
        "pkgdb/domus-motd-1.0/+REQUIRED_BY": regular(0o644),
        "pkgdb/pkgdb.byfile.db": regular(0o644),  # dbopen(..., 0644) in lib/pkgdb.c
        "pkgdb/domus-hello-1.0": directory(),
        "pkgdb/domus-hello-1.0/+CONTENTS": regular(0o644),
        "pkgdb/domus-hello-1.0/+COMMENT": regular(0o444),
        "pkgdb/domus-hello-1.0/+DESC": regular(0o444),
        "pkgdb/domus-hello-1.0/+BUILD_INFO": regular(0o444),
        "pkgdb/domus-hello-1.0/+SIZE_PKG": regular(0o444),
    }
    assert_staged(tree)
    assert tree.read_text("bin/domus-hello").startswith("#!/bin/sh\n")
    assert "exec /usr/pkg/bin/domus-motd" in tree.read_text("bin/domus-hello")
    assert tree.read_text("share/domus-motd/motd").startswith("This NetBSD domU")
    assert os.readlink(tree.host_path("share/doc/domus-motd/motd")) == "../../domus-motd/motd"
    assert tree.host_path("share/domus-motd/motd.d").is_dir()


def test_examples_pkgdb_holds_metadata_as_in_the_package(tree, cache):
    install(tree, cache, MOTD, HELLO)

    for package in (MOTD, HELLO):
        name = package.name.removesuffix(".tgz")
        for meta, data in read_package(package).meta.items():
            assert tree.host_path(f"pkgdb/{name}/{meta}").read_bytes() == data
    assert tree.read_text("pkgdb/domus-motd-1.0/+COMMENT") == "Message of the day for domus domUs\n"
    assert "@pkgdep domus-motd>=1.0\n" in tree.read_text("pkgdb/domus-hello-1.0/+CONTENTS")
    assert "OPSYS=NetBSD\n" in tree.read_text("pkgdb/domus-hello-1.0/+BUILD_INFO")
    # pkg_add appends the dependent's name to each dependency's +REQUIRED_BY.
    assert tree.read_text("pkgdb/domus-motd-1.0/+REQUIRED_BY") == "domus-hello-1.0\n"
    assert "pkgdb/domus-hello-1.0/+REQUIRED_BY" not in tree


def test_required_by_lists_every_dependent_once(tmp_path, tree, cache):
    third = tmp_path / "domus-extra-2.0nb1.tgz"
    # Two patterns met by the same package register it once, as pkg_add does.
    make_package(
        third,
        "domus-extra-2.0nb1",
        {"bin/x": b"x"},
        depends=["domus-motd>=1.0", "domus-motd-[0-9]*"],
    )
    install(tree, cache, MOTD, HELLO, third)

    assert tree.read_text("pkgdb/domus-motd-1.0/+REQUIRED_BY") == (
        "domus-hello-1.0\ndomus-extra-2.0nb1\n"
    )


def test_files_are_hard_links_into_the_cache_and_the_cache_is_reused(tmp_path, cache, monkeypatch):
    first = Tree.empty(tmp_path / "one")
    install(first, cache, MOTD, HELLO)
    entries = sorted(p.name for p in cache.iterdir())
    opened = []
    real_open = pkgsrc_packages.open_package
    for module in (pkgsrc_packages, pkgsrc_install):  # reading the metadata; extracting
        monkeypatch.setattr(
            module, "open_package", lambda path: opened.append(path) or real_open(path)
        )
    second = Tree.empty(tmp_path / "two")
    install(second, cache, MOTD, HELLO)

    assert opened == [MOTD, HELLO]  # read for the metadata, not extracted again

    assert sorted(p.name for p in cache.iterdir()) == entries  # one entry per package file
    assert len(entries) == 2
    one = first.host_path("bin/domus-motd").stat()
    two = second.host_path("bin/domus-motd").stat()
    assert one.st_ino == two.st_ino
    assert one.st_nlink == 3  # the cache's copy and the two trees'


def test_examples_are_what_make_examples_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make-examples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    written = module.main(tmp_path)

    assert [p.name for p in written] == [MOTD.name, HELLO.name]
    for path in written:
        # Compare the tar streams: gzip's bytes may differ between zlib versions.
        committed = gzip.decompress((EXAMPLES / path.name).read_bytes())
        assert gzip.decompress(path.read_bytes()) == committed


# -- dependencies, conflicts, repeats -------------------------------------------------------


def test_missing_dependency_is_named_with_where_it_was_looked_for(tmp_path, tree, cache):
    hello = Path(shutil.copy(HELLO, tmp_path))  # without domus-motd beside it

    with pytest.raises(DomusError) as error:
        install(tree, cache, hello)

    assert (
        f"domus-hello-1.0 needs domus-motd>=1.0: no package installed before it, none of "
        f"the site's packages and no .tgz or .tbz file in {tmp_path} provides that"
        in str(error.value)
    )
    assert "pkgdb" not in tree  # nothing of the package was installed


def test_dependency_too_old_is_missing(tmp_path, tree, cache):
    old = tmp_path / "domus-motd-0.9nb2.tgz"
    make_package(old, "domus-motd-0.9nb2", {"share/domus-motd/motd": b"old\n"})
    hello = Path(shutil.copy(HELLO, tmp_path))

    with pytest.raises(DomusError, match=r"domus-hello-1\.0 needs domus-motd>=1\.0: no package"):
        install(tree, cache, old, hello)


def test_all_missing_dependencies_are_listed(tmp_path, tree, cache):
    needy = tmp_path / "needy-1.0.tgz"
    make_package(needy, "needy-1.0", {"bin/needy": b""}, depends=["a>=1", "b-[0-9]*", "c-2.0"])

    with pytest.raises(DomusError, match=r"needy-1\.0 needs a>=1, b-\[0-9\]\*, c-2\.0"):
        install(tree, cache, needy)


def test_two_packages_owning_one_file(tmp_path, tree, cache):
    rival = tmp_path / "rival-1.0.tgz"
    make_package(rival, "rival-1.0", {"bin/domus-motd": (b"#!/bin/sh\n", 0o755)})

    with pytest.raises(DomusError) as error:
        install(tree, cache, MOTD, rival)

    assert "domus-motd-1.0 and rival-1.0 both install /usr/pkg/bin/domus-motd" in str(error.value)
    assert "pkgdb/rival-1.0" not in tree


def test_same_package_twice_is_refused(tree, cache):
    install(tree, cache, MOTD)

    with pytest.raises(DomusError, match=r"domus-motd-1\.0 is already installed"):
        install(tree, cache, MOTD)  # the tree's pkgdb says it is there


def test_other_version_of_installed_package_is_refused(tmp_path, tree, cache):
    newer = tmp_path / "domus-motd-1.1.tgz"
    make_package(newer, "domus-motd-1.1", {"share/domus-motd/motd.new": b"x"})

    with pytest.raises(DomusError, match=r"cannot install domus-motd-1\.1: domus-motd-1\.0 is"):
        install(tree, cache, MOTD, newer)


def test_installed_files_are_known_to_a_later_call(tmp_path, tree, cache):
    install(tree, cache, MOTD)
    rival = tmp_path / "rival-1.0.tgz"
    make_package(rival, "rival-1.0", {"share/domus-motd/motd": b"mine\n"})

    with pytest.raises(DomusError, match=r"domus-motd-1\.0 and rival-1\.0 both install"):
        install(tree, cache, rival)


def test_dependency_met_by_a_package_installed_earlier(tree, cache):
    install(tree, cache, MOTD)

    assert install(tree, cache, HELLO) == ["domus-hello-1.0"]
    assert tree.read_text("pkgdb/domus-motd-1.0/+REQUIRED_BY") == "domus-hello-1.0\n"


@pytest.mark.parametrize("new_first", [True, False])
def test_pkgcfl_conflict_either_way(tmp_path, tree, cache, new_first):
    other = tmp_path / "motd-ng-1.0.tgz"
    plist = contents(
        "@name motd-ng-1.0", "@pkgcfl domus-motd-[0-9]*", "@cwd /usr/pkg", "bin/motd-ng"
    )
    write_package(other, {"+CONTENTS": plist, **META}, [("bin/motd-ng", b"")])
    order = (other, MOTD) if new_first else (MOTD, other)

    with pytest.raises(DomusError, match=r"(motd-ng|domus-motd)-1\.0 and \S+ conflict"):
        install(tree, cache, *order)


def test_file_already_in_the_tree_is_not_overwritten(tree, cache):
    tree.mkdir("bin")
    tree.write_text("bin/domus-motd", "put there by someone else\n")

    with pytest.raises(DomusError, match=r"/usr/pkg/bin/domus-motd is already there"):
        install(tree, cache, MOTD)
    assert tree.read_text("bin/domus-motd") == "put there by someone else\n"


# -- modes, owners, links -------------------------------------------------------------------


def test_owner_group_apply_to_following_files(tmp_path, tree, cache):
    pkg = tmp_path / "perm-1.0.tgz"
    plist = contents(
        "@name perm-1.0",
        "@cwd /usr/pkg",
        "bin/plain",
        "@owner bin",
        "@group operator",
        "bin/special",
        "@owner",  # empty: back to the archive's own owner and group
        "@group",
        "bin/again",
    )
    write_package(
        pkg,
        {"+CONTENTS": plist, **META},
        [
            ("bin/plain", (b"1", 0o750)),
            ("bin/special", (b"2", 0o755)),
            ("bin/again", (b"3", 0o700)),
        ],
        owner=("daemon", 1001, "staff", 1002),
    )
    install(tree, cache, pkg)

    # Without @owner/@group, the member's names count where NetBSD knows them (daemon: 1,
    # staff: 20), not the build host's numbers.
    assert tree.entry("bin/plain") == Entry("file", 0o750, 1, 20)
    assert tree.entry("bin/special") == Entry("file", 0o755, 3, 5)
    assert tree.entry("bin/again") == Entry("file", 0o700, 1, 20)


def test_unknown_member_owner_names_keep_their_numbers(tmp_path, tree, cache):
    pkg = tmp_path / "odd-1.0.tgz"
    write_package(
        pkg,
        {"+CONTENTS": contents("@name odd-1.0", "@cwd /usr/pkg", "f"), **META},
        [("f", b"")],
        owner=("builder", 1234, "builders", 4321),
    )
    install(tree, cache, pkg)

    assert tree.entry("f") == Entry("file", 0o644, 1234, 4321)


@pytest.mark.parametrize(
    ("line", "message"),
    [("@owner www", "@owner www: user 'www'"), ("@group www", "@group www: group 'www'")],
)
def test_unknown_owner_or_group_is_an_error(tmp_path, tree, cache, line, message):
    pkg = tmp_path / "web-1.0.tgz"
    write_package(
        pkg,
        {"+CONTENTS": contents("@name web-1.0", "@cwd /usr/pkg", line, "f"), **META},
        [("f", b"")],
    )

    with pytest.raises(DomusError, match=f"web-1.0: {message}"):
        install(tree, cache, pkg)


@pytest.mark.parametrize("mode", ["4555", "u+s", ""])
def test_mode_leaves_the_archives_mode_as_pkg_add_does(tmp_path, tree, cache, mode):
    # pkg_add applies @mode to the archive entry after libarchive took the entry's header,
    # so the file gets the mode the archive gives it: pkg_create's, from the staged file.
    pkg = tmp_path / "perm-1.0.tgz"
    plist = contents("@name perm-1.0", "@cwd /usr/pkg", f"@mode {mode}".strip(), "bin/x", "y")
    write_package(pkg, {"+CONTENTS": plist, **META}, [("bin/x", (b"", 0o755)), ("y", b"")])
    install(tree, cache, pkg)

    assert tree.entry("bin/x") == Entry("file", 0o755)
    assert tree.entry("y") == Entry("file", 0o644)


def test_files_and_symlinks_keep_the_archives_mtime_in_the_image(tmp_path, tree, cache):
    # pkg_add extracts with ARCHIVE_EXTRACT_TIME: the archive's mtime, not the time domus
    # first extracted the package into its cache.
    pkg = tmp_path / "old-1.0.tgz"
    make_package(pkg, "old-1.0", {"bin/a": b"a", "bin/b": Hardlink("bin/a"), "c": Symlink("a")})
    install(tree, cache, pkg)
    image = tmp_path / "pkg.img"
    write_image(tree, "ffs", 4 << 20, image)

    with FfsImage(image) as ffs:
        for path in (b"bin/a", b"bin/b", b"c"):
            assert ffs.entry(path).mtime == MTIME, path
        assert ffs.entry(b"pkgdb/old-1.0/+CONTENTS").mtime > MTIME  # written by pkg_add


def test_hard_link_member_shares_the_file(tmp_path, tree, cache):
    pkg = tmp_path / "links-1.0.tgz"
    make_package(
        pkg,
        "links-1.0",
        {
            "bin/a": (b"#!/bin/sh\n", 0o555),
            "bin/b": Hardlink("bin/a"),
            "bin/c": Symlink("a"),
        },
    )
    install(tree, cache, pkg)

    assert tree.entry("bin/b") == tree.entry("bin/a") == Entry("file", 0o555)
    assert tree.host_path("bin/b").stat().st_ino == tree.host_path("bin/a").stat().st_ino
    assert tree.entry("bin/c") == Entry("link", 0o755, link="a")


def test_install_script_is_not_run_but_kept_and_reported(tmp_path, tree, cache, caplog):
    pkg = tmp_path / "scripted-1.0.tgz"
    script = b"#!/bin/sh\ntouch /tmp/domus-should-not-exist\n"
    make_package(pkg, "scripted-1.0", {"f": b""}, meta={"+INSTALL": script})
    with caplog.at_level(logging.WARNING, logger="tasks.pkgsrc.install"):
        install(tree, cache, pkg)

    assert tree.entry("pkgdb/scripted-1.0/+INSTALL") == Entry("file", 0o555)
    assert tree.host_path("pkgdb/scripted-1.0/+INSTALL").read_bytes() == script
    assert "scripted-1.0: not run at image build time: +INSTALL" in caplog.text


# The mode pkg_add creates each metadata file with in the package database, whatever mode
# the archive gives it: pkg_meta_descriptors in pkg_install's add/perform.c.
PKG_ADD_MODES = {
    "+CONTENTS": 0o644,
    "+COMMENT": 0o444,
    "+DESC": 0o444,
    "+INSTALL": 0o555,
    "+DEINSTALL": 0o555,
    "+DISPLAY": 0o444,
    "+MTREE_DIRS": 0o444,
    "+BUILD_VERSION": 0o444,
    "+BUILD_INFO": 0o444,
    "+SIZE_PKG": 0o444,
    "+SIZE_ALL": 0o444,
    "+PRESERVE": 0o444,
    "+REQUIRED_BY": 0o644,
    "+INSTALLED_INFO": 0o644,
}


def test_the_package_database_gets_pkg_adds_modes_not_the_archives(tmp_path, tree, cache):
    made = tmp_path / "made.tar"
    extra = {name: b"x\n" for name in PKG_ADD_MODES if name not in ("+CONTENTS", "+BUILD_INFO")}
    make_package(made, "meta-1.0", {"f": b""}, meta=extra)
    pkg = tmp_path / "meta-1.0.tgz"
    with tarfile.open(made) as source, tarfile.open(pkg, "w:gz") as archive:
        for member in source.getmembers():
            member.mode = 0o600  # not what pkg_add gives any of them
            archive.addfile(member, source.extractfile(member))
    install(tree, cache, pkg)

    assert {
        name: tree.entry(f"pkgdb/meta-1.0/{name}").mode for name in PKG_ADD_MODES
    } == PKG_ADD_MODES


# -- broken and hostile packages ------------------------------------------------------------


def test_cwd_outside_usr_pkg_is_refused(tmp_path, tree, cache):
    pkg = tmp_path / "etc.tgz"
    write_package(
        pkg,
        {"+CONTENTS": contents("@name etc-1.0", "@cwd /etc", "rc.local"), **META},
        [("rc.local", b"")],
    )

    with pytest.raises(DomusError) as error:
        install(tree, cache, pkg)
    assert "etc-1.0 (etc.tgz): file 'rc.local' is under '@cwd /etc'" in str(error.value)
    assert "rc.local" not in tree


@pytest.mark.parametrize("member", ["../evil", "/etc/evil", "bin/../../evil"])
def test_member_leaving_the_prefix_is_refused(tmp_path, tree, cache, member):
    pkg = tmp_path / "evil-1.0.tgz"
    write_package(
        pkg,
        {"+CONTENTS": contents("@name evil-1.0", "@cwd /usr/pkg", "bin/ok"), **META},
        [("bin/ok", b""), (member, b"pwned")],
    )

    with pytest.raises(DomusError, match=f"member {member!r} is not a path inside /usr/pkg"):
        install(tree, cache, pkg)
    assert not (tmp_path / "evil").exists()
    assert not cache.exists()


def test_packing_list_path_leaving_the_prefix_is_refused(tmp_path):
    pkg = tmp_path / "evil-1.0.tgz"
    write_package(
        pkg, {"+CONTENTS": contents("@name evil-1.0", "@cwd /usr/pkg", "../x"), **META}, []
    )

    with pytest.raises(DomusError, match=re.escape("file '../x' is not a path inside /usr/pkg")):
        read_package(pkg)


def test_archive_and_packing_list_must_agree(tmp_path):
    unlisted = tmp_path / "a-1.0.tgz"
    write_package(
        unlisted,
        {"+CONTENTS": contents("@name a-1.0", "@cwd /usr/pkg"), **META},
        [("bin/extra", b"")],
    )
    missing = tmp_path / "b-1.0.tgz"
    write_package(
        missing, {"+CONTENTS": contents("@name b-1.0", "@cwd /usr/pkg", "bin/gone"), **META}, []
    )

    with pytest.raises(DomusError, match="has bin/extra, which \\+CONTENTS does not list"):
        read_package(unlisted)
    with pytest.raises(DomusError, match="lists bin/gone, which the archive lacks"):
        read_package(missing)


def test_contents_must_come_first(tmp_path):
    pkg = tmp_path / "late-1.0.tgz"
    write_package(pkg, {**META, "+CONTENTS": contents("@name late-1.0", "@cwd /usr/pkg")}, [])

    with pytest.raises(DomusError, match="the first member is '\\+COMMENT', not \\+CONTENTS"):
        read_package(pkg)


def test_md5_mismatch_is_refused(tmp_path, tree, cache):
    pkg = tmp_path / "bad-1.0.tgz"
    plist = contents("@name bad-1.0", "@cwd /usr/pkg", "f", "@comment MD5:" + "0" * 32)
    write_package(pkg, {"+CONTENTS": plist, **META}, [("f", b"data")])

    with pytest.raises(DomusError, match="f does not match its MD5 checksum"):
        install(tree, cache, pkg)
    assert list(cache.iterdir()) == []  # no half-extracted entry left behind


def test_not_a_package(tmp_path):
    junk = tmp_path / "junk-1.0.tgz"
    junk.write_bytes(b"!<arch>\nnot a tar archive at all" * 20)

    with pytest.raises(DomusError, match=r"cannot read package .*junk-1\.0\.tgz"):
        read_package(junk)


@pytest.mark.parametrize("suffix", [".tgz", ".txz", ".tbz", ".tar"])
def test_compression_is_told_by_content(tmp_path, suffix):
    made = tmp_path / f"p-1.0{suffix}"
    make_package(made, "p-1.0", {"f": b"x"})
    disguised = made.rename(tmp_path / "p-1.0.pkg")  # the name says nothing

    package = read_package(disguised)

    assert package.name == "p-1.0"
    assert [f.path for f in package.plist.files] == ["f"]


# -- versions and patterns ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ("1.0", "1.0", 0),
        ("1.0", "1", 0),  # missing components count as 0
        ("1.10", "1.9", 1),  # numbers, not strings
        ("1.2nb3", "1.2nb2", 1),
        ("1.2", "1.2nb1", -1),
        ("1.3", "1.2nb9", 1),  # nb only breaks ties
        ("1.0alpha1", "1.0beta1", -1),
        ("1.0rc1", "1.0", -1),
        ("1.0pl1", "1.0", 1),
        ("1.2a", "1.2", 1),  # a letter is one more component
        ("1.2a", "1.2b", -1),
        ("2.0", "10.0", -1),
    ],
)
def test_dewey_cmp(left, right, expected):
    assert dewey_cmp(left, right) == expected
    assert dewey_cmp(right, left) == -expected


@pytest.mark.parametrize(
    ("pattern", "pkgname", "expected"),
    [
        ("foo>=1.0", "foo-1.0", True),
        ("foo>=1.0", "foo-1.0nb1", True),
        ("foo>=1.0", "foo-0.9", False),
        ("foo>=1.0", "foobar-2.0", False),
        ("foo>1.0", "foo-1.0", False),
        ("foo<2", "foo-1.9", True),
        ("foo>=1.0<2", "foo-1.5", True),
        ("foo>=1.0<2", "foo-2.0", False),
        ("foo-[0-9]*", "foo-3.1", True),
        ("foo-[0-9]*", "foo-bar-3.1", False),
        ("foo-1.0", "foo-1.0", True),
        ("foo-1.0", "foo-1.0nb1", False),
        ("foo", "foo-1.0", True),  # a bare name: any version
        ("foo", "foo-bar-1.0", False),
        ("{foo,bar}>=1.0", "bar-1.2", True),
        ("{foo,bar}>=1.0", "baz-1.2", False),
        ("py{39,310}-x>=1", "py310-x-1.0", True),
    ],
)
def test_pkg_match(pattern, pkgname, expected):
    assert pkg_match(pattern, pkgname) is expected


def test_newest_matching_package_is_registered_as_dependency(tmp_path, tree, cache):
    # Two packages meet the pattern; pkg_add records the one with the newest version.
    old, new = tmp_path / "lib-1.0.tgz", tmp_path / "libalt-2.0.tgz"
    make_package(old, "lib-1.0", {"lib/a": b""})
    make_package(new, "libalt-2.0", {"lib/b": b""})
    user = tmp_path / "user-1.0.tgz"
    make_package(user, "user-1.0", {"bin/u": b""}, depends=["{lib,libalt}>=1"])
    install(tree, cache, old, new, user)

    assert tree.read_text("pkgdb/libalt-2.0/+REQUIRED_BY") == "user-1.0\n"
    assert "pkgdb/lib-1.0/+REQUIRED_BY" not in tree


@pytest.mark.parametrize("first", ["zlib", "alib"])
def test_of_equal_versions_the_first_name_in_byte_order_is_the_dependency(
    tmp_path, tree, cache, first
):
    # pkg_order (lib/opattern.c): equal versions go to the smaller name by strcmp, whichever
    # pkg_add met first in the package database.
    names = {"alib": "alib-1.0", "zlib": "zlib-1.0nb0"}  # nb0: the same version as none
    order = [first, *(n for n in names if n != first)]
    paths = []
    for base in order:
        paths.append(tmp_path / f"{names[base]}.tgz")
        make_package(paths[-1], names[base], {f"lib/{base}": b""})
    user = tmp_path / "user-1.0.tgz"
    make_package(user, "user-1.0", {"bin/u": b""}, depends=["{zlib,alib}>=1"])
    install(tree, cache, *paths, user)

    assert tree.read_text("pkgdb/alib-1.0/+REQUIRED_BY") == "user-1.0\n"
    assert "pkgdb/zlib-1.0nb0/+REQUIRED_BY" not in tree


# -- dependencies found beside the package, automatic marks ---------------------------------


@pytest.fixture
def chain(tmp_path):
    """top-1.0 needs mid>=1, which needs base>=2; decoys beside them that pkg_add passes over."""
    repo = tmp_path / "All"
    repo.mkdir()
    make_package(repo / "top-1.0.tgz", "top-1.0", {"bin/top": b"t"}, depends=["mid>=1"])
    make_package(repo / "mid-1.5.tbz", "mid-1.5", {"lib/mid": b"m"}, depends=["base>=2"])
    make_package(repo / "mid-0.9.tgz", "mid-0.9", {"lib/mid": b"old"})  # too old
    make_package(repo / "base-2.0.tgz", "base-2.0", {"lib/base": b"b"})
    make_package(repo / "base-2.1nb1.tgz", "base-2.1nb1", {"lib/base": b"b"})  # newest
    make_package(repo / "base-3.0.txz", "base-3.0", {"lib/base": b"b"})  # pkg_add skips .txz
    make_package(repo / "base-extra-9.0.tgz", "base-extra-9.0", {"lib/x": b"x"})  # other name
    return repo


def test_dependencies_beside_the_package_come_first_newest_and_automatic(chain, tree, cache):
    assert install(tree, cache, chain / "top-1.0.tgz") == ["base-2.1nb1", "mid-1.5", "top-1.0"]

    # pkg_add's mark_as_automatic_installed: var_set writes "automatic=yes", mode 0644.
    for name in ("base-2.1nb1", "mid-1.5"):
        assert tree.read_text(f"pkgdb/{name}/+INSTALLED_INFO") == "automatic=yes\n"
        assert tree.entry(f"pkgdb/{name}/+INSTALLED_INFO") == regular(0o644)
    assert "pkgdb/top-1.0/+INSTALLED_INFO" not in tree  # named: not automatic
    assert tree.read_text("pkgdb/base-2.1nb1/+REQUIRED_BY") == "mid-1.5\n"
    assert tree.read_text("pkgdb/mid-1.5/+REQUIRED_BY") == "top-1.0\n"


def test_a_named_package_is_never_automatic_whatever_its_place(chain, tree, cache):
    # Named after the package that needs it: installed first, as its dependency, but the site
    # named it, as pkg_add's "now marked as installed manually" leaves it.
    names = install(tree, cache, chain / "top-1.0.tgz", chain / "base-2.0.tgz")

    assert names == ["base-2.0", "mid-1.5", "top-1.0"]  # the site's base, not the newest
    assert "pkgdb/base-2.0/+INSTALLED_INFO" not in tree
    assert tree.read_text("pkgdb/mid-1.5/+INSTALLED_INFO") == "automatic=yes\n"


def test_dependency_met_by_the_tree_is_not_looked_for(chain, tmp_path, tree, cache):
    install(tree, cache, chain / "base-2.0.tgz")

    assert install(tree, cache, chain / "top-1.0.tgz") == ["mid-1.5", "top-1.0"]
    assert "pkgdb/base-2.0/+INSTALLED_INFO" not in tree


def test_automatic_mark_keeps_the_packages_other_installed_info(tmp_path, tree, cache):
    make_package(
        tmp_path / "lib-1.0.tgz",
        "lib-1.0",
        {"lib/l": b""},
        meta={"+INSTALLED_INFO": b"automatic=no\nsource=here\nautomatic=maybe\n"},
    )
    make_package(tmp_path / "app-1.0.tgz", "app-1.0", {"bin/a": b""}, depends=["lib-[0-9]*"])
    install(tree, cache, tmp_path / "app-1.0.tgz")

    assert tree.read_text("pkgdb/lib-1.0/+INSTALLED_INFO") == "automatic=yes\nsource=here\n"


def test_dependency_whose_file_name_lies_is_refused(tmp_path, tree, cache):
    make_package(tmp_path / "lib-1.0.tgz", "other-1.0", {"lib/l": b""})
    make_package(tmp_path / "app-1.0.tgz", "app-1.0", {"bin/a": b""}, depends=["lib>=1"])

    with pytest.raises(DomusError, match=r"app-1\.0 needs lib>=1: .*lib-1\.0\.tgz matches it by"):
        install(tree, cache, tmp_path / "app-1.0.tgz")


def test_dependency_cycle_is_refused(tmp_path, tree, cache):
    make_package(tmp_path / "a-1.0.tgz", "a-1.0", {"a": b""}, depends=["b-[0-9]*"])
    make_package(tmp_path / "b-1.0.tgz", "b-1.0", {"b": b""}, depends=["a-[0-9]*"])

    with pytest.raises(DomusError, match=r"dependency cycle: a-1\.0 -> b-1\.0 -> a-1\.0"):
        install(tree, cache, tmp_path / "a-1.0.tgz")


def test_failure_of_a_found_dependency_says_where_it_came_from(chain, tree, cache):
    rival = chain.parent / "rival-1.0.tgz"
    make_package(rival, "rival-1.0", {"lib/mid": b"mine"})

    with pytest.raises(DomusError) as error:
        install(tree, cache, rival, chain / "top-1.0.tgz")

    assert "rival-1.0 and mid-1.5 both install /usr/pkg/lib/mid; mid-1.5 comes from " in str(
        error.value
    )
    assert "as a dependency of top-1.0, which needs mid>=1" in str(error.value)


def test_package_files_are_the_named_and_the_found(chain):
    # The pkg task's file_dep and its generation record: a changed dependency rebuilds.
    assert pkgsrc_packages.package_files([chain / "top-1.0.tgz"]) == [
        chain / "base-2.1nb1.tgz",
        chain / "mid-1.5.tbz",
        chain / "top-1.0.tgz",
    ]
    (chain / "base-2.1nb1.tgz").unlink()
    (chain / "base-2.0.tgz").unlink()
    # Unresolvable: the named ones; building the image says why.
    assert pkgsrc_packages.package_files([chain / "top-1.0.tgz"]) == [chain / "top-1.0.tgz"]


def test_pkg_task_depends_on_the_dependencies_found(chain, tmp_path):
    spec = PkgSpec(8 << 20, "ffs", PkgSource(None, (chain / "top-1.0.tgz",)))
    machine = domu("www1", pkg=spec)

    task = pkg_kind.task(machine, Layout(tmp_path / "out", tmp_path / "locks"))

    found = ("base-2.1nb1.tgz", "mid-1.5.tbz", "top-1.0.tgz")
    assert task["file_dep"] == [str(chain / name) for name in found]
    assert {f"file package {name}" for name in found} <= pkg_record(machine).keys()


def test_a_failed_build_leaves_the_output_as_it_found_it(tmp_path):
    bad = tmp_path / "bad-1.0.tgz"
    plist = contents("@name bad-1.0", "@cwd /usr/pkg", "f", "@comment MD5:" + "0" * 32)
    write_package(bad, {"+CONTENTS": plist, **META}, [("f", b"data")])
    output, locks = tmp_path / "out", tmp_path / "locks"
    (output / "cache").mkdir(parents=True)  # as the run makes it before any image's build
    layout = Layout(output, locks)
    machine = domu("www1", pkg=PkgSpec(8 << 20, "ffs", PkgSource(None, (MOTD, bad))))
    before = sorted(output.rglob("*"))

    with pytest.raises(DomusError, match="does not match its MD5 checksum"):
        pkg_kind.build(machine, layout)

    # MOTD's extraction stays in the cache: complete, checked, and perhaps in use by another
    # domU's build. The lock files stay, as every build leaves them.
    cache = output / "cache" / "packages"
    assert sorted(output.rglob("*")) == sorted([*before, *cache.rglob("*"), cache])
    assert [p.name for p in cache.iterdir()] == [read_package(MOTD).digest]
    assert all(p.suffix == ".lock" for p in locks.iterdir())

    shutil.rmtree(cache)
    machine = domu("www1", pkg=PkgSpec(8 << 20, "ffs", PkgSource(None, (bad,))))
    with pytest.raises(DomusError, match="does not match its MD5 checksum"):
        pkg_kind.build(machine, layout)
    assert sorted(output.rglob("*")) == before


# -- pkgdb.byfile.db ------------------------------------------------------------------------


def byfile(tree):
    with dbopen(tree.host_path("pkgdb/pkgdb.byfile.db")) as db:
        return db.records()


def test_byfile_db_holds_what_pkg_add_stores(tree, cache):
    install(tree, cache, MOTD, HELLO)

    # Read by the real db 1.85 code. Keys are the full paths under the prefix and values the
    # package names, both with their NUL (pkgdb_store); @pkgdir too, marked as such.
    assert byfile(tree) == [
        (b"/usr/pkg/bin/domus-hello\0", b"domus-hello-1.0\0"),
        (b"/usr/pkg/bin/domus-motd\0", b"domus-motd-1.0\0"),
        (b"/usr/pkg/share/doc/domus-motd/motd\0", b"domus-motd-1.0\0"),  # a symlink: a file
        (b"/usr/pkg/share/domus-motd/motd\0", b"domus-motd-1.0\0"),
        (b"/usr/pkg/share/domus-motd/motd.d\0", b"@pkgdir domus-motd-1.0\0"),
    ]


def test_byfile_db_shared_pkgdir_and_overlong_records(tmp_path, tree, cache):
    long_dir = "share/" + "/".join(["d" * 200] * 6)  # "/usr/pkg/" + this + NUL > MaxPathSize
    make_package(tmp_path / "a-1.0.tgz", "a-1.0", {"a": b""}, pkgdirs=["etc/rc.d", long_dir])
    make_package(tmp_path / "b-1.0.tgz", "b-1.0", {"b": b""}, pkgdirs=["etc/rc.d"])
    install(tree, cache, tmp_path / "a-1.0.tgz", tmp_path / "b-1.0.tgz")

    assert byfile(tree) == [
        (b"/usr/pkg/a\0", b"a-1.0\0"),
        (b"/usr/pkg/b\0", b"b-1.0\0"),
        (b"/usr/pkg/etc/rc.d\0", b"@pkgdir a-1.0 b-1.0\0"),  # add_pkgdir appends
    ]  # the long @pkgdir: pkgdb_store refused it, pkg_add went on
    assert tree.entry(long_dir) == directory()


def test_byfile_db_covers_packages_installed_by_an_earlier_call(tree, cache):
    install(tree, cache, MOTD)
    install(tree, cache, HELLO)

    assert (b"/usr/pkg/bin/domus-motd\0", b"domus-motd-1.0\0") in byfile(tree)
    assert (b"/usr/pkg/bin/domus-hello\0", b"domus-hello-1.0\0") in byfile(tree)


def test_byfile_db_key_is_the_packages_own_cwd(tmp_path, tree, cache):
    plist = contents("@name odd-1.0", "@cwd /usr/pkg/", "bin/odd")
    write_package(tmp_path / "odd-1.0.tgz", {"+CONTENTS": plist, **META}, [("bin/odd", b"")])
    install(tree, cache, tmp_path / "odd-1.0.tgz")

    assert byfile(tree) == [(b"/usr/pkg//bin/odd\0", b"odd-1.0\0")]  # "%s/%s", prefix, file


def test_byfile_db_of_packages_without_files_is_empty_as_db_leaves_it(tmp_path, tree, cache):
    # A meta package: pkg_add opens the database with O_CREAT, stores nothing and closes it;
    # db writes no page of a tree nothing was put in.
    write_package(
        tmp_path / "meta-1.0.tgz",
        {"+CONTENTS": contents("@name meta-1.0", "@cwd /usr/pkg"), **META},
        [],
    )
    install(tree, cache, tmp_path / "meta-1.0.tgz")
    real = tmp_path / "real.db"
    with dbcreate(real, pkgdb_info()):
        pass

    assert tree.host_path("pkgdb/pkgdb.byfile.db").read_bytes() == real.read_bytes() == b""
    assert tree.entry("pkgdb/pkgdb.byfile.db") == regular(0o644)
    assert byfile(tree) == []


def test_byfile_db_lets_pkg_admin_add_more(tree, cache):
    # pkg_add and pkg_admin in a domU with a writable /usr/pkg update the same file.
    install(tree, cache, MOTD)
    path = tree.host_path("pkgdb/pkgdb.byfile.db")
    with dbopen(path, writable=True) as db:
        for index in range(3000):
            assert db.put(f"/usr/pkg/new/{index}\0".encode(), b"new-1.0\0") == 0
        assert db.put(b"/usr/pkg/bin/domus-motd\0", b"x\0") == 1  # R_NOOVERWRITE: there
    with dbopen(path) as db:
        assert db.get(b"/usr/pkg/bin/domus-motd\0") == b"domus-motd-1.0\0"
        assert db.get(b"/usr/pkg/new/2999\0") == b"new-1.0\0"
        assert len(db.records()) == 4 + 3000
