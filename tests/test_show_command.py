"""`./domus show` and `./domus ls`: files and directories read back from any image of the
example site (FFS, ext2fs, cgd-encrypted both ways), never mounted, no plaintext left."""

from __future__ import annotations

import os
import stat
import time

import pytest

from tasks import cli
from tasks.cgd import stream
from tests.commands import active
from tests.image_reader import ImageReader
from tests.sites import Site
from tests.test_cli import domus


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    site = Site(tmp_path_factory.mktemp("show"))
    # www1 plain FFS; www2 FFS sealed with a passphrase; db1 ext2fs sealed with a stored key
    site.data["domains"]["www2"]["local"] = {"encrypt": "domu"}
    site.data["domains"]["db1"]["local"]["encrypt"] = "dom0"
    site.save()
    site.build()
    return site


def run(site: Site, *args: str):
    return domus(*args, f"config={site.path}", cwd=site.directory, env={"TZ": "UTC"})


def files_beside(site: Site) -> dict[str, list[str]]:
    images = site.output / "images"
    return {d.name: sorted(os.listdir(d)) for d in images.iterdir() if d.is_dir()}


def test_show_prints_the_file_of_a_plain_ffs_image(site):
    root = ImageReader(site.image("root.img"), "ffs")
    done = run(site, "show", "root:/etc/rc")
    assert (done.returncode, done.stdout) == (0, root.text("etc/rc"))
    generation = active(site)
    same = run(site, "show", f"root@{generation[:6]}:/etc/rc")
    assert same.stdout == done.stdout


def test_show_reads_every_kind_of_local_image(site):
    for name, fs in (("www1", "ffs"), ("www2", "ffs"), ("db1", "ext2fs")):
        done = run(site, "show", f"local:{name}:/etc/fstab")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"# /etc/fstab of {name}: written by domus.")
        assert f"/local\t\t{fs}\trw" in done.stdout


def test_ls_lists_mode_owner_size_and_mtime_like_ls(site):
    done = run(site, "ls", "-n", "local:www1:/etc/cgd")
    assert done.returncode == 0, done.stderr
    local = ImageReader(site.image("www1", "local.img"), "ffs")
    lines = done.stdout.splitlines()
    names = ["cgd.conf", "domus", "xbd1d", "xbd1d.disklabel"]  # domus: a directory
    assert [line.split()[-1] for line in lines] == names
    for line in lines[0:1] + lines[2:]:
        mode, uid, gid, size, day, minute, name = line.split()
        entry = local.stat(f"etc/cgd/{name}")
        assert mode == stat.filemode(stat.S_IFREG | entry.mode) == "-rw-------"
        assert (int(uid), int(gid), int(size)) == (entry.uid, entry.gid, entry.size)
        assert time.strptime(f"{day} {minute}", "%Y-%m-%d %H:%M")
    one = run(site, "ls", "--numeric", "local:db1:/etc/fstab")
    assert one.stdout.startswith("-rw-r--r--  0 0  ") and one.stdout.endswith(" fstab\n")


def test_ls_names_owners_and_groups_from_the_image_own_passwd_and_group(site):
    local = run(site, "ls", "local:db1:/etc/fstab").stdout
    assert local.startswith("-rw-r--r--  root wheel  ") and local.endswith(" fstab\n")
    root = run(site, "ls", "root:/").stdout
    assert "drwxrwxrwt  root wheel  512" in root
    # a pkg.img has no etc/passwd of its own: the numbers, as they are
    assert "lrwxr-xr-x  0 0 " in run(site, "ls", "pkg:www1:/").stdout


def test_ls_shows_symlinks_and_the_top_of_a_pkg_image(site):
    done = run(site, "ls", "pkg:www1:/")
    assert done.returncode == 0, done.stderr
    names = [line.split()[-1] for line in done.stdout.splitlines()]
    # /usr/pkg/etc is each domU's own /etc/pkg (a package's config files live there)
    assert names == ["bin", "/etc/pkg", "pkgdb", "share"]
    assert "etc -> /etc/pkg" in done.stdout
    root = run(site, "ls", "root:/").stdout
    assert "drwxrwxrwt  root wheel  512" in root  # /tmp, sticky


def test_an_encrypted_ffs_image_is_read_without_any_plaintext_copy(site, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("decrypted to a file")

    monkeypatch.setattr(stream, "decrypt_file", refuse)
    monkeypatch.setenv("TZ", "UTC")
    before = files_beside(site)
    assert cli.main(["show", "local:www2:/etc/rc.conf", f"config={site.path}"]) == 0
    assert "hostname=www2" in capsys.readouterr().out
    assert files_beside(site) == before


def test_an_encrypted_ext2fs_image_leaves_no_plaintext_on_any_path(site):
    before = files_beside(site)
    assert "hostname=db1" in run(site, "show", "local:db1:/etc/rc.conf").stdout
    failed = run(site, "show", "local:db1:/etc/nosuch")
    assert failed.returncode == 1
    assert failed.stderr.startswith("domus: local:db1: /etc/nosuch is not there")
    assert files_beside(site) == before


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["show", "root/etc/rc"], 2, "domus: 'root/etc/rc' is not IMAGE:PATH"),
        (["show", "swap:www1:/"], 2, "domus: 'swap:www1' names no image"),
        (["show", "local:www1@1234:/etc"], 2, "a local.img has no generations"),
        (["show", "local:nosuch:/etc/rc"], 2, "domus: no domain named nosuch"),
        (["show", "root@ffffff:/etc/rc"], 1, "domus: no root generations start with 'ffffff'"),
        (["show", "root:/etc"], 1, "domus: root@"),
        (["ls", "root:/nosuch"], 1, "/nosuch is not there"),
    ],
)
def test_bad_names_say_what_is_wrong_with_the_statuses_of_every_command(
    site, args, status, message
):
    done = run(site, *args)
    assert done.returncode == status, done.stderr
    assert message in done.stderr.splitlines()[0]
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_an_invalid_site_exits_78(tmp_path):
    site = Site(tmp_path / "site")
    site.data["domains"]["www1"]["memory"] = "lots"
    site.save()
    assert run(site, "ls", "root:/").returncode == 78


def test_the_decrypting_file_reads_any_range_as_the_plaintext(site, tmp_path):
    from tasks.cgd.keys import local_params
    from tasks.cgd.seekable import open_decrypted
    from tasks.site import load_site

    loaded = load_site(site.path)
    www2 = next(d for d in loaded.domus if d.name == "www2")
    params, passphrase = local_params(loaded.keys, www2)
    plain = tmp_path / "plain.img"
    stream.decrypt_file(params, site.image("www2", "local.img"), plain, passphrase=passphrase)
    expected = plain.read_bytes()
    with open_decrypted(site.image("www2", "local.img"), params, passphrase) as image:
        for start, size in (
            (0, 1),
            (511, 2),
            (8192, 8192),
            (65537, 100_000),
            (len(expected) - 3, 10),
        ):
            image.seek(start)
            assert image.read(size) == expected[start : start + size]
