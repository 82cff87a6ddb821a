"""`./domus ls` and `./domus show` on symlinks of every length NetBSD allows (MAXPATHLEN
1024, with its NUL): kept in the inode (ext2fs below 60 bytes, FFSv1 below
MAXSYMLINKLEN_UFS1 = 60) or in a block of their own."""

from __future__ import annotations

import os

import pytest

from tasks.images.ext2fs import write_ext2fs
from tasks.images.ffs import write_ffs
from tasks.images.tree import Tree
from tests.image_reader import ImageReader
from tests.sites import Site
from tests.test_cli import domus

LENGTHS = (1, 59, 60, 61, 200, 1023)
LOCALS = {"www1": "ffs", "db1": "ext2fs"}


def target(length: int) -> str:
    return ("/var/" + "0123456789abcde/" * 64)[:length]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    """The example site, its local images then holding what a domU's administrator made:
    a directory of symlinks of each length, and a file beside them."""
    site = Site(tmp_path_factory.mktemp("symlinks"))
    site.build()
    for name, fs in LOCALS.items():
        staging = tmp_path_factory.mktemp(f"{name}-tree")
        tree = Tree.empty(staging / "tree")
        tree.mkdir("etc")
        tree.write_text("etc/motd", f"{name} motd\n")
        tree.mkdir("links")
        for length in LENGTHS:
            tree.symlink(f"links/len{length:04d}", target(length))
        image = site.image(name, "local.img")
        fresh = image.with_name("local.img.new")
        (write_ffs if fs == "ffs" else write_ext2fs)(tree, 4 * 1024 * 1024, fresh)
        os.replace(fresh, image)
    return site


def run(site: Site, *args: str):
    return domus(*args, f"config={site.path}", cwd=site.directory, env={"TZ": "UTC"})


@pytest.mark.parametrize("name", sorted(LOCALS))
def test_the_images_hold_fast_and_slow_symlinks(site, name):
    """As read by The Sleuth Kit, a reader that is not ours."""
    local = ImageReader(site.image(name, "local.img"), LOCALS[name])
    for length in LENGTHS:
        link = local.stat(f"links/len{length:04d}")
        assert (link.type, link.size, link.link) == ("link", length, target(length))


@pytest.mark.parametrize("name", sorted(LOCALS))
def test_ls_lists_every_symlink_with_its_target(site, name):
    done = run(site, "ls", "-n", f"local:{name}:/links")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(LENGTHS)
    for line, length in zip(lines, LENGTHS, strict=True):
        assert line.startswith("lrwxr-xr-x  0 0 ")
        assert line.endswith(f" len{length:04d} -> {target(length)}")
        assert line.split()[3] == str(length)


@pytest.mark.parametrize("name", sorted(LOCALS))
@pytest.mark.parametrize("length", LENGTHS)
def test_ls_and_show_of_one_symlink(site, name, length):
    path = f"local:{name}:/links/len{length:04d}"
    listed = run(site, "ls", path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.endswith(f" len{length:04d} -> {target(length)}\n")
    shown = run(site, "show", path)
    assert (shown.returncode, shown.stdout) == (1, "")
    assert f"is a symbolic link to {target(length)}\n" in shown.stderr
    assert "Traceback" not in shown.stderr


@pytest.mark.parametrize("name", sorted(LOCALS))
def test_show_still_prints_a_file_and_ls_the_top(site, name):
    shown = run(site, "show", f"local:{name}:/etc/motd")
    assert (shown.returncode, shown.stdout) == (0, f"{name} motd\n")
    top = run(site, "ls", f"local:{name}:/")
    assert top.returncode == 0, top.stderr
    names = {line.split()[-1] for line in top.stdout.splitlines()}
    assert names - {"lost+found"} == {"etc", "links"}
