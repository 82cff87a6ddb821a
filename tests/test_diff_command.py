"""`./domus diff`: between generations of root.img and pkg.img, and a local.img's drift
from the site (the answer of `./domus converge --dry-run`, from the same code)."""

from __future__ import annotations

import pytest

from tests.commands import active, change_root_template
from tests.sites import Site
from tests.test_cli import domus


def run(site: Site, *args: str):
    return domus(*args, f"config={site.path}", cwd=site.directory, env={"TZ": "UTC"})


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    site = Site(tmp_path_factory.mktemp("diff"))
    site.data["domains"]["www2"]["local"] = {"encrypt": "domu"}
    site.data["domains"]["db1"]["local"]["encrypt"] = "dom0"
    site.save()
    site.build()
    site.first = {"root": active(site), "pkg.www1": active(site, "pkg.www1")}
    # a second generation of each: a root template changed and one added, a package gone
    change_root_template(site, "# a second generation\n")
    (site.directory / "templates" / "root" / "etc" / "banner").write_text("hello\n")
    site.data["domains"]["www1"]["pkg"]["source"]["packages"].pop()
    site.save()
    site.build()
    return site


def test_diff_root_is_the_active_generation_against_the_one_before(site):
    done = run(site, "diff", "root")
    assert done.returncode == 0, done.stderr
    old, new = site.first["root"], active(site)
    assert old != new
    lines = done.stdout.splitlines()
    assert lines[:4] == [
        f"--- root@{old}",
        f"+++ root@{new}",
        "added    /etc/banner (file, 0644, 0:0, 6 bytes)",
        lines[3],
    ]
    assert lines[3].startswith("changed  /etc/rc.pre-hooks: size ")
    assert lines[3].endswith(", content")
    assert f"--- root@{old}:/etc/rc.pre-hooks" in lines
    assert "+# a second generation" in lines
    assert lines[-1] == "1 added, 0 removed, 1 changed"


def test_two_named_generations_in_either_order(site):
    old, new = site.first["root"], active(site)
    back = run(site, "diff", "root", new[:6], old[:6])
    assert back.returncode == 0, back.stderr
    assert "removed  /etc/banner (file, 0644, 0:0, 6 bytes)" in back.stdout
    assert "-# a second generation" in back.stdout.splitlines()
    same = run(site, "diff", "root", old, old)
    assert (same.returncode, same.stdout) == (0, "")


def test_diff_pkg_names_the_files_of_a_package_gone(site):
    done = run(site, "diff", "pkg:www1")
    assert done.returncode == 0, done.stderr
    assert "removed  /bin/domus-hello (file, 0755, 0:0, 159 bytes)" in done.stdout
    assert "removed  /pkgdb/domus-hello-1.0 (dir, 0755, 0:0)" in done.stdout
    assert "(/pkgdb/pkgdb.byfile.db: binary content differs)" in done.stdout
    assert run(site, "diff", "pkg:www2").returncode == 1  # www2 has had one generation only


def test_drift_is_what_converge_dry_run_says(site):
    assert (run(site, "diff", "local:db1").returncode, run(site, "diff", "local:db1").stdout) == (
        0,
        "",
    )
    site.data["domains"]["db1"]["rc_conf"]["sshd"] = "NO"
    site.save()
    try:
        drift = run(site, "diff", "local:db1")
        dry = run(site, "converge", "--dry-run", "db1")
        assert drift.returncode == 0 and dry.returncode == 1  # converge's is diff(1)'s status
        assert drift.stdout == dry.stdout
        assert "-sshd=YES\n+sshd=NO\n" in drift.stdout
    finally:
        site.data["domains"]["db1"]["rc_conf"].pop("sshd")
        site.save()


def test_drift_of_an_ffs_image_is_read_without_mounting(site):
    """www1's local.img is FFS: on Linux converge reads it with domus's FFS reader, and
    diff gives the same answer from the same code."""
    assert (run(site, "diff", "local:www1").returncode, run(site, "diff", "local:www1").stdout) == (
        0,
        "",
    )
    rc_conf = site.data["domains"]["www1"].setdefault("rc_conf", {})
    rc_conf["sshd"] = "NO"
    site.save()
    try:
        drift = run(site, "diff", "local:www1")
        dry = run(site, "converge", "--dry-run", "www1")
        assert drift.returncode == 0 and dry.returncode == 1, drift.stderr + dry.stderr
        assert drift.stdout == dry.stdout
        assert "-sshd=YES\n+sshd=NO\n" in drift.stdout
    finally:
        rc_conf.pop("sshd")
        site.save()


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["diff", "root", "abc"], 2, "domus: name two generations (from, to), or none"),
        (["diff", "root@abc"], 2, "name the generations after the image"),
        (["diff", "local:db1", "a", "b"], 2, "a local.img has no generations"),
        (["diff", "pkg:nosuch"], 2, "domus: no domain named nosuch"),
        (["diff", "root", "ffff", "eeee"], 1, "domus: no root generations start with 'ffff'"),
    ],
)
def test_bad_arguments(site, args, status, message):
    done = run(site, *args)
    assert done.returncode == status, done.stderr
    assert message in done.stderr.splitlines()[0]
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_generations_of_an_ext2fs_root(tmp_path):
    site = Site(tmp_path / "site")
    site.data["root"].update({"fs": "ext2fs", "size": "32m"})
    site.save()
    site.build()
    change_root_template(site, "# ext2fs too\n")
    (site.directory / "templates" / "root" / "etc" / "banner").write_text("hi\n")
    site.build()
    done = run(site, "diff", "root")
    assert done.returncode == 0, done.stderr
    assert "added    /etc/banner (file, 0644, 0:0, 3 bytes)" in done.stdout
    assert "+# ext2fs too" in done.stdout.splitlines()
    assert done.stdout.endswith("1 added, 0 removed, 1 changed\n")
